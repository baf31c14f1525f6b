"""Small helpers the chapters use to put computed numbers and code into the prose.

In the built book :func:`glue` stores a value for ``{glue:text}`` roles (myst-nb); on
Colab or in plain Jupyter, where myst-nb may be absent, it keeps the value in
:data:`GLUED` without printing anything (the plain notebooks of ``colab/`` carry the
book's numbers in their prose), so every chapter runs everywhere.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Mapping

import numpy as np

from ..sweeps import all_sweeps
from ..sweeps import get as get_sweep
from ..sweeps.profile import current_profile
from .costs import COSTS, MACHINE

__all__ = ["GLUED", "glue", "glue_all", "show_source", "bounds_table", "profile_note", "duration", "sweep_costs"]

#: Every value glued in this kernel, by name (also when myst-nb is absent).
GLUED: dict = {}


def glue(name: str, value) -> None:
    """Store a number under ``name`` for the chapter's prose (every chapter).

    The prose picks the format, e.g. ``{glue:text}`name:.4f```. Without myst-nb (Colab,
    plain Jupyter) the value is only kept in :data:`GLUED`.
    """
    if hasattr(value, "item"):  # numpy and torch scalars render as np.float64(...) otherwise
        value = value.item()
    GLUED[name] = value
    try:
        from myst_nb import glue as myst_glue  # myst-nb exists only in the book build
    except ImportError:
        return
    myst_glue(name, value, display=False)


def glue_all(values: Mapping, prefix: str = "") -> None:
    """:func:`glue` every ``name: value`` of ``values`` as ``prefix + name`` (the chapters'
    bookkeeping of the numbers their prose quotes)."""
    for name, value in values.items():
        glue(f"{prefix}{name}", value)


def show_source(obj) -> None:
    """Print the source of a ``vqlib`` function or class: the book shows the library's
    own code before calling it, never a second copy."""
    print(inspect.getsource(obj).rstrip())


def bounds_table(row, names: dict, keys=None) -> str:
    """A Markdown table of bounds with their kind (every chapter's table of bounds).

    ``row`` has ``gap``, ``bounds`` (plug-in estimates), ``certified``, ``certified_kinds`` and
    ``confidence`` and, when it can, ``per_supersample`` (for the estimates' standard errors
    over supersamples). One line per (bound, kind): *estimate ± s.e.*, *certified (δ)* or
    *exact*, with the value and its ratio to the measured gap. Display it with
    ``IPython.display.Markdown``.
    """

    get = (lambda k, d=None: row.get(k, d)) if isinstance(row, dict) else (lambda k, d=None: getattr(row, k, d))  # noqa: E731
    gap, bounds, certified = get("gap"), get("bounds", {}), get("certified", {}) or {}
    kinds, confidence, per = get("certified_kinds", {}) or {}, get("confidence"), get("per_supersample") or []
    keys = list(keys or [k for k in names if k in bounds or k in certified])
    lines = ["| bound | kind | value | ÷ gap |", "|---|---|---|---|"]

    def ratio(v):
        return f"{v / gap:.1f}" if gap > 0 and v < 1 else ("vacuous" if v >= 1 else "—")

    for k in keys:
        if k in bounds:
            vals = [r[k] for r in per if k in r]
            se = f" ± {float(_std(vals)) / math.sqrt(len(vals)):.4f}" if len(vals) >= 2 else ""
            lines.append(f"| {names[k]} | estimate ± s.e. | {bounds[k]:.4f}{se} | {ratio(bounds[k])} |")
        if k in certified:
            kind = kinds.get(k, "certified")
            label = f"certified (δ = {1 - confidence:.2g}, jointly)" if kind == "certified" else kind
            lines.append(f"| {names[k]} | {label} | {certified[k]:.4f} | {ratio(certified[k])} |")
    return "\n".join(lines)


def _std(values) -> float:
    """Sample standard deviation (ddof = 1) of a list of numbers."""
    return float(np.std(np.asarray(values, dtype=float), ddof=1))


#: The registered sweeps chapter 9 reads (it has none of its own).
READS = {"09_all_bounds": ("ch02-kmeans", "ch02-vqvae", "ch04-main", "ch04-settings", "ch05-exact",
                           "ch05-monte-carlo", "ch06-temperature", "ch07-penalty", "ch07-priors", "ch08-capacity")}


def duration(seconds: float) -> str:
    """Seconds as a reader reads a run time: ``0.2 s``, ``45 s``, ``12 min``, ``3.4 h``."""
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def sweep_costs(names) -> tuple[float | None, float | None, list[str]]:
    """(quick seconds, full seconds, one line per sweep) for the sweeps ``names`` on the book's build
    machine (:mod:`vqlib.book.costs`); a total is None when a sweep was never timed."""

    quick = full = 0.0
    lines = []
    for name in names:
        cost = COSTS.get(name)
        if cost is None or "full_s" not in cost:
            quick = full = None
            lines.append(f"{name}: not timed")
            continue
        if quick is not None:
            quick += cost.get("quick_s", 0.0)
            full += cost["full_s"]
        basis = "measured" if cost["full_basis"] == "measured" else "extrapolated"
        lines.append(f"{name}: full about {duration(cost['full_s'])} ({basis}), quick {duration(cost.get('quick_s', 0))}")
    return quick, full, lines


def profile_note(chapter: str) -> str:
    """What the chapter's quick profile runs, how to ask for the full one, what it computes and what
    it costs.

    Printed by every chapter's setup cell. ``chapter`` is the notebook's stem, e.g.
    ``"02_supersample"``; the sizes come from the chapter's registered sweeps
    (:mod:`vqlib.sweeps`), quick against full, and the costs from
    :mod:`vqlib.book.costs` (measured on the book's build machine, 2 CPU cores, or
    extrapolated from a fraction of the sweep: each line says which; GPU: not measured).
    """

    sweeps = [get_sweep(name) for name in all_sweeps()]
    sweeps = [s for s in sweeps if s.chapter == chapter]
    profile = current_profile()
    ask = ("set FULL_PROFILE = True at the top of the setup cell (or the environment variable "
           "VQLIB_PROFILE=full) and run the chapter again")
    where = f"on the book's build machine ({MACHINE}, one thread); on a GPU: not measured"
    if not sweeps:
        reads = READS.get(chapter, ())
        _, full, _ = sweep_costs(reads)
        cost = (f" Computing those it reads costs about {duration(full)} {where}, unless they are cached."
                if reads and full is not None else "")
        return (f"{profile.capitalize()} profile. This chapter has no sweep of its own: it reads the other "
                "chapters' sweeps, at the size of the profile; for the full profile, " + ask
                + " (it then computes every other chapter's full sweeps, sized for a GPU)." + cost)
    parts = []
    _, full, lines = sweep_costs([s.name for s in sweeps])
    for s, line in zip(sweeps, lines):
        quick_cfg, full_cfg = s.config("quick"), s.config("full")
        changes = [_change(k, quick_cfg[k], full_cfg[k]) for k in quick_cfg if k in full_cfg and quick_cfg[k] != full_cfg[k]]
        changes = [c for c in changes if c][:4]
        jobs = len(s.jobs(full_cfg))
        parts.append(f"{s.name}: {jobs} job{'s' * (jobs != 1)} instead of {len(s.jobs(quick_cfg))}"
                     + (f" ({'; '.join(changes)})" if changes else "") + "; " + line.split(": ", 1)[1])
    if profile == "full":
        head = "Full profile: the larger runs, sized for a GPU."
    else:
        cost = (f"It costs about {duration(full)} {where}" if full is not None
                else f"Part of it has not been timed ({where})")
        head = (f"Quick profile: the runs this book was built with. For the full profile, {ask}. "
                f"It is sized for a GPU. {cost}; it trains many times more, and larger, models:")
    return head + ("\n  " + "\n  ".join(parts) if profile != "full" else "")


def _change(key: str, quick, full) -> str | None:
    """One setting that differs between the profiles, short: ``n_masks 128 → 512``."""
    def short(v):
        if isinstance(v, (list, tuple)):
            if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v) and v:
                return f"{len(v)} values up to {max(v):g}"
            return f"{len(v)} values"
        return f"{v:g}" if isinstance(v, float) else str(v)

    if key.endswith("seeds") and isinstance(quick, (list, tuple)) and isinstance(full, (list, tuple)):
        return f"{key} {len(quick)} → {len(full)}"
    q, f = short(quick), short(full)
    return None if q == f else f"{key} {q} → {f}"
