"""How well a VQ-VAE reconstructs and how it uses its codebook (chapter 1).

The per-input reconstruction loss ℓ(x, x̂) = ‖x − x̂‖² / d lies in [0, 1] for data and
outputs in [0, 1]: it is the bounded loss (Δ = 1) of every bound in the book.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

import numpy as np

from .._checks import fits_in_memory, positive_int, real_array

__all__ = ["CodebookUsage", "codebook_usage", "per_input_loss", "normalised_mse"]

#: Sizes (epochs, batch sizes, counts) are integers a torch index can hold, as seeds are.
SIZE_MAX = 2**63 - 1


def _size(value, name: str, minimum: int = 1) -> int:
    """A size (epochs, batch_size, n, K, chunk_size …): an int in [minimum, 2**63 − 1], or ``ValueError`` naming
    ``name`` (``2**2000`` epochs would never end; such an int reaches torch only to overflow)."""
    value = positive_int(value, name, minimum=minimum)
    if value > SIZE_MAX:
        raise ValueError(f"{name} must be at most 2**63 - 1, got {value!r}")
    return value


def _indices(indices, name: str = "indices"):
    """``indices`` as an int64 tensor (a tensor's own memory where it is one), or ``ValueError`` naming ``name``:
    strings, complex numbers, floats, booleans, objects and integers beyond int64 are refused."""
    if isinstance(indices, torch.Tensor):
        idx = indices.detach()
        if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
            raise ValueError(f"{name} must be integers, got dtype {idx.dtype}")
        return idx
    try:
        raw = np.asarray(indices)
    except (ValueError, TypeError, OverflowError):  # ragged or unreadable sequences
        raise ValueError(f"{name} must be integers in an array, got a {type(indices).__name__} numpy cannot read") \
            from None
    if raw.dtype.kind not in "iu" or (raw.dtype.kind == "u" and raw.size and raw.max() > SIZE_MAX):
        raise ValueError(f"{name} must be integers, got dtype {raw.dtype}")
    return torch.as_tensor(raw.astype(np.int64))


def _real_tensor(value, name: str) -> torch.Tensor:
    """``value`` as a real floating tensor (an array becomes one; a tensor is used as it is, detached), or
    ``ValueError`` naming ``name``: strings, objects, complex numbers and integers are refused; the values
    must be finite (one pass)."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise ValueError(f"{name} must hold real floating numbers, got dtype {value.dtype}")
        value = value.detach()
        if value.numel() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} must be finite, found NaN or infinite values")
        return value
    raw = np.asarray(value) if isinstance(value, np.ndarray) else None
    if raw is not None and raw.dtype.kind != "f":
        raise ValueError(f"{name} must hold real floating numbers, got dtype {raw.dtype}")
    return torch.as_tensor(real_array(value, name, allow_empty=True))


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
    K = _size(K, "K")
    if K > 2**20:  # the counts of K codes: refused before allocating when they cannot fit
        fits_in_memory(16 * K, f"codebook_usage with K={K} (the counts of K codes)")
    idx = _indices(indices).reshape(-1)
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
        Naming ``x`` or ``x_hat`` when it is not a finite real floating tensor or array with at least one
        input; when ``x`` and ``x_hat`` differ in shape.

    See also: :func:`vqlib.reconstruction_loss`; chapter 1.
    """
    x, x_hat = _real_tensor(x, "x"), _real_tensor(x_hat, "x_hat")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"x must hold at least one input, got shape {tuple(x.shape)}")
    if x.shape != x_hat.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but x_hat has shape {tuple(x_hat.shape)}")
    return _per_input_loss(x, x_hat)


def _per_input_loss(x: Tensor, x_hat: Tensor) -> Tensor:
    """:func:`per_input_loss` without its checks (the evaluation loops, on what they made)."""
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
        Naming ``losses`` when it is not finite, not ≥ 0, or not one loss per input of ``x``; naming
        ``x`` when it is not finite real numbers; when ``x`` has zero variance.

    See also: :func:`vqlib.model_summary`; chapter 1.
    """
    losses, x = _real_tensor(losses, "losses"), _real_tensor(x, "x")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"x must hold at least one input, got shape {tuple(x.shape)}")
    if tuple(losses.shape) != (x.shape[0],):
        raise ValueError(f"losses must hold one loss per input of x ({x.shape[0]}), got shape {tuple(losses.shape)}")
    if bool((losses < 0).any()):
        raise ValueError(f"losses must be ≥ 0, found {float(losses.min())!r}")
    var = float(x.reshape(x.shape[0], -1).var(0, unbiased=False).mean())
    if var <= 0:
        raise ValueError("x has zero variance, so the normalised MSE is undefined")
    return float(losses.mean()) / var
