"""Certified bounds: numbers that hold with probability ≥ 1 − δ over the experiment's own
randomness (chapter 2, "Certified numbers"; used again in chapters 4, 6 and 9).

A supersample experiment trains M models per supersample X̃_s, one per mask, and every
bound of chapters 2–6 is a functional of the law of what those runs record (losses,
latent posteriors) given X̃_s. A plug-in value from finitely many runs is an *estimate*
of such a bound, and may fall below it. This module turns the runs into *certified*
values: upper bounds on

    ḡ = (1/S) Σ_s E[gap | X̃_s]   (expectation over the mask and the training randomness)

that hold, all of them at once, with probability ≥ 1 − δ over the runs. The recipe,
proved in chapter 2 (theorem ``thm-certified``):

1. **Split the masks.** The first ``fit_fraction`` of each supersample's runs (the *fit
   runs*) choose everything the certificate needs: the bin edges and bin values of the
   discretised statistics, the prior of the mask-marginal LV bound, the stake of every
   betting bound. The other runs (the *estimation runs*) are then independent of every
   choice, given X̃ and the fit runs.
2. **Information, per pair.** For a statistic b with k values fixed in advance, the laws
   of b given U = 0 and U = 1 lie in Clopper–Pearson boxes (:func:`clopper_pearson`,
   :func:`conditional_boxes`). On that event I(b; U) ≤ the largest Jensen–Shannon
   divergence over the boxes (:func:`max_information`) and E cosh(λ b) ≤ its largest
   value over the boxes, for every λ at once (:func:`max_cosh_moment`).
3. **Means, pooled.** Everything else is the mean of a bounded per-run quantity (the
   rounding error E|Δ − b|, the measured gap, a KL to a prior), certified from all
   estimation runs by betting with a stake fixed in advance (:func:`betting_ucb`).
4. **Pay for everything once.** δ is split equally between the families of bounds, and
   within a family between its events; the union bound makes every value hold at once,
   so the smallest of them is certified too.

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

from .._checks import positive_int, unit_float

__all__ = [
    "CertificateWarning",
    "Certificate",
    "CERTIFIED_NAMES",
    "betting_ucb",
    "choose_stake",
    "clopper_pearson",
    "conditional_boxes",
    "max_information",
    "max_cosh_moment",
    "cosh_bound_over_box",
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
}

#: The λ grid of the cosh form (log-spaced); any λ is allowed once the boxes hold.
LAMBDAS = np.exp(np.linspace(math.log(1e-2), math.log(1e5), 241))
#: Stakes tried by :func:`choose_stake`, as fractions of the largest one, 1/(high − low).
STAKE_FRACTIONS = 0.995 * 2.0 ** -np.arange(0, 24, 0.5)


class CertificateWarning(UserWarning):
    """A certificate came out vacuous only because the experiment has too few masks."""


# --------------------------------------------------------------------------- means by betting


def _check_delta(delta, name: str = "delta") -> float:
    return unit_float(delta, name, open_left=True, open_right=True)


def _log_capital(values: np.ndarray, mu: float, stake: float) -> float:
    return float(np.log1p(stake * (mu - values)).sum())


def betting_ucb(values, *, low: float, high: float, delta: float, stake: float) -> float:
    """Upper confidence bound on the average mean of independent values in [low, high].

    Chapter 2, lemma ``lem-betting``. For independent X_1..X_J in [low, high] with means
    μ_j and a stake λ ∈ (0, 1/(high − low)] fixed before seeing them, the capital
    K(μ) = Π_j (1 + λ(μ − X_j)) satisfies E K(μ̄) ≤ 1 at μ̄ = (1/J) Σ μ_j (independence,
    then the AM–GM inequality), so by Markov's inequality

        P( μ̄ > sup{μ ∈ [low, high] : K(μ) < 1/δ} ) ≤ δ.

    K is increasing in μ, so the bound is found by bisection. When even μ = high keeps
    K below 1/δ (too few values), the answer is ``high``: vacuous, never smaller.
    """
    x = np.asarray(values, dtype=float).reshape(-1)
    if x.size == 0:
        raise ValueError("values must not be empty")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"need finite low < high, got low={low!r}, high={high!r}")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite (found NaN or inf)")
    if np.any(x < low - 1e-12) or np.any(x > high + 1e-12):
        raise ValueError(f"values must lie in [{low}, {high}], found [{x.min()}, {x.max()}]")
    delta = _check_delta(delta)
    if not (0 < stake <= 1 / (high - low) * (1 + 1e-12)):
        raise ValueError(f"stake must lie in (0, 1/(high − low)] = (0, {1 / (high - low)}], got {stake!r}")
    x = np.clip(x, low, high)
    target = math.log(1 / delta)
    if _log_capital(x, high, stake) < target:
        return float(high)
    a, b = float(x.mean()), float(high)  # K(mean) ≤ 1 by Jensen, so the root lies above the mean
    for _ in range(100):
        mid = 0.5 * (a + b)
        if _log_capital(x, mid, stake) >= target:
            b = mid
        else:
            a = mid
        if b - a < 1e-12 * max(1.0, abs(b)):
            break
    return float(b)


def choose_stake(pilot, *, low: float, high: float, delta: float, n: int) -> float:
    """The stake for :func:`betting_ucb` on ``n`` values, chosen on a separate ``pilot`` sample.

    Tries the stakes ``STAKE_FRACTIONS / (high − low)`` and keeps the one whose bound would
    be smallest if the ``n`` values were distributed like ``pilot``. The pilot comes from
    the fit runs, so the stake is fixed before the estimation runs are looked at.
    """
    y = np.clip(np.asarray(pilot, dtype=float).reshape(-1), low, high)
    n = positive_int(n, "n")
    stakes = STAKE_FRACTIONS / (high - low)
    if y.size == 0:
        return float(stakes[0])
    target = math.log(1 / _check_delta(delta)) / n
    best, best_mu = stakes[0], math.inf
    for stake in stakes:
        if np.log1p(stake * (high - y)).mean() < target:
            continue
        a, b = float(y.mean()), float(high)
        for _ in range(60):
            mid = 0.5 * (a + b)
            if np.log1p(stake * (mid - y)).mean() >= target:
                b = mid
            else:
                a = mid
        if b < best_mu:
            best, best_mu = stake, b
    return float(best)


# --------------------------------------------------------------------------- laws of a binned statistic


def clopper_pearson(counts, totals, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Clopper–Pearson interval for a binomial proportion, elementwise.

    ``counts`` successes out of ``totals`` trials; the interval misses the true
    proportion with probability ≤ δ (δ/2 on each side). A zero total gives [0, 1].
    """
    c = np.asarray(counts, dtype=float)
    N = np.asarray(totals, dtype=float)
    c, N = np.broadcast_arrays(c, N)
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


