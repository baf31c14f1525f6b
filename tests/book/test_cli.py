"""``python -m vqlib``: list, show and run the registered sweeps; bad options exit 2 with one line."""
import csv
import json
import os
import subprocess
import sys

import pytest

from vqlib import sweeps

TINY_EXACT = ["--set", "n=2", "--set", "settings=[[1, 1], [1, 2]]", "--set", "supersample_seeds=[0]"]


def vqlib_cli(*args, cache):
    env = dict(os.environ, VQLIB_CACHE=str(cache), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "vqlib", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VQLIB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def in_process(args, capsys):
    """(exit status, stdout, stderr) of ``vqlib.book.cli.main(args)`` run here (fast: no new interpreter)."""
    from vqlib.book.cli import main

    try:
        code = main(list(args))
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_explains_every_option(cache, capsys):
    top = vqlib_cli("--help", cache=cache)
    assert top.returncode == 0 and "VQLIB_CACHE" in top.stdout
    for command in ("list", "show", "run"):
        assert command in top.stdout
    code, run_help, _ = in_process(["run", "--help"], capsys)
    assert code == 0
    for option in ("--profile", "--set", "--out", "--no-cache", "--refresh", "--executor", "--workers", "--device",
                   "--progress", "quick", "full", "VQLIB_CACHE", "all", "JSON"):
        assert option in run_help, option
    code, show_help, _ = in_process(["show", "--help"], capsys)
    assert code == 0 and "--profile" in show_help and "--set" in show_help
    assert in_process(["list", "--help"], capsys)[0] == 0


def test_list_names_every_sweep(cache):
    out = vqlib_cli("list", cache=cache)
    assert out.returncode == 0
    chapters = {name: sweep for name, sweep in sweeps.all_sweeps().items()
                if sweep.compute.__module__.startswith("vqlib.sweeps.")}  # not sweeps other tests register
    assert len(chapters) >= 15
    for name, sweep in chapters.items():
        assert name in out.stdout and sweep.chapter in out.stdout


def test_show_prints_the_resolved_configuration(cache, capsys):
    code, stdout, stderr = in_process(["show", "ch05-exact", "--profile", "full", "--set", "swap_rounds=2"], capsys)
    assert code == 0, stderr
    shown = json.loads(stdout)
    assert shown["profile"] == "full" and shown["grid"] == ["n"]
    assert shown["config"] == dict(sweeps.get("ch05-exact").full, swap_rounds=2)
    assert shown["jobs"] == len(shown["config"]["n"])
    assert shown["reads"] == ["digits:train"]  # the data the sweep declares it reads


def test_run_writes_csv_and_json_and_then_reads_the_cache(cache, tmp_path):
    import vqlib.studies.permutation as perm
    from vqlib import load_dataset
    from vqlib.bounds import make_supersample

    out = vqlib_cli("run", "ch05-exact", *TINY_EXACT, "--out", str(tmp_path / "t.csv"), cache=cache)
    assert out.returncode == 0, out.stderr
    assert "2 rows" in out.stdout and "quick profile" in out.stdout
    with open(tmp_path / "t.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["n"], r["K"], r["L"], r["supersample_seed"]) for r in rows] == [("2", "1", "1", "0"), ("2", "1", "2", "0")]
    direct = perm.exact_enumeration(make_supersample(load_dataset("digits"), 2, supersample_seed=0), 1, 2)
    assert float(rows[1]["exact_gap"]) == pytest.approx(direct["exact_gap"], rel=1e-12)
    assert list(cache.rglob("*.json")), "the run filled the cache"

    out = vqlib_cli("run", "ch05-exact", *TINY_EXACT, "--out", str(tmp_path / "t.json"), cache=cache)
    assert out.returncode == 0, out.stderr
    rows_json = json.loads((tmp_path / "t.json").read_text())
    assert [r["exact_information"] for r in rows_json] == pytest.approx([float(r["exact_information"]) for r in rows])
    assert rows_json[1]["exact_gap"] == direct["exact_gap"]


def test_run_without_cache_writes_nothing(cache, tmp_path, capsys):
    code, stdout, stderr = in_process(["run", "ch05-monte-carlo", "--set", "L=1", "--set", "Ks=[1]", "--set", "NS=[4]",
                                       "--set", "supersample_seeds=[0]", "--set", "mask_seeds=[0, 1]", "--no-cache",
                                       "--out", str(tmp_path / "mc.csv")], capsys)
    assert code == 0, stderr
    assert "cache: off" in stdout
    assert not cache.exists()
    with open(tmp_path / "mc.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["n"] == "4" and json.loads(row["mask_seeds"]) == [0, 1]  # lists are JSON text in CSV cells


@pytest.mark.parametrize("args, bad", [
    (["run", "no-such-sweep"], "no-such-sweep"),
    (["show", "no-such-sweep"], "no-such-sweep"),
    (["run", "ch05-exact", "--set", "nope=1"], "nope"),
    (["run", "ch05-exact", "--set", "swap_rounds=many"], "many"),
    (["run", "ch05-exact", "--set", "swap_rounds=1.5"], "1.5"),
    (["run", "ch05-exact", "--set", "n=[2, \"x\"]"], "x"),
    (["run", "ch05-exact", "--set", "swap_rounds"], "swap_rounds"),
    (["run", "ch05-exact", "--profile", "medium"], "medium"),
    (["show", "ch05-exact", "--profile", "medium"], "medium"),
    (["run", "ch05-exact", "--out", "table.xlsx"], "table.xlsx"),
    (["run", "ch05-exact", "--executor", "ray"], "ray"),
    (["run", "ch05-exact", "--workers", "0"], "0"),
    (["run", "ch05-exact", "--device", "nosuchdevice"], "nosuchdevice"),
    (["run", "all", "--set", "n=2"], "--set"),
    (["run", "ch05-exact", "--set", "n=[0]"], "got 0"),
    (["run", "ch05-monte-carlo", "--set", "NS=[5000]"], "5000"),
    (["frobnicate"], "frobnicate"),
])
def test_bad_options_exit_2_with_one_clear_line(args, bad, cache, capsys):
    code, stdout, stderr = in_process(args, capsys)
    assert code == 2, (args, stdout, stderr)
    (last,) = stderr.strip().splitlines()  # one line, argparse's own errors included
    assert "error" in last and bad in last, last
    assert not cache.exists(), "a bad option computes nothing"


def test_a_bad_option_from_the_shell_has_no_traceback(cache):
    out = vqlib_cli("run", "ch05-exact", "--set", "swap_rounds=many", cache=cache)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("python -m vqlib: error: --set swap_rounds=many")


def test_csv_holds_rows_with_different_columns(tmp_path):
    from vqlib.book.cli import _write

    _write([{"a": 1, "b": [1, 2]}, {"a": 2, "c": "x"}], str(tmp_path / "t.csv"))
    with open(tmp_path / "t.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [{"a": "1", "b": "[1,2]", "c": ""}, {"a": "2", "b": "", "c": "x"}]


# --------------------------------------------------------------------------- issue 15: fail early, in one line


def one_line_error(code, stderr, *names):
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("python -m vqlib: error: ") and all(name in lines[0] for name in names), lines[0]


TINY_RUN = ["run", "ch05-exact", *TINY_EXACT]


@pytest.mark.parametrize("args, bad", [
    (["run", "ch05-exact", "--set", 'settings=["a"]'], "list of lists of 2 entries"),
    (["run", "ch05-exact", "--set", "settings=[[1]]"], "got list of lists of 1 entry"),
    (["run", "ch05-exact", "--set", "supersample_seeds=[]"], "got empty list"),
    (["run", "ch05-exact", "--set", "n=[]"], "got empty list"),
    (["run", "ch07-priors", "--set", "betas=[5.0, \"x\"]"], "betas"),
    (["run", "ch04-settings", "--set", "setting=[1]"], "setting"),
    ([*TINY_RUN, "--out", "/nonexistent/d/t.csv"], "/nonexistent/d"),
    ([*TINY_RUN, "--device", "meta"], "meta"),
    (["run", "ch01-latents", "--set", "data=nosuchdata"], "nosuchdata"),
])
def test_malformed_settings_and_paths_stop_before_anything_runs(args, bad, cache, capsys):
    one_line_error(*in_process(args, capsys)[::2], bad)
    assert not cache.exists()


def test_out_must_be_a_writable_file(cache, tmp_path, capsys):
    (tmp_path / "d.csv").mkdir()
    one_line_error(*in_process([*TINY_RUN, "--out", str(tmp_path / "d.csv")], capsys)[::2], "is a folder")
    if os.path.isdir("/proc/self"):  # Linux: no file can be created in /proc
        code, _, stderr = in_process([*TINY_RUN, "--out", "/proc/t.csv"], capsys)
        one_line_error(code, stderr, "/proc/t.csv", "cannot be written")
    assert not cache.exists()
    existing = tmp_path / "old.csv"
    existing.write_text("kept\n")
    code, _, stderr = in_process([*TINY_RUN, "--out", str(existing)], capsys)
    assert code == 0, stderr
    assert existing.read_text() != "kept\n"  # overwritten at the end, by the rows


@pytest.mark.parametrize("args", [TINY_RUN, [*TINY_RUN, "--profile", "full"], ["show", "ch05-exact"]])
def test_a_bad_vqlib_profile_is_an_error_not_the_quick_profile(args, cache, capsys, monkeypatch):
    monkeypatch.setenv("VQLIB_PROFILE", "ful")
    one_line_error(*in_process(args, capsys)[::2], "VQLIB_PROFILE='ful'")
    assert not cache.exists()


def test_missing_data_files_stop_the_run_in_one_line_from_the_shell(cache, tmp_path):
    env_cache = cache
    out = subprocess.run([sys.executable, "-m", "vqlib", "run", "ch01-latents", "--set", "data=mnist"],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, VQLIB_CACHE=str(env_cache), VQLIB_DATA=str(tmp_path / "data"),
                                  OMP_NUM_THREADS="1"))
    one_line_error(out.returncode, out.stderr, "data='mnist'", "not found", str(tmp_path / "data"))
    assert not env_cache.exists()


def test_a_cache_folder_that_is_a_file_stops_the_run(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    monkeypatch.setenv("VQLIB_CACHE", str(blocker))
    one_line_error(*in_process(TINY_RUN, capsys)[::2], "is a file, not a folder", "--no-cache")
    assert in_process([*TINY_RUN, "--no-cache"], capsys)[0] == 0


def test_a_read_only_cache_is_read_when_warm_and_refused_when_cold(cache, monkeypatch, capsys):
    from vqlib.book import cli

    assert in_process(TINY_RUN, capsys)[0] == 0  # fill the cache
    monkeypatch.setattr(cli, "writable_problem", lambda root: f"{root} cannot be written: Read-only file system")
    code, stdout, stderr = in_process(TINY_RUN, capsys)
    assert code == 0 and "2 rows" in stdout, stderr  # every job cached: read as usual
    one_line_error(*in_process([*TINY_RUN, "--refresh"], capsys)[::2], "Read-only", "--refresh")
    one_line_error(*in_process(["run", "ch05-exact", *TINY_EXACT[:2], "--set", "settings=[[2, 2]]",
                                *TINY_EXACT[4:]], capsys)[::2], "Read-only", "1 job not cached")
    for entry in cache.rglob("*.json"):  # a corrupt entry is not cached either
        entry.write_text(entry.read_text()[:40])
    one_line_error(*in_process(TINY_RUN, capsys)[::2], "1 job not cached")
    assert list(cache.rglob("*.json")), "the check reads only: nothing was moved aside"


def _three_jobs(name, compute):
    return sweeps.Sweep(name=name, chapter="tests", doc="three jobs (tests only)", quick=dict(seed=[0, 1, 2]),
                             full=dict(seed=[0, 1, 2]), compute=compute, grid=("seed",))


def test_ctrl_c_says_how_many_jobs_are_cached_and_a_rerun_resumes(cache, capsys, monkeypatch):
    computed = []

    def compute(x, *, seed):
        if seed == 1 and not computed.count(1):
            computed.append(1)
            raise KeyboardInterrupt
        computed.append(seed)
        return [{"seed": seed}]

    monkeypatch.setitem(sweeps.registry._REGISTRY, "test-cli-interrupt", _three_jobs("test-cli-interrupt", compute))
    code, _, stderr = in_process(["run", "test-cli-interrupt"], capsys)
    assert code == 130 and stderr.strip() == (f"python -m vqlib: interrupted: 1 of 3 jobs cached in {cache}; rerun "
                                              "the same command to resume")
    code, stdout, _ = in_process(["run", "test-cli-interrupt"], capsys)
    assert code == 0 and "3 rows" in stdout and computed == [0, 1, 1, 2]  # job 0 was not computed again


def test_an_error_while_computing_is_one_line_and_debug_shows_the_traceback(cache, capsys, monkeypatch):
    def compute(x, *, seed):
        raise RuntimeError("the GPU caught fire\nsecond line")

    monkeypatch.setitem(sweeps.registry._REGISTRY, "test-cli-error", _three_jobs("test-cli-error", compute))
    code, _, stderr = in_process(["run", "test-cli-error"], capsys)
    one_line_error(code, stderr, "RuntimeError: the GPU caught fire second line", "--debug")
    with pytest.raises(RuntimeError, match="caught fire"):
        in_process(["run", "test-cli-error", "--debug"], capsys)
    with pytest.raises(RuntimeError, match="caught fire"):
        in_process(["--debug", "run", "test-cli-error"], capsys)
