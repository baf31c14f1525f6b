"""Hostile use of ``python -m vqlib run`` (issue 26): a probe of the command line.

Every case names the class of fault it guards:

* **silent wrong**: a run that exits 0 with NaN rows, or with a bad setting or environment
  variable silently ignored or misread;
* **data lost**: a failed write that leaves a truncated table in place of the previous one;
* **traceback**: more than one line (a traceback, Dask's shutdown logs) where one line is promised;
* **late error**: a refusal after jobs were computed and cached, or after minutes of training;
* **hang**: a command that waits for minutes (a Dask scheduler that never answers).

``REFUSED`` holds the commands refused before anything is computed, one per line, with the
environment they run in; the other cases interrupt runs, fill disks and plant NaN. The command
runs in this process (``vqlib.book.cli.main``) where it can, in a subprocess where a signal, a
file size limit or a hang needs one.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vqlib import sweeps

SILENT, LOST, TRACEBACK, LATE, HANG = "silent wrong", "data lost", "traceback", "late error", "hang"

EXACT = ["run", "ch05-exact", "--set", "settings=[[1, 1]]", "--set", "supersample_seeds=[0]"]
CAPACITY = ["run", "ch08-capacity", "--set", 'setting=[{"decoder_depth": 1, "decoder_width": 8, "encoder_depth": 1, '
            '"encoder_width": 8, "K": 2, "L": 1}]', "--set", "seeds=[0]", "--set", "n=10", "--set", "n_test=10",
            "--set", "epochs=1"]
LATENTS = ["run", "ch01-latents", "--set", "L=[1]", "--set", "epochs=1"]
PENALTY = ["run", "ch07-penalty", "--set", "train_seed=[0]", "--set", "K=4", "--set", "L=2", "--set", "epochs=1",
           "--set", "hidden=16"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VQLIB_CACHE", str(tmp_path / "cache"))
    for name in ("VQLIB_DEVICE", "VQLIB_PROFILE", "VQLIB_DASK_SCHEDULER", "VQLIB_DASK_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def in_process(args, capsys):
    """(exit status, stdout, stderr) of ``vqlib.book.cli.main(args)``, run here."""
    from vqlib.book.cli import main

    try:
        code = main(list(args))
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code, stderr, *names):
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, (code, stderr)
    assert lines[0].startswith("python -m vqlib: error: "), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def entries(cache):
    return sorted(cache.rglob("*.json")) if cache.exists() else []


# ------------------------------------------------------------- refused before anything is computed


@dataclass(frozen=True)
class Refused:
    fault: str
    args: list
    names: tuple  # what the one line must name
    env: dict = field(default_factory=dict)


REFUSED = [
    # a bad value inside a list setting: the good jobs before it were computed and cached
    Refused(LATE, [*EXACT, "--set", "n=[2, 0]"], ("ch05-exact", "job 2 of 2 (n=0)", "n must be at least 1")),
    Refused(LATE, [*EXACT, "--set", "n=[2, 40]"], ("ch05-exact", "n=40 is too large")),
    Refused(LATE, [*LATENTS, "--set", "K=[2, 0]"], ("ch01-latents", "K=0", "K must be at least 1")),
    Refused(LATE, [*LATENTS, "--set", "K=[2, 1000000000000]"], ("ch01-latents", "K=1000000000000", "GiB")),
    Refused(LATE, [*PENALTY, "--set", "kl_weight=[0.0, -1]"], ("ch07-penalty", "kl_weight must be a finite number")),
    Refused(LATE, ["run", "ch06-learned", "--set", "train_seed=[0, 9223372036854775808]", "--set", "K=4",
                   "--set", "L=1", "--set", "hidden=8", "--set", "epochs=1"], ("ch06-learned", "2**63 - 1")),
    Refused(LATE, ["run", "ch02-coverage", "--set", 'learner=["kmeans", "kmeens"]', "--set",
                   "toy_experiments=[[4, 3]]", "--set", "truth_runs=8"], ("ch02-coverage", "'kmeens'")),
    Refused(LATE, ["run", "ch02-kmeans", "--set", "n=[4, 5000]", "--set", "K=[2]", "--set", "n_masks=2",
                   "--set", "n_supersamples=1"], ("ch02-kmeans", "n=5000", "at most 898")),
    Refused(LATE, [*CAPACITY[:3], 'setting=[{"decoder_depth": 1, "decoder_width": 8, "encoder_depth": 1, '
                   '"encoder_width": 8, "K": 2, "L": 1}, {"decoder_depth": 1, "decoder_width": 0, "encoder_depth": 1, '
                   '"encoder_width": 8, "K": 2, "L": 1}]', *CAPACITY[4:]], ("ch08-capacity", "decoder_width")),
    Refused(LATE, [*PENALTY, "--set", "kl_weight=[0.0]", "--set", "delta=1.5"], ("ch07-penalty", "delta")),
    Refused(LATE, [*CAPACITY, "--set", "n=1500", "--set", "n_test=500"], ("ch08-capacity", "n + n_test = 2000")),
    # a bad setting silently ignored or misread
    Refused(SILENT, [*CAPACITY[:3], 'setting=[{"decoder_depth": 1, "decoder_width": 8, "encoder_depth": 1, '
                     '"encoder_width": 8, "K": 2, "L": 1, "decodr_depth": 4}]', *CAPACITY[4:]],
            ("ch08-capacity", "decodr_depth")),
    Refused(SILENT, [*EXACT[:5], "supersample_seeds=[0, 0]", "--set", "n=[2]"], ("supersample_seeds", "distinct")),
    Refused(SILENT, [*EXACT, "--set", "n=[2, NaN]"], ("NaN", "finite numbers only")),
    Refused(SILENT, [*CAPACITY, "--set", "lr=Infinity"], ("lr=Infinity", "finite numbers only")),
    Refused(SILENT, [*EXACT, "--set", "swap_rounds=1e999"], ("1e999", "finite numbers only")),
    Refused(SILENT, [*CAPACITY, "--set", "lr=-Infinity"], ("-Infinity",)),
    # the environment: checked up front by every sweep, training or not
    Refused(LATE, [*EXACT, "--set", "n=[2]"], ("VQLIB_DEVICE='garbage'",), dict(VQLIB_DEVICE="garbage")),
    Refused(LATE, [*EXACT, "--set", "n=[2]"], ("VQLIB_DEVICE='meta'",), dict(VQLIB_DEVICE="meta")),
    Refused(LATE, ["run", "ch01-model", "--set", "K=2", "--set", "L=1", "--set", "epochs=1"],
            ("VQLIB_DEVICE='cuda:99'",), dict(VQLIB_DEVICE="cuda:99")),
    Refused(LATE, ["run", "all"], ("VQLIB_DEVICE='tpu'",), dict(VQLIB_DEVICE="tpu")),
    Refused(SILENT, [*EXACT, "--set", "n=[2]"], ("VQLIB_CACHE='~nosuchuser-vqlib/c'",),
            dict(VQLIB_CACHE="~nosuchuser-vqlib/c")),
    Refused(LATE, [*EXACT, "--set", "n=[2]"], ("longer than 255 bytes", "--no-cache"), dict(VQLIB_CACHE="LONG")),
    Refused(TRACEBACK, [*EXACT, "--set", "n=[2]", "--executor", "dask"], ("VQLIB_DASK_SCHEDULER='garbage'",),
            dict(VQLIB_DASK_SCHEDULER="garbage")),
    Refused(SILENT, [*EXACT, "--set", "n=[2]", "--executor", "dask"], ("VQLIB_DASK_TIMEOUT='soon'",),
            dict(VQLIB_DASK_TIMEOUT="soon")),
    Refused(HANG, [*EXACT, "--set", "n=[2]", "--executor", "dask"], ("tcp://127.0.0.1:1", "within 1 s"),
            dict(VQLIB_DASK_SCHEDULER="tcp://127.0.0.1:1", VQLIB_DASK_TIMEOUT="1")),
    Refused(HANG, [*EXACT, "--set", "n=[2, 3]", "--executor", "dask", "--workers", "100000"],
            ("workers=100000", "at most")),  # 100 000 processes, each loading torch
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: f"{c.fault}:{' '.join(c.args[1:2] + c.args[-2:])[:50]}")
def test_a_bad_command_is_refused_in_one_line_before_anything_is_computed(case, cache, capsys, monkeypatch,
                                                                         tmp_path):
    monkeypatch.chdir(tmp_path)  # a stray folder (a literal '~user') would appear here
    for name, value in case.env.items():
        value = str(tmp_path / ("x" * 300) / "c") if value == "LONG" else value
        monkeypatch.setenv(name, value)
    start = time.monotonic()
    code, stdout, stderr = in_process(case.args, capsys)
    assert time.monotonic() - start < 10
    assert entries(cache) == [] and "cache:" not in stdout, "nothing was computed"
    assert not any(p.name.startswith("~") for p in tmp_path.iterdir())
    one_line_error(code, stderr, *case.names)


def test_a_silent_scheduler_fails_in_one_line_within_seconds(cache, capsys, monkeypatch):
    """hang: a socket that accepts connections and never answers used to hang the command for minutes."""
    pytest.importorskip("distributed")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def accept():
        try:
            while True:
                held.append(server.accept()[0])
        except OSError:  # the socket is closed at the end of the test
            pass

    threading.Thread(target=accept, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setenv("VQLIB_DASK_SCHEDULER", address)
    monkeypatch.setenv("VQLIB_DASK_TIMEOUT", "2")
    box = {}
    runner = threading.Thread(target=lambda: box.update(result=in_process([*EXACT, "--set", "n=[2]", "--executor",
                                                                            "dask"], capsys)), daemon=True)
    start = time.monotonic()
    runner.start()
    runner.join(30)
    took = time.monotonic() - start
    server.close()
    assert not runner.is_alive(), "the command still waits for the scheduler after 30 s"
    code, _, stderr = box["result"]
    one_line_error(code, stderr, address, "no Dask scheduler answered within 2 s")
    assert took < 10 and held, "the listener was reached, and given up on"
    assert entries(cache) == []


# ------------------------------------------------------------- NaN never reaches the cache or a file


def _register(monkeypatch, name, compute):
    sweep = sweeps.Sweep(name=name, chapter="tests", doc="tests only", quick=dict(seed=[0, 1]), full=dict(seed=[0, 1]),
                         compute=compute, grid=("seed",), columns=("loss",))
    monkeypatch.setitem(sweeps.registry._REGISTRY, name, sweep)


@pytest.mark.parametrize("suffix", [".json", ".csv"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, [0.5, -math.inf]], ids=["nan", "inf", "nested-inf"])
def test_a_non_finite_row_is_neither_cached_nor_written(bad, suffix, cache, capsys, monkeypatch, tmp_path):
    """silent wrong: rows with NaN used to be cached as healthy and written as NaN tokens."""
    _register(monkeypatch, "t-cli-nan", lambda x, *, seed: [{"seed": seed, "loss": bad if seed == 1 else 0.25}])
    out = tmp_path / f"t{suffix}"
    out.write_text("previous\n")
    code, _, stderr = in_process(["run", "t-cli-nan", "--out", str(out)], capsys)
    one_line_error(code, stderr, "t-cli-nan", "job 2 of 2 (seed=1)", "column 'loss'")
    assert out.read_text() == "previous\n"
    stored = [json.loads(p.read_text())["rows"] for p in entries(cache)]
    assert stored == [[{"seed": 0, "loss": 0.25}]]  # the healthy job only


def test_the_issue_case_a_learning_rate_of_1e30_exits_2_and_caches_nothing(cache, capsys, tmp_path):
    """silent wrong (issue 26, case 1): ch08-capacity with lr=1e30 exited 0 with NaN rows cached."""
    out = tmp_path / "x.json"
    code, _, stderr = in_process([*CAPACITY, "--set", "lr=1e30", "--out", str(out)], capsys)
    line = one_line_error(code, stderr, "ch08-capacity")
    assert "NaN" in line or "FloatingPointError" in line or "inf" in line, line
    assert entries(cache) == [] and not out.exists()


def test_a_diverged_training_is_one_line_and_caches_nothing(cache, capsys, monkeypatch):
    """traceback: a FloatingPointError raised by a job is one line with exit status 2."""
    def compute(x, *, seed):
        if seed == 1:
            raise FloatingPointError("training diverged at epoch 3: the loss is nan")
        return [{"seed": seed, "loss": 0.5}]

    _register(monkeypatch, "t-cli-fpe", compute)
    code, _, stderr = in_process(["run", "t-cli-fpe"], capsys)
    one_line_error(code, stderr, "FloatingPointError", "diverged")
    assert len(entries(cache)) == 1  # the job before it stays cached: a rerun resumes


def test_json_output_is_strict(cache, capsys, tmp_path):
    """silent wrong: what --out writes parses with a strict JSON parser."""
    out = tmp_path / "t.json"
    code, _, stderr = in_process([*EXACT, "--set", "n=[2]", "--out", str(out)], capsys)
    assert code == 0, stderr

    def strict(token):
        raise ValueError(token)

    rows = json.loads(out.read_text(), parse_constant=strict)
    assert len(rows) == 1 and rows[0]["n"] == 2


def test_out_through_a_link_writes_the_link_target(cache, capsys, tmp_path):
    """data lost: the rename that makes the write atomic must not replace the link by a file."""
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    code, _, stderr = in_process([*EXACT, "--set", "n=[2]", "--out", str(link)], capsys)
    assert code == 0, stderr
    assert link.is_symlink() and "exact_gap" in real.read_text().splitlines()[0]


# ------------------------------------------------------------- a full disk while writing --out


FULL_DISK = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))  # 512 bytes left on the disk, as ulimit -f 1
from vqlib.book.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_a_full_disk_leaves_the_previous_table_and_no_temporary_file(suffix, tmp_path):
    """data lost (issue 26, case 4): a failed write used to leave a truncated table in place of the old one."""
    out = tmp_path / f"t{suffix}"
    out.write_text("the previous table\n")
    run = subprocess.run([sys.executable, "-B", "-c", FULL_DISK, *EXACT, "--set", "n=[2, 3]", "--no-cache",
                          "--out", str(out)],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    one_line_error(run.returncode, run.stderr, str(out), "cannot be written")
    assert out.read_text() == "the previous table\n"
    assert [p.name for p in tmp_path.iterdir()] == [out.name], "no temporary file is left behind"


# ------------------------------------------------------------- Ctrl-C under Dask


def test_ctrl_c_under_dask_prints_one_line(tmp_path):
    """traceback: Ctrl-C under --executor dask printed 33 lines with 5 tracebacks (the workers' shutdown)."""
    pytest.importorskip("distributed")
    env = dict(os.environ, VQLIB_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    run = subprocess.Popen([sys.executable, "-m", "vqlib", "run", "ch01-latents", "--set", "K=[2, 4, 8, 16]",
                            "--set", "L=[1]", "--set", "epochs=1000", "--executor", "dask", "--workers", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)
    try:
        assert run.stdout.readline().startswith("cache:")
        run.stdout.readline()  # the sweep's line: the cluster starts now
        time.sleep(3)  # the workers start, or compute
        os.killpg(run.pid, signal.SIGINT)  # as a terminal's Ctrl-C: every process of the group
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("python -m vqlib: interrupted: ") and "rerun the same command to resume" in lines[0]


# ------------------------------------------------------------- --dry-run, and every --set value


def test_dry_run_checks_everything_and_computes_nothing(cache, capsys):
    code, stdout, stderr = in_process(["run", "all", "--dry-run"], capsys)
    assert code == 0, stderr
    assert "nothing computed" in stdout and not cache.exists()
    code, _, stderr = in_process([*EXACT, "--set", "n=[2, 0]", "--dry-run"], capsys)
    one_line_error(code, stderr, "n=0")


@given(text=st.one_of(st.text(max_size=30), st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "[1, NaN]", '{"a": [Infinity]}', "[" * 5000 + "]" * 5000])))
def test_a_set_value_is_parsed_or_refused_in_one_line_never_misread(text):
    """silent wrong / traceback: any text after 'key=' parses to finite JSON values or a string, or is refused."""
    from vqlib.book.cli import UsageError, parse_assignment

    try:
        key, value = parse_assignment(f"k={text}")
    except UsageError as err:
        assert "\n" not in str(err).strip()
        return

    def finite(v):
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, list):
            return all(finite(e) for e in v)
        if isinstance(v, dict):
            return all(finite(e) for e in v.values())
        return True

    assert key == "k" and finite(value), value