def max_information(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The largest I(b; U), U a fair coin, over laws of b given U inside the boxes.

    ``lo``, ``hi``: (pairs, 2, k). I(b; U) is the Jensen–Shannon divergence
    ½ KL(p₀‖p̄) + ½ KL(p₁‖p̄) of the two conditional laws, a jointly convex function, so
    its largest value over the product of the two polytopes is reached at a pair of
    vertices; every pair is tried. Returns (pairs,), at most log 2.
    """
    V0, ok0 = _vertices(lo[:, 0], hi[:, 0])  # (pairs, V, k)
    V1, ok1 = _vertices(lo[:, 1], hi[:, 1])
    p0, p1 = V0[:, :, None, :], V1[:, None, :, :]
    mid = 0.5 * (p0 + p1)
    js = 0.5 * _kl_rows(p0, mid) + 0.5 * _kl_rows(p1, mid)
    js = np.where(ok0[:, :, None] & ok1[:, None, :], js, -np.inf)
    return np.minimum(js.max((1, 2)), math.log(2))


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
    lc = _log_cosh(LAMBDAS[None, :, None] * v[:, None, :])  # (pairs, G, k)
    log_moment = logsumexp(log_law[:, None, :] + lc, axis=-1)  # (pairs, G)
    objective = (info + np.maximum(log_moment, 0.0)) / LAMBDAS[None, :]
    top = np.abs(v).max(-1)
    return np.minimum(objective.min(-1), np.sqrt(2 * info[:, 0]) * top)


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


def _loss_difference(fit_delta, est_delta, n_bins) -> _Statistic:
    edges = _quantile_edges(fit_delta, n_bins)
    fit_labels, labels = _bin(fit_delta, edges), _bin(est_delta, edges)
    values = _bin_values(fit_delta, fit_labels, edges, n_bins)
    take = lambda lab: np.take_along_axis(values, lab.T, axis=1).T  # noqa: E731
    return _Statistic(n_bins, [edges], fit_labels, labels, values, np.abs(fit_delta - take(fit_labels)),
                      np.abs(est_delta - take(labels)))


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
    return _Statistic(k, all_edges, fit_labels, labels, values, np.abs(fit_delta - take(fit_labels)),
                      np.abs(est_delta - take(labels)))


# --------------------------------------------------------------------------- inputs


def _as_float_array(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers: {exc}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return arr


def check_runs(losses, masks) -> tuple[np.ndarray, np.ndarray]:
    """``losses`` (S, M, n, 2) in [0, 1] and ``masks`` (S, M, n) of 0/1, or a ValueError naming the argument."""
    loss = _as_float_array(losses, "losses")
    if loss.ndim != 4 or loss.shape[-1] != 2:
        raise ValueError(f"losses must have shape (S, M, n, 2) (supersamples, masks, pairs, the pair's two points), "
                         f"got {loss.shape}")
    if np.any(loss < 0) or np.any(loss > 1):
        raise ValueError(f"losses must lie in [0, 1] (a bounded loss), found values in [{loss.min()}, {loss.max()}]")
    U = _as_float_array(masks, "masks")
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


def certify(losses, masks, *, confidence: float = 0.95, n_bins: int = 2, fit_fraction: float = 0.25,
            posteriors=None, reference=None, decoder_information: float = math.log(2), eps: float = 0.01,
            information: float | None = None, kl_terms: dict | None = None, control=None,
            warn: bool = True) -> Certificate:
    """Certified upper bounds on the expected gap from the runs of a supersample experiment.

    Chapter 2, theorem ``thm-certified`` (chapters 4 and 6 for the LV and stability
    bounds). Works on the runs of any training code:

    * ``losses`` (S, M, n, 2) in [0, 1]: the loss of run (s, m) at point X̃_{s,i,j};
    * ``masks`` (S, M, n) of 0/1: run (s, m) trained on X̃_{s,i,U_{s,m,i}}. Masks are fair
      coins and runs are independent given the supersample.
    * ``posteriors`` (S, M, n, 2, L, K), optional: each run's LV posterior at each point,
      for the LV bounds with the uniform prior and with the fit runs' average posterior;
      ``reference`` (S, n, 2, L, K), optional: the posterior of a model that never saw the
      supersample, for the reference and aggregated priors (smoothed by ``eps``).
      ``decoder_information``: what the decoder and codebook may carry about each mask
      bit, paid inside every LV bound: log 2 (its largest value) when they were trained
      on the mask, 0 when frozen (chapters 3 and 4). With log 2 the LV bounds exceed 1
      whatever the data: they are reported as 1.0, kind "exact", and cost no δ.
    * ``information``: a proved, data-free upper bound on every pair's I(b; U) (chapter
      6's stability bound), used in place of the certified information when smaller.
    * ``kl_terms``: name → (kl, high), more LV priors fixed given the supersample (chapter
      4's swap-symmetric mixture, chapter 6's reference posterior): ``kl`` (S, M, n) is each
      run's Σ_{b,l} KL to that prior at each pair, in [0, high]; certified as ``lv_<name>``.
    * ``control`` (S, n): a loss difference per pair fixed given the supersample (chapter
      4's reference model); the held-out value then bets on the runs' gaps minus
      (−1)^U·control, which have the same mean and a much smaller spread.

    The first ``ceil(fit_fraction·M)`` runs of each supersample fix the bins (``n_bins``
    quantile bins of the loss difference; ``n_bins`` per loss for the e-CMI pair), the
    fit-run prior and the stakes; the others estimate. δ = 1 − ``confidence`` is split
    equally between the families (loss difference, pair of losses, held-out, each LV
    prior), and within a family between its events. Every value is capped at 1 (a gap of
    losses in [0, 1] never exceeds 1); a value that reaches the cap only for lack of masks
    gives a :class:`CertificateWarning` saying about how many masks would do.
    """
    options = dict(confidence=confidence, n_bins=n_bins, fit_fraction=fit_fraction, posteriors=posteriors,
                   reference=reference, decoder_information=decoder_information, eps=eps, information=information,
                   kl_terms=kl_terms, control=control)
    cert = _certify(losses, masks, **options)
    _explain_vacuous(cert, losses, masks, options, warn=warn)
    return cert


def _certify(losses, masks, *, confidence, n_bins, fit_fraction, posteriors, reference, decoder_information, eps,
             information, kl_terms=None, control=None, reserve_families: int = 0) -> Certificate:
    loss, U = check_runs(losses, masks)
    confidence = unit_float(confidence, "confidence", open_left=True, open_right=True)
    n_bins = positive_int(n_bins, "n_bins")
    fit_fraction = unit_float(fit_fraction, "fit_fraction", open_left=True, open_right=True)
    if not (math.isfinite(decoder_information) and decoder_information >= 0):
        raise ValueError(f"decoder_information must be a finite number ≥ 0, got {decoder_information!r}")
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
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps!r}")
    extra = {}
    for name, term in (kl_terms or {}).items():
        kl, high = term
        kl = _as_float_array(kl, f"kl_terms[{name!r}]")
        if kl.shape != (S, M, n):
            raise ValueError(f"kl_terms[{name!r}] must have shape {(S, M, n)}, got {kl.shape}")
        if not (math.isfinite(high) and high > 0) or np.any(kl < -1e-9) or np.any(kl > high + 1e-9):
            raise ValueError(f"kl_terms[{name!r}] must lie in [0, high] with a finite high > 0")
        extra[name] = (np.clip(kl, 0, high), float(high))
    c = np.zeros((S, n))
    if control is not None:
        c = _as_float_array(control, "control")
        if c.shape != (S, n) or np.any(np.abs(c) > 1):
            raise ValueError(f"control must have shape {(S, n)} with values in [−1, 1], got shape {c.shape}")

    # pairs of every supersample side by side: (runs, S·n)
    def pool(a, runs):
        a = a[:, runs]
        return np.moveaxis(a, 0, 1).reshape(a.shape[1], S * n, *a.shape[3:])

    fit, est = slice(0, m_fit), slice(m_fit, M)
    fit_loss, est_loss = pool(loss, fit), pool(loss, est)
    U_fit, U_est = pool(U, fit), pool(U, est)
    m_est = M - m_fit
    J = S * m_est  # estimation runs, all supersamples

    lv_priors = []
    if post is not None:
        lv_priors += ["uniform", "marginal"]
        if ref is not None:
            lv_priors += ["reference", "aggregated"]
    lv_priors += [name for name in extra if name not in lv_priors]
    lv_vacuous = decoder_information >= 0.5  # √(2(KL + slack)) ≥ 1 whatever the KL
    families = ["ld", "e", "held_out"] + ([] if lv_vacuous else [f"lv_{p}" for p in lv_priors])
    d_family = delta / (len(families) + reserve_families)

    values, kinds, terms, allocation, plug, notes = {}, {}, {}, {}, {}, []

    def per_run(a):  # (runs, S·n) -> (runs·S,): mean over each run's n pairs
        r = a.shape[0]
        return a.reshape(r, S, n).mean(-1).reshape(-1)

    # -- loss difference and pair of losses ---------------------------------------------------
    fit_delta, est_delta = fit_loss[..., 1] - fit_loss[..., 0], est_loss[..., 1] - est_loss[..., 0]
    for fam, stat in (("ld", _loss_difference(fit_delta, est_delta, n_bins)),
                      ("e", _pair_of_losses(fit_loss, est_loss, n_bins))):
        info, cosh = _certified_pairs(stat, U_est, d_family / 2, information)
        d_err = d_family / 2
        # |Δ − h| ≤ 1 + |h|: a run's mean over its supersample's pairs is at most 1 + that mean of max |h|
        err_hi = 1.0 + float(np.abs(stat.values).max(-1).reshape(S, n).mean(-1).max())
        stake = choose_stake(per_run(stat.fit_error), low=0.0, high=err_hi, delta=d_err, n=J)
        err = betting_ucb(per_run(stat.error), low=0.0, high=err_hi, delta=d_err, stake=stake)
        allocation[f"{fam}_boxes"] = d_family / 2
        allocation[f"{fam}_rounding"] = d_err
        terms[f"{fam}_information"] = float(info.mean())
        terms[f"{fam}_rounding"] = err
        values[f"{fam}_cmi_cosh"] = float(cosh.mean()) + err
        values[f"{fam}_cmi"] = float(np.sqrt(2 * info).mean()) + err
        p_info, p_cosh = _plug_in_pairs(stat, U_est, information)
        plug[f"{fam}_cmi_cosh"] = float(p_cosh.mean() + stat.error.mean())
        plug[f"{fam}_cmi"] = float(np.sqrt(2 * p_info).mean() + stat.error.mean())
        terms[f"{fam}_information_plug_in"] = float(p_info.mean())
        terms[f"{fam}_rounding_plug_in"] = float(stat.error.mean())
        for name in (f"{fam}_cmi_cosh", f"{fam}_cmi"):
            kinds[name] = "certified"

    # -- held-out ghosts: the gap itself ------------------------------------------------------
    sign_fit, sign_est = 1 - 2 * U_fit, 1 - 2 * U_est
    c_pairs = c.reshape(1, S * n)
    gap_fit = per_run(sign_fit * (fit_delta - c_pairs))
    gap_est = per_run(sign_est * (est_delta - c_pairs))
    top = 1.0 + float(np.abs(c).mean(-1).max())  # |mean_i (−1)^U (Δ_i − c_i)| ≤ 1 + mean_i |c_i|
    stake = choose_stake(gap_fit, low=-top, high=top, delta=d_family, n=J)
    values["held_out"] = betting_ucb(gap_est, low=-top, high=top, delta=d_family, stake=stake)
    plug["held_out"] = float(gap_est.mean())
    kinds["held_out"] = "certified"
    allocation["held_out"] = d_family

    # -- latent variables ---------------------------------------------------------------------
    def certify_kl(name, fit_kl, est_kl, kl_hi, cap=math.inf):
        """√(2(KL + decoder information)) with KL a betting bound on the mean per-pair KL."""
        key = f"lv_{name}"
        plug[key] = min(1.0, math.sqrt(2 * (float(est_kl.mean()) + decoder_information)))
        terms[f"kl_{name}_plug_in"] = float(est_kl.mean())
        if lv_vacuous:
            values[key], kinds[key] = 1.0, "exact"
            return
        stake = choose_stake(per_run(fit_kl), low=0.0, high=kl_hi, delta=d_family, n=J)
        bound = min(cap, betting_ucb(per_run(est_kl), low=0.0, high=kl_hi, delta=d_family, stake=stake))
        terms[f"kl_{name}"] = bound
        allocation[key] = d_family
        values[key] = math.sqrt(2 * (bound + decoder_information))
        kinds[key] = "certified"

    for name, (kl, kl_hi) in extra.items():
        certify_kl(name, pool(kl, fit), pool(kl, est), kl_hi)
    if post is not None:
        L, K = post.shape[-2:]
        fit_post, est_post = pool(post, fit), pool(post, est)  # (runs, S·n, 2, L, K)

        def kl_sum(p, prior):  # Σ_{b,l} KL(p ‖ prior) -> (runs, S·n)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(prior)), 0.0)
            return np.maximum(t.sum((-1, -2, -3)), 0.0)

        smooth = lambda q: (1 - eps) * q + eps / K  # noqa: E731
        top = 2 * L * math.log(K / eps)  # the most a prior smoothed by ε can cost a pair
        priors = {"uniform": np.full((1, 1, 1, 1, K), 1.0 / K), "marginal": smooth(fit_post.mean(0, keepdims=True))}
        if ref is not None:
            priors["reference"] = smooth(ref.reshape(S * n, 2, L, K)[None])
            agg = np.repeat(ref.mean((1, 2)), n, axis=0)  # (S·n, L, K): each supersample's average
            priors["aggregated"] = smooth(agg[None, :, None])
        for name, prior in priors.items():
            if name in extra:
                continue
            uniform_cap = 2 * L * math.log(K)  # KL to the uniform prior never exceeds the alphabet
            certify_kl(name, kl_sum(fit_post, prior), kl_sum(est_post, prior),
                       uniform_cap if name == "uniform" else top, uniform_cap if name == "uniform" else math.inf)
    if lv_vacuous and lv_priors:
        notes.append(f"LV bounds: the decoder and codebook may carry up to {decoder_information:.3f} nats per "
                     f"pair (≥ ½), so √(2(KL + that)) ≥ 1 whatever the data: reported as 1 (vacuous).")

    for key in values:
        values[key] = float(min(values[key], 1.0))
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
    loss, U = np.asarray(losses, dtype=float), np.asarray(masks)
    S, M = loss.shape[:2]
    # Simulate the loss-based families only: as if every run had been seen `factor` times,
    # with the LV families' share of δ kept aside (their arrays are large; they get no number).
    lv_families = sum(1 for k, kind in cert.kinds.items() if k.startswith("lv_") and kind == "certified")
    simulated = dict(options, posteriors=None, reference=None, kl_terms=None)
    needed: dict[str, int] = {}
    factor = 2
    while any(not k.startswith("lv_") for k in helpable) and M * factor <= MOST_MASKS_SIMULATED:
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
    return dict(certify(losses, masks, confidence=confidence, **options).values)
