"""Chapter 2's sweeps: the supersample bounds against the measured gap.

Each job is one :func:`vqlib.run_supersample` call (supersample s has
``supersample_seed = s``, mask m has ``mask_seed = 1000·s + m``, every run has
``train_seed``) and gives one row: the measured gap and its standard error,
every bound (``bounds``), the information estimates (``diagnostics``) and the gap and
bounds conditional on each supersample (``per_supersample``), with the seeds.

* ``ch02-kmeans``: the toy learner (k-means, L = 1) for every (n, K).
* ``ch02-coverage``: one supersample and many runs per learner (the toy and a small VQ-VAE),
  cut into **independent** experiments of m runs each (``toy_experiments``,
  ``vqvae_experiments``: pairs [m, count]; no run is in two experiments); each is certified
  as a reader with m masks would certify it, and checked against the truth read off up to
  ``truth_runs`` runs of the *other* experiments (:func:`vqlib.bounds.coverage_study`). The row
  holds every experiment, the summary per m (misses with their Clopper–Pearson intervals,
  certified ÷ true), and the first 512 runs' pair losses ``loss`` (runs × n × 2) and masks
  ``U`` (runs × n), from which the chapter also estimates the per-pair information with few
  and many masks.
* ``ch02-vqvae``: the same bounds for small VQ-VAEs (``architecture`` ``"mlp"``, or ``"conv"`` with
  L a latent grid, e.g. ``python -m vqlib run ch02-vqvae --set architecture=conv --set L=16``).

Every row also holds the certified values (``certified``, jointly at ``confidence``), their
kinds, the certificate's terms and δ allocation, and its notes (why a value is vacuous).

Every sweep declares its data: ``split`` of ``data`` (the chapter uses all 1797 digits, so
n ≤ 898), loaded once by the runner.
``quick`` runs on two CPU cores in about a minute: hundreds of masks per supersample,
because certified numbers need them (the ensemble trainer makes masks cheap); ``full`` is
the paper's scale for a GPU (more supersamples and masks, larger n, and for ``ch02-vqvae`` the
convolutional VQ-VAE on a 4 × 4 latent grid, L = 16, K = 64, n = 64). MNIST-size data needs
its files on disk (no download offline); set ``data=mnist`` where they are present.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..bounds.certificates import CertificateWarning
from ..bounds.coverage import coverage_study, summarise_coverage
from ..studies.supersample_runs import run_supersample
from . import registry as r
from .registry import Sweep, register

__all__ = ["KMEANS", "COVERAGE", "VQVAE_RUNS"]


def _seeds(train_seed: int, supersample_seeds, n_masks: int) -> dict:
    return dict(train_seed=train_seed, supersample_seeds=list(supersample_seeds),
                mask_seeds=[1000 * a + m for a in supersample_seeds for m in range(n_masks)])


def _row(result, data, split) -> dict:
    c = result.config
    cert = result.certificate
    return dict(n=c["n"], K=c["K"], L=c["L"], learner=c["learner"], n_masks=c["n_masks"],
                n_supersamples=c["n_supersamples"], data=data, split=split,
                **_seeds(c["train_seed"], c["supersample_seeds"], c["n_masks"]),
                gap=result.gap, gap_sem=result.gap_sem, bounds=result.bounds, diagnostics=result.diagnostics,
                per_supersample=result.per_supersample, certified=result.certified,
                certified_kinds=result.certified_kinds, confidence=result.confidence,
                certificate=None if cert is None else cert.to_json())


def _run(images, **kwargs):
    """run_supersample, with its certificate warnings kept in the row's notes instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CertificateWarning)
        return run_supersample(images, **kwargs)


def _data(job) -> dict:
    """Every chapter-2 sweep reads ``split`` of ``data``."""
    return {"x": (job["data"], job["split"])}


def _check(job, arrays) -> None:
    """Every setting of one job of the chapter-2 sweeps, before anything is trained."""
    x = arrays["x"]
    r.check_settings(job, n=r.half_of(x), K=r.codebook(), n_masks=r.count(2), n_supersamples=r.count(),
                     epochs=r.count(), hidden=r.count(), train_seed=r.seed, truth_runs=r.count(),
                     architecture=r.one_of("mlp", "conv"), learner=r.one_of("kmeans", "vqvae"))
    r.check_settings(job, confidence=r.open_unit if "learner" in job else r.optional(r.open_unit),
                     toy_experiments=r.each(r.each(r.count(), length=2)),
                     vqvae_experiments=r.each(r.each(r.count(), length=2)))
    if "architecture" in job:  # ch02-vqvae: a VQ-VAE on the n points of a training half
        r.check_settings(job, n=r.count(2), L=r.latent_grid(x, job["architecture"]))


