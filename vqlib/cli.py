"""``python -m vqlib``: list, inspect and run the book's registered sweeps headless.

Every chapter's expensive computation is a registered sweep (:mod:`vqlib.experiments`).
This command line runs any of them in the quick or full profile and writes its tidy
table, so a classroom can precompute every chapter on a GPU machine and ship the cache
folder (``VQLIB_CACHE``) to the students' laptops::

    python -m vqlib list
    python -m vqlib show ch05-monte-carlo --profile full
    python -m vqlib run ch05-monte-carlo --profile quick --set "NS=[8, 16]" --out gap.csv
    VQLIB_CACHE=/srv/vqlib-cache python -m vqlib run all --profile full --device cuda

Bad options (an unknown sweep, setting, profile or a value of the wrong type) print one
line naming the bad value and exit with status 2, as argparse does.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

__all__ = ["main", "parse_assignment"]

_CACHE_HELP = (
    "Results are cached by configuration, data and code in the folder named by the environment "
    "variable VQLIB_CACHE (default ~/.cache/vqlib; VQLIB_CACHE=off disables the cache). Run the "
    "sweeps once on a GPU machine with 'run all --profile full' and copy that folder: a chapter "
    "executed with the same VQLIB_CACHE then recomputes nothing."
)


class UsageError(Exception):
    """A bad command-line value: reported in one line, exit status 2."""


def parse_assignment(text: str) -> tuple[str, object]:
    """``key=value`` → (key, value); the value is parsed as JSON when it can be, else kept as a string.

    ``K=16`` gives 16, ``lr=1e-3`` gives 0.001, ``"Ks=[1, 4]"`` gives [1, 4], ``learner=kmeans``
    gives "kmeans".
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"--set expects key=value, got {text!r}")
    try:
        value = json.loads(raw)
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
        return f"list of {' or '.join(kinds)}" if kinds else "empty list"
    return _kind(value)


def _compatible(default, value) -> bool:
    """Whether ``value`` may replace ``default`` (same JSON kind; an int where a float is; a grid value)."""
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
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return False
        kinds = {_kind(v) for v in default}
        if kinds == {"float"} or kinds == {"int", "float"}:
            return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if len(kinds) == 1:
            (one,) = kinds
            return all(_compatible(default[0], v) for v in value) if one != "list" else True
        return True
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
    from . import experiments

    try:
        return experiments.get(name)
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
    from . import experiments

    sweeps = experiments.all_sweeps()
    if not sweeps:
        print("no sweeps are registered")
        return 0
    width = max(len(n) for n in sweeps)
    for name, sweep in sweeps.items():
        print(f"{name:<{width}}  {sweep.chapter:<18} quick: {_size(sweep, 'quick'):<10} full: {_size(sweep, 'full')}")
        print(f"{'':<{width}}  {sweep.doc}")
    return 0


def _cmd_show(args) -> int:
    sweep = _sweep(args.name)
    overrides = _overrides(sweep, args.profile, args.set)
    try:
        config = sweep.config(args.profile, **overrides)
    except ValueError as err:
        raise UsageError(str(err)) from None
    n_jobs = len(sweep.jobs({k: v for k, v in config.items() if k != "dataset"}))
    shown = {"name": sweep.name, "chapter": sweep.chapter, "doc": sweep.doc, "profile": args.profile,
             "grid": list(sweep.grid), "jobs": n_jobs, "config": config}
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
    from .tables import rows_to_csv

    if path.endswith(".json"):
        with open(path, "w") as fh:
            json.dump(rows, fh)
    else:
        columns = list(dict.fromkeys(key for row in rows for key in row))  # rows may differ in their keys
        rows_to_csv([{k: _cell(row.get(k, "")) for k in columns} for row in rows], path)


def _summary(rows: list[dict]) -> str:
    if not rows:
        return "0 rows"
    columns = list(rows[0])
    shown = ", ".join(columns[:12]) + (f", … ({len(columns)} columns)" if len(columns) > 12 else "")
    return f"{len(rows)} rows; columns: {shown}"


def _run_one(sweep, args, overrides: dict) -> list[dict]:
    start, cpu = time.perf_counter(), time.process_time()
    try:
        config = sweep.config(args.profile, **overrides)
    except ValueError as err:
        raise UsageError(str(err)) from None
    n_jobs = len(sweep.jobs({k: v for k, v in config.items() if k != "dataset"}))
    print(f"{sweep.name} ({sweep.chapter}), {args.profile} profile, {_jobs(n_jobs)}: {sweep.doc}", flush=True)
    rows = sweep.run(args.profile, cache=not args.no_cache, refresh=args.refresh, executor=args.executor,
                     workers=args.workers, progress=args.progress, **overrides)
    print(f"  {_summary(rows)}; {time.perf_counter() - start:.1f} s wall, {time.process_time() - cpu:.1f} s CPU",
          flush=True)
    return rows


