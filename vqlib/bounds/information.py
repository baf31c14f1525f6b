"""Discrete information measures and the confidence tools the bounds need.

This module serves chapters 2-4 of the book. Everything is in natural logarithms
(nats) and uses numpy only.

* Plug-in estimators for discrete statistics: :func:`entropy`, :func:`plugin_mi`,
  the first-order (Miller-Madow style) bias :func:`mi_bias` and the corrected
  estimate :func:`plugin_mi_corrected`.  These estimate the per-pair terms
  ``I(V_i; U_i)`` of the e-CMI / loss-difference CMI bounds from ``m`` draws of the
  mask ``U_i`` and of a discretised statistic ``V_i`` (see :func:`quantile_bins`).
* Checks on those estimates: the shuffled-mask null (:func:`shuffled_null`) and a
  percentile bootstrap (:func:`bootstrap_mi`).
* Divergences between categorical laws (:func:`kl_categorical`,
  :func:`kl_to_uniform`, :func:`categorical_entropy`) for the KL-to-prior terms of
  the latent-variable bounds.
* The binary kl and its inverses (:func:`kl_bernoulli`, :func:`kl_inverse_upper`,
  :func:`kl_inverse_lower`) behind the held-out test-set bound
  (:func:`vqlib.bounds.held_out.test_set_bound`), the practical reference every bound is compared with.

The bounds built from these measures live beside this module: :mod:`vqlib.bounds.cmi`
(mutual information to generalization bounds), :mod:`vqlib.bounds.held_out`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._checks import check_seed, fits_in_memory, positive_int, real_array, short, unit_float

__all__ = [
    "entropy",
    "plugin_mi",
    "mi_bias",
    "plugin_mi_corrected",
    "quantile_bins",
    "shuffled_null",
    "bootstrap_mi",
    "categorical_entropy",
    "kl_categorical",
    "kl_to_uniform",
    "kl_bernoulli",
    "kl_inverse_upper",
    "kl_inverse_lower",
]

#: Tolerance on the row sums of a categorical distribution.
SUM_TOL = 1e-6
#: Width to which the binary-kl inverses are bisected.
KL_INVERSE_TOL = 1e-12
#: Negative mutual-information values down to ``-MI_NEG_TOL`` are rounding noise.
MI_NEG_TOL = 1e-9


# ---------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------


def _as_labels(x: ArrayLike, name: str) -> NDArray:
    """Return ``x`` as a non-empty 1-D array of integer labels, or raise naming it."""
    if hasattr(x, "detach") and callable(x.detach):  # a torch tensor (one that requires grad is data too)
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError, OverflowError):  # ragged nested lists
        raise ValueError(f"{name} must be a 1-D array of labels, got a ragged sequence") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must hold integer labels, found NaN or inf")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer labels, found non-integral floats")
        return arr
    raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}")


def _encode(x: NDArray) -> tuple[NDArray, int]:
    """Map arbitrary labels to codes ``0..k-1``; return the codes and ``k``."""
    values, codes = np.unique(x, return_inverse=True)
    return codes.ravel(), int(values.size)


def _paired_codes(a: ArrayLike, b: ArrayLike) -> tuple[NDArray, int, NDArray, int]:
    """Validate two label arrays of equal length and encode both."""
    a_arr = _as_labels(a, "a")
    b_arr = _as_labels(b, "b")
    if a_arr.size != b_arr.size:
        raise ValueError(f"a and b have different lengths {a_arr.size} and {b_arr.size}")
    codes_a, k_a = _encode(a_arr)
    codes_b, k_b = _encode(b_arr)
    return codes_a, k_a, codes_b, k_b


def _unit_interval(x: ArrayLike, name: str) -> NDArray:
    """Return ``x`` as a float array with every entry in [0, 1], or raise naming it."""
    arr = real_array(x, name, finite=False, allow_empty=True, allow_bool=False)  # refuses complex and non-numbers
    if not np.all((arr >= 0.0) & (arr <= 1.0)):  # also rejects NaN
        raise ValueError(f"{name} must lie in [0, 1]")
    return arr


def _distribution(x: ArrayLike, name: str) -> NDArray:
    """Return ``x`` as categorical distributions along the last axis, or raise."""
    arr = real_array(x, name, finite=False, allow_empty=True, allow_bool=False)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty last axis, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    if np.any(arr < 0.0):
        raise ValueError(f"{name} must be non-negative")
    if not np.all(np.abs(arr.sum(axis=-1) - 1.0) <= SUM_TOL):
        raise ValueError(f"{name} must sum to 1 along the last axis (tolerance {SUM_TOL})")
    return arr


def _mi_values(x: ArrayLike, name: str) -> NDArray:
    """Return finite, non-negative MI values (tiny negatives clipped), or raise."""
    arr = real_array(x, name, finite=False, allow_empty=True, allow_bool=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    if np.any(arr < -MI_NEG_TOL):
        raise ValueError(f"{name} must be non-negative, found {arr.min()!r}")
    return np.maximum(arr, 0.0)


def _broadcast_shape(a: NDArray, b: NDArray, name_a: str, name_b: str) -> tuple:
    """The broadcast shape of two arrays, or a ValueError naming both."""
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{name_a} and {name_b} must broadcast together, got shapes {a.shape} and {b.shape}") from None


def _scalar_or_array(x: NDArray) -> float | NDArray:
    """Return a Python float for 0-d results and the array otherwise."""
    return float(x) if np.ndim(x) == 0 else x


# ---------------------------------------------------------------------------
# Plug-in entropy and mutual information (chapter 2)
# ---------------------------------------------------------------------------


def _entropy_from_counts(counts: NDArray) -> float:
    """Plug-in entropy -sum p log p of a vector of counts."""
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


def _mi_from_codes(codes_a: NDArray, k_a: int, codes_b: NDArray, k_b: int) -> float:
    """Plug-in MI of two code vectors, from their joint contingency table."""
    m = codes_a.size
    joint = np.bincount(codes_a * k_b + codes_b, minlength=k_a * k_b).reshape(k_a, k_b)
    n_a = joint.sum(axis=1, keepdims=True)
    n_b = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    n_ab = joint[nz].astype(float)
    expected = (n_a.astype(float) * n_b)[nz]
    mi = np.sum(n_ab * np.log(n_ab * m / expected)) / m
    return max(float(mi), 0.0)


def entropy(a: ArrayLike) -> float:
    """Plug-in (empirical) entropy of a 1-D integer array, in nats (chapter 2).

    ``H(a) = -sum_k p_k log p_k`` with ``p_k`` the empirical frequency of label
    ``k``.  Labels need not be ``0..k-1``.  The result lies in [0, log k] for k distinct
    labels; as an estimate of the entropy of the law it is biased low (Miller–Madow).

    Parameters
    ----------
    a : array (m,), integer labels
        Integer or bool dtype, or floats with integral values; non-empty.

    Returns
    -------
    float
        H(a) in nats, ≥ 0.

    Raises
    ------
    ValueError
        Naming ``a`` when it is not 1-D, is empty or ragged, or holds NaN, inf, non-integral
        floats or a non-numeric dtype.

    See also
    --------
    plugin_mi, categorical_entropy; chapter 2.
    """
    codes, _ = _encode(_as_labels(a, "a"))
    return _entropy_from_counts(np.bincount(codes))


def plugin_mi(a: ArrayLike, b: ArrayLike) -> float:
    """Plug-in mutual information of two label arrays, in nats (chapters 2-3).

    ``I(a; b) = sum_{x,y} p(x,y) log[p(x,y) / (p(x) p(y))]`` with ``p`` the empirical
    joint and marginal frequencies of the contingency table.  It estimates the
    per-pair term ``I(V_i; U_i)`` of the e-CMI / loss-difference CMI bounds from
    ``m`` draws of a discrete statistic ``V_i`` and the mask ``U_i``; it is biased
    upward by about :func:`mi_bias`.  It is at most min(log k_a, log k_b) for k_a and k_b
    distinct labels, so at most log 2 against a binary mask.

    Parameters
    ----------
    a, b : arrays (m,), integer labels
        1-D, non-empty, of equal length, holding integer labels (integer or bool dtype,
        or floats with integral values); labels are arbitrary.

    Returns
    -------
    float
        I(a; b) in nats.  Tiny negative rounding is clipped, so the result is ``>= 0``.

    Raises
    ------
    ValueError
        Naming ``a`` or ``b`` when it is not 1-D, empty, ragged or not integer labels, and
        when the two lengths differ.

    See also
    --------
    mi_bias, plugin_mi_corrected, shuffled_null, bootstrap_mi, quantile_bins; chapter 2, chapter 3.
    """
    codes_a, k_a, codes_b, k_b = _paired_codes(a, b)
    return _mi_from_codes(codes_a, k_a, codes_b, k_b)


def mi_bias(k_a: int, k_b: int, m: int) -> float:
    """First-order bias of the plug-in MI under independence (chapters 2–3).

    ``E[I_plugin] ~ (k_a - 1)(k_b - 1) / (2 m)`` for a ``k_a``-valued and a
    ``k_b``-valued variable observed ``m`` times (Miller-Madow applied to
    ``H(a) + H(b) - H(a, b)``; ``2 m I_plugin`` is asymptotically chi-square with
    ``(k_a - 1)(k_b - 1)`` degrees of freedom).  Against a binary mask this is
    ``(k - 1) / (2 m)``.  It is a first-order, large-m formula: at few masks the
    shuffled null (:func:`shuffled_null`) can lie above it.

    Parameters
    ----------
    k_a, k_b : int ≥ 1
        The numbers of values of the two variables.
    m : int ≥ 1
        The number of joint observations.

    Returns
    -------
    float
        (k_a − 1)(k_b − 1) / (2m), in nats.

    Raises
    ------
    ValueError
        Naming ``k_a``, ``k_b`` or ``m`` when it is not an integer ≥ 1.

    See also
    --------
    plugin_mi, plugin_mi_corrected, shuffled_null; chapter 2, chapter 3.
    """
    k_a = positive_int(k_a, "k_a")
    k_b = positive_int(k_b, "k_b")
    m = positive_int(m, "m")
    return (k_a - 1) * (k_b - 1) / (2.0 * m)


def plugin_mi_corrected(a: ArrayLike, b: ArrayLike) -> float:
    """Bias-corrected plug-in MI, ``max(0, I_plugin - mi_bias)`` (chapter 3).

    The bias uses the observed numbers of distinct values of ``a`` and ``b`` and
    the sample size ``m``: ``(k_a - 1)(k_b - 1) / (2 m)``.  The correction is first-order
    only (Miller–Madow); the result is an estimate, not a bound in either direction.

    Parameters
    ----------
    a, b : arrays (m,), integer labels
        As for :func:`plugin_mi`.

    Returns
    -------
    float
        max(0, I_plugin(a; b) − (k_a − 1)(k_b − 1) / (2m)), in nats.

    Raises
    ------
    ValueError
        As :func:`plugin_mi` does.

    See also
    --------
    plugin_mi, mi_bias; chapter 3.
    """
    codes_a, k_a, codes_b, k_b = _paired_codes(a, b)
    raw = _mi_from_codes(codes_a, k_a, codes_b, k_b)
    return max(0.0, raw - mi_bias(k_a, k_b, codes_a.size))


def quantile_bins(values: ArrayLike, n_bins: int) -> NDArray:
    """Discretise a continuous 1-D statistic into at most ``n_bins`` quantile bins (chapters 2–3).

    Chapter 3: loss differences are binned before estimating their MI with the
    binary mask, keeping the alphabet (and so the plug-in bias) small.  Bin edges
    are the empirical ``j / n_bins`` quantiles, ``j = 1..n_bins-1``; a value equal
    to an edge goes to the upper bin, so tied values always share a bin.  Duplicate
    edges (heavy ties) merge bins, and labels are renumbered ``0..k-1`` with
    ``k <= n_bins`` the number of non-empty bins, in increasing order of value.
    The bins are a function of the values alone, so by data processing
    I(bin(V); U) ≤ I(V; U); :func:`vqlib.bounds.cmi.pair_terms` adds the discretisation
    error so that the bound stays valid.

    Parameters
    ----------
    values : array (m,), finite real numbers
        The statistic, one value per draw (e.g. per mask).
    n_bins : int ≥ 1
        The largest number of bins.

    Returns
    -------
    array (m,), int64
        Bin labels in 0..k−1, k ≤ n_bins, increasing with the value.

    Raises
    ------
    ValueError
        Naming ``values`` when it is not a non-empty 1-D array of finite real numbers,
        ``n_bins`` when it is not an integer ≥ 1 or its edges would not fit in memory.

    See also
    --------
    plugin_mi, mi_bias, vqlib.bounds.cmi.pair_terms; chapter 2, chapter 3.
    """
    arr = real_array(values, "values", finite=False, allow_empty=True)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("values must be finite (found NaN or inf)")
    n_bins = positive_int(n_bins, "n_bins")
    # the n_bins − 1 quantile levels and their values, a few float64 arrays of that length
    fits_in_memory(48 * (n_bins - 1), f"quantile_bins with n_bins={short(n_bins)}", need="for its bin edges")
    edges = np.unique(np.quantile(arr, np.arange(1, n_bins) / n_bins))
    raw = np.searchsorted(edges, arr, side="right")
    return _encode(raw)[0]


# ---------------------------------------------------------------------------
# Checks on MI estimates (chapter 3)
# ---------------------------------------------------------------------------


def shuffled_null(
    a: ArrayLike, b: ArrayLike, n_shuffles: int = 200, seed: int = 0
) -> NDArray:
    """Plug-in MI of ``a`` against random permutations of ``b`` (chapters 2–3).

    The shuffled-mask null: permuting the mask keeps both marginals and destroys
    the dependence, so these values show the size of the plug-in bias and noise
    at this ``m`` and these alphabets.  An estimate inside this spread carries no
    evidence of information.  Each value is I_plugin(a; b∘π_r) for a uniform permutation π_r
    drawn by ``default_rng(seed)``; their mean is near :func:`mi_bias` when m is large.

    Parameters
    ----------
    a, b : arrays (m,), integer labels
        As for :func:`plugin_mi`; ``b`` (the mask) is permuted.
    n_shuffles : int ≥ 1, default 200
        The number of permutations.
    seed : int, default 0
        Seed of the permutations.

    Returns
    -------
    array (n_shuffles,), float
        The plug-in MI of each shuffle, in nats, each ≥ 0.

    Raises
    ------
    ValueError
        As :func:`plugin_mi` does, naming ``n_shuffles`` when it is not an integer ≥ 1 (or its values would
        not fit in memory) and ``seed`` when it is not an integer in [0, 2⁶³ − 1].

    See also
    --------
    plugin_mi, mi_bias, bootstrap_mi; chapter 2, chapter 3.
    """
    codes_a, k_a, codes_b, k_b = _paired_codes(a, b)
    n_shuffles = positive_int(n_shuffles, "n_shuffles")
    seed = check_seed(seed)
    # a float per shuffle, held in a list (about 32 bytes each) and then in the array
    fits_in_memory(40 * n_shuffles, f"shuffled_null with n_shuffles={short(n_shuffles)}", need="for its values")
    rng = np.random.default_rng(seed)
    return np.array(
        [_mi_from_codes(codes_a, k_a, rng.permutation(codes_b), k_b) for _ in range(n_shuffles)]
    )


def bootstrap_mi(
    a: ArrayLike,
    b: ArrayLike,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the plug-in MI (chapters 2–3).

    Resamples the ``m`` pairs ``(a_j, b_j)`` with replacement ``n_boot`` times and
    returns the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of the plug-in
    MI.  It shows sampling variability only: resampling adds its own upward
    bias, so for near-independent data the interval can sit above the plug-in
    estimate.  Use :func:`shuffled_null` to judge independence.  It is not a confidence
    interval for the true information (for certified values see
    :mod:`vqlib.bounds.certificates`).

    Parameters
    ----------
    a, b : arrays (m,), integer labels
        As for :func:`plugin_mi`.
    n_boot : int ≥ 1, default 200
        The number of resamples.
    seed : int, default 0
        Seed of the resampling.
    level : float in (0, 1), default 0.95
        The nominal coverage of the interval.

    Returns
    -------
    (low, high) : tuple of floats
        The two quantiles, in nats.

    Raises
    ------
    ValueError
        As :func:`plugin_mi` does, naming ``n_boot`` when it is not an integer ≥ 1 (or its values would
        not fit in memory), ``level`` when it is not in (0, 1) and ``seed`` when it is not an integer in
        [0, 2⁶³ − 1].

    See also
    --------
    plugin_mi, shuffled_null; chapter 2, chapter 3.
    """
    codes_a, k_a, codes_b, k_b = _paired_codes(a, b)
    n_boot = positive_int(n_boot, "n_boot")
    level = unit_float(level, "level", open_left=True, open_right=True)
    seed = check_seed(seed)
    fits_in_memory(8 * n_boot, f"bootstrap_mi with n_boot={short(n_boot)}", need="for its values")
    rng = np.random.default_rng(seed)
    m = codes_a.size
    stats = np.empty(n_boot)
    for r in range(n_boot):
        idx = rng.integers(0, m, size=m)
        stats[r] = _mi_from_codes(codes_a[idx], k_a, codes_b[idx], k_b)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)


