"""Chapter 1's sweeps: one VQ-VAE trained in full, and train, test and usage for every (K, L).

``ch01-model`` trains the chapter's first model (K = 32, L = 8) with :func:`vqlib.fit`
and stores its trained weights (``state``, each tensor as a nested list) and its
per-epoch history; :func:`model_of` rebuilds the trained model from that row, so the
chapter looks at reconstructions, codebook usage and decoded latents of a real model
without training it again.

``ch01-grid`` trains the convolutional VQ-VAE (``architecture="conv"``, K = 32, L = 16: a 4 × 4
latent grid on the 8 × 8 digits) with :func:`vqlib.fit` and stores its weights, history and
the receptive field of every latent position (:func:`vqlib.models.receptive_fields`).

``ch01-latents`` trains one VQ-VAE per codebook size K and number of latent positions
L on the training split of ``data`` and measures it on the test split
(:func:`vqlib.sweep_latents`), one row per (K, L) with ``train_seed``. Each row also
holds the reconstructions of the first ``n_shown`` test images (a nested list, rounded
to 4 decimals), which the chapter's widget draws without the model.

``quick`` is exactly what the chapter ran before its sweep was cached (5 × 3 models,
25 epochs, on CPU); ``full`` is the paper's scale for a GPU (K up to 512, L up to 32,
150 epochs). ``data`` names the dataset (:func:`vqlib.load_dataset`): the 8×8 digits
by default, since MNIST-size data needs files on disk (no download offline); set
``data=mnist`` where they are present.
"""
from __future__ import annotations

import numpy as np
import torch

from ..models.fit import fit, reconstruction_loss
from ..models.vqvae import VQVAE, receptive_fields
from ..studies.latents import sweep_latents
from . import registry as r
from .registry import Sweep, register

__all__ = ["GRID", "LATENTS", "MODEL", "model_of"]


def _data(job) -> dict:
    """Both sweeps read the training and test splits of ``data``."""
    return {"x_train": (job["data"], "train"), "x_test": (job["data"], "test")}


def _check(job, arrays) -> None:
    """Every setting of one job of the chapter-1 sweeps, before anything is trained."""
    architecture = "conv" if "hidden" in job and "n_fields" in job else "mlp"  # ch01-grid is the conv sweep
    r.check_settings(job, K=r.codebook(), L=r.latent_grid(arrays["x_train"], architecture), epochs=r.count(),
                     train_seed=r.seed, hidden=r.count(), n_fields=r.count(), n_shown=r.count())


def _model(*, x_train, x_test, K, L, data, epochs, train_seed):
    model = VQVAE(x_train.shape[1:], K=K, L=L)
    history = fit(model, x_train, epochs=epochs, train_seed=train_seed, x_val=x_test)
    state = {name: value.detach().cpu().tolist() for name, value in model.state_dict().items()}
    return [dict(K=K, L=L, epochs=epochs, train_seed=train_seed, data=data, in_shape=list(x_train.shape[1:]),
                 history=history.rows(), state=state)]


def model_of(row):
    """The trained :class:`vqlib.VQVAE` of a ``ch01-model`` or ``ch01-grid`` row (weights restored
    exactly, eval mode)."""

    model = VQVAE(tuple(row["in_shape"]), K=row["K"], L=row["L"], architecture=row.get("architecture", "mlp"),
                  hidden=row.get("hidden"))
    template = model.state_dict()
    model.load_state_dict({name: torch.tensor(row["state"][name], dtype=value.dtype)
                           for name, value in template.items()})
    return model.eval()


def _grid(*, x_train, x_test, K, L, data, epochs, hidden, train_seed, n_fields):
    model = VQVAE(x_train.shape[1:], K=K, L=L, architecture="conv", hidden=hidden, seed=train_seed)
    history = fit(model, x_train, epochs=epochs, train_seed=train_seed, x_val=x_test)
    state = {name: value.detach().cpu().tolist() for name, value in model.state_dict().items()}
    fields = receptive_fields(model, x_test[:n_fields])
    return [dict(K=K, L=L, architecture="conv", hidden=hidden, grid=list(model.grid), epochs=epochs,
                 train_seed=train_seed, data=data, in_shape=list(x_train.shape[1:]), history=history.rows(),
                 test_loss=float(reconstruction_loss(model, x_test).mean()),
                 train_loss=float(reconstruction_loss(model, x_train).mean()),
                 fields=fields.round(decimals=5).tolist(), state=state)]


def _latents(*, x_train, x_test, K, L, data, epochs, train_seed, n_shown):
    rows, models = sweep_latents(x_train, x_test, [K], [L], epochs=epochs, train_seed=train_seed)
    model = models[K, L]
    with torch.no_grad():
        x_hat = model(x_test[:n_shown].to(model.device)).x_hat.cpu().numpy()
    return [dict(rows[0], data=data, reconstructions=np.round(x_hat.astype(float), 4).tolist())]


MODEL = register(Sweep(
    name="ch01-model",
    chapter="01_vqvae",
    doc="one VQ-VAE (K = 32, L = 8) trained with vqlib.fit: its weights and per-epoch history; train_seed",
    quick=dict(K=32, L=8, data="digits", epochs=40, train_seed=0),
    full=dict(K=32, L=8, data="digits", epochs=150, train_seed=0),
    compute=_model,
    columns=("K", "L", "history", "state"),
    data=_data,
    check=_check,
))

GRID = register(Sweep(
    name="ch01-grid",
    chapter="01_vqvae",
    doc="a convolutional VQ-VAE on a 4 x 4 latent grid (K = 32, L = 16): weights, history, receptive fields",
    quick=dict(K=32, L=16, data="digits", epochs=15, hidden=32, train_seed=0, n_fields=64),
    full=dict(K=32, L=16, data="digits", epochs=60, hidden=64, train_seed=0, n_fields=256),
    compute=_grid,
    columns=("K", "L", "grid", "fields", "state"),
    data=_data,
    check=_check,
))

LATENTS = register(Sweep(
    name="ch01-latents",
    chapter="01_vqvae",
    doc="train/test loss, gap and codebook perplexity of a VQ-VAE per (K, L), with test reconstructions; train_seed",
    quick=dict(K=[1, 4, 16, 64, 256], L=[1, 4, 16], data="digits", epochs=25, train_seed=0, n_shown=12),
    full=dict(K=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512], L=[1, 2, 4, 8, 16, 32], data="digits", epochs=150,
              train_seed=0, n_shown=12),
    compute=_latents,
    columns=("K", "L", "train_loss", "test_loss", "gap"),
    grid=("L", "K"),
    data=_data,
    check=_check,
))