def _cmd_run(args) -> int:
    from . import experiments
    from .cache import cache_dir

    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if args.device is not None:
        from .device import resolve_device

        try:
            resolve_device(args.device)
        except ValueError as err:
            raise UsageError(str(err)) from None
        os.environ["VQLIB_DEVICE"] = args.device
    if args.name == "all":
        if args.set:
            raise UsageError("--set applies to one sweep; 'run all' runs every sweep as configured")
        plan = [(sweep, {}) for sweep in experiments.all_sweeps().values()]
    else:
        sweep = _sweep(args.name)
        plan = [(sweep, _overrides(sweep, args.profile, args.set))]
    root = cache_dir()
    print(f"cache: {'off' if args.no_cache or root is None else root}")
    rows = []
    for sweep, overrides in plan:
        try:
            new = _run_one(sweep, args, overrides)
        except ValueError as err:  # vqlib names a bad value (K = 0, n too large for the data, …) this way
            raise UsageError(f"{sweep.name}: {err}") from None
        if args.name == "all":  # one table for every sweep: a first column says which
            new = [{"sweep": sweep.name, **row} for row in new]
        rows.extend(new)
    if args.out:
        if not rows:
            raise UsageError("the sweep returned no rows: nothing to write")
        _write(rows, args.out)
        print(f"wrote {len(rows)} rows to {args.out}")
    return 0


def _profile(value: str) -> str:
    from .profile import PROFILES

    if value not in PROFILES:
        raise argparse.ArgumentTypeError(f"invalid profile {value!r} (choose from {', '.join(PROFILES)})")
    return value


def _out(value: str) -> str:
    if not value.endswith((".csv", ".json")):
        raise argparse.ArgumentTypeError(f"--out {value!r} must end in .csv or .json")
    return value


def _default_profile() -> str:
    from .profile import current_profile

    try:
        return current_profile()
    except ValueError:
        return "quick"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m vqlib`` (subcommands list, show, run)."""
    parser = argparse.ArgumentParser(
        prog="python -m vqlib",
        description="Run the book's registered sweeps (every chapter's expensive computation) headless.",
        epilog=_CACHE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="{list,show,run}")
    sub.required = True

    p_list = sub.add_parser("list", help="list every registered sweep",
                            description="List every registered sweep: its name, chapter, number of jobs in "
                                        "the quick and full profiles, and what it measures.")
    p_list.set_defaults(func=_cmd_list)

    profile_help = ("configuration profile: 'quick' (CI, two CPU cores, what the chapters run without a GPU) or "
                    "'full' (the paper's scale, for a GPU); default: VQLIB_PROFILE, else quick without a GPU")
    set_help = ("override one configuration entry, KEY=VALUE; VALUE is read as JSON when it parses "
                "(16, 1e-3, \"[1, 4, 16]\", true), else as a string; a single value for a swept (grid) "
                "key runs just that value; repeatable")

    p_show = sub.add_parser("show", help="print a sweep's resolved configuration as JSON",
                            description="Print the resolved configuration of one sweep as JSON: the profile's "
                                        "settings with any --set overrides, the grid keys and the number of jobs.")
    p_show.add_argument("name", help="the sweep's name, as 'list' prints it (e.g. ch05-monte-carlo)")
    p_show.add_argument("--profile", type=_profile, default=_default_profile(), help=profile_help)
    p_show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p_show.set_defaults(func=_cmd_show)

    p_run = sub.add_parser("run", help="run a sweep (or all of them) and write its tidy table",
                           description="Run one sweep, or every sweep with 'all', reading and filling the "
                                       "result cache, and print a short summary. " + _CACHE_HELP,
                           epilog="Example: python -m vqlib run ch01-latents --profile quick "
                                  "--set \"K=[4]\" --set \"L=[1]\" --out latents.csv")
    p_run.add_argument("name", help="the sweep's name, as 'list' prints it, or 'all' for every registered sweep")
    p_run.add_argument("--profile", type=_profile, default=_default_profile(), help=profile_help)
    p_run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p_run.add_argument("--out", type=_out, metavar="FILE.csv|FILE.json",
                       help="write the rows here: CSV (lists and dicts as JSON text in their cells) or a JSON "
                            "list of row objects; with 'all' each row gains a 'sweep' column")
    p_run.add_argument("--no-cache", action="store_true", help="compute everything and neither read nor write the cache")
    p_run.add_argument("--refresh", action="store_true", help="recompute every job and overwrite its cache entry")
    p_run.add_argument("--executor", choices=("serial", "dask"), default="serial",
                       help="'serial' computes the jobs one after another in this process (default); 'dask' "
                            "sends them to a local Dask cluster (needs the optional dask extra)")
    p_run.add_argument("--workers", type=int, default=2, metavar="N",
                       help="number of Dask worker processes with --executor dask (default 2)")
    p_run.add_argument("--device", metavar="DEVICE",
                       help="torch device to train on (cpu, cuda, cuda:1, mps); sets VQLIB_DEVICE; default: "
                            "VQLIB_DEVICE, else CUDA when present, else CPU. The device is not part of the cache "
                            "key: results agree across devices up to float rounding")
    p_run.add_argument("--progress", action="store_true", help="show a progress bar over the jobs (serial executor)")
    p_run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m vqlib``; returns the exit status (2 for a bad option)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stderr.close()
        return 0
    return 0  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
