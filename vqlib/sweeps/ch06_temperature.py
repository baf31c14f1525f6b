"""Chapter 6's sweeps: the temperature β of the softmax quantizer against the gap and the
stability bounds, on models trained from scratch at each β, and a learned β.

The digits are split once (permutation seed 0) into 600 that train the reference models
and the rest, from which the supersamples are drawn.

``ch06-temperature``: one job takes one β. It trains a reference VQ-VAE with the softmax
quantizer at that β from scratch on the 600 digits (:func:`vqlib.studies.temperature.train_reference`,
``train_seed``), freezes its codebook and decoder, trains its encoder on the training half of
every (supersample, mask) and returns one row per supersample
(:func:`vqlib.studies.temperature.temperature_summary`): gap, train and test loss, the stability
bounds, the measured KL terms and chapter 2's estimates, the certified values of the β (48
masks per supersample in the quick profile, since certificates need hundreds of runs),
with the seeds, and a few digits reconstructed with sampled LVs at that β (``examples``).
Every row also holds the pool losses of three references at that β: the one trained from
scratch (``scratch_pool_loss``), the nearest-code reference trained once and tempered to β
afterwards (:func:`vqlib.studies.temperature.with_temperature`, ``tempered_pool_loss``), and that
nearest-code reference itself (``nearest_pool_loss``).

``ch06-learned``: one job per training seed trains the same reference with ``beta="learned"``
and returns its per-epoch history (β, training loss, pool loss), its final β and pool loss,
and the nearest-code reference's pool loss for comparison.
"""
from __future__ import annotations

import copy

import torch

from ..models.fit import fit, reconstruction_loss
from ..models.vqvae import VQVAE
from ..studies.temperature import (
    softmax_encoder_runs,
    temperature_summary,
    train_reference,
    with_temperature,
)
from .cache import data_fingerprint
from . import registry as r
from .registry import Sweep, register

__all__ = ["TEMPERATURE", "LEARNED", "split_reference_pool", "reference_model", "reconstruction_examples"]

_REFERENCES: dict = {}


def _data(job) -> dict:
    """The sweep reads the digits' training split (1500 images): the reference's 600 and the pool."""
    return {"x": ("digits", "train")}


