"""What one sweep of each profile costs on this machine: measured, or extrapolated from a fraction.

For every registered sweep (or the ones named on the command line):

* **quick**: the whole quick sweep, computed without the cache (``sweep.run(profile="quick",
  cache=False)``), wall clock and CPU time of this process: *measured*.
* **full**: the whole full sweep when it is cheap enough (``DIRECT``), else a *fraction* of it:
  the full configuration with one size knob reduced (masks, epochs, seeds, …; ``SCALED``) and
  sometimes another knob held at a fixed smaller value with a known linear factor, timed at two
  sizes s₁ < s₂ of the knob; the time is fitted as a + b·s (a: what does not grow with the
  knob: data, references, certificates, …) and *extrapolated* to the full size S, times the
  fixed factor. Every line says which.

Training cost is linear in epochs, steps, masks and seeds (the training engine trains models
in chunks of fixed size), so the extrapolation is linear; where a part of the cost is not
(W2, exact enumeration) the knob chosen leaves that part in the intercept. The figures
written to ``vqlib/book/costs.py`` (``--write``) are what every chapter's setup cell
prints and what teaching.md quotes. Run from the repository root, one thread:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_profiles.py [--write] [--skip-quick] [NAME ...]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import torch

from vqlib import sweeps

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "vqlib" / "book" / "costs.py"

#: Full sweeps timed whole.
DIRECT = ("ch01-model", "ch06-learned")

#: Full sweeps timed in part: (knob, (s1, s2), {other knob: reduced value}, factor the reduction removes).
SCALED = {
    "ch01-grid": ("epochs", (3, 6), {}, 1),
    "ch01-latents": ("epochs", (2, 4), {}, 1),
    "ch02-kmeans": ("n_masks", (64, 256), {}, 1),
    "ch02-coverage": ("experiments", (1, 2), {}, 1),  # sixteenths of every [m, count] of both plans
    "ch02-vqvae": ("n_masks", (4, 8), {"n_supersamples": 1}, 8),
    "ch03-memoriser": ("mask_seeds", (4, 8), {}, 1),
    "ch03-parts": ("mask_seeds", (2, 4), {}, 1),
    "ch04-main": ("n_masks", (16, 32), {}, 1),
    "ch04-settings": ("n_masks", (4, 8), {}, 1),
    "ch05-exact": ("supersample_seeds", (1, 2), {}, 1),
    "ch05-monte-carlo": ("mask_seeds", (2, 4), {}, 1),
    "ch06-temperature": ("n_masks", (8, 16), {}, 1),
    "ch07-priors": ("epochs", (3, 6), {}, 1),
    "ch07-penalty": ("epochs", (3, 6), {}, 1),
    "ch08-capacity": ("epochs", (5, 10), {}, 1),
}


#: ch02-coverage's knob "experiments": its two plans of [m, count] pairs, every count cut to a fraction.
PLAN_KEYS, PLAN_PARTS = ("toy_experiments", "vqvae_experiments"), 16


def _plans(full: dict, parts: int) -> dict:
    """The full plans with every count cut to parts/16 (at least 1), as overrides."""
    return {key: [[m, max(1, count * parts // PLAN_PARTS)] for m, count in full[key]] for key in PLAN_KEYS}


def _size(value) -> int:
    return len(value) if isinstance(value, (list, tuple)) else int(value)


def _value(default, size: int):
    """The knob's value of size ``size``: a number, or the first ``size`` entries of a list."""
    return list(default)[:size] if isinstance(default, (list, tuple)) else size


def _timed(sweep, profile: str, overrides: dict) -> tuple[float, float]:
    from vqlib.sweeps import ch06_temperature

    ch06_temperature._REFERENCES.clear()  # every timed run trains its own references, as a cold chapter does
    t0, c0 = time.perf_counter(), time.process_time()
    sweep.run(profile=profile, cache=False, **overrides)
    return time.perf_counter() - t0, time.process_time() - c0


