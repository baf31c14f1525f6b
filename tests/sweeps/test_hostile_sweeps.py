"""Hostile input to the sweeps, the result cache and the job runner (issue 26): a probe.

Every case names the class of fault it guards:

* **silent wrong**: a NaN or an infinity stored or served as a result; a number that depends on
  the machine (its thread count); a bad setting ignored;
* **data lost**: an earlier copy of a corrupt entry, or the previous table, destroyed;
* **traceback**: a raw error from deep inside torch, json or Dask where a one-line
  ``ValueError`` naming the value is promised;
* **late error**: a refusal after work was done and cached (a bad value inside a list setting,
  a bad ``VQLIB_DEVICE`` found mid-run or never);
* **hang**: a call that waits without end (a Dask scheduler that never answers).

The tables (``LIST_CASES``, ``ROW_CASES``) hold one case per line; Hypothesis draws rows with
non-finite numbers hidden at any depth, and values for every setting of every sweep. Everything
is tiny (one epoch, a few images), so the file runs in seconds.
"""
from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vqlib import sweeps
from vqlib.sweeps import cache as vcache
from vqlib.sweeps.cache import CacheWarning, cached, entry_path
from vqlib.tables import rows_to_csv

SILENT, LOST, TRACEBACK, LATE, HANG = "silent wrong", "data lost", "traceback", "late error", "hang"


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("VQLIB_CACHE", str(tmp_path / "c"))
    return tmp_path / "c"


def entries(root):
    return sorted(root.rglob("*.json")) if root.exists() else []


# ------------------------------------------------------------- a bad value inside a list setting


@dataclass(frozen=True)
class ListCase:
    fault: str
    sweep: str
    settings: dict
    match: str  # the refusal names the setting and its value


#: Each first job is valid (and fast); a later one is not: nothing may be computed or cached.
LIST_CASES = [
    ListCase(LATE, "ch05-exact", dict(n=[2, 0], settings=[[1, 1]], supersample_seeds=[0]), r"n must be at least 1"),
    ListCase(LATE, "ch05-exact", dict(n=[2, 30], settings=[[1, 1]], supersample_seeds=[0]), r"n=30 is too large"),
    ListCase(LATE, "ch05-monte-carlo", dict(L=[1, 0], Ks=[1], NS=[4], supersample_seeds=[0], mask_seeds=[0, 1]),
             r"L must be at least 1"),
    ListCase(LATE, "ch01-latents", dict(K=[2, 0], L=[1], epochs=1), r"K must be at least 1"),
    ListCase(LATE, "ch01-latents", dict(K=[2], L=[1, -3], epochs=1), r"L must be at least 1, got -3"),
    ListCase(LATE, "ch02-kmeans", dict(n=[4, 100000], K=[2], n_masks=2, n_supersamples=1), r"n must be at most 898"),
    ListCase(LATE, "ch03-parts", dict(n=4, K=[2, 0], steps=2, supersample_seeds=[0], mask_seeds=[0, 1], rescue_K=2,
                                      rescue_decoder_steps=2), r"K must be at least 1"),
    ListCase(LATE, "ch04-settings", dict(setting=[[4, 1, 4], [4, 1, 0]], supersample_seeds=[0], n_masks=2,
                                         reference_epochs=1, steps=2), r"n must be at least 1"),
    ListCase(LATE, "ch06-learned", dict(train_seed=[0, -1], K=4, L=1, hidden=8, epochs=1), r"train_seed must be at least 0"),
    ListCase(LATE, "ch06-learned", dict(train_seed=[0, 2**63], K=4, L=1, hidden=8, epochs=1),
             r"train_seed must be at most 2\*\*63 - 1"),
    ListCase(LATE, "ch06-temperature", dict(beta=[1.0, -1.0], K=4, L=1, n=4, hidden=8, reference_epochs=1,
                                            n_supersamples=1, n_masks=2, steps=2, n_samples=2),
             r"beta must be a finite number > 0"),
    ListCase(LATE, "ch07-priors", dict(KL=[[4, 2], [0, 2]], train_seed=[0], betas=[5.0], epochs=1, hidden=16),
             r"K must be at least 1"),
    ListCase(LATE, "ch07-penalty", dict(kl_weight=[0.0, -1.0], train_seed=[0], K=4, L=2, epochs=1, hidden=16),
             r"kl_weight must be a finite number ≥ 0"),
    ListCase(LATE, "ch07-penalty", dict(kl_weight=[0.0], train_seed=[0], K=4, L=2, epochs=1, hidden=16, delta=1.5),
             r"delta must lie in \(0, 1\)"),
    ListCase(LATE, "ch02-coverage", dict(learner=["kmeans", "kmeens"], toy_experiments=[[4, 3]], truth_runs=8),
             r"learner='kmeens' is not one of"),
    ListCase(LATE, "ch08-capacity", dict(setting=[dict(decoder_depth=1, decoder_width=8, encoder_depth=1,
                                                       encoder_width=8, K=2, L=1),
                                                  dict(decoder_depth=1, decoder_width=8, encoder_depth=1,
                                                       encoder_width=8, K=0, L=1)],
                                         seeds=[0], n=10, n_test=10, epochs=1), r"K'\] must be at least 1"),
    ListCase(SILENT, "ch08-capacity", dict(setting=[dict(decoder_depth=1, decoder_width=8, encoder_depth=1,
                                                         encoder_width=8, K=2, L=1, decodr_depth=4)],
                                           seeds=[0], n=10, n_test=10, epochs=1), r"unknown name\(s\) \['decodr_depth'\]"),
    ListCase(SILENT, "ch05-exact", dict(n=[2], settings=[[1, 1]], supersample_seeds=[0, 0]),
             r"supersample_seeds must hold distinct entries"),
    ListCase(SILENT, "ch08-capacity", dict(setting=[dict(decoder_depth=1, decoder_width=8, encoder_depth=1,
                                                         encoder_width=8, K=2, L=3, architecture="conv")],
                                           seeds=[0], n=10, n_test=10, epochs=1), r"L=3 is not a latent grid"),
]


