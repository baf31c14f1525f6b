"""Chapter 7 (from reconstruction to generation): generation priors and a KL-to-prior penalty.

Two sweeps, one job per trained VQ-VAE:

* ``ch07-priors``: for each (K, L) and training seed, train a nearest-code VQ-VAE, fit
  the uniform, aggregated and Markov priors to the training posteriors, and for each
  evaluation temperature β (``None``: the nearest-code model itself) compute every term
  of the W2 generation bound, the measured W2 of generated vs test samples, and the
  reference W2 between two real samples of the same size.
* ``ch07-penalty``: the same at one (K, L) and one β, training with the KL-to-uniform
  penalty at several weights (:func:`vqlib.fit` ``kl_weight``).

The bound uses :func:`vqlib.studies.generation.diameter_bound` for the decoder's diameter.
The data are the sweep's dataset (by default the 1500 images of the digits' training split).
The split (``split_seed``) is: ``n_train`` training images, the rest held out and
cut into two halves A and B of equal size. The bound uses all held-out images; W2 is
measured between generated samples and A, reconstructions of B and A, and B and A.
"""
from __future__ import annotations

import torch

from ..models.fit import fit, reconstruction_loss
from ..models.priors import AggregatedPrior, MarkovPrior, UniformPrior
from ..models.vqvae import VQVAE
from ..studies.generation import (
    diameter_bound,
    generation_bound,
    measure_w2,
    posteriors,
    tempered,
)
from . import registry as r
from .registry import Sweep, register

__all__ = ["PRIORS", "PENALTY", "evaluate_generation", "split_data"]

N_SAMPLES = 8  # generated images stored per row, for the chapter's small multiples
MARKOV_ALPHA = 0.1  # additive smoothing of the K × K transition tables (K² cells, few counts)


def _data(job) -> dict:
    """Both sweeps read the training split of ``dataset`` (cut again by ``split_seed``)."""
    return {"x": (job.get("dataset", "digits"), "train")}