@given(value=st.one_of(st.integers(-5, 10**20), st.floats(allow_nan=False, allow_infinity=False),
                       st.lists(st.integers(-2, 12), max_size=3), st.text(max_size=4)))
def test_any_n_for_the_exact_enumeration_is_checked_before_computing(value, tmp_path_factory):
    """late error: whatever n is, --dry-run either accepts it or refuses it in one line, and what it
    accepts is what the sweep can enumerate (C(2n, n) ≤ 200 000, 2n ≤ the 1500 digits)."""
    from vqlib.book.cli import main

    err = io.StringIO()
    before = os.environ.get("VQLIB_CACHE")
    os.environ["VQLIB_CACHE"] = str(tmp_path_factory.mktemp("c"))
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main([*EXACT, "--set", f"n={json.dumps(value)}", "--dry-run"])
            except SystemExit as stop:
                code = stop.code
    finally:
        if before is None:
            del os.environ["VQLIB_CACHE"]
        else:
            os.environ["VQLIB_CACHE"] = before
    ns = value if isinstance(value, list) else [value]
    valid = bool(ns) and all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 10 for n in ns)
    assert code == (0 if valid else 2), (value, err.getvalue())
    assert len(err.getvalue().strip().splitlines()) == (0 if valid else 1), err.getvalue()