def _kmeans(*, x, n, K, data, split, n_masks, n_supersamples, confidence, train_seed):
    result = _run(x, n=n, K=K, L=1, n_masks=n_masks, n_supersamples=n_supersamples, learner="kmeans",
                  confidence=confidence, train_seed=train_seed)
    return [_row(result, data, split)]


def _coverage(*, x, learner, data, split, toy_experiments, vqvae_experiments, truth_runs, confidence, train_seed):
    if learner == "kmeans":  # chapter 2's toy learner: n = 20, K = 16
        kwargs, plan = dict(n=20, K=16, L=1), toy_experiments
    else:  # chapter 2's small VQ-VAE: n = 16, K = 8, L = 4
        kwargs, plan = dict(n=16, K=8, L=4, epochs=30, hidden=32), vqvae_experiments
    total = sum(m * count for m, count in plan)
    # one supersample, mask seeds 0 … total − 1: every run of every experiment is its own
    result = _run(x, n_masks=total, supersample_seeds=[0], train_seed=train_seed, confidence=None, learner=learner,
                  **kwargs)
    pairs = result.pairs(0)
    loss, U = pairs["loss"], pairs["U"]
    rows, start = [], 0
    for m, count in plan:
        for e in range(count):
            mine = np.arange(start, start + m)
            others = np.concatenate([np.arange(0, start), np.arange(start + m, total)])[:truth_runs]
            # the truth of this experiment: runs it does not use, from the other experiments
            rows += [dict(r, experiment=len(rows)) for r in coverage_study(
                loss[mine][None], U[mine][None], loss[others], U[others], confidence=confidence)]
            start += m
    return [dict(learner=learner, data=data, split=split, **kwargs, train_seed=train_seed, supersample_seeds=[0],
                 mask_seed_range=[0, total], plan=[list(p) for p in plan], truth_runs=truth_runs,
                 confidence=confidence, experiments=rows, summary=summarise_coverage(rows),
                 loss=loss[:512].tolist(), U=U[:512].tolist())]


def _vqvae(*, x, n, K, L, data, split, n_masks, n_supersamples, epochs, hidden, confidence, train_seed,
           architecture="mlp"):
    result = _run(x, n=n, K=K, L=L, n_masks=n_masks, n_supersamples=n_supersamples, epochs=epochs,
                  train_seed=train_seed, hidden=hidden, confidence=confidence, architecture=architecture)
    return [dict(_row(result, data, split), epochs=epochs, hidden=hidden, architecture=architecture,
                 rows=result.rows)]


KMEANS = register(Sweep(
    name="ch02-kmeans",
    chapter="02_supersample",
    doc="measured gap vs every supersample bound (estimated and certified) for the k-means toy, per (n, K); seeds",
    quick=dict(n=[10, 20, 40, 80], K=[4, 16], data="digits", split="all", n_masks=128, n_supersamples=4,
               confidence=0.95, train_seed=0),
    full=dict(n=[10, 20, 40, 80, 160, 320, 640], K=[4, 16], data="digits", split="all", n_masks=512,
              n_supersamples=10, confidence=0.95, train_seed=0),
    compute=_kmeans,
    columns=("n", "K", "gap", "bounds", "certified"),
    grid=("n", "K"),
    data=_data,
    check=_check,
))

COVERAGE = register(Sweep(
    name="ch02-coverage",
    chapter="02_supersample",
    doc="independent experiments on one supersample: how often a certified value falls below the truth, with its "
        "Clopper-Pearson interval, and certified / true",
    quick=dict(learner=["kmeans", "vqvae"], data="digits", split="all", toy_experiments=[[128, 500]],
               vqvae_experiments=[[64, 100]], truth_runs=4096, confidence=0.95, train_seed=0),
    full=dict(learner=["kmeans", "vqvae"], data="digits", split="all",
              toy_experiments=[[32, 500], [128, 2000], [512, 500]], vqvae_experiments=[[64, 500], [256, 200]],
              truth_runs=16384, confidence=0.95, train_seed=0),
    compute=_coverage,
    columns=("learner", "experiments", "summary"),
    grid=("learner",),
    data=_data,
    check=_check,
))

VQVAE_RUNS = register(Sweep(
    name="ch02-vqvae",
    chapter="02_supersample",
    doc="measured gap vs every supersample bound (estimated and certified) for small VQ-VAEs (n = 16, K = 8, L = 4)",
    quick=dict(n=16, K=8, L=4, data="digits", split="all", n_masks=128, n_supersamples=4, epochs=30, hidden=32,
               confidence=0.95, train_seed=0, architecture="mlp"),
    full=dict(n=64, K=64, L=16, data="digits", split="all", n_masks=256, n_supersamples=8, epochs=100, hidden=32,
              confidence=0.95, train_seed=0, architecture="conv"),
    compute=_vqvae,
    columns=("n", "K", "L", "gap", "bounds", "certified"),
    data=_data,
    check=_check,
))
