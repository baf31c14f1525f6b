"""One permutation instead of n coins: the permutation supersample (chapter 5).

The paper's third result replaces the n per-pair coins of the supersample by one
uniform permutation T of the 2n supersample points; the first n are trained on. The
test-minus-train difference is then a sample *without* replacement, hence
(Δ/√n)-sub-Gaussian (Hoeffding 1963, Theorem 4), and

    E[test − train | X̃] ≤ Δ · sqrt(2 I^X̃(W; T) / n)          (:func:`permutation_bound`).

For a deterministic learner that sees its training points as a set,
I^X̃(W; T) = H(W | X̃) ≤ log C(2n, n) (:func:`log_binomial_cap`, always vacuous), and a
learner whose output is a choice among the data pays only for that choice.
The chapter's learner is such a one: a **product k-medoids quantizer**
(:func:`fit_medoid_quantizer`) cuts the d pixels into L fixed blocks and picks, in
each block, K medoids among the training points; an input is reconstructed block by
block by its nearest medoid block, with loss ℓ = ‖x − x̂‖²/d ∈ [0, 1]. Given X̃ its
output takes at most C(2n, K)^L values, so I ≤ L·log C(2n, K) ≤ L·K·log(2n)
(:func:`counting_information`, :func:`counting_bound`).

Everything is exact for 2n ≤ 8 (:func:`exact_enumeration` runs the learner on all
C(2n, n) training sets); for larger n the gap is averaged over random permutations
(:func:`monte_carlo_gap`, :func:`gap_versus_n`). :func:`difference_mgf` computes the
moment generating function of the test-minus-train difference exactly, for checking
the sub-Gaussian lemma. Natural logarithms (nats) throughout; numpy only.
"""
from __future__ import annotations

import itertools
import math
import numbers
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._checks import positive_float, positive_int
from ..bounds.supersample import Supersample, draw_permutation, make_supersample
from ..data import check_images

__all__ = [
    "ProductMedoidQuantizer",
    "block_partition",
    "fit_medoid_quantizer",
    "medoid_loss",
    "log_binomial",
    "log_binomial_cap",
    "permutation_bound",
    "counting_information",
    "counting_bound",
    "difference_mgf",
    "hoeffding_mgf_bound",
    "permutation_gap",
    "exact_enumeration",
    "monte_carlo_gap",
    "gap_versus_n",
]

#: Largest number of training sets C(2n, n) that :func:`exact_enumeration` and
#: :func:`difference_mgf` agree to enumerate.
MAX_SUBSETS = 200_000
#: A swap must lower the k-medoids cost by more than this (relative) amount; it keeps
#: float rounding from making the search cycle.
SWAP_TOL = 1e-12


# ---------------------------------------------------------------------------
# The product k-medoids quantizer (chapter 5, the toy learner)
# ---------------------------------------------------------------------------


def block_partition(d: int, L: int) -> tuple[NDArray, ...]:
    """The L fixed blocks of pixel positions 0..d−1: contiguous, sizes differing by ≤ 1 (chapter 5).

    For 8 × 8 digits and L = 4 the blocks are the horizontal bands of two rows.

    Parameters
    ----------
    d : int
        Number of pixels, ≥ 1.
    L : int
        Number of blocks, 1 ≤ L ≤ d.

    Returns
    -------
    tuple of L int ndarrays
        The pixel indices of each block, in order; the first d mod L blocks hold ⌈d/L⌉ pixels,
        the others ⌊d/L⌋.

    Raises
    ------
    ValueError
        When ``d`` or ``L`` is not an integer ≥ 1, or L > d.

    See also
    --------
    fit_medoid_quantizer, ProductMedoidQuantizer; chapter 5.
    """
    d = positive_int(d, "d")
    L = positive_int(L, "L")
    if L > d:
        raise ValueError(f"L must be at most the number of pixels d={d}, got L={L}")
    return tuple(np.array_split(np.arange(d), L))