@pytest.mark.parametrize("case", LIST_CASES, ids=lambda c: f"{c.fault}:{c.sweep}:{c.match[:30]}")
def test_a_bad_value_anywhere_in_a_list_is_refused_before_any_job_is_computed(case, root):
    sweep = sweeps.get(case.sweep)
    with pytest.raises(ValueError) as info:
        sweep.run("quick", **case.settings)
    assert entries(root) == [], "nothing was computed and cached before the refusal"
    assert re.search(case.match, str(info.value)), str(info.value)
    assert case.sweep in str(info.value)  # the message names the sweep (and the job, for a grid)


def test_the_refusal_names_the_job_of_a_grid(root):
    with pytest.raises(ValueError, match=r"sweep 'ch05-exact', job 2 of 2 \(n=0\): n must be at least 1"):
        sweeps.get("ch05-exact").run("quick", n=[2, 0], settings=[[1, 1]], supersample_seeds=[0])


def test_every_profile_of_every_sweep_passes_its_own_check():
    """The checks refuse only what is invalid: every configuration the book runs passes them."""
    from test_chapter_sweeps import TINY

    for name, sweep in sweeps.all_sweeps().items():
        for profile in ("quick", "full"):
            assert sweep.validate(profile) >= 1, (name, profile)
        if name in TINY:
            assert sweep.validate("quick", **TINY[name]) >= 1, name


SETTING_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(-1e3, 1e3), st.text(max_size=2)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(-2, 2), max_size=2),
)
CHAPTER_SWEEPS = sorted(name for name, s in sweeps.all_sweeps().items() if s.compute.__module__.startswith("vqlib."))


@given(name=st.sampled_from(CHAPTER_SWEEPS), data=st.data(), value=SETTING_VALUES)
def test_any_value_of_any_setting_is_validated_or_refused_with_a_value_error(name, data, value):
    """traceback / late error: whatever a setting is set to, the check either accepts it or raises
    ValueError naming the sweep; it never raises anything else, and it computes nothing."""
    sweep = sweeps.get(name)
    key = data.draw(st.sampled_from(sorted(sweep.quick)), label="setting")
    if key in ("data", "dataset", "split", "separate", "pool"):  # names of data files: checked by the CLI
        return
    try:
        n = sweep.validate("quick", **{key: value})
    except ValueError as err:
        assert name in str(err) or key in str(err) or "grid key" in str(err), str(err)
    else:
        assert n >= 1


# ------------------------------------------------------------- no NaN or infinity is ever cached


def _sweep(name, rows_of):
    return sweeps.Sweep(name=name, chapter="tests", doc="tests only", quick=dict(seed=[0, 1], scale=2.0),
                        full=dict(seed=[0, 1], scale=2.0), compute=lambda x, *, seed, scale: rows_of(seed),
                        grid=("seed",), columns=("loss",))


