"""Bounds on the expected generalization gap from a supersample experiment (chapters 2–4).

Every function here takes the per-pair numbers that a supersample run records across
masks (for one supersample X̃) and returns the per-pair bound terms; the runner
(:func:`vqlib.run_supersample`) averages them over pairs and supersamples.

Notation: for pair i, Δ_i = ℓ(W, X̃_{i,1}) − ℓ(W, X̃_{i,0}) ∈ [−1, 1] and the pair's
contribution to the gap is G_i = (−1)^{U_i} Δ_i (test minus train). All bounds follow
from one lemma (chapter 2): for V and a fair coin U, and g(V, U) = (−1)^U h(V),

    E[g] ≤ inf_{λ>0} ( I(V; U) + log E_V cosh(λ h(V)) ) / λ  ≤  sqrt(2 I(V;U)) · sup|h|,

by the Donsker–Varadhan inequality against the product of the marginals, under which
E[e^{λ g}] = E_V cosh(λ h(V)). The information is estimated with the plug-in estimator
on a discretised statistic b(V); the discretisation error E|Δ − b| is added, so the
discretisation never makes a bound smaller than it should be.

Also here: turning mutual-information values into generalization bounds
(:func:`sqrt_bound`, :func:`cmi_bound`, :func:`sample_cmi_bound`).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar

from .._checks import (
    binary_array,
    distributions,
    nonnegative_float,
    positive_float,
    positive_int,
    real_array,
    unit_array,
    unit_float,
)
from .information import _mi_values, _scalar_or_array, plugin_mi, quantile_bins

__all__ = ["dv_cosh_bound", "pair_terms", "latent_kl_terms", "sqrt_bound", "cmi_bound", "sample_cmi_bound"]


def dv_cosh_bound(information: float, values) -> float:
    """inf_{λ>0} (I + log mean cosh(λ v)) / λ for the sample ``values`` of h(V) (chapter 2).

    This is the Donsker–Varadhan bound on E[(−1)^U h(V)] with the exact cumulant
    generating function of the product measure; it is at most sqrt(2 I)·max|v|, and it
    shrinks with the spread of the values, which makes it informative when losses are
    much smaller than their range. ``information`` must be a finite number ≥ 0 and
    ``values`` a non-empty array of finite real numbers (else ``ValueError``).

    The lemma (chapter 2): for V and a fair coin U, E[(−1)^U h(V)] ≤ inf_λ (I(V;U) +
    log E_V cosh(λ h(V))) / λ, since under P_V ⊗ P_U, E[e^{λ(−1)^U h(V)}] = E_V cosh(λ h(V)).
    Here E_V is the mean over ``values`` (the sample's empirical law). The infimum over λ is
    found by a bounded scalar search around λ ≈ sqrt(2 I / mean v²); the result is never
    above the closed form sqrt(2 I)·max|v|, and values of extreme magnitude are rescaled by a
    power of two (the bound scales exactly with v).

    Parameters
    ----------
    information : float, finite, ≥ 0
        I(V; U) in nats (e.g. a plug-in estimate from :func:`pair_terms`).
    values : array (any shape, flattened), finite real numbers, non-empty
        Draws of h(V); only |v| matters (cosh is even).

    Returns
    -------
    float
        The bound, ≥ 0; 0 when ``information`` is 0 or every value is 0.

    Raises
    ------
    ValueError
        Naming ``information`` when it is not a finite number ≥ 0, ``values`` when it is
        empty, not finite, complex or not numbers.

    See also
    --------
    pair_terms, sqrt_bound; chapter 2.
    """
    information = nonnegative_float(information, "information")
    v = np.abs(real_array(values, "values", allow_bool=False).reshape(-1))
    top = float(v.max())
    if information == 0 or top == 0:
        return 0.0
    if not 2.0**-300 < top < 2.0**300:  # extreme magnitudes: the bound scales with v (exactly, by a power of 2)
        scale = math.ldexp(1.0, math.frexp(top)[1] - 1)
        return scale * min(dv_cosh_bound(information, v / scale), top / scale)  # E[g] ≤ max|v| too
    if math.isinf(2 * information):  # I ≥ log(2·len(v)): then the infimum is max|v| exactly
        return top

    def objective(log_lam: float) -> float:
        lam = math.exp(log_lam)
        # log mean cosh(λ v), stable for large λ v: log cosh(t) = t + log((1 + e^{-2t}) / 2)
        t = lam * v
        log_cosh = t + np.log1p(np.exp(-2 * t)) - math.log(2)
        m = log_cosh.max()
        return (information + m + math.log(np.mean(np.exp(log_cosh - m)))) / lam

    # The closed-form sub-Gaussian bound is always valid too: never report more than it.
    closed_form = math.sqrt(2 * information) * top
    # The minimiser lies near sqrt(2 I / E v²); search a wide bracket around it.
    ratio = 2 * information / max(float(np.mean(v**2)), 1e-300)
    if not 0 < ratio < math.inf:  # I below 1e-300 or above 1e300 times E v²: no bracket to search
        return min(closed_form, top)  # both valid (E[g] ≤ max|v|)
    centre = math.log(math.sqrt(ratio))
    res = minimize_scalar(objective, bounds=(centre - 12, centre + 12), method="bounded",
                          options={"xatol": 1e-10})
    return float(min(res.fun, closed_form)) if math.isfinite(res.fun) else closed_form


def _binned(values: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Quantile-bin labels and each value's bin mean (its representative)."""
    labels = quantile_bins(values, n_bins)
    means = np.zeros(labels.max() + 1)
    np.add.at(means, labels, values)
    means /= np.bincount(labels)
    return labels, means[labels]


def pair_terms(loss0, loss1, U, n_bins: int = 2) -> dict[str, float]:
    """Per-pair bound terms from m runs (masks) of one pair (chapter 2).

    ``loss0[m]``, ``loss1[m]``: the losses of the pair's two points in run m; ``U[m]``:
    the pair's mask bit in that run. Returns, for the loss-difference statistic
    (``ld_*``) and the pair of losses (``e_*``): the plug-in information ``*_mi`` of the
    binned statistic with U, the discretisation error ``*_err``, the range-1 bound
    ``*_sqrt`` = sqrt(2 I) + err and the cosh bound ``*_cosh`` = DV(I, b) + err.
    Losses must lie in [0, 1] and mask bits in {0, 1} (else ``ValueError``), so every
    information is at most log 2 and every bound term is ≥ 0.

    With Δ = loss1 − loss0 and G = (−1)^U Δ the pair's contribution to the gap (test minus
    train), a binned statistic B and a value b = b(B) ∈ [−1, 1] with E|Δ − b| = err give
    E[G] ≤ E[(−1)^U b] + err ≤ DV(I(B; U), b) + err ≤ sqrt(2 I(B; U)) + err. ``ld``: B the
    quantile bin of Δ (:func:`vqlib.bounds.information.quantile_bins`), b its bin mean; ``e``:
    B the pair of bins of loss0 and loss1, b = (bin mean of loss1) − (bin mean of loss0).
    These are plug-in **estimates** (I is estimated from the m masks of one supersample);
    certified values are in :mod:`vqlib.bounds.certificates`.

    Parameters
    ----------
    loss0, loss1 : arrays (m,), values in [0, 1]
        The losses ℓ(W_r, X̃_{i,0}) and ℓ(W_r, X̃_{i,1}) of run r = 1..m; m ≥ 2.
    U : array (m,), values in {0, 1}
        The pair's mask bit U_i in each run.
    n_bins : int ≥ 1, default 2
        The largest number of quantile bins per statistic.

    Returns
    -------
    dict of float
        Keys ``ld_mi``, ``ld_err``, ``ld_sqrt``, ``ld_cosh``, ``e_mi``, ``e_err``, ``e_sqrt``,
        ``e_cosh``; informations in nats.

    Raises
    ------
    ValueError
        When a loss lies outside [0, 1], a mask bit is not 0 or 1, the three arrays are not
        1-D of one length, m < 2, or ``n_bins`` is not an integer ≥ 1.

    See also
    --------
    dv_cosh_bound, latent_kl_terms, vqlib.bounds.information.plugin_mi, vqlib.run_supersample; chapter 2.
    """
    loss0 = unit_array(loss0, "loss0", allow_empty=True, allow_bool=False)
    loss1 = unit_array(loss1, "loss1", allow_empty=True, allow_bool=False)
    U = binary_array(U, "U", allow_empty=True)
    if not (loss0.shape == loss1.shape == U.shape) or loss0.ndim != 1:
        raise ValueError(f"loss0, loss1 and U must be 1-D of one length, got {loss0.shape}, {loss1.shape}, {U.shape}")
    if loss0.size < 2:
        raise ValueError("a pair needs at least 2 runs (masks) to estimate its information")
    n_bins = positive_int(n_bins, "n_bins")
    delta = loss1 - loss0
    out = {}
    # Loss difference: b(Δ) the bin mean of Δ.
    labels, rep = _binned(delta, n_bins)
    mi = plugin_mi(labels, U)
    err = float(np.mean(np.abs(delta - rep)))
    out.update(ld_mi=mi, ld_err=err, ld_sqrt=math.sqrt(2 * mi) + err, ld_cosh=dv_cosh_bound(mi, rep) + err)
    # Pair of losses: b(Λ) = (bin mean of ℓ0, bin mean of ℓ1), statistic b1 − b0.
    lab0, rep0 = _binned(loss0, n_bins)
    lab1, rep1 = _binned(loss1, n_bins)
    mi = plugin_mi(lab0 * (lab1.max() + 1) + lab1, U)
    err = float(np.mean(np.abs(delta - (rep1 - rep0))))
    out.update(e_mi=mi, e_err=err, e_sqrt=math.sqrt(2 * mi) + err, e_cosh=dv_cosh_bound(mi, rep1 - rep0) + err)
    return out


def latent_kl_terms(posteriors, reference=None, aggregated=None, eps: float = 0.01) -> dict[str, float]:
    """KL terms of the latent-variable bound for one pair (chapter 4).

    ``posteriors[m, b, l, k]``: in run m, the posterior q(k | X̃_{i,b}) at position l.
    Returns, averaged over runs, Σ_{b,l} KL(q_m ‖ π) for priors chosen without the mask:

    * ``kl_uniform``: π uniform, so the term is 2L log K − Σ H(q);
    * ``kl_marginal``: for run m, π_{b,l} = (1−ε)·(average of q_{m'}(· | X̃_{i,b})_l over the
      *other* runs m' ≠ m) + ε/K. The other runs use independent masks, so this prior is
      independent of run m's mask: a valid prior, and (leave-one-out) an estimate of the
      mask-marginal that is not biased towards the run it scores;
    * ``kl_reference`` (when ``reference[b, l, k]`` is given): π_{b,l} = (1−ε)·reference +
      ε/K, the posterior of a model trained without the supersample, smoothed so that a
      changed code costs log(K/ε) instead of infinity;
    * ``kl_aggregated`` (when ``aggregated[l, k]`` is given): π_{b,l} = (1−ε)·aggregated_l
      + ε/K, that model's posterior averaged over all 2n supersample points.

    Every posterior must be a probability vector over the K codes (finite, ≥ 0, summing
    to 1), as must ``reference`` and ``aggregated``; else ``ValueError``.

    Each term is E_m Σ_{b,l} KL(q_m(· | X̃_{i,b})_l ‖ π_{b,l}) with KL(q ‖ π) = Σ_k q_k log(q_k / π_k),
    clipped at 0 against rounding; the bound of chapter 4 holds for any prior chosen
    without the mask, which each of these priors is.

    Parameters
    ----------
    posteriors : array (m, 2, L, K), m ≥ 2
        Probability vectors over the K codes along the last axis (tolerance 1e-4).
    reference : array (2, L, K), optional
        The reference model's posteriors of the pair's two points.
    aggregated : array (L, K), optional
        The reference model's posterior averaged over the 2n supersample points.
    eps : float in (0, 1), default 0.01
        The smoothing weight ε of the uniform mixture.

    Returns
    -------
    dict of float
        ``kl_uniform`` and ``kl_marginal``, plus ``kl_reference`` and ``kl_aggregated`` when
        those priors are given; nats, each ≥ 0, summed over the pair's 2 points and L positions.

    Raises
    ------
    ValueError
        When ``posteriors`` is not of shape (m ≥ 2, 2, L ≥ 1, K) or not probability vectors,
        ``reference`` or ``aggregated`` has the wrong shape or is not probability vectors, or
        ``eps`` is not in (0, 1).

    See also
    --------
    pair_terms, vqlib.bounds.information.kl_categorical, vqlib.bounds.information.kl_to_uniform; chapter 4.
    """
    p = distributions(posteriors, "posteriors", allow_bool=False)
    if p.ndim != 4 or p.shape[0] < 2 or p.shape[1] != 2 or p.shape[2] < 1:
        raise ValueError(f"posteriors must have shape (runs ≥ 2, 2, L, K), got {p.shape}")
    eps = unit_float(eps, "eps", open_left=True, open_right=True)
    K = p.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        neg_entropy = np.where(p > 0, p * np.log(p), 0.0).sum(-1)  # (m, 2, L)

    def kl_to(prior: np.ndarray) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = np.where(p > 0, p * np.log(np.where(p > 0, prior, 1.0)), 0.0).sum(-1)
        return float(max((neg_entropy - cross).sum((1, 2)).mean(), 0.0))

    m = p.shape[0]
    leave_one_out = (p.sum(0, keepdims=True) - p) / (m - 1)
    out = {
        "kl_uniform": float(max((math.log(K) + neg_entropy).sum((1, 2)).mean(), 0.0)),  # ≥ 0 despite rounding
        "kl_marginal": kl_to((1 - eps) * leave_one_out + eps / K),
    }
    if reference is not None:
        ref = distributions(reference, "reference", allow_bool=False)
        if ref.shape != p.shape[1:]:
            raise ValueError(f"reference must have shape {p.shape[1:]}, got {ref.shape}")
        out["kl_reference"] = kl_to((1 - eps) * ref[None] + eps / K)
    if aggregated is not None:
        agg = distributions(aggregated, "aggregated", allow_bool=False)
        if agg.shape != p.shape[2:]:
            raise ValueError(f"aggregated must have shape {p.shape[2:]}, got {agg.shape}")
        out["kl_aggregated"] = kl_to((1 - eps) * agg[None, None] + eps / K)
    return out


def sqrt_bound(mi_values: ArrayLike, Delta: float = 1.0) -> float | NDArray:
    """Elementwise ``Delta * sqrt(2 I)`` (chapters 2-3).

    The per-pair term of the e-CMI / loss-difference CMI bounds for a loss with
    range ``Delta``.  ``mi_values`` must be finite and ``>= 0``; negatives down to
    ``-1e-9`` are rounding and are clipped to 0.  It is the sub-Gaussian form of the lemma:
    (−1)^U h(V) with |h| ≤ Delta gives E[g] ≤ Delta sqrt(2 I(V; U)), which
    :func:`dv_cosh_bound` never exceeds.

    Parameters
    ----------
    mi_values : float or array (any shape)
        Informations I in nats, finite, ≥ 0.
    Delta : float > 0, default 1.0
        The range of the loss.

    Returns
    -------
    float or array (same shape as ``mi_values``)

    Raises
    ------
    ValueError
        Naming ``mi_values`` when it is not finite or is below −1e-9, ``Delta`` when it is not
        a finite number > 0.

    See also
    --------
    cmi_bound, dv_cosh_bound, sample_cmi_bound; chapter 2, chapter 3.
    """
    mi = _mi_values(mi_values, "mi_values")
    Delta = positive_float(Delta, "Delta")
    return _scalar_or_array(Delta * np.sqrt(2.0 * mi))


def cmi_bound(mi_values: ArrayLike, Delta: float = 1.0) -> float:
    """Average per-pair CMI bound ``(1/n) sum_i Delta sqrt(2 I_i)`` (chapters 2-3).

    ``|gen| <= (1/n) sum_i E sqrt(2 I(V_i; U_i))`` for a loss in ``[0, Delta]``
    (times ``Delta``), with ``V_i`` the pair of outputs, of losses, or the loss
    difference.  The mean is taken over all entries of ``mi_values``: pass one
    value per pair, or per pair and supersample, since the expectation over the
    supersample sits outside the square root.  (The square root of an averaged
    MI is also valid, and larger, by Jensen.)

    Parameters
    ----------
    mi_values : array (n,) or (S, n), or any shape
        Per-pair informations I_i in nats (per pair, or per supersample and pair), finite, ≥ 0.
    Delta : float > 0, default 1.0
        The range of the loss.

    Returns
    -------
    float
        mean(Delta sqrt(2 I)) over all entries.

    Raises
    ------
    ValueError
        When ``mi_values`` is empty, not finite or below −1e-9, or ``Delta`` is not a finite
        number > 0.

    See also
    --------
    sqrt_bound, sample_cmi_bound, pair_terms; chapter 2, chapter 3.
    """
    mi = _mi_values(mi_values, "mi_values")
    if mi.size == 0:
        raise ValueError("mi_values must not be empty")
    return float(np.mean(sqrt_bound(mi, Delta)))


def sample_cmi_bound(cmi: float, n: int, Delta: float = 1.0) -> float:
    """Whole-sample bound ``Delta * sqrt(2 I / n)`` (chapters 2 and 4; chapter 5 for the permutation).

    For the supersample CMI ``I = I(W; U | X~)`` of ``n`` pairs, and for the
    permutation supersample with ``I = I(W; T | X~) <= log C(2n, n)``, where the
    train-minus-test mean is ``(Delta / sqrt(n))``-sub-Gaussian.  Then
    gen ≤ inf_λ (I + λ² Delta² / (2n)) / λ = Delta sqrt(2 I / n) for a loss in [0, Delta].
    With I the information given one supersample x̃, the mean of this bound over
    supersamples is E_X̃ Delta sqrt(2 I^X̃ / n), smaller (by Jensen) than the bound of the
    averaged information I(W; U | X̃); both are valid.

    Parameters
    ----------
    cmi : float, finite, ≥ 0
        The whole-sample information I in nats (down to −1e-9 is rounding, clipped to 0).
    n : int ≥ 1
        The number of pairs (training points).
    Delta : float > 0, default 1.0
        The range of the loss.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Naming ``cmi`` when it is not finite or is below −1e-9, ``n`` when it is not an integer
        ≥ 1, ``Delta`` when it is not a finite number > 0.

    See also
    --------
    cmi_bound, sqrt_bound, vqlib.bounds.supersample.draw_permutation; chapter 2, chapter 4, chapter 5.
    """
    value = float(_mi_values(cmi, "cmi"))
    n = positive_int(n, "n")
    Delta = positive_float(Delta, "Delta")
    try:
        return Delta * float(np.sqrt(2.0 * value / n))
    except OverflowError:  # n beyond float range: √(2I/n) from logarithms, which take integers of any size
        return 0.0 if value == 0 else Delta * math.exp(0.5 * (math.log(2.0) + math.log(value) - math.log(n)))

