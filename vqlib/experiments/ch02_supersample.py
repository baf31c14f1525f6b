"""Chapter 2's sweeps: the supersample bounds against the measured gap.

Each job is one :func:`vqlib.run_supersample` call (supersample s has
``supersample_seed = seed + s``, mask m has ``mask_seed = 1000·(seed + s) + m``, every run
has ``train_seed = seed``) and gives one row: the measured gap and its standard error,
every bound (``bounds``), the information estimates (``diagnostics``) and the gap and
bounds conditional on each supersample (``per_supersample``), with the seeds.

* ``ch02-kmeans``: the toy learner (k-means, L = 1) for every (n, K).
* ``ch02-masks``: one supersample with many masks; the row also holds every run's pair
  losses ``loss`` (masks × n × 2) and masks ``U`` (masks × n), from which the chapter
  estimates the per-pair information with m = ``mask_counts`` masks.
* ``ch02-vqvae``: the same bounds for small VQ-VAEs.

The data is ``data`` with ``split`` (the chapter uses all 1797 digits, so n ≤ 898).
``quick`` is exactly what the chapter ran before its sweeps were cached; ``full`` is the
paper's scale for a GPU (more supersamples and masks, larger n). MNIST-size data needs
its files on disk (no download offline); set ``data=mnist`` where they are present.
"""
from __future__ import annotations

from ..data import load_dataset
from ..supersample import run_supersample
from . import Sweep, register

__all__ = ["KMEANS", "MASKS", "VQVAE_RUNS"]


def _seeds(seed: int, n_supersamples: int, n_masks: int) -> dict:
    return dict(train_seed=seed, supersample_seeds=[seed + s for s in range(n_supersamples)],
                mask_seeds=[1000 * (seed + s) + m for s in range(n_supersamples) for m in range(n_masks)])


def _row(result, data, split) -> dict:
    c = result.config
    return dict(n=c["n"], K=c["K"], L=c["L"], learner=c["learner"], n_masks=c["n_masks"],
                n_supersamples=c["n_supersamples"], data=data, split=split,
                **_seeds(c["seed"], c["n_supersamples"], c["n_masks"]),
                gap=result.gap, gap_sem=result.gap_sem, bounds=result.bounds, diagnostics=result.diagnostics,
                per_supersample=result.per_supersample)


def _kmeans(x, *, n, K, data, split, n_masks, n_supersamples, seed):
    images = load_dataset(data, split=split)
    result = run_supersample(images, n=n, K=K, L=1, n_masks=n_masks, n_supersamples=n_supersamples,
                             learner="kmeans", seed=seed)
    return [_row(result, data, split)]


def _masks(x, *, n, K, data, split, mask_counts, seed):
    images = load_dataset(data, split=split)
    result = run_supersample(images, n=n, K=K, L=1, n_masks=max(mask_counts), n_supersamples=1,
                             learner="kmeans", seed=seed)
    pairs = result.pairs(seed)
    return [dict(_row(result, data, split), mask_counts=list(mask_counts),
                 loss=pairs["loss"].tolist(), U=pairs["U"].tolist())]


def _vqvae(x, *, n, K, L, data, split, n_masks, n_supersamples, epochs, hidden, seed):
    images = load_dataset(data, split=split)
    result = run_supersample(images, n=n, K=K, L=L, n_masks=n_masks, n_supersamples=n_supersamples,
                             epochs=epochs, seed=seed, hidden=hidden)
    return [dict(_row(result, data, split), epochs=epochs, hidden=hidden, rows=result.rows)]


KMEANS = register(Sweep(
    name="ch02-kmeans",
    chapter="02_supersample",
    doc="measured gap vs every supersample bound for the k-means toy learner, per (n, K); seeds",
    quick=dict(n=[10, 20, 40, 80], K=[4, 16], data="digits", split="all", n_masks=32, n_supersamples=10, seed=0),
    full=dict(n=[10, 20, 40, 80, 160, 320, 640], K=[4, 16], data="digits", split="all", n_masks=64,
              n_supersamples=20, seed=0),
    compute=_kmeans,
    grid=("n", "K"),
))

MASKS = register(Sweep(
    name="ch02-masks",
    chapter="02_supersample",
    doc="one supersample, many masks: every run's pair losses and masks, for the per-pair MI estimates",
    quick=dict(n=20, K=16, data="digits", split="all", mask_counts=[4, 8, 16, 32, 64, 128], seed=0),
    full=dict(n=20, K=16, data="digits", split="all", mask_counts=[4, 8, 16, 32, 64, 128, 256], seed=0),
    compute=_masks,
))

VQVAE_RUNS = register(Sweep(
    name="ch02-vqvae",
    chapter="02_supersample",
    doc="measured gap vs every supersample bound for small VQ-VAEs (n = 16, K = 8, L = 4); seeds",
    quick=dict(n=16, K=8, L=4, data="digits", split="all", n_masks=6, n_supersamples=4, epochs=30, hidden=32,
               seed=0),
    full=dict(n=16, K=8, L=4, data="digits", split="all", n_masks=30, n_supersamples=10, epochs=100, hidden=32,
              seed=0),
    compute=_vqvae,
))
