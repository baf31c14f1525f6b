"""Chapter 4's sweeps: encoder-only runs under a frozen reference, for the LV bounds.

Both sweeps split ``data`` (``split``, all 1797 digits by default) with a seeded
permutation (``split_seed``) into ``n_reference`` digits that train the reference model
(:func:`vqlib.studies.prior_bounds.train_reference`, then frozen) and a pool the supersamples
come from. A job trains only the encoder on the training half of every (supersample,
mask) (:func:`vqlib.studies.prior_bounds.encoder_only_runs`; mask m of supersample s has
``mask_seed = 1000·s + m``) and returns one row: the runs' masks, losses and LVs, the
reference's losses and LVs, the seeds, the reference's loss on the pool, and ``summary``:
the gap, every bound and KL term of :func:`vqlib.studies.prior_bounds.lv_summary` (per-pair rows left out).
:func:`runs_of` turns a row back into :class:`vqlib.studies.prior_bounds.EncoderRuns`, which
the chapter summarises with :func:`vqlib.studies.prior_bounds.lv_summary`.

* ``ch04-main``: the chapter's main configuration (K = 64, L = 4, n = 16).
* ``ch04-settings``: one of K, L or n changed at a time (``setting`` = [K, L, n]).

``quick`` runs on two CPU cores: ``ch04-main`` has 128 masks per supersample, because its
numbers are also certified (:func:`vqlib.bounds.certify` needs hundreds of runs); ``full`` is the
paper's scale for a GPU (more supersamples and masks; K up to 256, L up to 16, n up to
256). MNIST-size data needs its files on disk (no download offline); set ``data=mnist``
where they are present.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data import load_dataset
from ..models.fit import model_summary
from ..studies import prior_bounds as pb
from . import registry as r
from .registry import Sweep, register

__all__ = ["MAIN", "SETTINGS", "axis_settings", "runs_of", "split_reference_pool", "summary_of"]


def split_reference_pool(data, split: str, n_reference: int, split_seed: int):
    """(x_ref, x_pool): the first ``n_reference`` images of a seeded permutation of ``split`` of
    ``data`` (a dataset name, or its images already loaded), and the rest."""
    x = load_dataset(data, split=split) if isinstance(data, str) else data
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    return x[order[:n_reference]], x[order[n_reference:]]


def axis_settings(base, axes) -> list[list[int]]:
    """[K, L, n] settings that change one of K, L, n of ``base`` at a time (``base`` itself excluded)."""
    out = []
    for position, name in enumerate(("K", "L", "n")):
        for value in axes[name]:
            setting = list(base)
            setting[position] = value
            if setting != list(base) and setting not in out:
                out.append(setting)
    return out


def runs_of(row) -> pb.EncoderRuns:
    """The :class:`vqlib.studies.prior_bounds.EncoderRuns` stored in one row of a chapter-4 sweep."""
    return pb.EncoderRuns(
        masks=np.array(row["masks"], dtype=np.int64), losses=np.array(row["losses"], dtype=float),
        codes=np.array(row["codes"], dtype=np.int64), reference_losses=np.array(row["reference_losses"], dtype=float),
        reference_codes=np.array(row["reference_codes"], dtype=np.int64), supersample_seeds=list(row["supersample_seeds"]),
        mask_seeds=np.array(row["mask_seeds"], dtype=np.int64), train_seed=row["train_seed"], K=row["K"], L=row["L"],
        config=dict(row["runs_config"]))


def _one(x, data, split, n_reference, split_seed, K, L, n, supersample_seeds, n_masks, reference_epochs,
         reference_lr, hidden, train_seed, steps, lr) -> dict:
    x_ref, x_pool = split_reference_pool(x, split, n_reference, split_seed)
    reference = pb.train_reference(x_ref, K, L, epochs=reference_epochs, lr=reference_lr, hidden=hidden,
                                   train_seed=train_seed)
    runs = pb.encoder_only_runs(x_pool, reference, n, supersample_seeds=supersample_seeds, n_masks=n_masks,
                                steps=steps, lr=lr, train_seed=train_seed)
    return dict(K=runs.K, L=runs.L, n=runs.n, train_seed=runs.train_seed,
                supersample_seeds=list(runs.supersample_seeds), mask_seeds=runs.mask_seeds.tolist(),
                reference_loss=model_summary(reference, x_pool)["loss"],
                masks=runs.masks.tolist(), losses=runs.losses.tolist(), codes=runs.codes.tolist(),
                reference_losses=runs.reference_losses.tolist(), reference_codes=runs.reference_codes.tolist(),
                runs_config=runs.config, summary=summary_of(runs))


def summary_of(runs) -> dict:
    """:func:`vqlib.studies.prior_bounds.lv_summary` of ``runs`` as JSON values, without its per-pair rows."""
    return {k: v for k, v in pb.lv_summary(runs).to_json().items() if k != "rows"}


def _data(job) -> dict:
    """Both sweeps read ``split`` of ``data``, which they cut into the reference's digits and the pool."""
    return {"x": (job["data"], job["split"])}


