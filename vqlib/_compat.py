"""Old import paths, forwarded for one release with a ``DeprecationWarning`` naming the new one.

Until 0.2 the package was flat (``vqlib.supersample``, ``vqlib.certify``, ``vqlib.experiments``,
…). Each old module path is now a small forwarding module made on import: reading a name from
it warns and returns the object from its new home, so old code and whole models saved with
``torch.save`` (whose pickles name ``vqlib.model.VQVAE``) keep working. Old top-level names
that left the researcher's API (``vqlib.evaluate``, ``vqlib.current_profile``, ``vqlib.pick``,
and the old modules) are forwarded by :func:`forward`.

The forwarding modules are made by :class:`_OldPaths`, a finder placed after the regular ones
on ``sys.meta_path``: a module that exists on disk always wins. This module names the new homes
as strings and imports them only when a name is read, so it imports nothing of vqlib.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

#: Each old module (under ``vqlib.``) and the new modules that now hold its names, searched in order.
OLD_MODULES = {
    "model": ("models.vqvae", "models.layers"),
    "quantize": ("models.quantizers", "models.kmeans"),
    "metrics": ("models.metrics",),
    "train": ("models.fit",),
    "engine": ("models.engine",),
    "ensemble": ("models.ensemble",),
    "priors": ("models.priors",),
    "generate": ("models.sampling",),
    "supersample": ("bounds.supersample", "studies.supersample_runs", "models.kmeans"),
    "information": ("bounds.information", "bounds.cmi", "bounds.held_out"),
    "certify": ("bounds.certificates",),
    "coverage": ("bounds.coverage",),
    "w2": ("bounds.wasserstein",),
    "sweep": ("studies.latents",),
    "decoder_gap": ("studies.decoder_gap",),
    "prior_bounds": ("studies.prior_bounds",),
    "permutation": ("studies.permutation",),
    "temperature": ("studies.temperature",),
    "generation": ("studies.generation",),
    "capacity": ("studies.capacity", "studies.statistics"),
    "experiments": ("sweeps", "sweeps.registry"),
    "experiments.costs": ("book.costs",),
    **{f"experiments.{ch}": (f"sweeps.{ch}",) for ch in (
        "ch01_vqvae", "ch02_supersample", "ch03_decoder", "ch04_prior", "ch05_permutation", "ch06_temperature",
        "ch07_generation", "ch08_capacity")},
    "cache": ("sweeps.cache",),
    "jobs": ("sweeps.jobs",),
    "profile": ("sweeps.profile",),
    "plots": ("book.plots",),
    "widgets": ("book.widgets",),
    "frames": ("book.frames",),
    "scorecard": ("book.scorecard",),
    "cli": ("book.cli",),
}

#: Names that were renamed as they moved: (old module, old name) → "new.module.name".
RENAMED = {
    ("train", "evaluate"): "models.fit.model_summary",
    ("engine", "evaluate"): "models.engine.evaluate_stack",
    ("ensemble", "batched_mlp"): "models.engine.network",
}

#: Old top-level names that left ``vqlib``'s namespace: name → "new.module.name", or an old module.
OLD_TOP_LEVEL = {
    "evaluate": "models.fit.model_summary",
    "current_profile": "sweeps.profile.current_profile",
    "pick": "sweeps.profile.pick",
}


def _warn(old: str, new: str, stacklevel: int = 3) -> None:
    warnings.warn(f"{old} is deprecated and will be removed in vqlib 0.3; use {new}", DeprecationWarning,
                  stacklevel=stacklevel)


def _resolve(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(f"vqlib.{module}"), name)


class _OldModule(types.ModuleType):
    """A forwarding module: ``vqlib.<old>.<name>`` warns and returns the object's new home.

    Where the old module had submodules it is a package (``__path__``), so old submodule paths
    such as ``vqlib.experiments.ch04_prior`` import too; and it is callable when the old module shared
    its name with a top-level function (``vqlib.certify``, ``vqlib.generate``, ``vqlib.w2``):
    importing the old path rebinds ``vqlib.<old>`` to this module, which must still act as the
    function.
    """

    def __getattr__(self, name: str):
        old = self.__name__[len("vqlib."):]
        if name.startswith("__"):
            raise AttributeError(name)
        if (old, name) in RENAMED:
            new = RENAMED[(old, name)]
            _warn(f"vqlib.{old}.{name}", f"vqlib.{new}")
            return _resolve(new)
        for home in OLD_MODULES[old]:
            module = importlib.import_module(f"vqlib.{home}")
            if hasattr(module, name) and not isinstance(getattr(module, name), types.ModuleType):
                _warn(f"vqlib.{old}.{name}", f"vqlib.{home}.{name}")
                return getattr(module, name)
        child = f"{old}.{name}"
        if child in OLD_MODULES:
            return importlib.import_module(f"vqlib.{child}")
        raise AttributeError(f"module 'vqlib.{old}' (moved to {', '.join('vqlib.' + h for h in OLD_MODULES[old])}) "
                             f"has no attribute {name!r}")

    def __call__(self, *args, **kwargs):
        leaf = self.__name__.rpartition(".")[2]
        front = importlib.import_module("vqlib")
        if leaf not in front._API:
            raise TypeError(f"module {self.__name__!r} is not callable")
        return getattr(importlib.import_module(f"vqlib.{front._API[leaf]}"), leaf)(*args, **kwargs)


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``vqlib.<old>`` for every old module path and makes its forwarding module."""

    def find_spec(self, fullname, path=None, target=None):
        old = fullname[len("vqlib."):]
        if fullname.startswith("vqlib.") and old in OLD_MODULES:
            # a package only when it had submodules (a package's `from … import` reads each name twice)
            package = any(other.startswith(old + ".") for other in OLD_MODULES)
            return importlib.util.spec_from_loader(fullname, self, is_package=package)
        return None

    def create_module(self, spec):
        module = _OldModule(spec.name, f"Moved: see {', '.join('vqlib.' + h for h in OLD_MODULES[spec.name[6:]])}.")
        if spec.submodule_search_locations is not None:
            module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        pass


def install() -> None:
    """Put the old-path finder after the regular finders (once)."""
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.append(_OldPaths())


def forward(name: str):
    """An old top-level ``vqlib.<name>``: a moved function or an old module, with a warning."""
    if name in OLD_TOP_LEVEL:
        _warn(f"vqlib.{name}", f"vqlib.{OLD_TOP_LEVEL[name]}", stacklevel=4)
        return _resolve(OLD_TOP_LEVEL[name])
    if name in OLD_MODULES:
        return importlib.import_module(f"vqlib.{name}")
    raise AttributeError(f"module 'vqlib' has no attribute {name!r}")