def split_reference_pool(x, n_reference: int = 600, seed: int = 0):
    """(the ``n_reference`` images that train the reference, the pool the supersamples come from)."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[order[:n_reference]], x[order[n_reference:]]


def reference_model(x, *, K, L, hidden, epochs, lr, train_seed, n_reference=600, beta=None):
    """The frozen reference for ``x``'s reference split (nearest-code for ``beta`` None, else the
    softmax quantizer at ``beta`` trained from scratch), trained once per process and configuration."""

    key = (data_fingerprint(x), K, L, hidden, epochs, lr, train_seed, n_reference, beta)
    if key not in _REFERENCES:
        x_ref, _ = split_reference_pool(x, n_reference)
        _REFERENCES[key] = train_reference(x_ref, K, L, beta=beta, epochs=epochs, lr=lr, hidden=hidden,
                                           train_seed=train_seed)
    return _REFERENCES[key]


def _check(job, arrays) -> None:
    """Every setting of one job of the chapter-6 sweeps, before anything is trained."""
    x = arrays["x"]
    if len(x) <= 600:
        raise ValueError(f"the data hold {len(x)} images; the sweep trains its references on 600 and needs a pool")
    pool = x[600:]
    r.check_settings(job, beta=r.positive, K=r.codebook(), L=r.count(), n=r.half_of(pool, "the pool"),
                     hidden=r.count(), reference_epochs=r.count(), reference_lr=r.positive,
                     n_supersamples=r.count(), n_masks=r.count(2), steps=r.count(0), lr=r.positive,
                     n_samples=r.count(), train_seed=r.seed, sample_seed=r.seed, epochs=r.count())


def _pool_loss(model, pool, sample_seed) -> float:
    return float(reconstruction_loss(model, pool, seed=sample_seed).mean())


def _compute(x, *, beta, K, L, n, hidden, reference_epochs, reference_lr, n_supersamples, n_masks, steps, lr,
             n_samples, train_seed, sample_seed):
    common = dict(K=K, L=L, hidden=hidden, epochs=reference_epochs, lr=reference_lr, train_seed=train_seed)
    reference = reference_model(x, beta=beta, **common)
    nearest = reference_model(x, **common)
    x_ref, pool = split_reference_pool(x)
    runs = softmax_encoder_runs(pool, reference, n, supersample_seeds=list(range(n_supersamples)),
                                n_masks=n_masks, steps=steps, lr=lr, train_seed=train_seed,
                                sample_seed=sample_seed, n_samples=n_samples)
    rows = temperature_summary(runs)
    pools = dict(scratch_pool_loss=_pool_loss(reference, pool, sample_seed),
                 tempered_pool_loss=_pool_loss(with_temperature(nearest, beta), pool, sample_seed),
                 nearest_pool_loss=_pool_loss(nearest, pool, sample_seed),
                 mean_image_loss=float(((pool - x_ref.mean(0)) ** 2).mean()))
    examples = reconstruction_examples(reference, pool, sample_seed=sample_seed)
    return [dict(row, reference="scratch", **pools, examples=examples) for row in rows]


def _learned(x, *, K, L, hidden, epochs, lr, train_seed, sample_seed):
    x_ref, pool = split_reference_pool(x)
    model = VQVAE(x.shape[1:], K, L, quantizer="softmax", beta="learned", hidden=hidden, seed=train_seed)
    history = fit(model, x_ref, epochs=epochs, lr=lr, train_seed=train_seed, x_val=pool)
    nearest = reference_model(x, K=K, L=L, hidden=hidden, epochs=epochs, lr=lr, train_seed=train_seed)
    return [dict(K=K, L=L, hidden=hidden, epochs=epochs, lr=lr, train_seed=train_seed, sample_seed=sample_seed,
                 beta=model.beta, pool_loss=_pool_loss(model, pool, sample_seed),
                 used_fraction=history.final.used_fraction, perplexity=history.final.perplexity,
                 nearest_pool_loss=_pool_loss(nearest, pool, sample_seed),
                 mean_image_loss=float(((pool - x_ref.mean(0)) ** 2).mean()), history=history.rows())]


def reconstruction_examples(model, pool, *, n_images: int = 4, n_draws: int = 2, sample_seed: int = 0) -> list:
    """The first ``n_images`` pool digits, then ``n_draws`` reconstructions of each with
    sampled LVs (the frozen reference at the job's β): a nested list (1 + n_draws, n_images, H, W)."""
    x = pool[:n_images].cpu()
    # on a CPU copy (the cached reference stays where it is): a CPU generator draws the LVs, so the
    # images are the same on every device
    model = copy.deepcopy(model).cpu()
    gen = torch.Generator().manual_seed(sample_seed)
    with torch.no_grad():
        draws = [model(x, generator=gen).x_hat for _ in range(n_draws)]
    images = torch.stack([x, *draws])[:, :, 0]  # (1 + n_draws, n_images, H, W)
    return images.round(decimals=3).tolist()


TEMPERATURE = register(Sweep(
    name="ch06-temperature",
    chapter="06_temperature",
    doc="softmax quantizer trained from scratch at each beta: gap, losses, stability and LV/CMI bounds",
    quick=dict(beta=[0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0], K=64, L=4, n=16, hidden=64,
               reference_epochs=60, reference_lr=2e-3, n_supersamples=4, n_masks=48, steps=100, lr=1e-2,
               n_samples=16, train_seed=0, sample_seed=0),
    full=dict(beta=[0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0], K=64, L=4, n=64,
              hidden=64, reference_epochs=150, reference_lr=2e-3, n_supersamples=8, n_masks=256, steps=100,
              lr=1e-2, n_samples=64, train_seed=0, sample_seed=0),
    compute=_compute,
    columns=("beta", "K", "L", "gap", "stability", "scratch_pool_loss", "tempered_pool_loss"),
    grid=("beta",),
    data=_data,
    check=_check,
))

LEARNED = register(Sweep(
    name="ch06-learned",
    chapter="06_temperature",
    doc="a learned beta: its trajectory over training, final value and pool loss against the nearest-code model",
    quick=dict(train_seed=[0, 1, 2], K=64, L=4, hidden=64, epochs=60, lr=2e-3, sample_seed=0),
    full=dict(train_seed=[0, 1, 2, 3, 4], K=64, L=4, hidden=64, epochs=150, lr=2e-3, sample_seed=0),
    compute=_learned,
    columns=("beta", "pool_loss", "nearest_pool_loss", "history"),
    grid=("train_seed",),
    data=_data,
    check=_check,
))
