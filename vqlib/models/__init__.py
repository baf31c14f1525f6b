"""Models: VQ-VAEs, their quantizers and priors, and how they train (chapters 1–8).

* :class:`VQVAE` (:mod:`~vqlib.models.vqvae`, layers in :mod:`~vqlib.models.layers`) with the
  nearest and softmax quantizers of :mod:`~vqlib.models.quantizers` and the k-means start of
  :mod:`~vqlib.models.kmeans`;
* training one model, :func:`fit` (:mod:`~vqlib.models.fit`), or R at once, each as ``fit``
  would, :func:`fit_ensemble` (:mod:`~vqlib.models.ensemble`) through the training engine
  (:mod:`~vqlib.models.engine`);
* per-point evaluation with one contract: :func:`evaluate_model` (one model),
  :func:`evaluate_models` (R models), both giving losses and latent variables;
* codebook usage and losses (:mod:`~vqlib.models.metrics`), priors over the latent variables
  (:mod:`~vqlib.models.priors`) and generation from them (:func:`generate`,
  :mod:`~vqlib.models.sampling`).

This subpackage imports only the package's top-level helpers (checks, data, device, tables),
never :mod:`vqlib.bounds`: the bounds take arrays, whatever code trained the model.
"""
import importlib

from .engine import evaluate_models
from .ensemble import EnsembleHistory, fit_ensemble
from .fit import (
                  EpochRecord,
                  History,
                  encode_indices,
                  evaluate_model,
                  fit,
                  model_summary,
                  reconstruction_loss,
                  train_reference,
)
from .kmeans import kmeans, kmeans_batched, kmeans_learner, kmeans_learners
from .layers import Residual
from .metrics import CodebookUsage, codebook_usage, normalised_mse, per_input_loss
from .priors import AggregatedPrior, LatentPrior, MarkovPrior, UniformPrior, make_prior
from .quantizers import VectorQuantizer
from .sampling import generate
from .vqvae import ARCHITECTURES, VQVAE, VQOutput, latent_grids, receptive_fields

__all__ = [
    "VQVAE", "VQOutput", "ARCHITECTURES", "Residual", "VectorQuantizer", "latent_grids", "receptive_fields",
    "fit", "History", "EpochRecord", "fit_ensemble", "EnsembleHistory", "train_reference",
    "evaluate_model", "evaluate_models", "reconstruction_loss", "encode_indices", "model_summary",
    "CodebookUsage", "codebook_usage", "normalised_mse", "per_input_loss",
    "kmeans", "kmeans_batched", "kmeans_learner", "kmeans_learners",
    "LatentPrior", "UniformPrior", "AggregatedPrior", "MarkovPrior", "make_prior", "generate",
]

#: The modules of this subpackage, each loaded on first use as an attribute (``vqlib.models.engine``).
MODULES = ("engine", "ensemble", "fit", "kmeans", "layers", "metrics", "priors", "quantizers", "sampling", "vqvae")


def __getattr__(name):
    if name in MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