@dataclass(frozen=True)
class ProductMedoidQuantizer:
    """A fitted product k-medoids quantizer (chapter 5).

    ``medoids[l]`` holds the K rows, of the training array it was fitted on, whose
    block l is a code of block l; ``codebooks[l]`` holds those K blocks, shape (K, d_l).
    Build it with :func:`fit_medoid_quantizer`.

    Parameters
    ----------
    K : int
        Medoids (codes) per block.
    L : int
        Number of blocks.
    d : int
        Number of pixels C·H·W.
    blocks : tuple of L int ndarrays
        The pixel indices of each block (:func:`block_partition`).
    medoids : int ndarray (L, K)
        The training rows chosen in each block (sorted).
    codebooks : tuple of L float64 ndarrays (K, d_l)
        The medoid blocks.

    See also
    --------
    fit_medoid_quantizer, medoid_loss, block_partition; chapter 5.
    """

    K: int
    L: int
    d: int
    blocks: tuple[NDArray, ...]
    medoids: NDArray  # (L, K) int: row of the training array
    codebooks: tuple[NDArray, ...]  # L arrays of shape (K, d_l)

    def _flat(self, x) -> NDArray:
        x = check_images(x, name="x")
        flat = x.reshape(len(x), -1).numpy().astype(np.float64)
        if flat.shape[1] != self.d:
            raise ValueError(f"x has {flat.shape[1]} pixels, the quantizer was fitted on d={self.d}")
        return flat

    def loss(self, x) -> NDArray:
        """ℓ(x, x̂) = ‖x − x̂‖²/d ∈ [0, 1] for each input of ``x`` (chapter 5).

        Each block is reconstructed by its nearest medoid block, so ℓ = (1/d) Σ_l min_k ‖x_l − c_{l,k}‖².

        Parameters
        ----------
        x : tensor or array (N, C, H, W)
            Images in [0, 1] with d pixels.

        Returns
        -------
        ndarray (N,), float64
            The per-input losses.

        Raises
        ------
        ValueError
            When ``x`` is not a batch of images in [0, 1] or has not d pixels.

        See also
        --------
        reconstruct, medoid_loss; chapter 5.
        """
        return _loss_flat(self._flat(x), self)

    def reconstruct(self, x) -> NDArray:
        """x̂: each block of each input replaced by its nearest medoid block (chapter 5).

        Parameters
        ----------
        x : tensor or array (N, C, H, W)
            Images in [0, 1] with d pixels.

        Returns
        -------
        ndarray, float64, the shape of ``x``
            The reconstructions.

        Raises
        ------
        ValueError
            When ``x`` is not a batch of images in [0, 1] or has not d pixels.

        See also
        --------
        loss, fit_medoid_quantizer; chapter 5.
        """
        flat = self._flat(x)
        out = np.empty_like(flat)
        for block, book in zip(self.blocks, self.codebooks):
            nearest = _sq_dist(flat[:, block], book).argmin(axis=1)
            out[:, block] = book[nearest]
        return out.reshape(tuple(np.shape(x)))

    def output(self, labels: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        """W as the learner's choice: per block, the sorted labels of the medoid rows (chapter 5).

        Two fits are the same output exactly when these tuples are equal.

        Parameters
        ----------
        labels : sequence of int (N_train,)
            ``labels[i]`` names training row i (e.g. its supersample index).

        Returns
        -------
        tuple of L tuples of K ints
            The sorted labels of each block's medoids.

        See also
        --------
        exact_enumeration, permutation_gap; chapter 5.
        """
        labels = np.asarray(labels)
        return tuple(tuple(sorted(int(v) for v in labels[m])) for m in self.medoids)


def _sq_dist(a: NDArray, b: NDArray) -> NDArray:
    """Squared distances (len(a), len(b)), accumulated pixel by pixel from differences.

    Each entry depends only on its two rows (never on the other rows or the matrix size),
    and D[i, j] == D[j, i] exactly, so ties are exact ties and a fit on a subset reads the
    same numbers as the supersample's matrix.
    """
    D = np.zeros((len(a), len(b)))
    for k in range(a.shape[1]):
        diff = a[:, k, None] - b[None, :, k]
        D += diff * diff
    return D


def _medoids_from_distances(D: NDArray, K: int, swap_rounds: int) -> list[int]:
    """Greedy BUILD then best-improvement SWAP (PAM-lite) on one block; ties → lowest row (chapter 5).

    ``D`` holds the squared distances between the blocks of the n training points.
    """
    n = len(D)
    chosen: list[int] = []
    current = np.full(n, np.inf)
    for _ in range(K):
        cost = np.minimum(current[:, None], D).sum(axis=0)
        cost[chosen] = np.inf
        c = int(np.argmin(cost))  # first minimum: the lowest row wins a tie
        chosen.append(c)
        current = np.minimum(current, D[:, c])
    if K == n:
        return chosen
    for _ in range(swap_rounds):
        Dm = D[:, chosen]
        order = np.argsort(Dm, axis=1, kind="stable")
        d1 = np.take_along_axis(Dm, order[:, :1], axis=1)[:, 0]
        d2 = np.take_along_axis(Dm, order[:, 1:2], axis=1)[:, 0] if K > 1 else np.full(n, np.inf)
        nearest = order[:, 0]
        # cost without medoid m, for every point: (K, n)
        without = np.where(nearest[None, :] == np.arange(K)[:, None], d2[None, :], d1[None, :])
        swapped = np.minimum(without[:, :, None], D[None, :, :]).sum(axis=1)  # (K, candidates)
        swapped[:, chosen] = np.inf
        best = int(np.argmin(swapped))  # row-major first minimum: deterministic
        m, c = divmod(best, n)
        old = float(d1.sum())
        if not swapped[m, c] < old - SWAP_TOL * max(1.0, old):
            break
        chosen[m] = c
    return chosen


def _fit_flat(X: NDArray, K: int, blocks: tuple[NDArray, ...], swap_rounds: int) -> ProductMedoidQuantizer:
    medoids = np.array([sorted(_medoids_from_distances(_sq_dist(X[:, b], X[:, b]), K, swap_rounds))
                        for b in blocks], dtype=np.int64)
    codebooks = tuple(X[m][:, b] for m, b in zip(medoids, blocks))
    return ProductMedoidQuantizer(K=K, L=len(blocks), d=X.shape[1], blocks=blocks, medoids=medoids,
                                  codebooks=codebooks)


def _loss_flat(X: NDArray, q: ProductMedoidQuantizer) -> NDArray:
    total = np.zeros(len(X))
    for block, book in zip(q.blocks, q.codebooks):
        total += _sq_dist(X[:, block], book).min(axis=1)
    return total / q.d


def _check_K(K, n: int) -> int:
    K = positive_int(K, "K")
    if K > n:
        raise ValueError(f"K must be at most the number of training points n={n}, got K={K}")
    return K


def _swap_rounds(value) -> int:
    return positive_int(value, "swap_rounds", minimum=0)


def fit_medoid_quantizer(x_train, K: int, L: int, *, swap_rounds: int = 3) -> ProductMedoidQuantizer:
    """Fit the product k-medoids quantizer, the chapter's toy learner, on ``x_train`` (chapter 5).

    The d pixels are cut into L fixed contiguous blocks (:func:`block_partition`). In
    each block, K medoids are chosen **among the training points** by a deterministic
    PAM-lite: greedy BUILD (add the point that lowers the sum of squared distances most),
    then at most ``swap_rounds`` best-improvement swaps; every tie goes to the lowest row
    of ``x_train``. The output is therefore a function of the ordered training array; the
    chapter passes training points in supersample order, which makes it a function of the
    training *set*. Given the 2n supersample points it takes at most C(2n, K)^L values.

    Parameters
    ----------
    x_train : tensor or array (N, C, H, W)
        Training images in [0, 1].
    K : int
        Medoids per block, 1 ≤ K ≤ N.
    L : int
        Number of blocks, 1 ≤ L ≤ d.
    swap_rounds : int, default 3
        Best-improvement swaps after the greedy build, ≥ 0.

    Returns
    -------
    ProductMedoidQuantizer
        The fitted quantizer; its medoids are rows of ``x_train``.

    Raises
    ------
    ValueError
        Naming ``K`` (K < 1 or K > N), ``L`` (L < 1 or L > d) or ``swap_rounds`` (negative),
        and when ``x_train`` is not a batch of images in [0, 1].

    See also
    --------
    ProductMedoidQuantizer, medoid_loss, counting_information; chapter 5.
    """
    x = check_images(x_train, name="x_train")
    X = x.reshape(len(x), -1).numpy().astype(np.float64)
    K = _check_K(K, len(X))
    blocks = block_partition(X.shape[1], L)
    return _fit_flat(X, K, blocks, _swap_rounds(swap_rounds))


def medoid_loss(quantizer: ProductMedoidQuantizer, x) -> NDArray:
    """Per-input loss ‖x − x̂‖²/d ∈ [0, 1] of a fitted product k-medoids quantizer (chapter 5).

    Parameters
    ----------
    quantizer : ProductMedoidQuantizer
        A fit of :func:`fit_medoid_quantizer`.
    x : tensor or array (N, C, H, W)
        Images in [0, 1] with the quantizer's d pixels.

    Returns
    -------
    ndarray (N,), float64
        The losses.

    Raises
    ------
    ValueError
        When ``quantizer`` is not a ProductMedoidQuantizer or ``x`` is not a batch of images in
        [0, 1] with d pixels.

    See also
    --------
    fit_medoid_quantizer, ProductMedoidQuantizer.loss; chapter 5.
    """
    if not isinstance(quantizer, ProductMedoidQuantizer):
        raise ValueError(f"quantizer must be a ProductMedoidQuantizer, got {type(quantizer).__name__}")
    return quantizer.loss(x)


# ---------------------------------------------------------------------------
# Bounds (chapter 5)
# ---------------------------------------------------------------------------


def log_binomial(a: int, b: int) -> float:
    """log C(a, b) in nats, from the exact integer for a ≤ 10 000, else from log-gamma (chapter 5).

    log C(a, b) = log Γ(a + 1) − log Γ(b + 1) − log Γ(a − b + 1) for a > 10 000.

    Parameters
    ----------
    a : int
        ≥ 0.
    b : int
        0 ≤ b ≤ a.

    Returns
    -------
    float
        log C(a, b).

    Raises
    ------
    ValueError
        When ``a`` or ``b`` is not an integer ≥ 0, or b > a.

    See also
    --------
    log_binomial_cap, counting_information; chapter 5.
    """
    a = positive_int(a, "a", minimum=0)
    b = positive_int(b, "b", minimum=0)
    if b > a:
        raise ValueError(f"b must be at most a={a}, got b={b}")
    if a <= 10_000:
        return math.log(math.comb(a, b))
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)


