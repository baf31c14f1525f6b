"""The result cache (vqlib.sweeps.cache): warm calls compute nothing; keys follow config, data and
code; a corrupt, truncated, tampered or incomplete entry is reported, moved aside and
recomputed, never read as data."""
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import vqlib
from vqlib.sweeps import cache as vcache
from vqlib.sweeps.cache import CacheWarning, cached, entry_path, key_of, lookup


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("VQLIB_CACHE", str(tmp_path / "c"))
    return tmp_path / "c"


@pytest.fixture(scope="module")
def digits():
    return vqlib.load_dataset("digits")[:64]


class Counter:
    """A real computation (a tiny VQ-VAE's losses) that counts how often it ran."""

    def __init__(self, x, seed=0):
        self.x, self.seed, self.calls = x, seed, 0

    def __call__(self):
        self.calls += 1
        model = vqlib.VQVAE((1, 8, 8), 4, 1, hidden=8, seed=self.seed)
        vqlib.fit(model, self.x, epochs=1, train_seed=self.seed, device="cpu")
        losses = vqlib.reconstruction_loss(model, self.x[:3], seed=self.seed)
        return [{"seed": self.seed, "i": i, "loss": np.float32(v), "pair": (i, i + 1)} for i, v in enumerate(losses)]


CONFIG = {"K": 4, "L": 1, "epochs": 1}


def test_warm_call_recomputes_nothing(root, digits):
    compute = Counter(digits)
    cold = cached("t-warm", CONFIG, compute, data=digits)
    assert compute.calls == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy entry gives no warning
        warm = cached("t-warm", CONFIG, compute, data=digits)
    assert compute.calls == 1 and warm == cold
    assert cold[0]["pair"] == [0, 1] and isinstance(cold[0]["loss"], float)
    # the cache off gives the same rows (through JSON too), computing every time
    off = cached("t-warm", CONFIG, compute, data=digits, root=None)
    assert off == cold and compute.calls == 2
    assert cached("t-warm", CONFIG, compute, data=digits, refresh=True) == cold and compute.calls == 3
    assert lookup("t-warm", CONFIG, data=digits) == cold


def test_key_changes_with_config_data_and_code(monkeypatch, digits):
    base = key_of("t", CONFIG, digits)
    assert key_of("t", dict(CONFIG), digits.clone()) == base  # equal content, equal key
    assert key_of("t", {**CONFIG, "K": 8}, digits) != base
    assert key_of("u", CONFIG, digits) != base
    other = digits.clone()
    other[0, 0, 0, 0] += 1e-6
    assert key_of("t", CONFIG, other) != base
    assert key_of("t", CONFIG, digits[:-1]) != base
    assert key_of("t", CONFIG, digits.double()) != base
    assert key_of("t", CONFIG, digits, code=vcache.code_fingerprint()) == base
    assert key_of("t", CONFIG, digits, code="another-version") != base
    monkeypatch.setattr(vcache, "code_fingerprint", lambda: "another-version")
    assert key_of("t", CONFIG, digits) != base


def test_code_fingerprint_follows_every_source_file_outside_book(tmp_path):
    src = Path(vqlib.__file__).parent
    copy = tmp_path / "vqlib"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__"))
    first = vcache.source_fingerprint(copy, "0.1.0")
    assert first == vcache.source_fingerprint(copy, "0.1.0")  # a pure function of the files
    assert len(vcache.code_fingerprint()) == 16
    assert vcache.source_fingerprint(src, "0.2.0") != first
    # every file outside book/ counts, at every depth of the package: the models, the sweeps, the root
    for edited in ("models/fit.py", "bounds/certificates.py", "studies/temperature.py", "sweeps/registry.py",
                   "sweeps/ch04_prior.py", "_checks.py", "__main__.py"):
        before = vcache.source_fingerprint(copy, "0.1.0")
        (copy / edited).write_text((copy / edited).read_text() + "\n# edit\n")
        assert vcache.source_fingerprint(copy, "0.1.0") != before, edited
    new_module = copy / "models" / "new_layer.py"
    before = vcache.source_fingerprint(copy, "0.1.0")
    new_module.write_text("X = 1\n")
    assert vcache.source_fingerprint(copy, "0.1.0") != before  # a new file counts too
    # book/ presents results and never computes one (tests/test_layout.py: nothing imports it)
    second = vcache.source_fingerprint(copy, "0.1.0")
    for edited in ("book/cli.py", "book/costs.py", "book/plots.py", "book/__init__.py"):
        (copy / edited).write_text((copy / edited).read_text() + "\n# a presentation-only edit\n")
        assert vcache.source_fingerprint(copy, "0.1.0") == second, edited


