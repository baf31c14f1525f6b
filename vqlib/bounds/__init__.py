"""Bounds: the supersample design, information measures, the proved bounds and their certificates
(chapters 2–7).

* the design: supersamples, masks and permutations (:mod:`~vqlib.bounds.supersample`);
* discrete information measures and the binary kl (:mod:`~vqlib.bounds.information`);
* the CMI family of bounds and the latent variables' KL terms (:mod:`~vqlib.bounds.cmi`) and
  the held-out test-set bound (:mod:`~vqlib.bounds.held_out`);
* certified values, which hold with probability ≥ 1 − δ over the masks and training
  (:func:`certify`, :func:`certified_bounds`, :mod:`~vqlib.bounds.certificates`), and a
  coverage study that checks them against the truth (:mod:`~vqlib.bounds.coverage`);
* the exact 2-Wasserstein distance between two samples (:func:`w2`,
  :mod:`~vqlib.bounds.wasserstein`; POT is imported when it is first called).

Everything here takes arrays (losses, masks, posteriors), whatever code trained the model:
this subpackage imports only the package's top-level helpers, never :mod:`vqlib.models`.
"""
import importlib

from .certificates import Certificate, CertificateWarning, certified_bounds, certify
from .cmi import (
                          cmi_bound,
                          dv_cosh_bound,
                          latent_kl_terms,
                          pair_terms,
                          sample_cmi_bound,
                          sqrt_bound,
)
from .coverage import coverage_study, summarise_coverage
from .held_out import test_set_bound
from .information import (
                          categorical_entropy,
                          entropy,
                          kl_bernoulli,
                          kl_categorical,
                          kl_inverse_lower,
                          kl_inverse_upper,
                          kl_to_uniform,
                          plugin_mi,
                          quantile_bins,
)
from .supersample import (
                          Supersample,
                          draw_mask,
                          draw_permutation,
                          make_supersample,
                          split,
                          split_by_permutation,
)
from .wasserstein import W2NotConverged, w2

__all__ = [
    "Supersample", "make_supersample", "draw_mask", "draw_permutation", "split", "split_by_permutation",
    "entropy", "categorical_entropy", "plugin_mi", "quantile_bins", "kl_categorical", "kl_to_uniform",
    "kl_bernoulli", "kl_inverse_upper", "kl_inverse_lower",
    "dv_cosh_bound", "pair_terms", "latent_kl_terms", "sqrt_bound", "cmi_bound", "sample_cmi_bound",
    "test_set_bound", "Certificate", "CertificateWarning", "certify", "certified_bounds",
    "coverage_study", "summarise_coverage", "W2NotConverged", "w2",
]

#: The modules of this subpackage, each loaded on first use as an attribute (``vqlib.bounds.certificates``).
MODULES = ("certificates", "cmi", "coverage", "held_out", "information", "supersample", "wasserstein")


def __getattr__(name):
    if name in MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