@dataclass(frozen=True)
class RowCase:
    fault: str
    row: dict
    match: str


ROW_CASES = [
    RowCase(SILENT, {"loss": math.nan}, r"row 0 holds NaN in column 'loss'"),
    RowCase(SILENT, {"loss": math.inf}, r"row 0 holds inf in column 'loss'"),
    RowCase(SILENT, {"loss": 0.1, "history": [{"train_loss": 0.2}, {"train_loss": -math.inf}]},
            r"holds -inf in column 'history' at \[1\]\[\"train_loss\"\]"),
    RowCase(SILENT, {"loss": 0.1, "state": {"w": [[0.0, math.nan]]}}, r"holds NaN in column 'state' at \[\"w\"\]\[0\]\[1\]"),
    RowCase(SILENT, {"loss": float(torch.tensor(float("nan")))}, r"NaN in column 'loss'"),
]


@pytest.mark.parametrize("case", ROW_CASES, ids=lambda c: f"{c.fault}:{c.match[:32]}")
def test_a_row_with_a_non_finite_number_is_never_cached(case, root):
    sweep = _sweep("t-hostile-nan", lambda seed: [dict(case.row, seed=seed)] if seed == 1 else [dict(loss=0.5, seed=0)])
    with pytest.raises(ValueError, match=case.match) as info:
        sweep.run("quick")
    message = str(info.value)
    assert "t-hostile-nan" in message and "job 2 of 2 (seed=1)" in message, message  # the sweep and the job
    stored = [json.loads(p.read_text()) for p in entries(root)]
    assert len(stored) == 1 and stored[0]["rows"] == [{"loss": 0.5, "seed": 0}]  # only the healthy job


def test_cached_refuses_non_finite_rows_with_the_cache_off_too(root):
    """silent wrong: an uncached call returns no NaN either."""
    with pytest.raises(ValueError, match="NaN in column 'x'"):
        cached("t-off", {"a": 1}, lambda: [{"seed": 0, "x": math.nan}], root=None)


def test_an_entry_holding_a_nan_is_corrupt_and_recomputed(root):
    """silent wrong: an entry written before this check (or by hand) with a NaN is never served."""
    good = cached("t-nan-entry", {"a": 1}, lambda: [{"seed": 0, "x": 0.25}])
    path = entry_path("t-nan-entry", {"a": 1})
    entry = json.loads(path.read_text())
    entry["rows"] = [{"seed": 0, "x": math.nan}]
    entry["checksum"] = vcache._checksum(vcache._canonical(entry["rows"]))
    path.write_text(json.dumps(entry))
    with pytest.warns(CacheWarning, match="NaN in column 'x'"):
        assert cached("t-nan-entry", {"a": 1}, lambda: [{"seed": 0, "x": 0.25}]) == good
    assert "NaN" not in path.read_text()


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
bad = st.sampled_from([math.nan, math.inf, -math.inf])
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10, 10), finite, st.text(max_size=3)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                           max_leaves=8)


def _plant(value, where: list, x):
    """``value`` with ``x`` put at one of its leaves (the last element of ``where`` picks it)."""
    if isinstance(value, list) and value and where:
        i = where.pop() % len(value)
        return [(_plant(v, where, x) if j == i else v) for j, v in enumerate(value)]
    if isinstance(value, dict) and value and where:
        k = sorted(value)[where.pop() % len(value)]
        return {key: (_plant(v, where, x) if key == k else v) for key, v in value.items()}
    return x


@given(row=st.dictionaries(st.text(min_size=1, max_size=4), json_values, min_size=1, max_size=4), x=bad,
       where=st.lists(st.integers(0, 7), min_size=1, max_size=5))
def test_a_non_finite_number_hidden_anywhere_is_found(row, x, where):
    """silent wrong: a NaN or an infinity at any depth of any column is refused; finite rows pass."""
    rows = [dict(row, seed=0)]
    assert vcache.rows_problem(rows) is None
    column = sorted(row)[where[0] % len(row)]
    spoilt = [dict(rows[0], **{column: _plant(row[column], list(where[1:]), x)})]
    problem = vcache.rows_problem(spoilt)
    assert problem is not None and repr(column) in problem, (spoilt, problem)
    with pytest.raises(ValueError, match="do not fit"):
        cached("t-any", {"a": 1}, lambda: spoilt, root=None)


# ------------------------------------------------------------- a second corruption keeps the first copy