def measure(name: str, quick: bool = True) -> dict:
    sweep = sweeps.get(name)
    out = dict(name=name, chapter=sweep.chapter)
    if quick:
        out["quick_s"], out["quick_cpu_s"] = _timed(sweep, "quick", {})
        print(f"{name}: quick {out['quick_s']:.1f} s (measured)", flush=True)
    if name in DIRECT:
        out["full_s"], _ = _timed(sweep, "full", {})
        out["full_basis"] = "measured"
    else:
        knob, (s1, s2), fixed, factor = SCALED[name]
        full = sweep.config("full")
        if knob == "experiments":  # the experiment counts of both plans, in sixteenths
            S = PLAN_PARTS
            t1, _ = _timed(sweep, "full", _plans(full, s1))
            t2, _ = _timed(sweep, "full", _plans(full, s2))
        else:
            S = _size(full[knob])
            t1, _ = _timed(sweep, "full", {knob: _value(full[knob], s1), **fixed})
            t2, _ = _timed(sweep, "full", {knob: _value(full[knob], s2), **fixed})
        b = max((t2 - t1) / (s2 - s1), 0.0)
        a = max(t2 - b * s2, 0.0)
        out["full_s"] = factor * (a + b * S)
        part = (f"{s1}/{S} and {s2}/{S} of every experiment count" if knob == "experiments" else
                f"{knob} {s1} and {s2} of {S}" + "".join(f", {k} {v} of {_size(full[k])}" for k, v in fixed.items()))
        out["full_basis"] = f"extrapolated from runs with {part} ({t1:.0f} s and {t2:.0f} s)"
        if t2 <= 1.1 * t1 and t2 > 5:  # the knob's share is lost in the noise: the slope is not resolved
            print(f"{name}: warning: {t1:.0f} s at {knob} {s1} and {t2:.0f} s at {s2}, so the growth with {knob} "
                  "is below the noise; time it again at sizes further apart (SCALED)", flush=True)
    print(f"{name}: full {out['full_s'] / 60:.1f} min ({out['full_basis']})", flush=True)
    return out


def write(results: list[dict]) -> None:
    known = {}
    if OUT.exists():
        namespace: dict = {}
        exec(OUT.read_text(), namespace)
        known = dict(namespace.get("COSTS", {}))
    for r in results:
        entry = dict(known.get(r["name"], {}))
        entry.update({k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()
                      if k in ("quick_s", "full_s", "full_basis")})
        entry["measured_on"] = datetime.date.today().isoformat()  # the entries not measured now keep their date
        known[r["name"]] = entry
    cpu = platform.processor() or platform.machine()
    body = json.dumps(dict(sorted(known.items())), indent=4, ensure_ascii=False)
    OUT.write_text(f'''"""What each registered sweep costs on the book's build machine, per profile (every chapter's
setup cell prints it, through :func:`vqlib.book.profile_note`; teaching.md quotes it).

Written by ``benchmarks/bench_profiles.py --write``: ``quick_s`` is the whole quick sweep computed
without the cache (measured); ``full_s`` the whole full sweep, measured (``full_basis`` =
"measured") or extrapolated linearly from two runs of a fraction of it (``full_basis`` says which
fraction). Seconds of wall clock on {MACHINE!r}, one thread per process; each entry says when it
was measured (``measured_on``), ``MEASURED_ON`` is the newest.
GPU: not measured (no GPU was lent to the builds of this book).
"""

MACHINE = {MACHINE!r}
MEASURED_ON = {datetime.date.today().isoformat()!r}

COSTS = {body}
''')


MACHINE = f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="sweeps to measure (default: all)")
    parser.add_argument("--write", action="store_true", help="write the figures to vqlib/book/costs.py")
    parser.add_argument("--skip-quick", action="store_true", help="measure the full profile only")
    args = parser.parse_args()
    names = args.names or list(sweeps.all_sweeps())
    print(f"{MACHINE}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; {datetime.datetime.now():%Y-%m-%d %H:%M}")
    results = []
    for name in names:
        results.append(measure(name, quick=not args.skip_quick))
        if args.write:
            write(results)
    total_q = sum(r.get("quick_s", 0) for r in results)
    total_f = sum(r["full_s"] for r in results)
    print(f"total: quick {total_q / 60:.1f} min, full {total_f / 3600:.1f} h")


if __name__ == "__main__":
    main()