def split_data(x, n_train: int, split_seed: int):
    """Training images, and the held-out images cut into halves A and B of equal size."""
    n_train = int(n_train)
    if not 0 < n_train < len(x) - 1:
        raise ValueError(f"n_train must lie in [1, {len(x) - 2}], got {n_train}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(int(split_seed)))
    held = order[n_train:]
    half = len(held) // 2
    return x[order[:n_train]], x[held[:half]], x[held[half:2 * half]]


def _check(job, arrays) -> None:
    """Every setting of one job of the chapter-7 sweeps, before anything is trained."""
    x = arrays["x"]
    if "KL" in job and (not isinstance(job["KL"], (list, tuple)) or len(job["KL"]) != 2):
        raise ValueError(f"KL must be [K, L], got {job['KL']!r}")
    r.check_settings(job, train_seed=r.seed, split_seed=r.seed,
                     n_train=r.at_most(len(x) - 2, why=f" (the {len(x)} images keep 2 held out)"),
                     betas=r.each(r.optional(r.positive)), hidden=r.count(), epochs=r.count(), lr=r.positive,
                     delta=r.open_unit, kl_weight=r.nonnegative, beta=r.optional(r.positive))
    K, L = job["KL"] if "KL" in job else (job.get("K"), job.get("L"))
    r.check_settings(dict(K=K, L=L), K=r.codebook(), L=r.count())
    if job.get("kl_weight") and job.get("beta") is None:
        raise ValueError(f"kl_weight={job['kl_weight']!r} > 0 needs beta, a finite number > 0, got None")


def evaluate_generation(model: VQVAE, x_train, x_a, x_b, *, beta, seed: int = 0, delta: float = 0.05) -> list[dict]:
    """One row per prior: every term of the bound and the measured W2 (chapter 7).

    ``beta`` None evaluates the nearest-code model; a number evaluates its tempered
    stochastic version q_β (:func:`vqlib.studies.generation.tempered`). Priors are fitted to the
    training posteriors at the same β.
    """
    m = model if beta is None else tempered(model, beta)
    q_train = posteriors(m, x_train)
    held = torch.cat([x_a, x_b])
    K, L = model.K, model.L
    priors = [UniformPrior(K, L), AggregatedPrior(K, L).fit(q_train),
              MarkovPrior(K, L, alpha=MARKOV_ALPHA).fit(q_train)]
    train_loss = float(reconstruction_loss(m, x_train, seed=seed).mean())
    diam = diameter_bound(model)  # the decoder's range: the same for every β and prior
    rows = []
    for prior in priors:
        terms = generation_bound(m, prior, held, delta=delta, seed=seed, diam=diam)
        measured = measure_w2(m, prior, x_a, x_b, seed=seed)
        samples = m.decode_indices(prior.sample(N_SAMPLES, seed=seed + 1)).detach().cpu()
        rows.append(dict(
            prior=prior.name, beta=beta, train_loss=train_loss, **terms, **measured,
            bound_holds=bool(terms["bound"] >= measured["w2_gen"]),
            samples=[[round(float(v), 3) for v in img.reshape(-1)] for img in samples],
        ))
    return rows


def _train(x_train, K, L, *, beta, hidden, epochs, lr, train_seed, kl_weight=0.0):
    model = VQVAE(x_train.shape[1:], K, L, beta=beta, hidden=hidden, seed=train_seed)
    history = fit(model, x_train, epochs=epochs, lr=lr, train_seed=train_seed, kl_weight=kl_weight)
    return model, history


def _priors_job(x, *, KL, train_seed, split_seed, n_train, betas, hidden, epochs, lr, delta):
    K, L = KL
    x_train, x_a, x_b = split_data(x, n_train, split_seed)
    model, history = _train(x_train, K, L, beta=1.0, hidden=hidden, epochs=epochs, lr=lr, train_seed=train_seed)
    nearest_test = float(reconstruction_loss(model, torch.cat([x_a, x_b])).mean())
    rows = []
    for beta in betas:
        for row in evaluate_generation(model, x_train, x_a, x_b, beta=beta, seed=train_seed, delta=delta):
            rows.append(dict(K=K, L=L, train_seed=train_seed, split_seed=split_seed, n_train=n_train,
                             nearest_test_loss=nearest_test, perplexity=history.final.perplexity, **row))
    return rows


def _penalty_job(x, *, kl_weight, train_seed, split_seed, n_train, K, L, beta, hidden, epochs, lr, delta):
    x_train, x_a, x_b = split_data(x, n_train, split_seed)
    model, history = _train(x_train, K, L, beta=beta, hidden=hidden, epochs=epochs, lr=lr,
                            train_seed=train_seed, kl_weight=kl_weight)
    nearest_test = float(reconstruction_loss(model, torch.cat([x_a, x_b])).mean())
    return [dict(K=K, L=L, kl_weight=kl_weight, train_seed=train_seed, split_seed=split_seed, n_train=n_train,
                 nearest_test_loss=nearest_test, perplexity=history.final.perplexity, **row)
            for row in evaluate_generation(model, x_train, x_a, x_b, beta=beta, seed=train_seed, delta=delta)]


_COMMON_QUICK = dict(split_seed=0, n_train=900, hidden=64, epochs=20, lr=3e-3, delta=0.05)
_COMMON_FULL = dict(split_seed=0, n_train=900, hidden=128, epochs=60, lr=2e-3, delta=0.05)

PRIORS = register(Sweep(
    name="ch07-priors",
    chapter="07_generation",
    doc="uniform / aggregated / Markov priors: every term of the W2 bound, measured and reference W2",
    quick=dict(_COMMON_QUICK, KL=[[16, 4], [32, 8]], train_seed=[0, 1, 2], betas=[5.0, 20.0, None]),
    full=dict(_COMMON_FULL, KL=[[16, 4], [32, 8], [64, 8], [64, 16]], train_seed=[0, 1, 2, 3, 4],
              betas=[2.0, 5.0, 20.0, 80.0, None]),
    compute=_priors_job,
    columns=("K", "L", "prior", "bound", "w2_gen"),
    grid=("KL", "train_seed"),
    data=_data,
    check=_check,
))

PENALTY = register(Sweep(
    name="ch07-penalty",
    chapter="07_generation",
    doc="KL-to-uniform penalty weight: test reconstruction, every term of the W2 bound, measured W2",
    quick=dict(_COMMON_QUICK, kl_weight=[0.0, 1e-3, 1e-2, 3e-2, 1e-1, 1.0], train_seed=[0, 1], K=16, L=4, beta=5.0),
    full=dict(_COMMON_FULL, kl_weight=[0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1.0], train_seed=[0, 1, 2, 3, 4],
              K=32, L=8, beta=5.0),
    compute=_penalty_job,
    columns=("kl_weight", "K", "L", "prior", "bound", "w2_gen"),
    grid=("kl_weight", "train_seed"),
    data=_data,
    check=_check,
))
