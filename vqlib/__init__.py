"""vqlib: train VQ-VAEs on CPU or GPU and compute the information-theoretic generalization and
generation bounds of the book "Why VQ-VAEs generalise".

The folders are the architecture; each layer imports only those below it:

* top-level helpers: ``_checks`` (argument checks), :mod:`~vqlib.data` (datasets),
  :mod:`~vqlib.device` (the one place the device is chosen), :mod:`~vqlib.tables`;
* :mod:`vqlib.models`: VQ-VAEs, quantizers, priors, training (``fit``, ``fit_ensemble``);
* :mod:`vqlib.bounds`: the supersample design, information measures, the proved bounds and
  their certificates; it takes arrays, so it serves models trained by any code;
* :mod:`vqlib.studies`: each chapter's experiment (models and bounds together);
* :mod:`vqlib.sweeps`: the chapters' registered sweeps, their cache and the profile switch;
* :mod:`vqlib.book`: what only the book needs (figures, widgets, the command line); it needs
  the ``[book]`` extra (matplotlib, ipywidgets) and nothing imports it.

The names below are the researcher's API. They, and the subpackages, load on first use, so
``import vqlib`` is cheap and needs neither matplotlib nor ipywidgets. Old import paths of the
flat layout (``vqlib.supersample``, ``vqlib.certify``, ``vqlib.experiments``, …) still work for
one release with a ``DeprecationWarning`` naming the new path (:mod:`vqlib._compat`).
"""
import importlib

from . import _compat
from ._version import __version__

_compat.install()

_SUBPACKAGES = ("models", "bounds", "studies", "sweeps", "book")

#: The researcher's API: each name and the subpackage (or helper module) that holds it.
_API = {
    **dict.fromkeys(("check_images", "load_dataset", "make_synthetic", "train_test_split"), "data"),
    **dict.fromkeys(("default_device", "resolve_device"), "device"),
    **dict.fromkeys((
        "VQVAE", "VQOutput", "fit", "History", "fit_ensemble", "train_reference", "evaluate_model", "evaluate_models",
        "reconstruction_loss", "encode_indices", "model_summary", "CodebookUsage", "codebook_usage",
        "normalised_mse", "per_input_loss", "UniformPrior", "AggregatedPrior", "MarkovPrior", "generate"), "models"),
    **dict.fromkeys((
        "Supersample", "make_supersample", "draw_mask", "draw_permutation", "split", "split_by_permutation",
        "entropy", "plugin_mi", "kl_categorical", "kl_to_uniform", "kl_inverse_upper", "kl_inverse_lower",
        "dv_cosh_bound", "pair_terms", "latent_kl_terms", "test_set_bound", "CertificateWarning", "certify",
        "certified_bounds", "w2"), "bounds"),
    **dict.fromkeys(("run_supersample", "SupersampleResult", "sweep_latents", "generation_bound"), "studies"),
}

__all__ = ["__version__", *_SUBPACKAGES, *_API]


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value  # later reads skip this function
        return value
    return _compat.forward(name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
