"""Sweeps: every chapter's expensive computation, registered by name, cached, runnable headless
(every chapter).

* the registry (:class:`Sweep`, :func:`register`, :func:`get`, :func:`all_sweeps`,
  :mod:`~vqlib.sweeps.registry`) and one module per chapter that registers its sweeps
  (``ch01_vqvae`` … ``ch08_capacity``, imported by :func:`all_sweeps`);
* the result cache, keyed by configuration, data and code (:mod:`~vqlib.sweeps.cache`);
* running a sweep's jobs serially or on Dask workers (:mod:`~vqlib.sweeps.jobs`);
* the book's profile switch, quick or full (:func:`current_profile`, :func:`pick`,
  :mod:`~vqlib.sweeps.profile`).

A chapter calls ``sweeps.get("ch07-penalty").run()``; ``python -m vqlib`` runs the same sweeps.
"""
import importlib

from .profile import PROFILES, current_profile, pick
from .registry import Sweep, all_sweeps, get, register

__all__ = ["Sweep", "all_sweeps", "get", "register", "PROFILES", "current_profile", "pick"]

#: The modules of this subpackage, each loaded on first use as an attribute (``vqlib.sweeps.cache``).
MODULES = ("cache", "ch01_vqvae", "ch02_supersample", "ch03_decoder", "ch04_prior", "ch05_permutation", "ch06_temperature", "ch07_generation", "ch08_capacity", "jobs", "profile", "registry")


def __getattr__(name):
    if name in MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
