"""What only the book needs: prose helpers, figures, widgets, the image cache, the scorecard,
the measured costs and the command line (every chapter).

The prose helpers (:func:`glue`, :func:`show_source`, :func:`bounds_table`,
:func:`profile_note`, …, in :mod:`~vqlib.book.prose`) are imported with this package. The
other modules load on first use, because they need the ``[book]`` extra (matplotlib,
ipywidgets): :mod:`~vqlib.book.plots` (the book's figure style), :mod:`~vqlib.book.widgets`
(sliders with a static twin), :mod:`~vqlib.book.frames` (the image cache),
:mod:`~vqlib.book.scorecard` (chapter 9's table and verdicts), :mod:`~vqlib.book.costs` (the
sweeps' measured run times) and :mod:`~vqlib.book.cli` (``python -m vqlib``).

Nothing else in vqlib imports this subpackage, so editing it changes no computed number: the
sweep cache's code fingerprint leaves it out (:func:`vqlib.sweeps.cache.code_fingerprint`).
"""
import importlib

from .prose import (
    GLUED,
    READS,
    bounds_table,
    duration,
    glue,
    glue_all,
    profile_note,
    show_source,
    sweep_costs,
)

_LAZY = ("cli", "costs", "frames", "plots", "scorecard", "widgets")

__all__ = ["GLUED", "READS", "glue", "glue_all", "show_source", "bounds_table", "profile_note", "duration",
           "sweep_costs", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
