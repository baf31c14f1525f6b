"""``python -m vqlib``: list, inspect and run the book's registered sweeps headless.

Every chapter's expensive computation is a registered sweep (:mod:`vqlib.sweeps`).
This command line runs any of them in the quick or full profile and writes its tidy
table, so a classroom can precompute every chapter on a GPU machine and ship the cache
folder (``VQLIB_CACHE``) to the students' laptops::

    python -m vqlib list
    python -m vqlib show ch05-monte-carlo --profile full
    python -m vqlib run ch05-monte-carlo --profile quick --set "NS=[8, 16]" --out gap.csv
    VQLIB_CACHE=/srv/vqlib-cache python -m vqlib run all --profile full --device cuda

Bad options (an unknown sweep, setting, profile or a value of the wrong type) print one
line naming the bad value and exit with status 2, as argparse does. ``run`` checks
everything it can before computing anything: the profile (``--profile`` and
``VQLIB_PROFILE``), every value of every sweep's settings, every job included
(:meth:`vqlib.sweeps.Sweep.validate`), that its data are on disk, the device (``--device``
and ``VQLIB_DEVICE``), that ``--out`` and the cache folder (``VQLIB_CACHE``) can be written (a
read-only cache that holds every job is read), and with ``--executor dask`` that the scheduler
of ``VQLIB_DASK_SCHEDULER`` answers within ``VQLIB_DASK_TIMEOUT`` seconds (default 10);
``--dry-run`` stops there. Any error, including one raised while computing (a diverged
training's ``FloatingPointError``), is one line with status 2 (``--debug`` shows the traceback
instead); Ctrl-C stops a run with one line saying how many jobs are cached, under either
executor, which a rerun of the same command resumes from. ``--out`` is written all at once
(a temporary file renamed over it): a failed write leaves the previous file as it was; JSON
output is strict (no NaN), and a table with a non-finite number is refused, not written.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from ..data import check_available
from ..device import default_device, resolve_device
from ..sweeps import all_sweeps
from ..sweeps import get as get_sweep
from ..sweeps.cache import cache_dir, rows_problem, writable_problem
from ..sweeps.jobs import check_executor
from ..sweeps.profile import PROFILES, current_profile
from ..tables import rows_to_csv, write_text_atomic

__all__ = ["main", "parse_assignment"]

_CACHE_HELP = (
    "Results are cached by configuration, data and code in the folder named by the environment "
    "variable VQLIB_CACHE (default ~/.cache/vqlib; VQLIB_CACHE=off disables the cache). Run the "
    "sweeps once on a GPU machine with 'run all --profile full' and copy that folder: a chapter "
    "executed with the same VQLIB_CACHE then recomputes nothing."
)


class UsageError(Exception):
    """A bad command-line value: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors (an unknown option, a bad choice) in one line too."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


def parse_assignment(text: str) -> tuple[str, object]:
    """``key=value`` → (key, value); the value is parsed as JSON when it can be, else kept as a string.

    ``K=16`` gives 16, ``lr=1e-3`` gives 0.001, ``"Ks=[1, 4]"`` gives [1, 4], ``learner=kmeans``
    gives "kmeans". ``NaN``, ``Infinity`` and numbers beyond a float's range (``1e999``) are
    refused: no setting takes them, and they would key the cache with a non-number.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"--set expects key=value, got {text!r}")

    def refuse(token):
        raise UsageError(f"--set {text}: {token} is not a number a setting can take (finite numbers only)")

    def number(token):
        value = float(token)
        if not math.isfinite(value):
            refuse(token)
        return value

    try:
        value = json.loads(raw, parse_constant=refuse, parse_float=number)
    except RecursionError:
        raise UsageError(f"--set {key}=…: the value is nested too deeply") from None
    except ValueError:
        value = raw
    return key, value


def _kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__


def _describe(value) -> str:
    """``int``, ``list of int``, ``list of list``, … (for error messages)."""
    if isinstance(value, (list, tuple)):
        kinds = sorted({_kind(v) for v in value})
        lengths = {len(v) for v in value if isinstance(v, (list, tuple))}
        if kinds == ["list"] and len(lengths) == 1:
            (n,) = lengths
            return f"list of lists of {n} entr{'y' if n == 1 else 'ies'}"
        return f"list of {' or '.join(kinds)}" if kinds else "empty list"
    return _kind(value)


def _compatible(default, value) -> bool:
    """Whether ``value`` may replace ``default``: the same JSON kind (an int where a float is),
    and for a list, entries each of a kind the default holds, never empty where the default
    is not, of the default's one length where all its entries are lists of one length
    (pairs such as [K, L])."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, dict):
        return isinstance(value, dict)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)) or (default and not value):
            return False
        if not default:
            return True
        lengths = {len(d) if isinstance(d, (list, tuple)) else None for d in default}
        if len(lengths) == 1 and None not in lengths and any(len(v) not in lengths for v in value
                                                             if isinstance(v, (list, tuple))):
            return False
        kinds = [d for d in default if d is not None]  # a None entry allows None, not anything
        return all(v is None or not kinds or any(_compatible(d, v) for d in kinds) for v in value)
    return True


