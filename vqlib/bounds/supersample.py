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

from .._checks import binary_array, check_seed, fits_in_memory, index_array, positive_int, short
from ..data import check_images

__all__ = ["Supersample", "make_supersample", "draw_mask", "draw_permutation", "split", "split_by_permutation"]


@dataclass(frozen=True)
class Supersample:
    """The supersample X̃: n pairs of inputs drawn without replacement from a data set (chapters 2–5).

    X̃ = (X̃_{i,b}), i = 1..n, b ∈ {0, 1}: a mask U ∈ {0,1}^n trains on X̃_{i,U_i} and keeps
    X̃_{i,1−U_i} as the pair's test ghost (:func:`split`); a permutation T of the 2n points
    trains on the first n of :meth:`flat` indexed by T (:func:`split_by_permutation`).
    Build it with :func:`make_supersample`, which keeps its seed with it.

    Parameters
    ----------
    points : tensor (n, 2, C, H, W)
        The pairs; ``points[i, b]`` is X̃_{i,b}.
    source_index : array (n, 2), int
        Row of each point in the data set it came from (2n distinct rows).
    supersample_seed : int
        The seed that drew X̃ (apart from ``mask_seed`` and ``train_seed``).

    Attributes
    ----------
    n : int
        The number of pairs, ``points.shape[0]``.

    See also
    --------
    make_supersample, split, split_by_permutation, flat; chapter 2, chapter 5.
    """

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

    The 2n rows are drawn uniformly without replacement (numpy's ``default_rng(supersample_seed)``)
    and paired in the order drawn: X̃_{i,0}, X̃_{i,1} = x[rows[i, 0]], x[rows[i, 1]]. Under a fair
    mask the training half X̃_{i,U_i} and the ghosts X̃_{i,1−U_i} are then two disjoint random
    samples of size n, and the gap of chapter 2 is ghost loss minus training loss.

    Parameters
    ----------
    x : tensor or array (N, C, H, W), floating, values in [0, 1]
        The data set (checked by :func:`vqlib.data.check_images`).
    n : int ≥ 1
        Number of pairs; 2n ≤ N.
    supersample_seed : int in [0, 2⁶³ − 1], keyword-only
        Seed of the draw.

    Returns
    -------
    Supersample
        ``points`` (n, 2, C, H, W) float32, ``source_index`` (n, 2), ``supersample_seed``.

    Raises
    ------
    ValueError
        Naming ``n`` when n < 1 or 2n exceeds the data, naming ``x`` when it is not a batch of
        images in [0, 1], naming ``supersample_seed`` when it is not a valid seed.

    See also
    --------
    Supersample, draw_mask, split, draw_permutation; chapter 2.
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
    """U ∈ {0,1}^n with independent fair coins (chapter 2).

    U_1, …, U_n i.i.d. uniform on {0, 1}, drawn by numpy's ``default_rng(mask_seed)``; U_i picks the
    training point X̃_{i,U_i} of pair i. The supersample CMI bounds need U independent of X̃, which
    a seed kept apart from ``supersample_seed`` and ``train_seed`` gives.

    Parameters
    ----------
    n : int ≥ 1
        Number of pairs.
    mask_seed : int in [0, 2⁶³ − 1], keyword-only
        Seed of the coins.

    Returns
    -------
    array (n,), int64, values in {0, 1}

    Raises
    ------
    ValueError
        Naming ``n`` when it is not an integer ≥ 1, ``mask_seed`` when it is not a valid seed.

    See also
    --------
    split, draw_permutation, make_supersample; chapter 2.
    """
    n = positive_int(n, "n")
    seed = check_seed(mask_seed, "mask_seed")
    fits_in_memory(8 * n, f"a mask of n={short(n)} pairs", need="as int64")
    return np.random.default_rng(seed).integers(0, 2, size=n)


def draw_permutation(n: int, *, mask_seed: int) -> np.ndarray:
    """T: a uniform permutation of the 2n supersample points (chapter 5).

    T is uniform on the (2n)! orderings of range(2n) (numpy's ``default_rng(mask_seed)``); the n
    points T[:n] of :meth:`Supersample.flat` are trained on, the other n are the test points
    (:func:`split_by_permutation`). It replaces the n coins of :func:`draw_mask`: the training set
    is a uniform n-subset of the 2n points, drawn without replacement.

    Parameters
    ----------
    n : int ≥ 1
        Number of pairs (the permutation is of 2n points).
    mask_seed : int in [0, 2⁶³ − 1], keyword-only
        Seed of the permutation.

    Returns
    -------
    array (2n,), int64
        A permutation of range(2n).

    Raises
    ------
    ValueError
        Naming ``n`` when it is not an integer ≥ 1, ``mask_seed`` when it is not a valid seed.

    See also
    --------
    split_by_permutation, draw_mask; chapter 5.
    """
    n = positive_int(n, "n")
    seed = check_seed(mask_seed, "mask_seed")
    fits_in_memory(16 * 2 * n, f"a permutation of 2n={short(2 * n)} points", need="as int64 (and its shuffle)")
    return np.random.default_rng(seed).permutation(2 * n)


def _check_supersample(ss) -> None:
    if not isinstance(ss, Supersample):
        raise ValueError(f"ss must be a Supersample (from make_supersample), got {type(ss).__name__}")


def _check_mask(U, n: int) -> np.ndarray:
    U = binary_array(U, "U", allow_empty=True)  # numbers 0 and 1 (booleans too); complex and strings refused
    if U.shape != (n,):
        raise ValueError(f"U must have shape ({n},), got {U.shape}")
    return U


def split(ss: Supersample, U) -> tuple[Tensor, Tensor]:
    """The training points X̃_{i,U_i} and the test ghosts X̃_{i,1−U_i} of a mask (chapter 2).

    For each pair i the mask bit U_i picks the training point; the other point of the pair is its
    ghost, so the training set and the ghosts are disjoint and each holds one point per pair.

    Parameters
    ----------
    ss : Supersample
        The supersample, n pairs.
    U : array (n,), values in {0, 1}
        The mask (:func:`draw_mask`).

    Returns
    -------
    (train, test) : tuple of tensors, each (n, C, H, W)
        ``train[i] = X̃_{i,U_i}``, ``test[i] = X̃_{i,1−U_i}``.

    Raises
    ------
    ValueError
        When ``U`` does not have shape (n,) or holds a value other than 0 and 1.

    See also
    --------
    draw_mask, make_supersample, split_by_permutation; chapter 2.
    """
    _check_supersample(ss)
    U = torch.as_tensor(_check_mask(U, ss.n))
    rows = torch.arange(ss.n)
    return ss.points[rows, U], ss.points[rows, 1 - U]


def split_by_permutation(ss: Supersample, T) -> tuple[Tensor, Tensor]:
    """The n points T[:n] of the flattened supersample and the other n (chapter 5).

    The flattened supersample is :meth:`Supersample.flat`, whose point 2i + b is X̃_{i,b}; the
    training set is (X̃_flat[T_j])_{j<n} and the test set (X̃_flat[T_j])_{j≥n}, in the order of T.

    Parameters
    ----------
    ss : Supersample
        The supersample, n pairs (2n points).
    T : array (2n,), int
        A permutation of range(2n) (:func:`draw_permutation`).

    Returns
    -------
    (train, test) : tuple of tensors, each (n, C, H, W)

    Raises
    ------
    ValueError
        When ``T`` is not a permutation of range(2n).

    See also
    --------
    draw_permutation, split; chapter 5.
    """
    _check_supersample(ss)
    T = index_array(T, "T")  # integers (or integral floats); booleans, complex and strings refused
    if T.shape != (2 * ss.n,) or not np.array_equal(np.sort(T), np.arange(2 * ss.n)):
        raise ValueError(f"T must be a permutation of range({2 * ss.n})")
    flat = ss.flat()
    return flat[torch.as_tensor(T[: ss.n])], flat[torch.as_tensor(T[ss.n :])]




