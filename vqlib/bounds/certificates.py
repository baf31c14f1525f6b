"""Certified bounds: numbers that hold with probability ≥ 1 − δ over the experiment's own
randomness (chapter 2, "Certified numbers"; used again in chapters 4, 6 and 9).

A supersample experiment trains M models per supersample X̃_s, one per mask, and every
bound of chapters 2–6 is a functional of the law of what those runs record (losses,
latent posteriors) given X̃_s. A plug-in value from finitely many runs is an *estimate*
of such a bound, and may fall below it. This module turns the runs into *certified*
values: upper bounds on

    ḡ = (1/S) Σ_s E[gap | X̃_s]   (expectation over the mask and whatever else a run draws)

that hold, all of them at once, with probability ≥ 1 − δ over the runs. The recipe,
proved in chapter 2 (theorem ``thm-certified``):

1. **Split the masks.** The first ``fit_fraction`` of each supersample's runs (the *fit
   runs*) choose what the certificate needs: the bins and bin values of the discretised
   statistics, the prior of the mask-marginal LV bound and, with ``select``, which
   families are worth certifying. The other runs (the *estimation runs*) are then
   independent of every choice, given X̃ and the fit runs. A family that chooses nothing
   (the held-out value, an LV prior fixed in advance) estimates on every run when nothing
   was selected from the data.
2. **Information, per pair.** For a statistic b with k values fixed in advance, the laws
   of b given U = 0 and U = 1 lie in Clopper–Pearson boxes (:func:`clopper_pearson`,
   :func:`conditional_boxes`). On that event I(b; U) ≤ the largest Jensen–Shannon
   divergence over the boxes (:func:`max_information`) and E cosh(λ b) ≤ its largest
   value over the boxes (:func:`max_cosh_moment`); for two cells both are bounded jointly
   (:func:`cosh_bound_two_cells`).
3. **Means by betting.** Everything else is the mean of a bounded per-run quantity (the
   residual (−1)^U (Δ − b), the measured gap, a KL to a prior), certified by betting with
   a stake that depends on the candidate mean, fixed in advance (:func:`betting_ucb`), on
   the smallest range the book proves.
4. **Pay only for what is certified.** δ is split equally between the certified
   families, and within a family between its events; the union bound makes every value
   hold at once, so the smallest of them is certified too. Families that cannot be below 1
   (decided a priori, or on the fit runs alone) are reported as the trivial bound 1 and
   cost nothing.

Entry points: :func:`certify` (the values, the terms behind them, the δ allocation) and
:func:`certified_bounds` (just the values), which take arrays from any training code.
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp
from scipy.stats import beta as beta_distribution

from .._checks import (fits, fits_in_memory, flag, mapping, nonnegative_float, positive_int,
                       real_array, real_number, short, unit_float)

__all__ = [
    "CertificateWarning",
    "Certificate",
    "CERTIFIED_NAMES",
    "betting_ucb",
    "STAKE",
    "clopper_pearson",
    "conditional_boxes",
    "max_information",
    "check_cells",
    "max_cosh_moment",
    "cosh_bound_over_box",
    "cosh_bound_two_cells",
    "certify",
    "certified_bounds",
    "check_runs",
]

#: What each certified value bounds ḡ with (the names match ``SupersampleResult.bounds``).
CERTIFIED_NAMES = {
    "ld_cmi_cosh": "loss-difference CMI, cosh form",
    "ld_cmi": "loss-difference CMI, range 1 (√(2I))",
    "e_cmi_cosh": "e-CMI (pair of losses), cosh form",
    "e_cmi": "e-CMI (pair of losses), range 1 (√(2I))",
    "held_out": "held-out ghosts: the runs' mean gap plus a betting confidence term",
    "lv_uniform": "latent variables, uniform prior",
    "lv_marginal": "latent variables, prior: posterior averaged over the fit runs",
    "lv_reference": "latent variables, prior: posterior of a model trained off the supersample",
    "lv_aggregated": "latent variables, prior: that model's posterior aggregated over X̃",
    "lv_swap": "latent variables, prior: the swap-symmetric mixture of the reference posteriors (chapter 4)",
}

#: The λ grid of the cosh form (log-spaced); any λ is allowed once the boxes hold.
LAMBDAS = np.exp(np.linspace(math.log(1e-2), math.log(1e5), 241))
#: The stake of every betting bound, as a fraction of the largest one the candidate mean allows,
#: 1/(high − μ); fixed in advance (no pilot: on every run of the book the largest stake was best).
#: Below 1 so that one value at the top of its range costs log(100) nats of capital, not all of it.
STAKE = 0.99


class CertificateWarning(UserWarning):
    """A certificate came out vacuous only because the experiment has too few masks."""


# --------------------------------------------------------------------------- means by betting


def _check_delta(delta, name: str = "delta") -> float:
    return unit_float(delta, name, open_left=True, open_right=True)


def _log_capital(x: np.ndarray, mu: float, high: float, stake: float) -> float:
    """log K(μ) = Σ_j log(1 + λ(μ)(μ − X_j)) with λ(μ) = stake/(high − μ)."""
    if mu >= high:
        return math.inf if np.any(x < high) else x.size * math.log1p(-stake) if stake < 1 else -math.inf
    with np.errstate(divide="ignore"):  # stake 1 and a value at the top: a factor 0, capital 0
        return float(np.log1p(stake * (mu - x) / (high - mu)).sum())


def betting_ucb(values, *, low: float, high: float, delta: float, stake: float = STAKE) -> float:
    """Upper confidence bound on the average mean of independent values in [low, high] (chapter 2).

    Lemma ``lem-betting``. For independent X_1..X_J in [low, high] with means μ_j and
    μ̄ = (1/J) Σ μ_j, bet against each candidate mean μ with the stake λ(μ) = c/(high − μ),
    c = ``stake`` ∈ (0, 1] fixed in advance (the cap of Waudby-Smith & Ramdas, 2024):

        K(μ) = Π_j (1 + λ(μ)(μ − X_j)),     u = sup{μ ∈ [low, high] : K(μ) < 1/δ}.

    Every factor is ≥ 1 − c ≥ 0 (X_j ≤ high), and at μ = μ̄ the stake is a constant, so
    E K(μ̄) = Π_j (1 + λ(μ̄)(μ̄ − μ_j)) ≤ 1 by the AM–GM inequality (the factors average to 1);
    Markov's inequality gives P(μ̄ > u) ≤ δ. Each factor is non-decreasing in μ
    (d/dμ (μ − x)/(high − μ) = (high − x)/(high − μ)² ≥ 0), so u is found by bisection.

    The floor: even with every X_j = x the bound is x + (high − x)(δ^(−1/J) − 1)/c to first order,
    about (high − x) log(1/δ)/(cJ): it pays the distance from the mean to the top of the range,
    not the whole range. When even μ → high keeps K below 1/δ (too few values), the answer is
    ``high``: vacuous, never smaller.

    Parameters
    ----------
    values : array (J,), the independent values, in [low, high]
    low, high : float, the range (finite, low < high); proved, never fitted
    delta : float in (0, 1)
    stake : float in (0, 1], the fraction c of the largest stake 1/(high − μ) (default
        :data:`STAKE`, fixed in advance)

    Returns
    -------
    float, the bound u ∈ [mean of the values, high].

    Raises
    ------
    ValueError naming ``values`` (empty, NaN, or outside [low, high]), ``low``/``high``,
    ``delta`` or ``stake``.

    See also: :func:`certify`; chapter 2.
    """
    x = real_array(values, "values", allow_bool=False).reshape(-1)  # non-empty, finite real numbers
    low, high = real_number(low, "low"), real_number(high, "high")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"need finite low < high, got low={low!r}, high={high!r}")
    tol = 1e-12 * max(1.0, abs(low), abs(high))
    if np.any(x < low - tol) or np.any(x > high + tol):
        raise ValueError(f"values must lie in [{low}, {high}], found [{x.min()}, {x.max()}]")
    delta = _check_delta(delta)
    if isinstance(stake, bool) or not (isinstance(stake, (int, float)) and 0 < stake <= 1):
        raise ValueError(f"stake must be a fraction in (0, 1] of the largest stake 1/(high − μ), got {stake!r}")
    x = np.clip(x, low, high)
    target = math.log(1 / delta)
    width = high - low
    top = high - 1e-12 * width
    if _log_capital(x, top, high, stake) < target:
        return float(high)
    a, b = float(x.mean()), top  # K(mean) ≤ 1 by Jensen (log is concave), so the root lies above the mean
    for _ in range(200):
        mid = 0.5 * (a + b)
        if _log_capital(x, mid, high, stake) >= target:
            b = mid
        else:
            a = mid
        if b - a < 1e-13 * max(1.0, abs(b)):
            break
    return float(b)


# --------------------------------------------------------------------------- laws of a binned statistic


def clopper_pearson(counts, totals, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Clopper–Pearson interval for a binomial proportion, elementwise.

    ``counts`` successes out of ``totals`` trials; the interval misses the true
    proportion with probability ≤ δ (δ/2 on each side). A zero total gives [0, 1].
    """
    c = real_array(counts, "counts", allow_empty=True, allow_bool=False)
    N = real_array(totals, "totals", allow_empty=True, allow_bool=False)
    try:
        c, N = np.broadcast_arrays(c, N)
    except ValueError:
        raise ValueError(f"counts and totals must broadcast together, got shapes {c.shape} and {N.shape}") from None
    if np.any(c < 0) or np.any(c > N):
        raise ValueError("counts must lie between 0 and totals")
    delta = _check_delta(delta)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(c > 0, beta_distribution.ppf(delta / 2, c, N - c + 1), 0.0)
        hi = np.where(c < N, beta_distribution.ppf(1 - delta / 2, c + 1, N - c), 1.0)
    lo = np.where(N > 0, np.nan_to_num(lo, nan=0.0), 0.0)
    hi = np.where(N > 0, np.nan_to_num(hi, nan=1.0), 1.0)
    return lo, hi