def log_binomial_cap(n: int) -> float:
    """log C(2n, n): the entropy of the training set T({1..n}), a cap on I(W; T | X̃) (chapter 5).

    Valid for every learner after replacing T by the set of its first n entries, which is
    all the loss difference depends on; about 2n·log 2 − ½·log(πn), so the bound it gives,
    Δ·sqrt(2·log C(2n, n)/n) → Δ·sqrt(4 log 2) ≈ 1.67 Δ, is always vacuous.

    Parameters
    ----------
    n : int
        Pairs of the supersample, ≥ 1.

    Returns
    -------
    float
        log C(2n, n) in nats.

    Raises
    ------
    ValueError
        When ``n`` is not an integer ≥ 1.

    See also
    --------
    permutation_bound, counting_information; chapter 5.
    """
    n = positive_int(n, "n")
    return log_binomial(2 * n, n)


def permutation_bound(information: float, n: int, Delta: float = 1.0) -> float:
    """Δ · sqrt(2 I / n), the permutation-supersample bound on E[test − train] (chapter 5, theorem).

    The test-minus-train difference of a sample without replacement is (Δ/√n)-sub-Gaussian,
    which gives E[test − train | X̃] ≤ Δ · sqrt(2 I^X̃(W; T) / n).

    Parameters
    ----------
    information : float
        I^X̃(W; T) (per supersample, for the bound on that supersample's expected gap) or
        I(W; T | X̃) (for the average gap), in nats, ≥ 0.
    n : int
        Training points (pairs of the supersample), ≥ 1.
    Delta : float, default 1.0
        The loss range Δ (losses in [0, Δ]), > 0.

    Returns
    -------
    float
        The bound, ≥ 0.

    Raises
    ------
    ValueError
        Naming ``information`` (negative or not finite; rounding down to −1e-9 is clipped to
        0), ``n`` (not an integer ≥ 1) or ``Delta`` (not a finite number > 0).

    See also
    --------
    counting_bound, log_binomial_cap, exact_enumeration; chapter 5.
    """
    if isinstance(information, bool) or not isinstance(information, numbers.Real):
        raise ValueError(f"information must be a number ≥ 0, got {information!r}")
    information = float(information)
    if not math.isfinite(information) or information < -1e-9:
        raise ValueError(f"information must be a finite number ≥ 0, got {information!r}")
    n = positive_int(n, "n")
    Delta = positive_float(Delta, "Delta")
    return Delta * math.sqrt(2.0 * max(information, 0.0) / n)