def test_code_fingerprint_is_rooted_at_the_package():
    """The fingerprint hashes the whole package, not the folder of the module that computes it."""
    root = Path(vqlib.__file__).resolve().parent
    assert vcache.code_fingerprint() == vcache.source_fingerprint(root, vqlib.__version__)
    assert vcache.code_fingerprint() != vcache.source_fingerprint(root / "sweeps", vqlib.__version__)
    with pytest.raises(ValueError, match="not a package folder"):
        vcache.source_fingerprint(root.parent, vqlib.__version__)


def _spoil_corrupt(path):
    path.write_bytes(b"\x89PNG\x00\xff not json at all")


def _spoil_truncated(path):
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def _spoil_checksum(path):
    entry = json.loads(path.read_text())
    entry["rows"][0]["loss"] = 0.5  # the rows changed, the checksum did not
    path.write_text(json.dumps(entry))


def _spoil_incomplete(path):
    entry = json.loads(path.read_text())
    entry["complete"] = False
    path.write_text(json.dumps(entry))


def _spoil_key(path):
    entry = json.loads(path.read_text())
    entry["key"] = "0" * 32  # an entry copied from another configuration
    path.write_text(json.dumps(entry))


def _spoil_empty(path):
    path.write_text("")


@pytest.mark.parametrize("spoil", [_spoil_corrupt, _spoil_truncated, _spoil_checksum, _spoil_incomplete,
                                   _spoil_key, _spoil_empty])
def test_bad_entry_is_reported_moved_aside_and_recomputed(root, digits, spoil):
    compute = Counter(digits)
    good = cached("t-bad", CONFIG, compute, data=digits)
    path = entry_path("t-bad", CONFIG, digits)
    spoil(path)
    spoilt = path.read_bytes()
    with pytest.warns(CacheWarning, match="corrupt or partial"):
        again = cached("t-bad", CONFIG, compute, data=digits)
    assert compute.calls == 2 and again == good  # recomputed, not read
    aside = path.with_suffix(".corrupt")
    assert aside.read_bytes() == spoilt  # kept for inspection
    assert path.exists() and json.loads(path.read_text())["complete"] is True  # a healthy entry again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached("t-bad", CONFIG, compute, data=digits) == good and compute.calls == 2


def test_sweep_reads_a_bad_entry_never(root):
    # through the experiments runner as well: the corrupt entry is recomputed
    from vqlib import sweeps

    calls = []

    def compute(x, *, seed, scale):
        calls.append(seed)
        return [{"seed": seed, "mean": float(x[:10].mean()) * scale}]

    sweep = sweeps.Sweep(name="t-sweep-cache", chapter="tests", doc="tests only",
                              quick=dict(seed=[0, 1], scale=2.0), full=dict(seed=[0, 1], scale=2.0),
                              compute=compute, grid=("seed",))
    rows = sweep.run("quick")
    assert calls == [0, 1] and sweep.run("quick") == rows and calls == [0, 1]
    files = sorted((root / "t-sweep-cache").glob("*.json"))
    assert len(files) == 2
    _spoil_truncated(files[0])
    with pytest.warns(CacheWarning):
        assert sweep.run("quick") == rows
    assert len(calls) == 3


def test_rows_must_be_dicts_of_json_values(root):
    with pytest.raises(TypeError, match="list of dict rows"):
        cached("t-type", CONFIG, lambda: {"a": 1})
    with pytest.raises(TypeError, match="JSON"):
        cached("t-type", CONFIG, lambda: [{"a": torch.zeros(2)}])
    assert not list(root.rglob("*.json"))  # nothing half-written stays behind


def test_cache_off_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("VQLIB_CACHE", "off")
    assert vcache.cache_dir() is None and entry_path("t", CONFIG) is None
    monkeypatch.setenv("VQLIB_CACHE", str(tmp_path))
    assert vcache.cache_dir() == tmp_path


def _spoil_rows_not_rows(path):
    entry = json.loads(path.read_text())
    entry["rows"] = ["x", "y"]  # not rows, under a checksum that matches them
    entry["checksum"] = vcache._checksum(vcache._canonical(entry["rows"]))
    path.write_text(json.dumps(entry))


