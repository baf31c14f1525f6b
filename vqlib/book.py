"""Small helpers the chapters use to put computed numbers and code into the prose.

In the built book :func:`glue` stores a value for ``{glue:text}`` roles (myst-nb); on
Colab or in plain Jupyter, where myst-nb may be absent, it prints the value instead, so
every chapter runs everywhere.
"""
from __future__ import annotations

import inspect

__all__ = ["glue", "show_source", "bounds_table"]


def glue(name: str, value) -> None:
    """Store a number under ``name`` for the chapter's prose (every chapter).

    The prose picks the format, e.g. ``{glue:text}`name:.4f```.
    """
    if hasattr(value, "item"):  # numpy and torch scalars render as np.float64(...) otherwise
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        print(f"{name} = {value}")
        return
    myst_glue(name, value, display=False)


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
    import math

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
    import numpy as np

    return float(np.std(np.asarray(values, dtype=float), ddof=1))