def _check(job, arrays) -> None:
    """Every setting of one job of the chapter-4 sweeps, before anything is trained."""
    x = arrays["x"]
    r.check_settings(job, n_reference=r.at_most(len(x) - 4, why=f" (the {len(x)} images keep a pool of 4)"),
                     split_seed=r.seed, reference_lr=r.positive, hidden=r.count(), train_seed=r.seed,
                     steps=r.count(0), lr=r.positive, supersample_seeds=r.seeds, n_masks=r.count(2),
                     reference_epochs=r.count())
    if "setting" in job:
        if not isinstance(job["setting"], (list, tuple)) or len(job["setting"]) != 3:
            raise ValueError(f"setting must be [K, L, n], got {job['setting']!r}")
        K, L, n = job["setting"]
    else:
        K, L, n = job.get("K"), job.get("L"), job.get("n")
    pool = x[: len(x) - job["n_reference"]]  # as many images as the pool has
    r.check_settings(dict(K=K, L=L, n=n), K=r.codebook(), L=r.count(), n=r.half_of(pool, "the pool"))


def _main(*, x, K, L, n, supersample_seeds, n_masks, **common):
    return [_one(x, K=K, L=L, n=n, supersample_seeds=supersample_seeds, n_masks=n_masks, **common)]


def _settings(*, x, setting, supersample_seeds, n_masks, **common):
    K, L, n = setting
    return [_one(x, K=K, L=L, n=n, supersample_seeds=supersample_seeds, n_masks=n_masks, **common)]


_COMMON = dict(data="digits", split="all", n_reference=600, split_seed=0, reference_lr=5e-3, hidden=64,
               train_seed=0, steps=100, lr=1e-2)
_BASE = (64, 4, 16)
AXES_QUICK = dict(K=[4, 16, 64, 256], L=[1, 2, 4, 8], n=[8, 16, 32, 64])
AXES_FULL = dict(K=[2, 4, 8, 16, 32, 64, 128, 256], L=[1, 2, 4, 8, 16], n=[8, 16, 32, 64, 128, 256])

MAIN = register(Sweep(
    name="ch04-main",
    chapter="04_prior",
    doc="encoder-only runs under a frozen reference (K = 64, L = 4, n = 16): losses, masks and LVs; seeds",
    quick=dict(_COMMON, K=64, L=4, n=16, supersample_seeds=[0, 1, 2, 3], n_masks=128, reference_epochs=30),
    full=dict(_COMMON, K=64, L=4, n=16, supersample_seeds=list(range(8)), n_masks=512, reference_epochs=60),
    compute=_main,
    columns=("K", "L", "n", "summary"),
    data=_data,
    check=_check,
))

SETTINGS = register(Sweep(
    name="ch04-settings",
    chapter="04_prior",
    doc="encoder-only runs with one of K, L, n changed from (64, 4, 16): losses, masks and LVs; seeds",
    quick=dict(_COMMON, setting=axis_settings(_BASE, AXES_QUICK), supersample_seeds=[0, 1, 2], n_masks=8,
               reference_epochs=30),
    full=dict(_COMMON, setting=axis_settings(_BASE, AXES_FULL), supersample_seeds=list(range(6)), n_masks=16,
              reference_epochs=60),
    compute=_settings,
    columns=("K", "L", "n", "summary"),
    grid=("setting",),
    data=_data,
    check=_check,
))
