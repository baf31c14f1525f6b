"""The supersample, the mask and the permutation (chapters 2–5).

A supersample X̃ holds n pairs of i.i.d. inputs; the mask U ∈ {0,1}^n picks the training
point of each pair (X̃_{i,U_i}) and leaves the other as its test "ghost" (X̃_{i,1−U_i}).
Chapter 5 replaces the n coins by one uniform permutation T of the 2n points, whose
first n are trained on.

Three seeds stay apart everywhere: ``supersample_seed`` draws X̃ from the data,
``mask_seed`` draws U (or T), ``train_seed`` drives training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._checks import check_seed, positive_int
from ..data import check_images

__all__ = ["Supersample", "make_supersample", "draw_mask", "draw_permutation", "split", "split_by_permutation"]


@dataclass(frozen=True)
class Supersample:
    """n pairs of inputs drawn without replacement from a data set."""

    points: Tensor  # (n, 2, C, H, W)
    source_index: np.ndarray  # (n, 2): row of each point in the data set it came from
    supersample_seed: int

    @property
    def n(self) -> int:
        return self.points.shape[0]

    def flat(self) -> Tensor:
        """All 2n points, pair by pair: (X̃_{1,0}, X̃_{1,1}, X̃_{2,0}, …), shape (2n, C, H, W)."""
        return self.points.reshape(-1, *self.points.shape[2:])


def make_supersample(x, n: int, *, supersample_seed: int) -> Supersample:
    """Draw X̃: 2n distinct rows of ``x``, arranged as n pairs (chapter 2).

    Raises ``ValueError`` naming ``n`` when n < 1 or 2n exceeds the data.
    """
    x = check_images(x, name="x")
    n = positive_int(n, "n")
    if 2 * n > len(x):
        raise ValueError(f"n={n} is larger than half the data ({len(x)} inputs allow n ≤ {len(x) // 2})")
    seed = check_seed(supersample_seed, "supersample_seed")
    rows = np.random.default_rng(seed).choice(len(x), size=2 * n, replace=False).reshape(n, 2)
    points = x[torch.as_tensor(rows.reshape(-1))].reshape(n, 2, *x.shape[1:])
    return Supersample(points=points, source_index=rows, supersample_seed=seed)


def draw_mask(n: int, *, mask_seed: int) -> np.ndarray:
    """U ∈ {0,1}^n with independent fair coins (chapter 2)."""
    n = positive_int(n, "n")
    seed = check_seed(mask_seed, "mask_seed")
    return np.random.default_rng(seed).integers(0, 2, size=n)


def draw_permutation(n: int, *, mask_seed: int) -> np.ndarray:
    """T: a uniform permutation of the 2n supersample points (chapter 5)."""
    n = positive_int(n, "n")
    seed = check_seed(mask_seed, "mask_seed")
    return np.random.default_rng(seed).permutation(2 * n)


def _check_mask(U, n: int) -> np.ndarray:
    U = np.asarray(U)
    if U.shape != (n,):
        raise ValueError(f"U must have shape ({n},), got {U.shape}")
    if not np.isin(U, (0, 1)).all():
        raise ValueError("U must hold only 0 and 1")
    return U.astype(np.int64)


def split(ss: Supersample, U) -> tuple[Tensor, Tensor]:
    """(training points X̃_{i,U_i}, test ghosts X̃_{i,1−U_i}), each (n, C, H, W)."""
    U = torch.as_tensor(_check_mask(U, ss.n))
    rows = torch.arange(ss.n)
    return ss.points[rows, U], ss.points[rows, 1 - U]


def split_by_permutation(ss: Supersample, T) -> tuple[Tensor, Tensor]:
    """(the n points T[:n] of the flattened supersample, the other n) (chapter 5)."""
    T = np.asarray(T)
    if sorted(T.tolist()) != list(range(2 * ss.n)):
        raise ValueError(f"T must be a permutation of range({2 * ss.n})")
    flat = ss.flat()
    return flat[torch.as_tensor(T[: ss.n])], flat[torch.as_tensor(T[ss.n :])]




