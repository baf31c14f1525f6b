"""vqlib: train VQ-VAEs on CPU or GPU and compute the information-theoretic
generalization and generation bounds of the book "Why VQ-VAEs generalise".

The chapters call this library; each public function's docstring names the chapter
and result it serves. The submodules listed in ``_LAZY`` (``book``, ``plots``,
``widgets``, ``engine`` (the training engine), ``ensemble``, ``experiments``, ``jobs`` and the
chapter-specific ones)
load on first use, e.g. ``vqlib.widgets.sweep_panel``, so importing vqlib does not
import ipywidgets or pyplot.
"""
import importlib

from . import quantize
from .bounds import dv_cosh_bound, latent_kl_terms, pair_terms
from .certify import CertificateWarning, certified_bounds, certify
from .data import check_images, load_dataset, make_synthetic, train_test_split
from .device import default_device, resolve_device
from .metrics import CodebookUsage, codebook_usage, normalised_mse, per_input_loss
from .model import VQOutput, VQVAE
from .profile import current_profile, pick
from .information import (entropy, kl_categorical, kl_inverse_lower, kl_inverse_upper, kl_to_uniform,
                          plugin_mi, test_set_bound)
from .supersample import (Supersample, SupersampleResult, draw_mask, draw_permutation, make_supersample,
                          run_supersample, split, split_by_permutation)
from .sweep import sweep_latents
from .train import History, encode_indices, evaluate, fit, reconstruction_loss
from .generate import generate  # chapter 7: generation, priors and W2
from .priors import AggregatedPrior, MarkovPrior, UniformPrior
from .w2 import w2

__version__ = "0.1.0"

_LAZY = ("book", "capacity", "decoder_gap", "engine", "ensemble", "experiments", "jobs", "permutation", "plots",
         "prior_bounds", "temperature", "widgets")

__all__ = [
    "CodebookUsage", "History", "VQOutput", "VQVAE",
    "check_images", "codebook_usage", "current_profile", "default_device", "encode_indices",
    "evaluate", "fit", "load_dataset", "make_synthetic", "normalised_mse", "per_input_loss",
    "pick", "quantize", "reconstruction_loss", "resolve_device", "sweep_latents", "train_test_split",
    "CertificateWarning", "certified_bounds", "certify",
    "dv_cosh_bound", "latent_kl_terms", "pair_terms", "entropy", "kl_categorical", "kl_inverse_lower",
    "kl_inverse_upper", "kl_to_uniform", "plugin_mi", "test_set_bound", "Supersample", "SupersampleResult",
    "draw_mask", "draw_permutation", "make_supersample", "run_supersample", "split", "split_by_permutation",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'vqlib' has no attribute {name!r}")