def conditional_boxes(labels, U, k: int, free, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous boxes for the laws of a k-valued statistic given U = 0 and given U = 1.

    ``labels``, ``U``: (runs, pairs) arrays, the statistic's value in 0..k−1 and the mask
    bit of each pair in each estimation run. ``free`` (pairs,): per pair, one cell left
    unconstrained (chosen on the fit runs; its mass is fixed by the others). Every other
    cell's conditional probability gets a Clopper–Pearson interval at level
    δ / (2·(k − 1)·pairs), so with probability ≥ 1 − δ every true conditional law lies in
    its box. Returns ``lo``, ``hi`` of shape (pairs, 2, k).
    """
    labels = np.asarray(labels)
    U = np.asarray(U)
    n_pairs = labels.shape[1]
    counts = np.zeros((n_pairs, 2, k))
    for u in (0, 1):
        for j in range(k):
            counts[:, u, j] = ((labels == j) & (U == u)).sum(0)
    totals = counts.sum(-1, keepdims=True)
    per_cell = delta / (2 * max(k - 1, 1) * n_pairs)
    lo, hi = clopper_pearson(counts, np.broadcast_to(totals, counts.shape), per_cell)
    rows = np.arange(n_pairs)
    lo[rows, :, free] = 0.0
    hi[rows, :, free] = 1.0
    return lo, hi


def _vertices(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate vertices of {p in the simplex : lo ≤ p ≤ hi} along the last axis.

    A vertex has k − 1 coordinates at a bound and the last one fixed by Σ p = 1; returns
    the k·2^(k−1) candidates (..., V, k) and whether each is feasible (..., V).
    """
    k = lo.shape[-1]
    cands = []
    for free in range(k):
        others = [j for j in range(k) if j != free]
        for bits in itertools.product((0, 1), repeat=k - 1):
            p = np.empty(lo.shape)
            for j, bit in zip(others, bits):
                p[..., j] = hi[..., j] if bit else lo[..., j]
            p[..., free] = 1.0 - p[..., others].sum(-1)
            cands.append(p)
    V = np.stack(cands, axis=-2)
    tol = 1e-12
    ok = np.all((V >= lo[..., None, :] - tol) & (V <= hi[..., None, :] + tol), axis=-1)
    return np.clip(V, 0.0, 1.0), ok


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * (np.log(p) - np.log(np.where(q > 0, q, 1.0))), 0.0).sum(-1)


#: The most vertices per law the exact maximum of :func:`max_information` enumerates: a statistic
#: with k cells has k·2^(k−1) candidate vertices, 2304 at k = 9 (the pair of losses at n_bins = 3).
MAX_VERTICES = 2304
#: Pairs whose candidate vertices :func:`max_information` enumerates at once (k = 9: about 21 MB per law).
VERTEX_PAIRS = 16


#: The most cells a statistic may have: k·2^(k−1) ≤ MAX_VERTICES.
MAX_CELLS = 9


def check_cells(k: int, what: str = "the statistic") -> None:
    """Refuse, before allocating, a statistic whose boxes have too many vertices to enumerate.

    ``k`` of any size is answered at once (the count of vertices is never computed beyond k = 64).
    """
    k = positive_int(k, "k")
    if k > MAX_CELLS:
        count = str(k * 2 ** (k - 1)) if k <= 64 else "more than 2**63"
        raise ValueError(f"{what} has k={short(k)} cells, whose boxes have {count} candidate vertices per law "
                         f"(at most {MAX_VERTICES}, k ≤ {MAX_CELLS}): use fewer bins (n_bins ≤ 9 for the loss "
                         f"difference, n_bins ≤ 3 for the pair of losses, whose cells are n_bins²)")


