"""How well a VQ-VAE reconstructs and how it uses its codebook (chapter 1).

The per-input reconstruction loss ℓ(x, x̂) = ‖x − x̂‖² / d lies in [0, 1] for data and
outputs in [0, 1]: it is the bounded loss (Δ = 1) of every bound in the book.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import positive_int

__all__ = ["CodebookUsage", "codebook_usage", "per_input_loss", "normalised_mse"]


@dataclass(frozen=True)
class CodebookUsage:
    """Code frequencies over every position of every input (chapter 1).

    Attributes
    ----------
    perplexity : float
        exp(H) of the frequencies, between 1 and min(K, number of indices).
    used_fraction : float
        Codes chosen at least once, divided by K.
    counts : tuple of K int
        How often each of the K codes was chosen.

    See also: :func:`codebook_usage`; chapter 1.
    """

    perplexity: float  # exp(H), between 1 and min(K, number of indices)
    used_fraction: float  # codes chosen at least once, divided by K
    counts: tuple[int, ...]  # how often each of the K codes was chosen


def codebook_usage(indices, K: int) -> CodebookUsage:
    """Perplexity and fraction of codes used for latent variables ``indices`` (chapter 1).

    Perplexity is exp(−Σ_k p_k log p_k) for the empirical frequencies p_k: K when every code
    is used equally often, 1 when one code takes everything.

    Parameters
    ----------
    indices : Tensor or array-like of integers in [0, K), any shape, not empty
        Latent variables, e.g. (N, L) from :func:`vqlib.encode_indices`.
    K : int
        Codebook size.

    Returns
    -------
    CodebookUsage

    Raises
    ------
    ValueError
        Naming ``K`` when it is not an integer ≥ 1; naming ``indices`` when it is not integers, is
        empty or lies outside [0, K).

    See also: :class:`CodebookUsage`, :func:`vqlib.encode_indices`; chapter 1.
    """
    K = positive_int(K, "K")
    idx = torch.as_tensor(indices).detach().reshape(-1)
    if idx.dtype.is_floating_point or idx.dtype == torch.bool:
        raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
    if idx.numel() == 0:
        raise ValueError("indices is empty")
    if idx.min() < 0 or idx.max() >= K:
        raise ValueError(f"indices must lie in [0, K={K}), got values in [{int(idx.min())}, {int(idx.max())}]")
    counts = torch.bincount(idx.cpu(), minlength=K)
    p = counts.double() / counts.sum()
    nz = p[p > 0]
    entropy = float(-(nz * nz.log()).sum())
    return CodebookUsage(
        perplexity=math.exp(entropy),
        used_fraction=float((counts > 0).sum()) / K,
        counts=tuple(int(c) for c in counts),
    )


def per_input_loss(x: Tensor, x_hat: Tensor) -> Tensor:
    """ℓ(x, x̂) = ‖x − x̂‖² / d for each input, in [0, 1] for inputs in [0, 1] (chapters 1, 3).

    Parameters
    ----------
    x, x_hat : Tensor (N, ...), the same shape
        Inputs and their reconstructions; d is the number of values per input.

    Returns
    -------
    Tensor (N,)

    Raises
    ------
    ValueError
        When ``x`` and ``x_hat`` differ in shape.

    See also: :func:`vqlib.reconstruction_loss`; chapter 1.
    """
    if x.shape != x_hat.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but x_hat has shape {tuple(x_hat.shape)}")
    return (x - x_hat).pow(2).reshape(x.shape[0], -1).mean(1)


def normalised_mse(losses: Tensor, x: Tensor) -> float:
    """Mean per-pixel squared error divided by the per-pixel variance of the data (chapters 1, 4).

    NMSE = mean(losses) / ((1/d) Σ_p Var_x[x_p]), the variance over the inputs (not unbiased).

    Parameters
    ----------
    losses : Tensor (N,)
        Per-input losses ‖x − x̂‖²/d.
    x : Tensor (N, ...)
        The data.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        When ``x`` has zero variance.

    See also: :func:`vqlib.model_summary`; chapter 1.
    """
    var = float(x.reshape(x.shape[0], -1).var(0, unbiased=False).mean())
    if var <= 0:
        raise ValueError("x has zero variance, so the normalised MSE is undefined")
    return float(losses.mean()) / var