def counting_information(n: int, K: int, L: int) -> float:
    """L · log C(2n, K) ≥ I^X̃(W; T) for the product k-medoids quantizer (chapter 5, counting lemma).

    Given X̃ the learner's output is a K-subset of the 2n points in each of the L blocks,
    so it takes at most C(2n, K)^L values; L · log C(2n, K) ≤ L·K·log(2n).

    Parameters
    ----------
    n : int
        Pairs of the supersample, ≥ 1.
    K : int
        Medoids per block, 1 ≤ K ≤ n (the medoids are training points).
    L : int
        Number of blocks, ≥ 1.

    Returns
    -------
    float
        The cap, in nats.

    Raises
    ------
    ValueError
        Naming the argument when n < 1, K outside 1..n or L < 1 (or one is not an integer).

    See also
    --------
    counting_bound, log_binomial_cap; chapter 5.
    """
    n = positive_int(n, "n")
    K = _check_K(K, n)
    L = positive_int(L, "L")
    return L * log_binomial(2 * n, K)


def counting_bound(n: int, K: int, L: int, Delta: float = 1.0) -> float:
    """Δ · sqrt(2 · L · log C(2n, K) / n), the counting bound (chapter 5).

    :func:`permutation_bound` at :func:`counting_information`. At most
    Δ·sqrt(2·L·K·log(2n)/n): it vanishes as n grows with K and L fixed.

    Parameters
    ----------
    n : int
        Pairs of the supersample, ≥ 1.
    K : int
        Medoids per block, 1 ≤ K ≤ n.
    L : int
        Number of blocks, ≥ 1.
    Delta : float, default 1.0
        The loss range Δ (losses in [0, Δ]), > 0.

    Returns
    -------
    float
        The bound.

    Raises
    ------
    ValueError
        As :func:`counting_information`, and naming ``Delta`` when it is not a finite number > 0.

    See also
    --------
    counting_information, permutation_bound; chapter 5.
    """
    return permutation_bound(counting_information(n, K, L), n, Delta)