def test_rows_that_are_not_rows_are_a_corrupt_entry(root, digits):
    compute = Counter(digits)
    good = cached("t-schema", CONFIG, compute, data=digits)
    path = entry_path("t-schema", CONFIG, digits)
    _spoil_rows_not_rows(path)
    with pytest.warns(CacheWarning, match="row 0 is not an object"):
        assert lookup("t-schema", CONFIG, data=digits) is None
    assert path.with_suffix(".corrupt").exists() and not path.exists()  # moved aside
    assert cached("t-schema", CONFIG, compute, data=digits) == good and compute.calls == 2


def _seed_sweep(compute, name):
    from vqlib import sweeps

    return sweeps.Sweep(name=name, chapter="tests", doc="tests only", quick=dict(seed=[0, 1], scale=2.0),
                             full=dict(seed=[0, 1], scale=2.0), compute=compute, grid=("seed",), columns=("mean",))


def test_sweep_rows_are_checked_against_its_schema_on_read(root):
    calls = []

    def compute(x, *, seed, scale):
        calls.append(seed)
        return [{"seed": seed, "mean": float(x[:10].mean()) * scale}]

    sweep = _seed_sweep(compute, "t-sweep-schema")
    rows = sweep.run("quick")
    assert sweep.count_cached("quick") == (2, 2)
    for spoilt in ([{"mean": 1.0}], [{"seed": 0}], [], [["seed", 0]]):  # no seed; no declared column; none; a list
        files = sorted((root / "t-sweep-schema").glob("*.json"))
        entry = json.loads(files[0].read_text())
        entry["rows"] = spoilt
        entry["checksum"] = vcache._checksum(vcache._canonical(spoilt))
        files[0].write_text(json.dumps(entry))
        assert sweep.count_cached("quick") == (1, 2)  # counting reads only: no warning, nothing moved
        with pytest.warns(CacheWarning, match="corrupt or partial"):
            assert sweep.run("quick") == rows
    assert len(calls) == 2 + 4


def test_a_job_whose_rows_break_the_schema_stores_nothing(root):
    for bad in ([], [{"mean": 1.0}], [{"seed": 0}]):
        sweep = _seed_sweep(lambda x, *, seed, scale, bad=bad: bad, "t-sweep-bad-rows")
        with pytest.raises(ValueError, match="do not fit the sweep's schema"):
            sweep.run("quick")
        assert not list(root.rglob("*.json"))


def test_a_cache_folder_that_is_a_file_warns_and_returns_the_rows(tmp_path, monkeypatch, digits):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("VQLIB_CACHE", str(blocker))
    compute = Counter(digits)
    with pytest.warns(CacheWarning, match="cannot be written"):
        rows = cached("t-file", CONFIG, compute, data=digits)
    assert rows == cached("t-file", CONFIG, compute, data=digits, root=None) and compute.calls == 2
    assert "is a file" in vcache.writable_problem(blocker) and "is a file" in vcache.writable_problem(blocker / "a")


def test_a_failed_write_warns_returns_the_rows_and_leaves_no_temp_file(root, digits, monkeypatch):
    compute = Counter(digits)
    real = Path.replace

    def refuse(self, target):  # the rename fails, as in a read-only folder or a full disk
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.warns(CacheWarning, match="cannot be written .*PermissionError"):
        rows = cached("t-ro", CONFIG, compute, data=digits)
    monkeypatch.setattr(Path, "replace", real)
    assert rows and not [p for p in root.rglob("*") if p.is_file()]  # no entry, no temporary file


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_cache_is_read_and_never_written(root, digits):
    compute = Counter(digits)
    cached("t-ro-warm", CONFIG, compute, data=digits)
    for folder in [root, *root.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o555)
    try:
        assert vcache.writable_problem(root) is not None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert cached("t-ro-warm", CONFIG, compute, data=digits) and compute.calls == 1  # read as usual
        with pytest.warns(CacheWarning, match="cannot be written"):
            cached("t-ro-cold", CONFIG, compute, data=digits)
        assert compute.calls == 2
    finally:
        for folder in [root, *root.rglob("*")]:
            if folder.is_dir():
                folder.chmod(0o755)


def test_writable_problem_creates_nothing(tmp_path):
    assert vcache.writable_problem(tmp_path / "a" / "b") is None
    assert not (tmp_path / "a").exists()