def _overrides(sweep, profile: str, assignments: Sequence[str]) -> dict:
    """The --set values, checked against the sweep's configuration (unknown keys, wrong types)."""
    base = dict(sweep.quick if profile == "quick" else sweep.full)
    overrides = {}
    for text in assignments:
        key, value = parse_assignment(text)
        raw = text.partition("=")[2]
        if key not in base:
            raise UsageError(f"sweep {sweep.name!r} has no setting {key!r}; its settings are {', '.join(sorted(base))}")
        default = base[key]
        if key in sweep.grid and not isinstance(value, (list, tuple)):
            value = [value]  # one grid value: a one-job sweep
        if not _compatible(default, value):
            wanted = _describe(default)
            if key in sweep.grid:
                wanted += " (or one such value: a grid key)"
            raise UsageError(f"--set {key}={raw}: bad value {raw!r} for sweep {sweep.name!r}: expected {wanted} "
                             f"like {json.dumps(default)}, got {_describe(value)}")
        overrides[key] = value
    return overrides


def _sweep(name: str):
    try:
        return get_sweep(name)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _jobs(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"


def _size(sweep, profile: str) -> str:
    try:
        config = sweep.config(profile)
        return _jobs(len(sweep.jobs({k: v for k, v in config.items() if k != 'dataset'})))
    except ValueError as err:  # a broken registration should not hide the others
        return f"invalid ({err})"


def _cmd_list(args) -> int:
    sweeps = all_sweeps()
    if not sweeps:
        print("no sweeps are registered")
        return 0
    width = max(len(n) for n in sweeps)
    for name, sweep in sweeps.items():
        print(f"{name:<{width}}  {sweep.chapter:<18} quick: {_size(sweep, 'quick'):<10} full: {_size(sweep, 'full')}")
        print(f"{'':<{width}}  {sweep.doc}")
    return 0


def _resolve_profile(args) -> str:
    """``--profile``, else ``VQLIB_PROFILE``, else automatic; a bad ``VQLIB_PROFILE`` is an error either way."""

    try:
        automatic = current_profile()
    except ValueError as err:
        raise UsageError(str(err)) from None
    args.profile = args.profile or automatic
    return args.profile


def _cmd_show(args) -> int:
    sweep = _sweep(args.name)
    _resolve_profile(args)
    overrides = _overrides(sweep, args.profile, args.set)
    try:
        config = sweep.config(args.profile, **overrides)
    except ValueError as err:
        raise UsageError(str(err)) from None
    jobs = sweep.jobs({k: v for k, v in config.items() if k != "dataset"})
    dataset = config.get("dataset")
    reads = sorted({f"{name}:{split}" for job in jobs for name, split in
                    sweep.inputs(dict(job, dataset=dataset) if dataset is not None else job).values()})
    shown = {"name": sweep.name, "chapter": sweep.chapter, "doc": sweep.doc, "profile": args.profile,
             "grid": list(sweep.grid), "jobs": len(jobs), "reads": reads, "config": config}
    # one line per entry (lists stay on one line), valid JSON throughout
    print("{")
    for i, (key, value) in enumerate(shown.items()):
        if key == "config":
            print('  "config": {')
            for j, (k, v) in enumerate(value.items()):
                print(f"    {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}{',' if j < len(value) - 1 else ''}")
            print("  }" + ("," if i < len(shown) - 1 else ""))
        else:
            print(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{',' if i < len(shown) - 1 else ''}")
    print("}")
    return 0


def _cell(value):
    """A CSV cell: scalars as they are, lists and dicts as JSON text."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return value


def _write(rows: list[dict], path: str) -> None:
    """The rows to ``path``, all at once (a failed write leaves the previous file as it was).

    Only finite numbers: a table with a NaN or an infinity is refused before anything is
    written, and JSON is strict (``allow_nan=False``)."""
    problem = rows_problem(rows)
    if problem is not None:
        raise UsageError(f"--out {path}: nothing written: {problem.removeprefix('its ')}")
    try:
        if path.endswith(".json"):
            write_text_atomic(path, json.dumps(rows, allow_nan=False))
        else:
            columns = list(dict.fromkeys(key for row in rows for key in row))  # rows may differ in their keys
            rows_to_csv([{k: _cell(row.get(k, "")) for k in columns} for row in rows], path)
    except OSError as err:
        raise UsageError(f"--out {path}: cannot be written ({err.strerror or err}); nothing was changed") from None


def _check_out(path: str) -> None:
    """``--out`` names a file that can be written, in a folder that exists (checked before computing)."""

    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--out {path}: is a folder; name a file ending in .csv or .json")
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"--out {path}: the folder {str(folder)!r} does not exist")
    existed = target.exists()
    try:
        with open(target, "a"):  # appends nothing: an existing file keeps its content until the end
            pass
        if not existed:
            target.unlink()
        # the table is written next to it first, then renamed: the folder must take a new file
        with tempfile.TemporaryFile(dir=Path(os.path.realpath(target)).parent):
            pass
    except OSError as err:
        raise UsageError(f"--out {path}: cannot be written ({err.strerror or err})") from None


def _check_data(sweep, config: dict) -> None:
    """Every dataset and split the sweep's jobs read (:meth:`vqlib.sweeps.Sweep.inputs`) is on disk."""

    dataset = config.get("dataset")
    jobs = sweep.jobs({k: v for k, v in config.items() if k != "dataset"})
    needed = {pair for job in jobs
              for pair in sweep.inputs(dict(job, dataset=dataset) if dataset is not None else job).values()}
    for name, split in sorted(needed, key=repr):
        try:
            check_available(name, split=split)
        except (ValueError, FileNotFoundError) as err:
            raise UsageError(f"{sweep.name}: data={name!r}, split={split!r}: {err}") from None


def _check_cache(root, plan, args) -> None:
    """The cache folder can take the run's new entries; a read-only one must already hold every job."""

    problem = writable_problem(root)
    if problem is None:
        return
    missing = sum(total - done for done, total in _cached_counts(plan, args.profile, root))
    if missing or args.refresh:
        what = "--refresh rewrites every job" if args.refresh else f"{_jobs(missing)} not cached there"
        raise UsageError(f"the cache folder (VQLIB_CACHE) cannot take new entries: {problem}; {what}. Make it "
                         "writable, set VQLIB_CACHE to another folder, or pass --no-cache")


def _cached_counts(plan, profile: str, root) -> list[tuple[int, int]]:
    return [sweep.count_cached(profile, root=root, **overrides) for sweep, overrides in plan]


def _interrupted(plan, profile: str, root) -> str:
    """The one line a Ctrl-C leaves: how many jobs are cached, and that a rerun resumes."""
    if root is None:
        return "interrupted; the cache is off, so nothing was kept"
    try:
        counts = _cached_counts(plan, profile, root)
    except KeyboardInterrupt:
        return f"interrupted; finished jobs are cached in {root}: rerun the same command to resume"
    done, total = sum(c[0] for c in counts), sum(c[1] for c in counts)
    return f"interrupted: {done} of {_jobs(total)} cached in {root}; rerun the same command to resume"


def _summary(rows: list[dict]) -> str:
    if not rows:
        return "0 rows"
    columns = list(rows[0])
    shown = ", ".join(columns[:12]) + (f", … ({len(columns)} columns)" if len(columns) > 12 else "")
    return f"{len(rows)} rows; columns: {shown}"


def _config(sweep, profile: str, overrides: dict) -> dict:
    """The sweep's resolved configuration; a bad one (empty grid, unknown key) is a UsageError."""
    try:
        config = sweep.config(profile, **overrides)
        sweep.jobs({k: v for k, v in config.items() if k != "dataset"})
    except ValueError as err:
        raise UsageError(str(err)) from None
    return config


def _run_one(sweep, args, overrides: dict) -> list[dict]:
    start, cpu = time.perf_counter(), time.process_time()
    config = _config(sweep, args.profile, overrides)
    n_jobs = len(sweep.jobs({k: v for k, v in config.items() if k != "dataset"}))
    print(f"{sweep.name} ({sweep.chapter}), {args.profile} profile, {_jobs(n_jobs)}: {sweep.doc}", flush=True)
    rows = sweep.run(args.profile, cache=not args.no_cache, refresh=args.refresh, executor=args.executor,
                     workers=args.workers, progress=args.progress, **overrides)
    print(f"  {_summary(rows)}; {time.perf_counter() - start:.1f} s wall, {time.process_time() - cpu:.1f} s CPU",
          flush=True)
    return rows


def _check_environment(args):
    """The device (``--device``, else ``VQLIB_DEVICE``) and the cache folder (``VQLIB_CACHE``); the folder."""
    try:
        if args.device is not None:
            resolve_device(args.device)
        else:
            default_device()  # a bad VQLIB_DEVICE is refused here, whether the sweep trains or not
        return None if args.no_cache else cache_dir()
    except ValueError as err:
        raise UsageError(str(err)) from None


def _check_executor(args) -> None:
    """``--executor`` and ``--workers``, and under Dask the scheduler: it must answer, within a timeout."""
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    try:
        check_executor(args.executor, args.workers)
    except (ValueError, OSError, ImportError) as err:
        raise UsageError(f"--executor {args.executor}: {_one_line(err)}") from None


def _cmd_run(args) -> int:
    _resolve_profile(args)
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    root = _check_environment(args)
    if args.device is not None:
        os.environ["VQLIB_DEVICE"] = args.device
    if args.name == "all":
        if args.set:
            raise UsageError("--set applies to one sweep; 'run all' runs every sweep as configured")
        plan = [(sweep, {}) for sweep in all_sweeps().values()]
    else:
        sweep = _sweep(args.name)
        plan = [(sweep, _overrides(sweep, args.profile, args.set))]
    # everything that can be checked is checked before anything is computed
    n_jobs = 0
    for sweep, overrides in plan:
        _check_data(sweep, _config(sweep, args.profile, overrides))
        try:  # every value of every setting, job by job: none is computed before all are checked
            n_jobs += sweep.validate(args.profile, **overrides)
        except ValueError as err:
            raise UsageError(str(err)) from None
    if args.out:
        _check_out(args.out)
    if root is not None:
        _check_cache(root, plan, args)
    _check_executor(args)
    if args.dry_run:
        print(f"checked {_jobs(n_jobs)} of {len(plan)} sweep{'s' if len(plan) != 1 else ''}: nothing computed "
              f"(cache: {'off' if root is None else root})")
        return 0
    print(f"cache: {'off' if root is None else root}")
    rows = []
    try:
        for sweep, overrides in plan:
            try:
                new = _run_one(sweep, args, overrides)
            except ValueError as err:  # vqlib names a bad value (K = 0, n too large for the data, …) this way
                if args.debug:
                    raise
                raise UsageError(f"{sweep.name}: {_one_line(err)}") from None
            except FloatingPointError as err:  # a diverged training (a learning rate too large, …)
                if args.debug:
                    raise
                raise UsageError(f"{sweep.name}: FloatingPointError: {_one_line(err)}; nothing of that job "
                                 "was cached") from None
            if args.name == "all":  # one table for every sweep: a first column says which
                new = [{"sweep": sweep.name, **row} for row in new]
            rows.extend(new)
    except KeyboardInterrupt:
        print(f"python -m vqlib: {_interrupted(plan, args.profile, root)}", file=sys.stderr, flush=True)
        return 130
    if args.out:
        if not rows:
            raise UsageError("the sweep returned no rows: nothing to write")
        _write(rows, args.out)
        print(f"wrote {len(rows)} rows to {args.out}")
    return 0


def _profile(value: str) -> str:
    if value not in PROFILES:
        raise argparse.ArgumentTypeError(f"invalid profile {value!r} (choose from {', '.join(PROFILES)})")
    return value


def _out(value: str) -> str:
    if not value.endswith((".csv", ".json")):
        raise argparse.ArgumentTypeError(f"--out {value!r} must end in .csv or .json")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m vqlib`` (subcommands list, show, run)."""
    parser = _Parser(
        prog="python -m vqlib",
        description="Run the book's registered sweeps (every chapter's expensive computation) headless.",
        epilog=_CACHE_HELP)
    debug_help = "on an error, show the Python traceback instead of one line"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", metavar="{list,show,run}")
    sub.required = True
    common = argparse.ArgumentParser(add_help=False)  # --debug after the subcommand too
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)

    p_list = sub.add_parser("list", help="list every registered sweep", parents=[common],
                            description="List every registered sweep: its name, chapter, number of jobs in "
                                        "the quick and full profiles, and what it measures.")
    p_list.set_defaults(func=_cmd_list)

    profile_help = ("configuration profile: 'quick' (CI, two CPU cores, what the chapters run without a GPU) or "
                    "'full' (the paper's scale, for a GPU); default: VQLIB_PROFILE, else quick without a GPU")
    set_help = ("override one configuration entry, KEY=VALUE; VALUE is read as JSON when it parses "
                "(16, 1e-3, \"[1, 4, 16]\", true), else as a string; a single value for a swept (grid) "
                "key runs just that value; repeatable")

    p_show = sub.add_parser("show", help="print a sweep's resolved configuration as JSON", parents=[common],
                            description="Print the resolved configuration of one sweep as JSON: the profile's "
                                        "settings with any --set overrides, the grid keys and the number of jobs.")
    p_show.add_argument("name", help="the sweep's name, as 'list' prints it (e.g. ch05-monte-carlo)")
    p_show.add_argument("--profile", type=_profile, default=None, help=profile_help)
    p_show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p_show.set_defaults(func=_cmd_show)

    p_run = sub.add_parser("run", help="run a sweep (or all of them) and write its tidy table", parents=[common],
                           description="Run one sweep, or every sweep with 'all', reading and filling the "
                                       "result cache, and print a short summary. " + _CACHE_HELP,
                           epilog="Example: python -m vqlib run ch01-latents --profile quick "
                                  "--set \"K=[4]\" --set \"L=[1]\" --out latents.csv")
    p_run.add_argument("name", help="the sweep's name, as 'list' prints it, or 'all' for every registered sweep")
    p_run.add_argument("--profile", type=_profile, default=None, help=profile_help)
    p_run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p_run.add_argument("--out", type=_out, metavar="FILE.csv|FILE.json",
                       help="write the rows here: CSV (lists and dicts as JSON text in their cells) or a JSON "
                            "list of row objects; with 'all' each row gains a 'sweep' column")
    p_run.add_argument("--no-cache", action="store_true", help="compute everything and neither read nor write the cache")
    p_run.add_argument("--refresh", action="store_true", help="recompute every job and overwrite its cache entry")
    p_run.add_argument("--executor", choices=("serial", "dask"), default="serial",
                       help="'serial' computes the jobs one after another in this process (default); 'dask' "
                            "sends them to a local Dask cluster, or to the scheduler named by VQLIB_DASK_SCHEDULER, "
                            "which must answer within VQLIB_DASK_TIMEOUT seconds (default 10) (needs the optional "
                            "dask extra)")
    p_run.add_argument("--workers", type=int, default=2, metavar="N",
                       help="number of Dask worker processes with --executor dask (default 2)")
    p_run.add_argument("--device", metavar="DEVICE",
                       help="torch device to train on (cpu, cuda, cuda:1, mps); sets VQLIB_DEVICE; default: "
                            "VQLIB_DEVICE, else CUDA when present, else CPU. The device is not part of the cache "
                            "key: results agree across devices up to float rounding")
    p_run.add_argument("--progress", action="store_true", help="show a progress bar over the jobs (serial executor)")
    p_run.add_argument("--dry-run", action="store_true",
                       help="check the whole command (every job's settings, the data, the device, --out, the cache "
                            "folder, the Dask scheduler) and stop before computing anything")
    p_run.set_defaults(func=_cmd_run)
    return parser


def _one_line(err: BaseException) -> str:
    """An error's message on one line (some, such as a missing dataset's, list files on several)."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (a corrupt cache entry, a vacuous certificate) as one line each, without source lines."""
    print(f"python -m vqlib: warning: {category.__name__}: {_one_line(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m vqlib``; returns the exit status (2 for any error, 130 for Ctrl-C).

    Every error is one line on stderr; ``--debug`` raises it with its traceback instead.
    """

    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    shown = warnings.showwarning
    if not debug:
        warnings.showwarning = _warning_line
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        kind = "" if isinstance(err, UsageError) else f"{type(err).__name__}: "
        hint = "" if isinstance(err, UsageError) else " (--debug shows the traceback)"
        parser.exit(2, f"{parser.prog}: error: {kind}{_one_line(err)}{hint}\n")
    finally:
        warnings.showwarning = shown
    return 0  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