# ---------------------------------------------------------------------------
# Categorical divergences (chapter 4)
# ---------------------------------------------------------------------------


def _row_entropy(p: NDArray) -> NDArray:
    """-sum p log p along the last axis, with 0 log 0 = 0 (no validation)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0.0, p * np.log(p), 0.0)
    return -terms.sum(axis=-1)


def categorical_entropy(p: ArrayLike) -> float | NDArray:
    """Entropy ``H(p) = -sum_k p_k log p_k`` along the last axis (chapter 4).

    ``0 log 0 = 0``.  Rows must be non-negative and sum to 1.  Used for the
    per-input entropy of an LV posterior and for code perplexity ``exp(H)``.
    Each value lies in [0, log K] for K categories.

    Parameters
    ----------
    p : array (..., K)
        Categorical distributions along the last axis: finite, ≥ 0, each row summing to 1
        within ``SUM_TOL`` (1e-6).

    Returns
    -------
    float or array (...)
        H(p) in nats, one per row; a float for a single distribution.

    Raises
    ------
    ValueError
        Naming ``p`` when it is 0-d or has an empty last axis, is not finite, has a negative
        entry or a row not summing to 1.

    See also
    --------
    kl_to_uniform, kl_categorical, entropy; chapter 4.
    """
    return _scalar_or_array(_row_entropy(_distribution(p, "p")))


def kl_categorical(p: ArrayLike, q: ArrayLike) -> float | NDArray:
    """``KL(p || q) = sum_k p_k log(p_k / q_k)`` in nats along the last axis (chapter 4).

    The KL-to-prior term of the latent-variable (data-dependent prior) bounds.
    Leading axes broadcast; ``0 log(0/q) = 0`` and the result is ``inf`` where
    some ``p_k > 0`` has ``q_k = 0``.  Rows of both arguments must be
    non-negative and sum to 1 within ``1e-6``.  KL ≥ 0 (Gibbs' inequality); rounding
    below 0 is clipped.

    Parameters
    ----------
    p : array (..., K)
        Posteriors (categorical distributions along the last axis).
    q : array (..., K)
        Priors, same K; leading axes broadcast with those of ``p``.

    Returns
    -------
    float or array (broadcast leading shape)
        KL(p ‖ q) in nats, ≥ 0, possibly ``inf``; a float for a single pair of rows.

    Raises
    ------
    ValueError
        Naming ``p`` or ``q`` when it is not a finite array of distributions (as
        :func:`categorical_entropy`), and when the numbers of categories differ.

    See also
    --------
    kl_to_uniform, categorical_entropy, vqlib.bounds.cmi.latent_kl_terms; chapter 4.
    """
    p_arr = _distribution(p, "p")
    q_arr = _distribution(q, "q")
    if p_arr.shape[-1] != q_arr.shape[-1]:
        raise ValueError(
            f"p and q have different numbers of categories {p_arr.shape[-1]} and {q_arr.shape[-1]}"
        )
    _broadcast_shape(p_arr, q_arr, "p", "q")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p_arr > 0.0, p_arr * (np.log(p_arr) - np.log(q_arr)), 0.0)
    return _scalar_or_array(np.maximum(terms.sum(axis=-1), 0.0))


def kl_to_uniform(p: ArrayLike) -> float | NDArray:
    """``KL(p || uniform_K) = log K - H(p)`` along the last axis (chapter 4).

    With the uniform LV prior this is the per-position KL term; summed over the
    ``L`` positions it is ``L log K - H`` per input, which does not shrink with
    ``n``.  Each value lies in [0, log K]; rounding below 0 is clipped.

    Parameters
    ----------
    p : array (..., K)
        Categorical distributions along the last axis (as for :func:`categorical_entropy`).

    Returns
    -------
    float or array (...)
        log K − H(p) in nats, one per row; a float for a single distribution.

    Raises
    ------
    ValueError
        Naming ``p`` as :func:`categorical_entropy` does.

    See also
    --------
    kl_categorical, categorical_entropy, vqlib.bounds.cmi.latent_kl_terms; chapter 4.
    """
    p_arr = _distribution(p, "p")
    kl = np.log(p_arr.shape[-1]) - _row_entropy(p_arr)
    return _scalar_or_array(np.maximum(kl, 0.0))


# ---------------------------------------------------------------------------
# Binary kl and its inverses, behind the held-out test-set bound (held_out.py; chapter 2 baseline)
# ---------------------------------------------------------------------------


def _binary_kl(q: NDArray, p: NDArray) -> NDArray:
    """Binary kl without validation; 0 log 0 = 0 and inf where the support fails."""
    with np.errstate(divide="ignore", invalid="ignore"):
        head = np.where(q > 0.0, q * (np.log(q) - np.log(p)), 0.0)
        tail = np.where(q < 1.0, (1.0 - q) * (np.log1p(-q) - np.log1p(-p)), 0.0)
    return np.maximum(head + tail, 0.0)


def kl_bernoulli(q: ArrayLike, p: ArrayLike) -> float | NDArray:
    """Binary kl, ``kl(q || p) = q log(q/p) + (1-q) log((1-q)/(1-p))`` (chapter 2).

    Vectorised with broadcasting; ``0 log 0 = 0``, so ``kl(0 || p) = -log(1-p)``
    and ``kl(1 || p) = -log p``; ``inf`` when ``p`` is 0 or 1 and ``q`` differs.
    Both arguments must lie in ``[0, 1]``.  It is the KL between Bernoulli(q) and
    Bernoulli(p), ≥ 2 (q − p)² by Pinsker, and the rate of the Chernoff bound behind
    :func:`vqlib.bounds.held_out.test_set_bound`.

    Parameters
    ----------
    q : float or array, values in [0, 1]
        The empirical mean (first argument).
    p : float or array, values in [0, 1]
        The true mean (second argument); broadcasts with ``q``.

    Returns
    -------
    float or array (broadcast shape)
        kl(q ‖ p) in nats, ≥ 0, possibly ``inf``.

    Raises
    ------
    ValueError
        Naming ``q`` or ``p`` when it holds a value outside [0, 1] (NaN included), a complex
        value or something that is not a number.

    See also
    --------
    kl_inverse_upper, kl_inverse_lower, vqlib.bounds.held_out.test_set_bound; chapter 2.
    """
    q_arr = _unit_interval(q, "q")
    p_arr = _unit_interval(p, "p")
    _broadcast_shape(q_arr, p_arr, "q", "p")
    return _scalar_or_array(_binary_kl(q_arr, p_arr))


def _kl_inverse_args(q: ArrayLike, c: ArrayLike) -> tuple[NDArray, NDArray]:
    """Validate and broadcast the arguments of the kl inverses."""
    q_arr = _unit_interval(q, "q")
    c_arr = real_array(c, "c", finite=False, allow_empty=True, allow_bool=False)
    if np.any(np.isnan(c_arr)) or np.any(c_arr < 0.0):
        raise ValueError("c must be >= 0 (and not NaN)")
    try:
        return np.broadcast_arrays(q_arr, c_arr)
    except ValueError:
        raise ValueError(f"q and c must broadcast together, got shapes {q_arr.shape} and {c_arr.shape}") from None


def _bisect(q: NDArray, c: NDArray, lo: NDArray, hi: NDArray, upper: bool) -> NDArray:
    """Bisect the monotone map p -> kl(q || p) on [lo, hi] for the level c."""
    lo, hi = lo.astype(float), hi.astype(float)  # astype copies
    for _ in range(200):
        if not np.any(hi - lo > KL_INVERSE_TOL):
            break
        mid = 0.5 * (lo + hi)
        inside = _binary_kl(q, mid) <= c
        if upper:
            lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
        else:
            lo, hi = np.where(inside, lo, mid), np.where(inside, mid, hi)
    return hi if upper else lo


def kl_inverse_upper(q: ArrayLike, c: ArrayLike) -> float | NDArray:
    """Largest ``p`` in ``[q, 1]`` with ``kl(q || p) <= c`` (chapter 2).

    ``p -> kl(q || p)`` increases on ``[q, 1]``, so bisection applies; it runs to
    width ``1e-12`` and returns the outer end, so the result is never below the
    exact inverse (a bound built on it stays valid).  ``c = 0`` gives ``q``;
    a large ``c`` gives 1.  Vectorised over broadcast ``q`` and ``c``;
    ``q`` must lie in ``[0, 1]`` and ``c >= 0``.  With q a mean of m losses in [0, 1] and
    c = log(1/δ)/m, kl⁻¹(q, c) bounds the true mean with probability ≥ 1 − δ.

    Parameters
    ----------
    q : float or array, values in [0, 1]
        The empirical mean.
    c : float or array, ≥ 0
        The level (``inf`` allowed); broadcasts with ``q``.

    Returns
    -------
    float or array (broadcast shape)
        The upper inverse, in [q, 1].

    Raises
    ------
    ValueError
        Naming ``q`` when it holds a value outside [0, 1] (NaN included), ``c`` when it is
        negative or NaN; either when it is complex or not a number.

    See also
    --------
    kl_inverse_lower, kl_bernoulli, vqlib.bounds.held_out.test_set_bound; chapter 2.
    """
    q_arr, c_arr = _kl_inverse_args(q, c)
    p = _bisect(q_arr, c_arr, q_arr, np.ones_like(q_arr), upper=True)
    return _scalar_or_array(np.where(c_arr == 0.0, q_arr, p))


def kl_inverse_lower(q: ArrayLike, c: ArrayLike) -> float | NDArray:
    """Smallest ``p`` in ``[0, q]`` with ``kl(q || p) <= c`` (chapter 2).

    Mirror of :func:`kl_inverse_upper`: bisection to width ``1e-12`` returning the
    outer (lower) end, so the result is never above the exact inverse.  ``c = 0`` gives
    ``q``; a large ``c`` gives 0.  ``p -> kl(q || p)`` decreases on ``[0, q]``.

    Parameters
    ----------
    q : float or array, values in [0, 1]
        The empirical mean.
    c : float or array, ≥ 0
        The level (``inf`` allowed); broadcasts with ``q``.

    Returns
    -------
    float or array (broadcast shape)
        The lower inverse, in [0, q].

    Raises
    ------
    ValueError
        As :func:`kl_inverse_upper` does.

    See also
    --------
    kl_inverse_upper, kl_bernoulli; chapter 2.
    """
    q_arr, c_arr = _kl_inverse_args(q, c)
    p = _bisect(q_arr, c_arr, np.zeros_like(q_arr), q_arr, upper=False)
    return _scalar_or_array(np.where(c_arr == 0.0, q_arr, p))