def test_a_second_corruption_keeps_the_first_copy(root):
    """data lost: each corrupt copy is kept, numbered, never overwritten."""
    cached("t-twice", {"a": 1}, lambda: [{"seed": 0, "x": 1.0}])
    path = entry_path("t-twice", {"a": 1})
    kept = []
    for spoilt in (b"first corruption", b"second corruption", b"third"):
        path.write_bytes(spoilt)
        kept.append(spoilt)
        with pytest.warns(CacheWarning, match="corrupt"):
            cached("t-twice", {"a": 1}, lambda: [{"seed": 0, "x": 1.0}])
    copies = sorted(path.parent.glob(f"{path.stem}.corrupt*"), key=lambda p: (len(p.name), p.name))
    assert [p.read_bytes() for p in copies] == kept
    assert copies[0] == path.with_suffix(".corrupt")


def test_a_write_leaves_no_temporary_file_and_a_readable_entry(root):
    """data lost: the entry is renamed into place from a unique temporary file; others can read it."""
    cached("t-perm", {"a": 1}, lambda: [{"seed": 0, "x": 1.0}])
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].suffix == ".json"
    umask = os.umask(0)
    os.umask(umask)
    assert files[0].stat().st_mode & 0o777 == 0o666 & ~umask  # as an ordinary open() would create it


# ------------------------------------------------------------- environment: VQLIB_DEVICE, VQLIB_CACHE


@pytest.mark.parametrize("device", ["garbage", "meta", "cuda:99"])
def test_a_bad_vqlib_device_is_refused_by_a_sweep_that_does_not_train(device, root, monkeypatch):
    """late error: ch05-exact never trains, and used to ignore VQLIB_DEVICE; now every sweep refuses it first."""
    monkeypatch.setenv("VQLIB_DEVICE", device)
    with pytest.raises(ValueError, match=f"VQLIB_DEVICE={device!r}"):
        sweeps.get("ch05-exact").run("quick", n=[2], settings=[[1, 1]], supersample_seeds=[0])
    assert entries(root) == []


def test_a_bad_vqlib_device_is_refused_before_training(root, monkeypatch):
    """late error: a training sweep refuses it before its first job, naming VQLIB_DEVICE."""
    monkeypatch.setenv("VQLIB_DEVICE", "tpu")
    with pytest.raises(ValueError, match="VQLIB_DEVICE='tpu'"):
        sweeps.get("ch01-latents").run("quick", K=[2], L=[1], epochs=1)
    assert entries(root) == []


def test_a_relative_cache_folder_is_made_absolute(tmp_path, monkeypatch):
    """silent wrong: a worker with another working folder would write elsewhere than the client reads."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VQLIB_CACHE", "rel/cache")
    assert vcache.cache_dir() == tmp_path / "rel" / "cache"


def test_a_cache_folder_under_an_unknown_user_is_refused(tmp_path, monkeypatch):
    """silent wrong: '~nosuchuser/c' used to create a folder named '~nosuchuser' here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VQLIB_CACHE", "~nosuchuser-vqlib/c")
    with pytest.raises(ValueError, match="VQLIB_CACHE='~nosuchuser-vqlib/c'"):
        sweeps.get("ch05-exact").run("quick", n=[2], settings=[[1, 1]], supersample_seeds=[0])
    assert list(tmp_path.iterdir()) == []


def test_a_cache_folder_with_a_name_too_long_is_unwritable(tmp_path):
    """late error: found by writable_problem, before computing, not by a failing mkdir after."""
    assert "longer than 255 bytes" in vcache.writable_problem(tmp_path / ("x" * 300) / "c")


# ------------------------------------------------------------- determinism across thread counts


GRID_TINY = dict(K=4, L=4, epochs=1, hidden=8, n_fields=2)


def test_a_conv_job_gives_the_same_rows_at_one_and_two_threads():
    """silent wrong: convolutions reduce in an order that depends on the thread count; a sweep's
    numbers (and its cache entries) must not depend on the machine that computed them."""
    sweep = sweeps.get("ch01-grid")
    torch.set_num_threads(1)
    one = sweep.run("quick", cache=False, **GRID_TINY)
    torch.set_num_threads(2)
    two = sweep.run("quick", cache=False, **GRID_TINY)
    assert torch.get_num_threads() == 2, "the caller's thread count is restored"
    assert two == one  # every weight, loss and receptive field, bit for bit


# ------------------------------------------------------------- a scheduler that never answers