def hoeffding_mgf_bound(lambdas: ArrayLike, n: int, Delta: float = 1.0) -> NDArray:
    """exp(λ²Δ²/(2n)): the sub-Gaussian envelope of the test-minus-train difference (chapter 5, lemma).

    A (Δ/√n)-sub-Gaussian difference D has E exp(λ D) ≤ exp(λ² (Δ/√n)² / 2) = exp(λ²Δ²/(2n))
    (Hoeffding 1963, Theorem 4, for sampling without replacement); compare with
    :func:`difference_mgf`.

    Parameters
    ----------
    lambdas : array_like, any shape
        The λ values, finite.
    n : int
        Training points, ≥ 1.
    Delta : float, default 1.0
        The loss range Δ (losses in [0, Δ]), > 0.

    Returns
    -------
    ndarray, the shape of ``lambdas``
        exp(λ²Δ²/(2n)) for each λ.

    Raises
    ------
    ValueError
        When ``lambdas`` is not finite, ``n`` is not an integer ≥ 1 or ``Delta`` is not a finite
        number > 0.

    See also
    --------
    difference_mgf, permutation_bound; chapter 5.
    """
    lam = np.asarray(lambdas, dtype=float)
    if not np.all(np.isfinite(lam)):
        raise ValueError("lambdas must be finite")
    n = positive_int(n, "n")
    Delta = positive_float(Delta, "Delta")
    return np.exp(lam**2 * Delta**2 / (2.0 * n))


