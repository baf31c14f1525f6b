"""Chapter 8's sweep: encoder, latents and decoder against the generalization gap.

One job is one setting (see :func:`vqlib.studies.capacity.capacity_settings`: the base model, or
the base with one of decoder depth, decoder width, encoder depth, encoder width, K or L
changed); it trains one VQ-VAE per seed s, on n digits drawn with ``data_seed = s`` and
with ``train_seed = s``, all seeds at once (:func:`vqlib.studies.capacity.capacity_runs`), and
returns one row per seed. The chapter picks each axis's rows with
:func:`vqlib.studies.capacity.axis_rows`.

The settings are those of the MLP (:data:`BASE`, the axes of :data:`AXES_QUICK`) and, so that the
paper's claim is also tested on the architecture it was made for, those of the convolutional
VQ-VAE on a 4 × 4 latent grid (:data:`BASE_CONV`: depth counts residual blocks, width channels)
with its decoder's depth and width changed (:data:`CONV_AXES_QUICK`).
"""
from __future__ import annotations

from ..studies.capacity import AXES, capacity_runs, capacity_settings
from . import registry as r
from .registry import Sweep, register

__all__ = ["BASE", "AXES_QUICK", "AXES_FULL", "BASE_CONV", "CONV_AXES_QUICK", "CONV_AXES_FULL", "CAPACITY"]

#: The base model every axis departs from (both profiles).
BASE = dict(decoder_depth=2, decoder_width=64, encoder_depth=2, encoder_width=64, K=16, L=4)

AXES_QUICK = dict(decoder_depth=[1, 2, 4], decoder_width=[16, 64, 256],
                  encoder_depth=[1, 2, 4], encoder_width=[16, 64, 256],
                  K=[2, 4, 8, 16, 32, 64, 128], L=[1, 2, 4, 8])
AXES_FULL = dict(decoder_depth=[1, 2, 3, 4, 6, 8], decoder_width=[16, 32, 64, 128, 256, 512],
                 encoder_depth=[1, 2, 3, 4, 6, 8], encoder_width=[16, 32, 64, 128, 256, 512],
                 K=[2, 4, 8, 16, 32, 64, 128, 256, 512], L=[1, 2, 4, 8, 16])


#: The convolutional base model (both profiles): L = 16 is the 4 × 4 grid of the 8 × 8 digits.
BASE_CONV = dict(decoder_depth=2, decoder_width=16, encoder_depth=2, encoder_width=16, K=16, L=16,
                 architecture="conv")

CONV_AXES_QUICK = dict(decoder_depth=[1, 2, 4], decoder_width=[8, 16, 32])
CONV_AXES_FULL = dict(decoder_depth=[1, 2, 3, 4, 6], decoder_width=[8, 16, 32, 64, 128])


def _data(job) -> dict:
    """The sweep reads the digits' training split, from which every run draws its n and n_test images."""
    return {"x": ("digits", "train")}


def _check(job, arrays) -> None:
    """Every setting of one job of chapter 8's sweep, before anything is trained."""
    x = arrays["x"]
    setting = job["setting"]
    if not isinstance(setting, dict):
        raise ValueError(f"setting must be an object naming {AXES} (and optionally architecture), got {setting!r}")
    unknown = sorted(set(setting) - {*AXES, "architecture"})
    if unknown:
        raise ValueError(f"setting has unknown name(s) {unknown}; known: {(*AXES, 'architecture')}")
    capacity_settings(setting, {})  # every axis present, each a valid integer
    r.check_settings(setting, architecture=r.one_of("mlp", "conv"))
    r.check_settings(job, seeds=r.seeds, n=r.count(), n_test=r.count(), epochs=r.count(), batch_size=r.count(),
                     lr=r.positive, code_dim=r.count())
    r.check_settings(setting, K=r.codebook(job["code_dim"]),
                     L=r.latent_grid(x, setting.get("architecture", "mlp")))
    if job["n"] + job["n_test"] > len(x):
        raise ValueError(f"n + n_test = {job['n'] + job['n_test']} is more than the {len(x)} images of the data")


def _compute(x, *, setting, seeds, n, n_test, epochs, batch_size, lr, code_dim):
    return capacity_runs(x, setting, data_seeds=seeds, train_seeds=seeds, n=n, n_test=n_test, epochs=epochs,
                         batch_size=batch_size, lr=lr, code_dim=code_dim)


CAPACITY = register(Sweep(
    name="ch08-capacity",
    chapter="08_capacity",
    doc="gap (test − train) and LV information vs decoder/encoder depth and width, K and L (MLP and conv); seeds",
    quick=dict(setting=capacity_settings(BASE, AXES_QUICK) + capacity_settings(BASE_CONV, CONV_AXES_QUICK),
               seeds=[0, 1, 2], n=100, n_test=500,
               epochs=150, batch_size=25, lr=3e-3, code_dim=8),
    full=dict(setting=capacity_settings(BASE, AXES_FULL) + capacity_settings(BASE_CONV, CONV_AXES_FULL),
              seeds=list(range(10)), n=200, n_test=1000,
              epochs=300, batch_size=25, lr=2e-3, code_dim=8),
    compute=_compute,
    columns=("K", "L", "gap", "train_loss", "test_loss"),
    grid=("setting",),
    data=_data,
    check=_check,
))