def max_information(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The largest I(b; U), U a fair coin, over laws of b given U inside the boxes (chapter 2).

    ``lo``, ``hi``: (pairs, 2, k). I(b; U) is the Jensen–Shannon divergence
    ½ KL(p₀‖p̄) + ½ KL(p₁‖p̄) of the two conditional laws, a jointly convex function, so
    its largest value over the product of the two polytopes is reached at a pair of
    vertices; every pair of feasible vertices is tried, in blocks of bounded memory. Returns
    (pairs,), at most log 2. A ``ValueError`` (:func:`check_cells`) refuses k > 9 before
    allocating.
    """
    check_cells(lo.shape[-1])
    best = np.full(len(lo), -np.inf)
    for first in range(0, len(lo), VERTEX_PAIRS):  # the candidates of a few pairs at a time: bounded memory
        rows = slice(first, first + VERTEX_PAIRS)
        V0, ok0 = _vertices(lo[rows, 0], hi[rows, 0])  # (block of pairs, V, k)
        V1, ok1 = _vertices(lo[rows, 1], hi[rows, 1])
        for j in range(len(V0)):  # the feasible vertices only (most candidates are not), in blocks of ≤ 2^22 elements
            i = first + j
            p0 = np.unique(V0[j][ok0[j]], axis=0)
            p1 = np.unique(V1[j][ok1[j]], axis=0)
            block = max(1, (2 ** 22) // max(1, len(p1) * p0.shape[-1]))
            for start in range(0, len(p0), block):
                a = p0[start:start + block, None, :]
                mid = 0.5 * (a + p1[None])
                js = 0.5 * _kl_rows(a, mid) + 0.5 * _kl_rows(p1[None], mid)
                best[i] = max(best[i], float(js.max()))
    return np.minimum(best, math.log(2))


def _largest_mass_on(lo: np.ndarray, hi: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The law in the box that puts as much mass as possible on cells in ``order`` first.

    ``lo``, ``hi``: (pairs, k); ``order`` (pairs, k): cell indices, most wanted first. For
    a linear objective Σ p_j c_j whose coefficients follow ``order`` this is its maximiser
    over the box: start from ``lo`` and pour the remaining mass greedily.
    """
    p = lo.copy()
    rest = 1.0 - p.sum(-1)
    rows = np.arange(len(p))
    for position in range(order.shape[1]):
        j = order[:, position]
        add = np.minimum(hi[rows, j] - p[rows, j], np.maximum(rest, 0.0))
        p[rows, j] += add
        rest = rest - add
    return p


def max_cosh_moment(lo: np.ndarray, hi: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The law that maximises E cosh(λ b) over the boxes, for every λ at once.

    ``lo``, ``hi``: (pairs, 2, k) boxes of the laws of b given U; ``values`` (pairs, k): b's
    value on each cell. Under the product of marginals the law of b is ½(p₀ + p₁), and
    cosh(λ v) is increasing in |v| for every λ, so one greedy law per box (mass on the
    largest |v| first) maximises the moment at every λ. Returns that law, (pairs, k).
    """
    order = np.argsort(-np.abs(values), axis=-1, kind="stable")
    p0 = _largest_mass_on(lo[:, 0], hi[:, 0], order)
    p1 = _largest_mass_on(lo[:, 1], hi[:, 1], order)
    return 0.5 * (p0 + p1)


def _log_cosh(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    return t + np.log1p(np.exp(-2 * t)) - math.log(2)


#: Pairs whose λ grid :func:`cosh_bound_over_box` evaluates at once (k = 9: about 9 MB per array).
COSH_PAIRS = 512


def cosh_bound_over_box(information, law, values) -> np.ndarray:
    """min over the λ grid of (I + log Σ_j law_j cosh(λ v_j)) / λ, per pair (chapter 2).

    ``information`` (pairs,), ``law`` (pairs, k), ``values`` (pairs, k). The grid
    ``LAMBDAS`` is fixed; any λ is allowed, so the minimum over it is a valid bound
    (never below the exact infimum). Also never above √(2I)·max|v|, the sub-Gaussian form.
    """
    info = np.asarray(information, dtype=float)[:, None]
    with np.errstate(divide="ignore"):
        log_law = np.log(np.asarray(law, dtype=float))  # (pairs, k)
    v = np.asarray(values, dtype=float)
    best = np.empty(len(v))
    for first in range(0, len(v), COSH_PAIRS):  # a block of pairs at a time: (block, G, k), bounded memory
        rows = slice(first, first + COSH_PAIRS)
        lc = _log_cosh(LAMBDAS[None, :, None] * v[rows, None, :])  # (block, G, k)
        log_moment = logsumexp(log_law[rows, None, :] + lc, axis=-1)  # (block, G)
        objective = (info[rows] + np.maximum(log_moment, 0.0)) / LAMBDAS[None, :]
        best[rows] = objective.min(-1)
    top = np.abs(v).max(-1)
    return np.minimum(best, np.sqrt(2 * info[:, 0]) * top)


#: Subintervals of each side of a two-cell box on which :func:`cosh_bound_two_cells` bounds the objective.
EDGE_STEPS = 32
#: The λ grid of :func:`cosh_bound_two_cells`: every other point of :data:`LAMBDAS` (any grid is valid).
LAMBDAS_TWO_CELLS = LAMBDAS[::2]


def _js_two(q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """JS divergence of Bernoulli(q0) and Bernoulli(q1), elementwise."""
    m = 0.5 * (q0 + q1)

    def kl(p, q):
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(np.where(q > 0, q, 1.0))), 0.0)
            b = np.where(p < 1, (1 - p) * (np.log(np.where(p < 1, 1 - p, 1.0)) - np.log(np.where(q < 1, 1 - q, 1.0))),
                         0.0)
        return a + b

    return np.maximum(0.5 * kl(q0, m) + 0.5 * kl(q1, m), 0.0)


def cosh_bound_two_cells(lo: np.ndarray, hi: np.ndarray, values: np.ndarray,
                         information: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The cosh-form term of lemma ``lem-dv-coin`` over the boxes of a two-valued statistic, jointly (chapter 2).

    Lemma ``lem-box-joint``. With b ∈ {v₀, v₁} and q_u = P(b = v₁ | U = u) in an interval
    [a_u, c_u] (``lo``, ``hi``: (pairs, 2, 2) boxes of the two laws), bound

        sup over the box of  inf_λ ( JS(q₀, q₁) + log((1 − q̄) cosh λv₀ + q̄ cosh λv₁) ) / λ,   q̄ = (q₀ + q₁)/2,

    by inf_λ of the sup of the numerator over the box, divided by λ, instead of putting the
    largest information and the largest moment together (:func:`max_information`,
    :func:`max_cosh_moment`), which no single law in the box need reach. The sup is on the
    box's boundary: on each segment q₀ + q₁ = s the moment term is constant and JS is convex.
    Each side is cut into :data:`EDGE_STEPS` pieces; on a piece JS is at most its larger end
    value (convexity) and the moment term is monotone, so the sum of the two end maxima bounds
    the numerator there: an upper bound, never below the exact sup. ``information`` (a proved
    bound on I(b; U)) replaces JS where smaller. Returns (certified information, cosh term),
    each (pairs,); the cosh term is never above the separate form (:func:`cosh_bound_over_box`
    at the largest information and moment) nor √(2I)·max|v|.
    """
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    v = np.asarray(values, dtype=float)
    # P(cell 1 | U = u) lies in [a_u, c_u] whichever cell the box left free
    a = np.clip(np.maximum(lo[:, :, 1], 1 - hi[:, :, 0]), 0.0, 1.0)  # (pairs, 2)
    c = np.clip(np.minimum(hi[:, :, 1], 1 - lo[:, :, 0]), 0.0, 1.0)
    c = np.maximum(a, c)
    t = np.linspace(0.0, 1.0, EDGE_STEPS + 1)
    span0 = a[:, 0, None] + (c - a)[:, 0, None] * t  # (pairs, G + 1)
    span1 = a[:, 1, None] + (c - a)[:, 1, None] * t
    q0 = np.stack([np.broadcast_to(a[:, 0, None], span1.shape), np.broadcast_to(c[:, 0, None], span1.shape),
                   span0, span0], axis=1)  # (pairs, 4 sides, G + 1)
    q1 = np.stack([span1, span1, np.broadcast_to(a[:, 1, None], span0.shape),
                   np.broadcast_to(c[:, 1, None], span0.shape)], axis=1)
    js = _js_two(q0, q1)
    corners = _js_two(np.stack([a[:, 0], a[:, 0], c[:, 0], c[:, 0]], -1), np.stack([a[:, 1], c[:, 1], a[:, 1], c[:, 1]], -1))
    info = corners.max(-1)
    if information is not None:
        js, info = np.minimum(js, information), np.minimum(info, information)
    js_piece = np.maximum(js[..., :-1], js[..., 1:])  # (pairs, 4, G)
    qbar = 0.5 * (q0 + q1)
    out = np.empty(len(v))
    lc0 = _log_cosh(LAMBDAS_TWO_CELLS[None, :] * v[:, 0, None])  # (pairs, λ)
    ratio = _log_cosh(LAMBDAS_TWO_CELLS[None, :] * v[:, 1, None]) - lc0  # log(cosh λv₁ / cosh λv₀)
    # log((1 − q̄) cosh λv₀ + q̄ cosh λv₁) = log cosh λv₀ + log(1 + q̄ (e^ratio − 1)), monotone in q̄
    big = ratio > 30
    growth = np.expm1(np.where(big, 0.0, ratio))
    for start in range(0, len(v), 64):  # blocks of pairs: (block, 4, G + 1, λ) at most a few MB
        sl = slice(start, start + 64)
        qb = qbar[sl][..., None]  # (block, 4, G + 1, 1)
        with np.errstate(divide="ignore"):
            small_part = np.log1p(qb * growth[sl, None, None, :])
            big_part = ratio[sl, None, None, :] + np.log(qb) + np.log1p((1 - qb) * np.exp(-np.where(big, ratio, 0.0))[
                sl, None, None, :] / np.where(qb > 0, qb, 1.0))
        log_m = lc0[sl, None, None, :] + np.where(big[sl, None, None, :], np.where(qb > 0, big_part, 0.0), small_part)
        log_m = np.maximum(log_m, 0.0)
        m_piece = np.maximum(log_m[:, :, :-1], log_m[:, :, 1:])  # (block, 4, G, λ)
        numerator = (js_piece[sl][..., None] + m_piece).max((1, 2))  # (block, λ)
        out[sl] = (numerator / LAMBDAS_TWO_CELLS[None, :]).min(-1)
    # never above the separate form either (its λ grid is finer): both are upper bounds
    separate = cosh_bound_over_box(info, max_cosh_moment(lo, hi, v), v)
    return info, np.minimum(np.minimum(out, separate), np.sqrt(2 * info) * np.abs(v).max(-1))


# --------------------------------------------------------------------------- binned statistics


def _quantile_edges(fit_values: np.ndarray, n_bins: int) -> np.ndarray:
    """Per pair, the interior quantile edges of the fit runs' values: (pairs, n_bins − 1)."""
    if n_bins == 1:
        return np.zeros((fit_values.shape[1], 0))
    qs = np.arange(1, n_bins) / n_bins
    return np.quantile(fit_values, qs, axis=0).T


def _bin(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each (runs, pairs) value given per-pair edges (pairs, e): ties go up."""
    return (values[:, :, None] >= edges[None, :, :]).sum(-1)


def _bin_values(fit_values: np.ndarray, labels: np.ndarray, edges: np.ndarray, n_bins: int) -> np.ndarray:
    """Per pair and bin, the mean of the fit values in the bin (an edge if the bin is empty)."""
    n_pairs = fit_values.shape[1]
    reps = np.zeros((n_pairs, n_bins))
    lo_edge = np.concatenate([np.full((n_pairs, 1), -np.inf), edges], axis=1)
    hi_edge = np.concatenate([edges, np.full((n_pairs, 1), np.inf)], axis=1)
    for j in range(n_bins):
        inside = labels == j
        count = inside.sum(0)
        mean = np.where(count > 0, (fit_values * inside).sum(0) / np.maximum(count, 1), np.nan)
        fallback = np.where(np.isfinite(lo_edge[:, j]), lo_edge[:, j], hi_edge[:, j])
        fallback = np.where(np.isfinite(fallback), fallback, 0.0)
        reps[:, j] = np.where(count > 0, mean, fallback)
    return reps


@dataclass
class _Statistic:
    """A discretised statistic of every pair, fixed on the fit runs (chapter 2)."""

    k: int
    edges: list  # per loss the statistic bins: (pairs, n_bins − 1) quantile edges of the fit runs
    fit_labels: np.ndarray  # (fit runs, pairs)
    labels: np.ndarray  # (estimation runs, pairs)
    values: np.ndarray  # (pairs, k): the value h of each cell
    fit_error: np.ndarray  # (fit runs, pairs): |Δ − h| on the fit runs
    error: np.ndarray  # (estimation runs, pairs): |Δ − h| on the estimation runs
    fit_signed_error: np.ndarray  # (fit runs, pairs): Δ − h on the fit runs
    signed_error: np.ndarray  # (estimation runs, pairs): Δ − h on the estimation runs


def _binned_difference(fit_delta, est_delta, edges, n_bins) -> _Statistic:
    fit_labels, labels = _bin(fit_delta, edges), _bin(est_delta, edges)
    values = _bin_values(fit_delta, fit_labels, edges, n_bins)
    take = lambda lab: np.take_along_axis(values, lab.T, axis=1).T  # noqa: E731
    fit_err, err = fit_delta - take(fit_labels), est_delta - take(labels)
    return _Statistic(n_bins, [edges], fit_labels, labels, values, np.abs(fit_err), np.abs(err), fit_err, err)


def _fit_run_value(stat: _Statistic, U_fit) -> np.ndarray:
    """Per pair, the cosh-form bound estimated on the fit runs alone (bins and values fitted there too)."""
    on_fit = _Statistic(stat.k, stat.edges, stat.fit_labels, stat.fit_labels, stat.values, stat.fit_error,
                        stat.fit_error, stat.fit_signed_error, stat.fit_signed_error)
    _, cosh = _plug_in_pairs(on_fit, U_fit)
    return cosh + ((1 - 2 * U_fit) * stat.fit_signed_error).mean(0)


def _loss_difference(fit_delta, est_delta, n_bins, U_fit=None) -> _Statistic:
    """The binned loss difference of every pair, fixed on the fit runs (chapter 2).

    Bins: ``n_bins`` quantile bins of the fit runs' Δ. With two bins and the fit runs' mask bits
    ``U_fit``, each pair keeps whichever of two edges, the fit runs' median or 0 (the sign of Δ:
    which point of the pair has the larger loss), gives the smaller bound on the fit runs alone.
    """
    quantile = _binned_difference(fit_delta, est_delta, _quantile_edges(fit_delta, n_bins), n_bins)
    if n_bins != 2 or U_fit is None:
        return quantile
    sign = _binned_difference(fit_delta, est_delta, np.zeros((fit_delta.shape[1], 1)), n_bins)
    use = _fit_run_value(sign, U_fit) < _fit_run_value(quantile, U_fit)  # (pairs,)

    def pick(a, b, axis):  # per pair: a where the quantile edge is kept, b where the sign edge is
        shape = [1] * a.ndim
        shape[axis] = -1
        return np.where(use.reshape(shape), b, a)

    edges = pick(quantile.edges[0], sign.edges[0], 0)
    return _Statistic(n_bins, [edges], pick(quantile.fit_labels, sign.fit_labels, 1), pick(quantile.labels, sign.labels, 1),
                      pick(quantile.values, sign.values, 0), pick(quantile.fit_error, sign.fit_error, 1),
                      pick(quantile.error, sign.error, 1), pick(quantile.fit_signed_error, sign.fit_signed_error, 1),
                      pick(quantile.signed_error, sign.signed_error, 1))


def _pair_of_losses(fit_loss, est_loss, n_bins) -> _Statistic:
    parts, all_edges = [], []
    for b in (0, 1):
        edges = _quantile_edges(fit_loss[..., b], n_bins)
        fit_lab, lab = _bin(fit_loss[..., b], edges), _bin(est_loss[..., b], edges)
        parts.append((fit_lab, lab, _bin_values(fit_loss[..., b], fit_lab, edges, n_bins)))
        all_edges.append(edges)
    (f0, l0, r0), (f1, l1, r1) = parts
    k = n_bins * n_bins
    values = (r1[:, None, :] - r0[:, :, None]).reshape(len(r0), k)  # cell = bin0·n_bins + bin1
    fit_labels, labels = f0 * n_bins + f1, l0 * n_bins + l1
    take = lambda lab: np.take_along_axis(values, lab.T, axis=1).T  # noqa: E731
    fit_delta, est_delta = fit_loss[..., 1] - fit_loss[..., 0], est_loss[..., 1] - est_loss[..., 0]
    fit_err, err = fit_delta - take(fit_labels), est_delta - take(labels)
    return _Statistic(k, all_edges, fit_labels, labels, values, np.abs(fit_err), np.abs(err), fit_err, err)


# --------------------------------------------------------------------------- inputs


def _as_float_array(x, name: str) -> np.ndarray:
    """``x`` as finite float64 numbers: complex, strings, objects, booleans and NaN refused, naming ``name``."""
    return real_array(x, name, allow_empty=True, allow_bool=False)


def check_runs(losses, masks) -> tuple[np.ndarray, np.ndarray]:
    """``losses`` (S, M, n, 2) in [0, 1] and ``masks`` (S, M, n) of 0/1, or a ValueError naming the argument.

    Losses are real numbers (complex, strings, objects and booleans are refused, never cast); mask
    bits may be booleans. Tensors are detached.
    """
    loss = _as_float_array(losses, "losses")
    if loss.ndim != 4 or loss.shape[-1] != 2:
        raise ValueError(f"losses must have shape (S, M, n, 2) (supersamples, masks, pairs, the pair's two points), "
                         f"got {loss.shape}")
    if np.any(loss < 0) or np.any(loss > 1):
        raise ValueError(f"losses must lie in [0, 1] (a bounded loss), found values in [{loss.min()}, {loss.max()}]")
    U = real_array(masks, "masks", allow_empty=True)
    if U.shape != loss.shape[:3]:
        raise ValueError(f"masks must have shape {loss.shape[:3]} (S, M, n) to match losses, got {U.shape}")
    if not np.all((U == 0) | (U == 1)):
        raise ValueError("masks must hold only 0 and 1")
    if 0 in loss.shape:
        raise ValueError(f"losses must not be empty, got shape {loss.shape}")
    return loss, U.astype(np.int64)


def _check_posteriors(p, name: str, shape: tuple) -> np.ndarray:
    arr = _as_float_array(p, name)
    if arr.shape[: len(shape)] != shape or arr.ndim != len(shape) + 2:
        raise ValueError(f"{name} must have shape {shape} + (L, K), got {arr.shape}")
    if np.any(arr < 0) or np.any(np.abs(arr.sum(-1) - 1) > 1e-4):
        raise ValueError(f"{name} must hold probability vectors over the K codes (non-negative, summing to 1)")
    return arr


#: Bytes per (run, pair) that certify's loss families hold at once (losses, masks, their pooled copies,
#: the binned statistics and their residuals), measured with tracemalloc and rounded up.
RUN_BYTES = 400
#: Bytes per posterior entry (run, pair, point, position, code) the LV families hold at once (the input's
#: float64 copy, the pooled copy, and the KL's temporaries), measured likewise and rounded up.
POSTERIOR_BYTES = 56


def certify_bytes(S: int, M: int, n: int, n_bins: int = 2, families=("ld", "e", "held_out"),
                  posterior_shape: tuple | None = None) -> int:
    """About how many bytes :func:`certify` holds at once for S × M × n runs (its peak, from above).

    The loss families hold a few dozen float64 numbers per (run, pair) and, per pair, the λ grid of
    the cosh form in blocks; the LV families a few copies of the posteriors (S, M, n, 2, L, K).
    :func:`certify` refuses, before allocating, runs whose estimate exceeds this machine's memory.
    """
    pairs = S * n
    total = RUN_BYTES * M * pairs + 2**24  # and a margin for the blocks of the boxes and vertices
    cells = [k for fam, k in (("ld", n_bins), ("e", n_bins * n_bins)) if fam in families and k <= MAX_CELLS]
    if cells:
        k = max(cells)
        total += 6 * 8 * min(pairs, COSH_PAIRS) * LAMBDAS.size * k  # cosh_bound_over_box, one block
        total += 6 * 8 * min(pairs, VERTEX_PAIRS) * k * 2 ** (k - 1) * k  # max_information, one block
        total += 16 * 8 * pairs * k  # the boxes and counts (pairs, 2, k)
    if posterior_shape is not None:
        total += POSTERIOR_BYTES * math.prod(posterior_shape)
    return total


# --------------------------------------------------------------------------- the certificate


@dataclass
class Certificate:
    """The certified values of one experiment, and what they are made of (chapter 2).

    ``values``: name → an upper bound on ḡ = (1/S) Σ_s E[gap | X̃_s]; with probability
    ≥ ``confidence`` over the runs, every value holds at once. ``kinds``: name →
    ``"certified"`` or ``"exact"`` (data-free, e.g. an LV bound that is vacuous whatever
    the data). ``terms``: the certified pieces (information per pair, rounding errors,
    KL terms; nats or loss units). ``allocation``: the δ given to each event.
    ``plug_in``: the same bounds computed from the estimation runs with no confidence
    terms (estimates, for comparison). ``notes``: why a value is vacuous.
    """

    values: dict[str, float]
    kinds: dict[str, str]
    terms: dict[str, float]
    allocation: dict[str, float]
    plug_in: dict[str, float]
    confidence: float
    n_fit: int
    n_estimate: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in ("values", "kinds", "terms", "allocation", "plug_in", "confidence",
                                              "n_fit", "n_estimate", "notes")}


def _certified_pairs(stat: _Statistic, U_est, delta: float, information: float | None = None):
    """Per pair, the certified information and cosh-form term of one discretised statistic.

    With probability ≥ 1 − δ every pair's two conditional laws lie in their boxes; then
    I(b; U) ≤ ``info`` and the cosh-form term of lemma ``lem-dv-coin`` ≤ ``cosh``.
    """
    fit_freq = np.stack([(stat.fit_labels == j).sum(0) for j in range(stat.k)], axis=-1)  # (pairs, k)
    lo, hi = conditional_boxes(stat.labels, U_est, stat.k, fit_freq.argmax(-1), delta)
    if stat.k == 2:  # two cells: the information and the moment over the box jointly
        return cosh_bound_two_cells(lo, hi, stat.values, information)
    info = max_information(lo, hi)
    if information is not None:
        info = np.minimum(info, information)
    law = max_cosh_moment(lo, hi, stat.values)
    return info, cosh_bound_over_box(info, law, stat.values)


def _plug_in_pairs(stat: _Statistic, U_est, information=None):
    """The same bound terms with the estimation runs' frequencies in place of the boxes."""
    k = stat.k
    counts = np.zeros((stat.labels.shape[1], 2, k))
    for u in (0, 1):
        for j in range(k):
            counts[:, u, j] = ((stat.labels == j) & (U_est == u)).sum(0)
    tot = counts.sum(-1, keepdims=True)
    p = np.where(tot > 0, counts / np.maximum(tot, 1), 1.0 / k)
    mid = 0.5 * (p[:, 0] + p[:, 1])
    info = 0.5 * _kl_rows(p[:, 0], mid) + 0.5 * _kl_rows(p[:, 1], mid)
    if information is not None:
        info = np.minimum(info, information)
    return info, cosh_bound_over_box(info, mid, stat.values)


#: The families of certified values: each pays one share of δ and certifies the values it names.
FAMILIES = {
    "ld": ("ld_cmi_cosh", "ld_cmi"),
    "e": ("e_cmi_cosh", "e_cmi"),
    "held_out": ("held_out",),
    "lv_uniform": ("lv_uniform",),
    "lv_marginal": ("lv_marginal",),
    "lv_reference": ("lv_reference",),
    "lv_aggregated": ("lv_aggregated",),
}
#: The families whose certificate is fitted on the fit runs (bins, or the fit runs' prior).
_FITTED = ("ld", "e", "lv_marginal")


def certify(losses, masks, *, confidence: float = 0.95, n_bins: int = 2, fit_fraction: float = 0.1,
            posteriors=None, reference=None, decoder_information: float = math.log(2), eps: float = 0.01,
            information: float | None = None, kl_terms: dict | None = None, kl_ranges: dict | None = None,
            control=None, families=None, select: bool = True, warn: bool = True) -> Certificate:
    """Certified upper bounds on the expected gap from the runs of a supersample experiment (chapter 2).

    Theorem ``thm-certified`` (chapters 4 and 6 for the LV and stability bounds). With S
    supersamples X̃_s and M runs (masks and training) on each, every value holds, all at once,
    with probability ≥ ``confidence`` over the runs, as an upper bound on

        ḡ = (1/S) Σ_s E[gap | X̃_s],

    the expectation over the mask and whatever else is random in a run given X̃_s. (A training
    seed shared by every run, as in ``run_supersample(train_seed=0)``, is not random: then the
    target is E[gap | X̃_s, train_seed].) Works on the runs of any training code.

    Parameters
    ----------
    losses : array (S, M, n, 2) in [0, 1], the loss of run (s, m) at point X̃_{s,i,b}
    masks : array (S, M, n) of 0/1; run (s, m) trained on X̃_{s,i,U_{s,m,i}}. Masks are fair
        coins and runs are independent given the supersample.
    confidence : float in (0, 1); δ = 1 − confidence is split equally between the certified
        families, and within a family between its events (the ``allocation`` of the result).
    n_bins : int, quantile bins of the loss difference (``"ld"``), and per loss for the pair of
        losses (``"e"``, n_bins² cells; at most 3).
    fit_fraction : float in (0, 1), the share of each supersample's runs (the first
        ``ceil(fit_fraction·M)``) that fits the bins, the fit-run prior of ``lv_marginal`` and,
        with ``select``, which families are certified.
    posteriors : array (S, M, n, 2, L, K), optional: each run's LV posterior at each point, for the
        LV bounds with the uniform prior and the fit runs' average posterior.
    reference : array (S, n, 2, L, K), optional: the posterior of a model that never saw the
        supersample, for the reference and aggregated priors (smoothed by ``eps``).
    decoder_information : float ≥ 0, what the decoder and codebook may carry about each mask bit,
        paid inside every LV bound: log 2 (its largest value) when they were trained on the
        mask, 0 when frozen (chapters 3 and 4). From ½ on, every LV bound is ≥ 1 whatever the
        data: reported as 1.0, kind "exact", and paid no δ.
    information : float, optional: a proved, data-free upper bound on every pair's I(b; U)
        (chapter 6's stability bound), used in place of the certified information when smaller.
    kl_terms : dict name → (kl (S, M, n), high), optional: more LV priors fixed given the
        supersample (chapter 4's swap-symmetric mixture): each run's Σ_{b,l} KL to that prior at
        each pair, in the proved range [0, high]; certified as ``lv_<name>``.
    kl_ranges : dict prior → float, optional: a proved largest per-pair KL (Σ_{b,l}) to the
        prior ``"uniform"``, ``"marginal"``, ``"reference"`` or ``"aggregated"``, the range its
        betting bound pays (chapter 6's Corollary 3: 2Lκ_β for the softmax quantizer). Defaults:
        2L log K (uniform), 2L log(K/eps) (the smoothed priors). A run whose KL exceeds its range
        is a ``ValueError``: the range is a theorem, never clipped.
    control : array (S, n), optional: a loss difference per pair fixed given the supersample
        (chapter 4's reference model); the held-out value then bets on the runs' gaps minus
        (−1)^U·control, which have the same mean and a much smaller spread.
    families : iterable of str, optional: the families to certify, fixed in advance (default:
        every one the inputs allow); names in :data:`FAMILIES` or ``"lv_<name>"`` of ``kl_terms``.
    select : bool. True: a family whose estimate on the fit runs alone is ≥ 1 is not certified
        (it is reported as the trivial bound 1, kind "exact", and pays no δ), and every family
        estimates on the other runs. False: every family asked for is certified, and those that
        fit nothing (held-out, LV priors fixed in advance) estimate on all M runs.
    warn : bool, a :class:`CertificateWarning` for a value that is 1 only for lack of masks.

    Returns
    -------
    Certificate: ``values`` (name → bound, capped at 1: a gap of losses in [0, 1] never exceeds 1),
    ``kinds``, ``terms``, ``allocation`` (the δ of every event), ``plug_in`` (estimates), ``notes``.

    Raises
    ------
    ValueError naming the argument: shapes that do not match, losses outside [0, 1], masks not
    0/1, NaN, fewer than 2 runs per supersample, an unknown family, a KL above its range, a
    statistic with too many cells (:func:`check_cells`).

    See also: :func:`certified_bounds`, :func:`betting_ucb`, :func:`max_information`; chapter 2
    (``thm-certified``), chapters 4, 6 and 9.
    """
    options = dict(confidence=confidence, n_bins=n_bins, fit_fraction=fit_fraction, posteriors=posteriors,
                   reference=reference, decoder_information=decoder_information, eps=eps, information=information,
                   kl_terms=kl_terms, kl_ranges=kl_ranges, control=control, families=families, select=select)
    loss, U = check_runs(losses, masks)
    warn = flag(warn, "warn")
    cert = _certify(loss, U, **options)
    _explain_vacuous(cert, loss, U, options, warn=warn)
    return cert


def _real_option(value, name: str, what: str, ok, says: str | None = None) -> float:
    """A scalar option as a float: a real number (not a bool, not beyond float), finite, with ``ok(value)``."""
    value = real_number(value, name) if not isinstance(value, (bool, np.bool_)) else value
    if isinstance(value, (bool, np.bool_)) or not math.isfinite(value) or not ok(value):
        raise ValueError(f"{name} {says or 'must be ' + what}, got {short(value)}")
    return value


def _family_names(families) -> list[str]:
    """``families`` (a name or an iterable of names) as a list without repeats, or a ValueError naming it."""
    if isinstance(families, str):
        families = [families]
    try:
        names = list(families)
    except TypeError:
        raise ValueError(f"families must be a list of family names, got {short(families)}") from None
    if not all(isinstance(f, str) for f in names):
        raise ValueError(f"families must be a list of family names (strings), got {short(names)}")
    if not names:
        raise ValueError("families must name at least one family to certify, got none")
    return list(dict.fromkeys(names))


def _kl_sum(p, prior) -> np.ndarray:
    """Σ_{b,l} KL(p ‖ prior) over the last three axes (point of the pair, position, code)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(prior)), 0.0)
    return np.maximum(t.sum((-1, -2, -3)), 0.0)


def _certify(losses, masks, *, confidence, n_bins, fit_fraction, posteriors, reference, decoder_information, eps,
             information, kl_terms=None, kl_ranges=None, control=None, families=None, select=True,
             reserve_families: int = 0) -> Certificate:
    loss, U = check_runs(losses, masks)
    confidence = unit_float(confidence, "confidence", open_left=True, open_right=True)
    n_bins = positive_int(n_bins, "n_bins")
    fit_fraction = unit_float(fit_fraction, "fit_fraction", open_left=True, open_right=True)
    select = flag(select, "select")
    decoder_information = nonnegative_float(decoder_information, "decoder_information")
    if information is not None:
        information = _real_option(information, "information", "a finite number ≥ 0 (a proved bound on I(b; U))",
                                   lambda v: v >= 0)
    S, M, n, _ = loss.shape
    if M < 2:
        raise ValueError(f"masks must hold at least 2 runs per supersample (one to fit the bins, one to estimate), "
                         f"got M = {M}")
    m_fit = min(max(1, math.ceil(fit_fraction * M)), M - 1)
    delta = 1.0 - confidence
    post = ref = None
    if posteriors is not None:
        post = _check_posteriors(posteriors, "posteriors", (S, M, n, 2))
    if reference is not None:
        if post is None:
            raise ValueError("reference needs posteriors (the runs' own posteriors) as well")
        ref = _check_posteriors(reference, "reference", (S, n, 2))
        if ref.shape[-2:] != post.shape[-2:]:
            raise ValueError(f"reference must have (L, K) = {post.shape[-2:]}, got {ref.shape[-2:]}")
    eps = _real_option(eps, "eps", "a number in (0, 1)", lambda v: 0 < v < 1, "must lie in (0, 1)")
    extra = {}
    for name, term in mapping(kl_terms, "kl_terms").items():
        if not isinstance(name, str):
            raise ValueError(f"kl_terms names must be strings (the prior's name, certified as lv_<name>), got "
                             f"{short(name)}")
        try:
            kl, high = term
        except (TypeError, ValueError):
            raise ValueError(f"kl_terms[{name!r}] must be a pair (kl of shape {(S, M, n)}, high), got "
                             f"{type(term).__name__}") from None
        high = _real_option(high, f"kl_terms[{name!r}] high", "a finite number > 0", lambda v: v > 0)
        kl = _as_float_array(kl, f"kl_terms[{name!r}]")
        if kl.shape != (S, M, n):
            raise ValueError(f"kl_terms[{name!r}] must have shape {(S, M, n)}, got {kl.shape}")
        if np.any(kl < -1e-9) or np.any(kl > high * (1 + 1e-9) + 1e-12):
            raise ValueError(f"kl_terms[{name!r}] must lie in [0, high] with a finite high > 0 "
                             f"(high={high!r}, values in [{kl.min()}, {kl.max()}])")
        extra[name] = (np.clip(kl, 0, high), float(high))
    ranges = {}
    for name, high in mapping(kl_ranges, "kl_ranges").items():
        if not isinstance(name, str) or name not in ("uniform", "marginal", "reference", "aggregated"):
            raise ValueError(f"kl_ranges has an unknown prior {short(name)}: use uniform, marginal, reference or "
                             f"aggregated")
        ranges[name] = _real_option(high, f"kl_ranges[{name!r}]", "a finite number > 0", lambda v: v > 0)
    c = np.zeros((S, n))
    if control is not None:
        c = _as_float_array(control, "control")
        if c.shape != (S, n) or np.any(np.abs(c) > 1):
            raise ValueError(f"control must have shape {(S, n)} with values in [−1, 1], got shape {c.shape}")

    # which families the inputs allow, and which are asked for
    lv_priors = []
    if post is not None:
        lv_priors += ["uniform", "marginal"]
        if ref is not None:
            lv_priors += ["reference", "aggregated"]
    lv_priors += [name for name in extra if name not in lv_priors]
    allowed = ["ld", "e", "held_out", *(f"lv_{p}" for p in lv_priors)]
    if families is None:
        wanted = list(allowed)
    else:
        wanted = _family_names(families)
        unknown = [f for f in wanted if f not in allowed]
        if unknown:
            raise ValueError(f"families {unknown} are not among those these inputs allow: {allowed}")
    if "e" in wanted:
        check_cells(n_bins * n_bins, f"the pair of losses (n_bins={short(n_bins)})")
    if "ld" in wanted:
        check_cells(n_bins, f"the loss difference (n_bins={short(n_bins)})")
    post_shape = None if post is None else post.shape
    fits_in_memory(certify_bytes(S, M, n, n_bins, wanted, post_shape),
                   f"certify on S={S}, M={M}, n={n} runs" + ("" if post is None else
                                                              f" with posteriors of (L, K) = {post.shape[-2:]}"),
                   need="of working memory")

    # pairs of every supersample side by side: (runs, S·n)
    def pool(a, runs):
        a = a[:, runs]
        return np.moveaxis(a, 0, 1).reshape(a.shape[1], S * n, *a.shape[3:])

    def per_run(a):  # (runs, S·n) -> (runs·S,): mean over each run's n pairs
        r = a.shape[0]
        return a.reshape(r, S, n).mean(-1).reshape(-1)

    fit, est, every = slice(0, m_fit), slice(m_fit, M), slice(0, M)
    fit_loss, est_loss = pool(loss, fit), pool(loss, est)
    U_fit, U_est = pool(U, fit), pool(U, est)
    m_est = M - m_fit

    values, kinds, terms, allocation, plug, notes = {}, {}, {}, {}, {}, []
    lv_vacuous = decoder_information >= 0.5  # √(2(KL + slack)) ≥ 1 whatever the KL
    # a deterministic quantizer, told by the fit runs: one-hot posteriors cost 2L log K to the uniform prior
    one_hot = post is not None and bool(np.all((post[:, fit] == 0) | (post[:, fit] == 1)))

    def trivial(family, why):
        for key in FAMILIES.get(family, (family,)):
            values[key], kinds[key] = 1.0, "exact"
        notes.append(f"{family}: not certified ({why}); reported as the trivial bound 1, which every gap of a "
                     f"loss in [0, 1] satisfies, and paid no δ.")

    # -- every family's ingredients, its estimate on the fit runs, and its range ----------------------
    fit_delta, est_delta = fit_loss[..., 1] - fit_loss[..., 0], est_loss[..., 1] - est_loss[..., 0]
    stats = {}
    for fam, build in (("ld", _loss_difference), ("e", _pair_of_losses)):
        if fam in wanted:
            stats[fam] = build(fit_delta, est_delta, n_bins, U_fit) if fam == "ld" else build(fit_loss, est_loss, n_bins)
    kl_runs = {}  # family -> (KL of every run (M, S·n), range, cap)
    if post is not None:
        L, K = post.shape[-2:]
        all_post = pool(post, every)  # (M, S·n, 2, L, K)
        smooth = lambda q: (1 - eps) * q + eps / K  # noqa: E731
        top = 2 * L * math.log(K / eps)  # the most a prior smoothed by ε can cost a pair
        uniform_cap = 2 * L * math.log(K)  # KL to the uniform prior never exceeds the alphabet
        priors = {"uniform": np.full((1, 1, 1, 1, K), 1.0 / K),
                  "marginal": smooth(all_post[fit].mean(0, keepdims=True))}
        if ref is not None:
            priors["reference"] = smooth(ref.reshape(S * n, 2, L, K)[None])
            agg = np.repeat(ref.mean((1, 2)), n, axis=0)  # (S·n, L, K): each supersample's average
            priors["aggregated"] = smooth(agg[None, :, None])
        for name, prior in priors.items():
            if f"lv_{name}" not in wanted or name in extra:
                continue
            kl = _kl_sum(all_post, prior)  # (M, S·n)
            high = ranges.get(name, uniform_cap if name == "uniform" else top)
            worst = float(kl.max())
            if worst > high * (1 + 1e-9) + 1e-12:
                raise ValueError(f"kl_ranges[{name!r}] = {high!r} is not a range of the KL to the {name} prior: a run "
                                 f"has a per-pair KL of {worst!r}")
            kl_runs[f"lv_{name}"] = (np.clip(kl, 0.0, high), high)
    for name, (kl, high) in extra.items():
        if f"lv_{name}" in wanted:
            kl_runs[f"lv_{name}"] = (pool(kl, every), high)

    def fit_estimate(fam) -> float:
        """The family's smallest value, estimated on the fit runs alone (what ``select`` reads)."""
        if fam in stats:
            st = stats[fam]
            st_fit = _Statistic(st.k, st.edges, st.fit_labels, st.fit_labels, st.values, st.fit_error, st.fit_error,
                                st.fit_signed_error, st.fit_signed_error)
            _, p_cosh = _plug_in_pairs(st_fit, U_fit, information)
            return float(p_cosh.mean() + ((1 - 2 * U_fit) * st.fit_signed_error).mean())
        if fam == "held_out":
            return float(per_run((1 - 2 * U_fit) * (fit_delta - c.reshape(1, S * n))).mean())
        kl, _ = kl_runs[fam]
        if fam == "lv_marginal":  # its prior is the fit runs' mean: score each fit run against the others'
            if m_fit < 2:
                return 0.0  # one fit run cannot tell: certify it
            fit_post = all_post[fit]
            others = (fit_post.sum(0, keepdims=True) - fit_post) / (m_fit - 1)
            kl = _kl_sum(fit_post, (1 - eps) * others + eps / post.shape[-1])
            return math.sqrt(2 * (float(kl.mean()) + decoder_information))
        return math.sqrt(2 * (float(kl[fit].mean()) + decoder_information))

    certified = []
    for fam in wanted:
        if fam.startswith("lv_") and lv_vacuous:
            trivial(fam, f"the decoder and codebook may carry up to {decoder_information:.3f} nats per pair (≥ ½), so "
                         "√(2(KL + that)) ≥ 1 whatever the data")
        elif fam == "lv_uniform" and one_hot:
            trivial(fam, f"the fit runs' posteriors are one-hot (a deterministic quantizer), so a pair's KL to the "
                         f"uniform prior is 2L log K = {2 * post.shape[-2] * math.log(post.shape[-1]):.2f} nats ≥ ½")
        elif select and fit_estimate(fam) >= 1:
            trivial(fam, f"its estimate on the {m_fit} fit runs per supersample is {fit_estimate(fam):.3f} ≥ 1")
        else:
            certified.append(fam)
    d_family = delta / max(1, len(certified) + reserve_families)
    # the runs each family estimates on: never the fit runs when they chose anything for it
    runs_of = {fam: est if (select or fam in _FITTED) else every for fam in certified}

    # -- loss difference and pair of losses -----------------------------------------------------------
    for fam in ("ld", "e"):
        if fam not in certified:
            continue
        stat = stats[fam]
        J = S * m_est
        info, cosh = _certified_pairs(stat, U_est, d_family / 2, information)
        d_err = d_family / 2
        # |Δ − h| ≤ 1 + |h|: a run's mean over its supersample's pairs is at most 1 + that mean of max |h|
        err_hi = 1.0 + float(np.abs(stat.values).max(-1).reshape(S, n).mean(-1).max())
        # the signed residual (−1)^U (Δ − h(b)): its mean is the gap of what the bins do not capture
        residual = per_run((1 - 2 * U_est) * stat.signed_error)
        err = betting_ucb(residual, low=-err_hi, high=err_hi, delta=d_err)
        allocation[f"{fam}_boxes"] = d_family / 2
        allocation[f"{fam}_rounding"] = d_err
        terms[f"{fam}_information"] = float(info.mean())
        terms[f"{fam}_rounding"] = err
        terms[f"{fam}_runs"] = J
        values[f"{fam}_cmi_cosh"] = float(cosh.mean()) + err
        values[f"{fam}_cmi"] = float(np.sqrt(2 * info).mean()) + err
        for name in FAMILIES[fam]:
            kinds[name] = "certified"
    for fam, stat in stats.items():
        p_info, p_cosh = _plug_in_pairs(stat, U_est, information)
        p_err = float(((1 - 2 * U_est) * stat.signed_error).mean())
        plug[f"{fam}_cmi_cosh"] = float(p_cosh.mean() + p_err)
        plug[f"{fam}_cmi"] = float(np.sqrt(2 * p_info).mean() + p_err)
        terms[f"{fam}_information_plug_in"] = float(p_info.mean())
        terms[f"{fam}_rounding_plug_in"] = p_err

    # -- held-out ghosts: the gap itself --------------------------------------------------------------
    if "held_out" in wanted:
        runs = runs_of.get("held_out", est)
        L_h, U_h = pool(loss, runs), pool(U, runs)
        gaps = per_run((1 - 2 * U_h) * ((L_h[..., 1] - L_h[..., 0]) - c.reshape(1, S * n)))
        plug["held_out"] = float(gaps.mean())
        if "held_out" in certified:
            top_h = 1.0 + float(np.abs(c).mean(-1).max())  # |mean_i (−1)^U (Δ_i − c_i)| ≤ 1 + mean_i |c_i|
            values["held_out"] = betting_ucb(gaps, low=-top_h, high=top_h, delta=d_family)
            kinds["held_out"] = "certified"
            allocation["held_out"] = d_family
            terms["held_out_runs"] = gaps.size

    # -- latent variables -----------------------------------------------------------------------------
    for fam, (kl, high) in kl_runs.items():
        name = fam[3:]
        runs = runs_of.get(fam, est)
        cap = 2 * post.shape[-2] * math.log(post.shape[-1]) if name == "uniform" and post is not None else math.inf
        plug[fam] = min(1.0, math.sqrt(2 * (float(kl[runs].mean()) + decoder_information)))
        terms[f"kl_{name}_plug_in"] = float(kl[runs].mean())
        terms[f"kl_{name}_range"] = high
        if fam not in certified:
            continue
        bound = min(cap, betting_ucb(per_run(kl[runs]), low=0.0, high=high, delta=d_family))
        terms[f"kl_{name}"] = bound
        allocation[fam] = d_family
        values[fam] = math.sqrt(2 * (bound + decoder_information))
        kinds[fam] = "certified"
    for fam in wanted:
        if fam.startswith("lv_") and fam not in plug and fam in values:
            plug[fam] = 1.0

    for key in values:
        values[key] = float(min(values[key], 1.0))
    for key in plug:
        plug[key] = float(min(plug[key], 1.0))
    return Certificate(values=values, kinds=kinds, terms=terms, allocation=allocation, plug_in=plug,
                       confidence=confidence, n_fit=m_fit, n_estimate=m_est, notes=notes)


#: The most masks per supersample :func:`certify` simulates when it says how many would do.
MOST_MASKS_SIMULATED = 8192


def _explain_vacuous(cert: Certificate, losses, masks, options: dict, warn: bool) -> None:
    """For every value stuck at 1, say whether more masks would help, and about how many."""
    stuck = [k for k, v in cert.values.items() if v >= 1.0 and cert.kinds[k] == "certified"]
    hopeless = [k for k in stuck if cert.plug_in[k] >= 1.0]
    for k in hopeless:
        cert.notes.append(f"{k}: vacuous; its plug-in estimate is {cert.plug_in[k]:.3f} ≥ 1 too, so more masks "
                          f"would not make it informative.")
    helpable = [k for k in stuck if k not in hopeless]
    if not helpable:
        return
    loss, U = losses, masks  # checked by certify
    S, M, n = loss.shape[:3]
    # Simulate the loss-based families only: as if every run had been seen `factor` times,
    # with the LV families' share of δ kept aside (their arrays are large; they get no number).
    lv_families = sum(1 for k, kind in cert.kinds.items() if k.startswith("lv_") and kind == "certified")
    loss_families = [f for f in ("ld", "e", "held_out") if any(cert.kinds.get(k) == "certified" for k in FAMILIES[f])]
    simulated = dict(options, posteriors=None, reference=None, kl_terms=None, kl_ranges=None, families=loss_families)
    needed: dict[str, int] = {}
    factor = 2
    out_of_memory = False
    while any(not k.startswith("lv_") for k in helpable) and M * factor <= MOST_MASKS_SIMULATED:
        # the simulated runs and what certify holds for them: stop where they would not fit in memory
        if not fits(certify_bytes(S, M * factor, n, options["n_bins"], loss_families) + 24 * S * M * factor * n):
            out_of_memory = True
            break
        idx = np.tile(np.arange(M), factor)
        more = _certify(loss[:, idx], U[:, idx], reserve_families=lv_families, **simulated)
        for k in list(helpable):
            if not k.startswith("lv_") and more.values.get(k, 1.0) < 1.0:
                needed[k] = M * factor
                helpable.remove(k)
        factor *= 2
    for k in stuck:
        if k in needed:
            message = (f"{k}: vacuous (reported as 1) with {M} masks per supersample at confidence "
                       f"{cert.confidence}; about {needed[k]} masks per supersample would make it informative.")
        elif k in helpable and k.startswith("lv_"):
            message = (f"{k}: vacuous (reported as 1) with {M} masks per supersample at confidence "
                       f"{cert.confidence}; its estimate is below 1, so more masks would help.")
        elif k in helpable and out_of_memory:
            message = (f"{k}: vacuous (reported as 1) with {M} masks per supersample at confidence "
                       f"{cert.confidence}; more than {M * factor // 2} would be needed, and simulating more "
                       f"would not fit in this machine's memory.")
        elif k in helpable:
            message = (f"{k}: vacuous (reported as 1) with {M} masks per supersample at confidence "
                       f"{cert.confidence}; more than {M * factor // 2} would be needed.")
        else:
            continue
        cert.notes.append(message)
        if warn:
            warnings.warn(message, CertificateWarning, stacklevel=3)


def certified_bounds(losses, masks, *, confidence: float = 0.95, **options) -> dict[str, float]:
    """Certified upper bounds on the average expected gap, from arrays (chapter 2).

    The researchers' entry point: ``losses`` (S, M, n, 2) in [0, 1] and ``masks``
    (S, M, n) of 0/1 from models trained by any code (one model per supersample and
    mask, masks fair coins, runs independent given the supersample). Returns name →
    value; with probability ≥ ``confidence`` every value is ≥ (1/S) Σ_s E[gap | X̃_s].
    Options as in :func:`certify` (``posteriors``, ``reference``, ``n_bins``,
    ``fit_fraction``, ``decoder_information``).
    """
    unknown = sorted(set(options) - set(CERTIFY_OPTIONS), key=str)
    if unknown:
        raise ValueError(f"certified_bounds got unknown options {unknown}; its options are certify's: "
                         f"{', '.join(CERTIFY_OPTIONS)}")
    return dict(certify(losses, masks, confidence=confidence, **options).values)


#: The keyword options of :func:`certify` (and so of :func:`certified_bounds`) besides ``confidence``.
CERTIFY_OPTIONS = ("n_bins", "fit_fraction", "posteriors", "reference", "decoder_information", "eps", "information",
                   "kl_terms", "kl_ranges", "control", "families", "select", "warn")