def difference_mgf(values: ArrayLike, lambdas: ArrayLike) -> NDArray:
    """Exact E exp(λ·(test mean − train mean)) over all n-subsets of 2n numbers (chapter 5, lemma).

    The training set is a uniformly random n-subset S (the first n entries of a uniform
    permutation), the test set the rest:
    E exp(λ D) = C(2n, n)⁻¹ Σ_S exp(λ · (Σ_{i∉S} a_i − Σ_{i∈S} a_i) / n). Enumerates all C(2n, n)
    subsets, so 2n must be small (C(2n, n) ≤ 200 000).

    Parameters
    ----------
    values : array_like (2n,)
        The 2n losses a_1..a_2n of a fixed output on the supersample, finite.
    lambdas : array_like, any shape
        The λ values, finite.

    Returns
    -------
    ndarray, the shape of ``lambdas``
        The moment generating function at each λ.

    Raises
    ------
    ValueError
        When ``values`` is not 1-D of even length ≥ 2, is not finite, or has C(2n, n) > 200 000
        subsets, or when ``lambdas`` is not finite.

    See also
    --------
    hoeffding_mgf_bound; chapter 5.
    """
    a = np.asarray(values, dtype=float)
    if a.ndim != 1 or a.size < 2 or a.size % 2:
        raise ValueError(f"values must be a 1-D array of even length 2n ≥ 2, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("values must be finite")
    lam = np.asarray(lambdas, dtype=float)
    if not np.all(np.isfinite(lam)):
        raise ValueError("lambdas must be finite")
    n = a.size // 2
    if math.comb(2 * n, n) > MAX_SUBSETS:
        raise ValueError(f"values has 2n={2 * n} entries: C(2n, n) > {MAX_SUBSETS} subsets to enumerate")
    total = a.sum()
    subsets = np.array(list(itertools.combinations(range(2 * n), n)), dtype=np.int64)
    train = a[subsets].sum(axis=1)
    diff = ((total - train) - train) / n
    return np.exp(np.multiply.outer(lam, diff)).mean(axis=-1)


# ---------------------------------------------------------------------------
# Gaps on a supersample (chapter 5)
# ---------------------------------------------------------------------------


def _flat_points(ss: Supersample) -> NDArray:
    if not isinstance(ss, Supersample):
        raise ValueError(f"ss must be a Supersample, got {type(ss).__name__}")
    flat = ss.flat()
    return flat.reshape(len(flat), -1).numpy().astype(np.float64)


def _block_distances(X: NDArray, L) -> list[NDArray]:
    """Per block, the (2n, 2n) squared distances between all supersample points, computed once.

    A fit on a training subset reads the same numbers a direct fit would compute, so the
    results are identical; every medoid is a supersample point, so the test losses too.
    """
    return [_sq_dist(X[:, b], X[:, b]) for b in block_partition(X.shape[1], L)]


def _one_split(Ds: list[NDArray], d: int, train: Sequence[int], K: int, swap_rounds: int):
    """Fit on the supersample points ``train`` (in supersample order); (output, train mean, test mean)."""
    train = np.array(sorted(int(i) for i in train))
    total = np.zeros(len(Ds[0]))
    output = []
    for D in Ds:
        local = _medoids_from_distances(D[np.ix_(train, train)], K, swap_rounds)
        chosen = train[sorted(local)]
        output.append(tuple(int(i) for i in chosen))
        total += D[:, chosen].min(axis=1)
    losses = total / d
    mask = np.zeros(len(losses), dtype=bool)
    mask[train] = True
    return tuple(output), float(losses[mask].mean()), float(losses[~mask].mean())


def permutation_gap(ss: Supersample, T, K: int, L: int, *, swap_rounds: int = 3) -> dict:
    """Train the k-medoids quantizer on the points T[:n] of ``ss``, test on the rest (chapter 5).

    The training points are passed in supersample order, so the result depends on T only
    through the set T({1..n}).

    Parameters
    ----------
    ss : Supersample
        The supersample X̃ (:func:`vqlib.bounds.make_supersample`), n pairs of images in [0, 1].
    T : array_like (2n,)
        A permutation of 0..2n−1, indices into ``ss.flat()``.
    K : int
        Medoids per block, 1 ≤ K ≤ n.
    L : int
        Number of blocks, 1 ≤ L ≤ d.
    swap_rounds : int, default 3
        Best-improvement swaps after the greedy build, ≥ 0.

    Returns
    -------
    dict
        ``train_loss``, ``test_loss`` (mean losses of the n training and n test points),
        ``gap`` (test − train) and ``output`` (per block, the tuple of the K medoids'
        indices in ``ss.flat()``).

    Raises
    ------
    ValueError
        When ``ss`` is not a Supersample, ``T`` is not a permutation of range(2n), ``K`` is
        outside 1..n, ``L`` outside 1..d or ``swap_rounds`` negative.

    See also
    --------
    exact_enumeration, monte_carlo_gap, vqlib.bounds.draw_permutation; chapter 5.
    """
    X = _flat_points(ss)
    T = np.asarray(T)
    if sorted(T.tolist()) != list(range(2 * ss.n)):
        raise ValueError(f"T must be a permutation of range({2 * ss.n})")
    K = _check_K(K, ss.n)
    Ds = _block_distances(X, L)
    key, train, test = _one_split(Ds, X.shape[1], T[: ss.n], K, _swap_rounds(swap_rounds))
    return {"train_loss": train, "test_loss": test, "gap": test - train, "output": key}


def _bounds(n: int, K: int, L: int, Delta: float) -> dict:
    cap = log_binomial_cap(n)
    counting = counting_information(n, K, L)
    return {
        "log_binomial_cap": cap,
        "cap_bound": permutation_bound(cap, n, Delta),
        "counting_information": counting,
        "counting_bound": permutation_bound(counting, n, Delta),
        "best_bound": permutation_bound(min(cap, counting), n, Delta),
    }


def exact_enumeration(ss: Supersample, K: int, L: int, *, swap_rounds: int = 3, Delta: float = 1.0) -> dict:
    """Everything exact on one supersample, by training on all C(2n, n) training sets (chapter 5).

    The permutation T enters only through the set of its first n entries, which is uniform
    over the C(2n, n) subsets, so averaging over the subsets is the exact expectation over
    T. The learner is deterministic and sees its training points as a set, so
    I^X̃(W; T) = H(W | X̃ = x̃): the entropy of the law of its outputs (compared exactly, as
    the tuples of medoid supersample indices per block).

    Parameters
    ----------
    ss : Supersample
        The supersample X̃ (:func:`vqlib.bounds.make_supersample`), n pairs of images in [0, 1].
    K : int
        Medoids per block, 1 ≤ K ≤ n.
    L : int
        Number of blocks, 1 ≤ L ≤ d.
    swap_rounds : int, default 3
        Best-improvement swaps after the greedy build, ≥ 0.
    Delta : float, default 1.0
        The loss range Δ (losses in [0, Δ]), > 0.

    Returns
    -------
    dict
        ``n``, ``supersample_seed``, ``K``, ``L``, ``exact_gap`` (E_T[test − train]),
        ``train_loss``, ``test_loss``, ``exact_information`` (nats), ``exact_bound``
        (Δ·sqrt(2 I/n)), ``distinct_outputs`` and the bounds
        ``log_binomial_cap``, ``cap_bound``, ``counting_information``, ``counting_bound`` and
        ``best_bound`` (the counting bound with the smaller of the two caps).

    Raises
    ------
    ValueError
        Naming ``n`` when C(2n, n) > 200 000; when ``ss`` is not a Supersample, ``K`` is outside
        1..n, ``L`` outside 1..d, ``swap_rounds`` negative or ``Delta`` not a finite number > 0.

    See also
    --------
    monte_carlo_gap, permutation_bound, counting_bound; chapter 5.
    """
    X = _flat_points(ss)
    n = ss.n
    if math.comb(2 * n, n) > MAX_SUBSETS:
        raise ValueError(f"n={n} is too large to enumerate C(2n, n) > {MAX_SUBSETS} training sets")
    K = _check_K(K, n)
    Ds = _block_distances(X, L)
    rounds = _swap_rounds(swap_rounds)
    Delta = positive_float(Delta, "Delta")
    outputs: Counter = Counter()
    trains, tests = [], []
    for subset in itertools.combinations(range(2 * n), n):
        key, train, test = _one_split(Ds, X.shape[1], subset, K, rounds)
        outputs[key] += 1
        trains.append(train)
        tests.append(test)
    counts = np.array(list(outputs.values()), dtype=float)
    p = counts / counts.sum()
    information = float(-(p * np.log(p)).sum())
    train_loss, test_loss = float(np.mean(trains)), float(np.mean(tests))
    return {
        "n": n, "supersample_seed": ss.supersample_seed, "K": K, "L": len(Ds),
        "exact_gap": float(np.mean(np.subtract(tests, trains))),
        "train_loss": train_loss, "test_loss": test_loss,
        "exact_information": information,
        "exact_bound": permutation_bound(information, n, Delta),
        "distinct_outputs": len(outputs),
        **_bounds(n, K, len(Ds), Delta),
    }


def monte_carlo_gap(ss: Supersample, K: int, L: int, *, mask_seeds: Sequence[int], swap_rounds: int = 3,
                    Delta: float = 1.0) -> dict:
    """E_T[test − train | X̃] estimated from one permutation per mask seed (chapter 5, bound vs n).

    Each permutation comes from :func:`vqlib.bounds.draw_permutation` with its own
    ``mask_seed``; the gap's standard error is std (ddof = 1) / √(number of permutations).

    Parameters
    ----------
    ss : Supersample
        The supersample X̃ (:func:`vqlib.bounds.make_supersample`), n pairs of images in [0, 1].
    K : int
        Medoids per block, 1 ≤ K ≤ n.
    L : int
        Number of blocks, 1 ≤ L ≤ d.
    mask_seeds : sequence of int
        One seed ≥ 0 per permutation; at least one.
    swap_rounds : int, default 3
        Best-improvement swaps after the greedy build, ≥ 0.
    Delta : float, default 1.0
        The loss range Δ (losses in [0, Δ]), > 0.

    Returns
    -------
    dict
        ``n``, ``supersample_seed``, ``K``, ``L``, ``n_permutations``, ``gap`` (the mean over
        permutations), ``gap_se`` (its standard error; NaN for one permutation),
        ``train_loss``, ``test_loss`` and the bounds
        ``log_binomial_cap``, ``cap_bound``, ``counting_information``, ``counting_bound`` and
        ``best_bound`` (the counting bound with the smaller of the two caps).

    Raises
    ------
    ValueError
        When ``ss`` is not a Supersample, ``K`` is outside 1..n, ``L`` outside 1..d,
        ``swap_rounds`` negative, ``Delta`` not a finite number > 0, or ``mask_seeds`` is empty
        or holds a value that is not an integer ≥ 0.

    See also
    --------
    gap_versus_n, exact_enumeration, permutation_gap; chapter 5.
    """
    X = _flat_points(ss)
    K = _check_K(K, ss.n)
    rounds = _swap_rounds(swap_rounds)
    Delta = positive_float(Delta, "Delta")
    seeds = _mask_seeds(mask_seeds)
    return _monte_carlo(ss, _block_distances(X, L), X.shape[1], K, rounds, seeds, Delta)


def _mask_seeds(mask_seeds) -> list[int]:
    seeds = [positive_int(s, "mask_seeds", minimum=0) for s in mask_seeds]
    if not seeds:
        raise ValueError("mask_seeds must not be empty")
    return seeds


def _monte_carlo(ss: Supersample, Ds: list[NDArray], d: int, K: int, rounds: int, seeds: list[int],
                 Delta: float) -> dict:
    n = ss.n
    trains, tests = [], []
    for seed in seeds:
        T = draw_permutation(n, mask_seed=seed)
        _, train, test = _one_split(Ds, d, T[:n], K, rounds)
        trains.append(train)
        tests.append(test)
    gaps = np.subtract(tests, trains)
    se = float(gaps.std(ddof=1) / math.sqrt(len(gaps))) if len(gaps) > 1 else float("nan")
    return {
        "n": n, "supersample_seed": ss.supersample_seed, "K": K, "L": len(Ds),
        "n_permutations": len(seeds), "gap": float(gaps.mean()), "gap_se": se,
        "train_loss": float(np.mean(trains)), "test_loss": float(np.mean(tests)),
        **_bounds(n, K, len(Ds), Delta),
    }


def gap_versus_n(x, ns: Sequence[int], K: int | Sequence[int], L: int, *, supersample_seeds: Sequence[int],
                 mask_seeds: Sequence[int], swap_rounds: int = 3, Delta: float = 1.0) -> list[dict]:
    """Tidy rows of :func:`monte_carlo_gap`, one per (K, n, supersample seed) (chapter 5, bound vs n).

    For each n and each supersample seed, draws X̃ with
    :func:`vqlib.bounds.make_supersample` from the images ``x`` and averages the gap
    over the permutations of ``mask_seeds``. The supersample's distances are computed once
    for all the values of K.

    Parameters
    ----------
    x : tensor or array (N, C, H, W)
        Images in [0, 1], 2n ≤ N for every n.
    ns : sequence of int
        Numbers of pairs, each ≥ 1; at least one.
    K : int or sequence of int
        One codebook size or a non-empty list of them, each in 1..n for every n.
    L : int
        Number of blocks, 1 ≤ L ≤ d.
    supersample_seeds : sequence of int
        Seeds of the supersamples; at least one.
    mask_seeds : sequence of int
        One seed ≥ 0 per permutation; at least one.
    swap_rounds : int, default 3
        Best-improvement swaps after the greedy build, ≥ 0.
    Delta : float, default 1.0
        The loss range Δ (losses in [0, Δ]), > 0.

    Returns
    -------
    list of dict
        The dicts of :func:`monte_carlo_gap`, in the order n, supersample seed, K.

    Raises
    ------
    ValueError
        When ``ns``, ``K``, ``supersample_seeds`` or ``mask_seeds`` is empty or holds a bad
        value, a K exceeds an n, ``L`` is outside 1..d, ``swap_rounds`` is negative, ``Delta``
        is not a finite number > 0, or :func:`vqlib.bounds.make_supersample` refuses ``x`` or n.

    See also
    --------
    monte_carlo_gap, counting_bound; chapter 5.
    """

    ns = [positive_int(n, "ns") for n in ns]
    if not ns:
        raise ValueError("ns must not be empty")
    Ks = [K] if isinstance(K, numbers.Integral) else list(K)
    if not Ks:
        raise ValueError("K must be an integer or a non-empty list of integers")
    supersample_seeds = list(supersample_seeds)
    if not supersample_seeds:
        raise ValueError("supersample_seeds must not be empty")
    rounds = _swap_rounds(swap_rounds)
    Delta = positive_float(Delta, "Delta")
    seeds = _mask_seeds(mask_seeds)
    rows = []
    for n in ns:
        checked = [_check_K(k, n) for k in Ks]
        for s in supersample_seeds:
            ss = make_supersample(x, n, supersample_seed=s)
            X = _flat_points(ss)
            Ds = _block_distances(X, L)
            rows.extend(_monte_carlo(ss, Ds, X.shape[1], k, rounds, seeds, Delta) for k in checked)
    return rows
