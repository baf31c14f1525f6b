"""Generating with a trained VQ-VAE: draw latent variables from a prior, decode (chapter 7)."""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_seed, positive_int
from .fit import check_model
from .priors import LatentPrior, UniformPrior
from .vqvae import VQVAE

__all__ = ["generate"]


@torch.no_grad()
def generate(model: VQVAE, n: int, prior: LatentPrior | None = None, seed: int = 0) -> Tensor:
    """``n`` generated samples g(e_J), J ~ π, in the data's shape and in [0, 1] (chapter 7).

    By default π is :class:`~vqlib.models.UniformPrior`, the one prior that needs no data;
    chapter 7 shows that a prior fitted to the training codes (aggregated or Markov) generates
    much better. ``seed`` fixes the drawn codes, so the same call gives the same images. The
    model is evaluated in evaluation mode and left in the mode it was in.

    Parameters
    ----------
    model : VQVAE
    n : int ≥ 1
        Number of samples.
    prior : LatentPrior, optional
        A fitted :mod:`vqlib.models.priors` prior with the model's K and L.
    seed : int in [0, 2⁶³ − 1]
        Seeds the prior's draws.

    Returns
    -------
    Tensor (n, *model.in_shape), values in [0, 1], on the CPU

    Raises
    ------
    ValueError
        Naming ``model``, ``n``, ``seed`` or ``prior`` (not a prior, other K or L, not fitted).

    See also: :meth:`vqlib.VQVAE.decode_indices`, :func:`vqlib.models.make_prior`, :func:`vqlib.w2`; chapter 7.
    """

    model = check_model(model)
    n = positive_int(n, "n")
    seed = check_seed(seed)
    if prior is None:
        prior = UniformPrior(model.K, model.L)
    if not isinstance(prior, LatentPrior):
        raise ValueError(f"prior must be a vqlib.models.priors prior (e.g. UniformPrior), got {type(prior).__name__}")
    if (prior.K, prior.L) != (model.K, model.L):
        raise ValueError(f"prior has K={prior.K}, L={prior.L} but the model has K={model.K}, L={model.L}")
    codes = prior.sample(n, seed=seed)
    was_training = model.training
    model.eval()
    try:
        out = torch.cat([model.decode_indices(codes[i:i + 4096].to(model.device)).cpu()
                         for i in range(0, n, 4096)])
    finally:
        model.train(was_training)
    return out