@pytest.fixture
def silent_listener():
    """A real socket that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _within(seconds, fn):
    """(fn()'s exception or result, seconds taken); a call still running after ``seconds`` is a hang."""
    box = {}
    start = time.monotonic()

    def target():
        try:
            box["value"] = fn()
        except BaseException as err:  # reported to the test
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    return box.get("error", box.get("value")), time.monotonic() - start


def test_map_jobs_gives_up_on_a_silent_scheduler_within_the_timeout(silent_listener, monkeypatch):
    """hang: a listener that accepts and never answers used to hang the caller for good."""
    pytest.importorskip("distributed")
    from vqlib.sweeps.jobs import map_jobs

    monkeypatch.setenv("VQLIB_DASK_TIMEOUT", "1.5")
    error, took = _within(20, lambda: map_jobs(abs, [1, 2], executor="dask", address=silent_listener))
    assert isinstance(error, ConnectionError) and "no Dask scheduler answered within 1.5 s" in str(error), error
    assert took < 10


@pytest.mark.parametrize("address, fault, match", [
    ("garbage", TRACEBACK, "is not a Dask scheduler address"),
    ("tcp://127.0.0.1:notaport", TRACEBACK, "is not a Dask scheduler address"),
    ("http://127.0.0.1:8786", TRACEBACK, "is not a Dask scheduler address"),
])
def test_a_malformed_scheduler_address_is_a_value_error(address, fault, match, monkeypatch):
    pytest.importorskip("distributed")
    from vqlib.sweeps.jobs import map_jobs

    monkeypatch.setenv("VQLIB_DASK_SCHEDULER", address)
    error, _ = _within(20, lambda: map_jobs(abs, [1], executor="dask"))
    assert isinstance(error, ValueError) and "VQLIB_DASK_SCHEDULER" in str(error) and match in str(error), error


@pytest.mark.parametrize("timeout", ["abc", "0", "-1", "nan", "inf"])
def test_a_bad_dask_timeout_is_refused(timeout, monkeypatch):
    """silent wrong: a timeout that cannot be read is refused, not replaced by a default."""
    from vqlib.sweeps.jobs import connect_timeout

    monkeypatch.setenv("VQLIB_DASK_TIMEOUT", timeout)
    with pytest.raises(ValueError, match="VQLIB_DASK_TIMEOUT"):
        connect_timeout()


# ------------------------------------------------------------- tables written atomically


_FULL_DISK = """
import resource, sys
from vqlib.tables import rows_to_csv
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # a disk with 4 KiB left, as ulimit -f
try:
    rows_to_csv([{"seed": i, "value": "x" * 100} for i in range(200)], sys.argv[1])
except OSError as err:
    print("refused:", err.strerror)
"""


def test_rows_to_csv_on_a_full_disk_keeps_the_previous_file(tmp_path):
    """data lost: a failed write used to leave a truncated table where the previous one was."""
    target = tmp_path / "t.csv"
    target.write_bytes(b"seed,value\r\n0,previous\r\n")
    out = subprocess.run([sys.executable, "-c", _FULL_DISK, str(target)], capture_output=True, text=True,
                         timeout=120, cwd=os.getcwd())
    assert "refused: File too large" in out.stdout, out.stdout + out.stderr
    assert target.read_bytes() == b"seed,value\r\n0,previous\r\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"], "no temporary file is left behind"


@given(rows=st.lists(st.dictionaries(st.sampled_from(["seed", "a", "b"]), st.one_of(st.integers(), finite,
                                                                                   st.text(max_size=5)),
                                     min_size=1), min_size=1, max_size=4))
def test_rows_to_csv_writes_exactly_what_it_returns(rows, tmp_path_factory):
    """data lost: the file holds the returned text, line ends included, and nothing else is created."""
    folder = tmp_path_factory.mktemp("csv")
    header = list(rows[0])
    rows = [{k: r.get(k, "") for k in header} for r in rows]
    text = rows_to_csv(rows, folder / "t.csv")
    with open(folder / "t.csv", newline="") as fh:
        assert fh.read() == text
    assert [p.name for p in folder.iterdir()] == ["t.csv"]


def test_a_failed_table_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    """data lost: a write that raises halfway (a full disk) leaves the old file and no temporary file."""
    import vqlib.tables as tables

    target = tmp_path / "t.csv"
    target.write_text("old\n")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tables.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        rows_to_csv([{"seed": 0}], target)
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]
    monkeypatch.undo()
    rows_to_csv([{"seed": 0}], target)
    assert target.read_bytes() == b"seed\r\n0\r\n"
