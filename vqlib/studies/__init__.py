"""Studies: each chapter's experiment, from trained models to the numbers it reports (chapters 1–8).

One module per experiment: the supersample runs behind chapters 2–4
(:mod:`~vqlib.studies.supersample_runs`), the K × L sweep of chapter 1
(:mod:`~vqlib.studies.latents`), the decoder's gap of chapter 3
(:mod:`~vqlib.studies.decoder_gap`), the data-dependent priors of chapter 4
(:mod:`~vqlib.studies.prior_bounds`), the permutation of chapter 5
(:mod:`~vqlib.studies.permutation`), the temperature of chapter 6
(:mod:`~vqlib.studies.temperature`), generation of chapter 7 (:mod:`~vqlib.studies.generation`)
and capacity of chapter 8 (:mod:`~vqlib.studies.capacity`); the statistics they share
(standard errors, Student-t intervals, paired fits) in :mod:`~vqlib.studies.statistics`.

Studies combine :mod:`vqlib.models` and :mod:`vqlib.bounds`; they never cache or plot.
"""
import importlib

from .generation import generation_bound
from .latents import sweep_latents
from .supersample_runs import BOUND_NAMES, SupersampleResult, run_supersample

__all__ = ["run_supersample", "SupersampleResult", "BOUND_NAMES", "sweep_latents", "generation_bound"]

#: The modules of this subpackage, each loaded on first use as an attribute (``vqlib.studies.capacity``).
MODULES = ("capacity", "decoder_gap", "generation", "latents", "permutation", "prior_bounds", "statistics", "supersample_runs", "temperature")


def __getattr__(name):
    if name in MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
