"""Does a certificate hold as often as it says? The coverage study of chapter 2.

One supersample, many runs (masks). Half of them are the *truth pool*: with a thousand
runs or more, the mean gap over it is the expected gap given X̃ up to a small standard
error, and any bound with fixed bins can be evaluated on it almost exactly. The other
half is where small experiments are drawn from: m runs at random, certified by
:func:`vqlib.bounds.certify` exactly as a reader with m masks would, and estimated by
the plug-in recipe the book printed before it certified anything
(:func:`vqlib.bounds.pair_terms`, bins fitted on the same runs).

For every experiment the study records the certified values, the plug-in estimate, the
true gap and the *true value of the bound the experiment certified* (the loss-difference
cosh form with the experiment's own bins, evaluated on the truth pool). A certificate at
confidence 1 − δ may fall below either truth in at most a fraction δ of experiments.
"""
from __future__ import annotations

import math

import numpy as np

from .._checks import positive_int, unit_float
from .certificates import _certify, _loss_difference, _plug_in_pairs
from .cmi import pair_terms

__all__ = ["coverage_study", "summarise_coverage"]


def coverage_study(losses, masks, *, mask_counts, n_experiments: int = 60, confidence: float = 0.95,
                   n_bins: int = 2, seed: int = 0) -> list[dict]:
    """Certified values, plug-in estimates and ground truth for many small experiments.

    ``losses`` (R, n, 2) and ``masks`` (R, n): R runs of one supersample (R ≥ 2·max m).
    The last half of the runs is the truth pool; each experiment draws m runs without
    replacement from the first half (``seed``), for every m in ``mask_counts`` and
    ``n_experiments`` times. Returns one row per experiment: ``m``, ``experiment``,
    ``certified_ld_cmi_cosh``, ``certified_e_cmi_cosh``, ``certified_held_out``,
    ``certified_min`` (the smallest certified value: all hold at once), ``plug_in``
    (the book's former estimate of the loss-difference cosh bound), ``true_gap``,
    ``true_gap_sem`` and ``true_bound`` (this experiment's bins, on the truth pool).
    """
    loss = np.asarray(losses, dtype=float)
    U = np.asarray(masks)
    if loss.ndim != 3 or loss.shape[-1] != 2 or U.shape != loss.shape[:2]:
        raise ValueError(f"losses must have shape (runs, n, 2) and masks (runs, n), got {loss.shape}, {U.shape}")
    n_experiments = positive_int(n_experiments, "n_experiments")
    confidence = unit_float(confidence, "confidence", open_left=True, open_right=True)
    counts = [positive_int(m, "mask_counts", minimum=2) for m in mask_counts]
    R = loss.shape[0]
    half = R // 2
    if max(counts) > half:
        raise ValueError(f"mask_counts go up to {max(counts)} but only {half} runs are outside the truth pool "
                         f"({R} runs in all)")
    pool, truth = slice(0, half), slice(half, R)
    t_delta = loss[truth, :, 1] - loss[truth, :, 0]
    t_gap = ((1 - 2 * U[truth]) * t_delta).mean(1)
    true_gap, true_sem = float(t_gap.mean()), float(t_gap.std(ddof=1) / math.sqrt(len(t_gap)))
    rng = np.random.default_rng(seed)
    options = dict(confidence=confidence, n_bins=n_bins, fit_fraction=0.25, posteriors=None, reference=None,
                   decoder_information=math.log(2), eps=0.01, information=None)
    rows = []
    for m in counts:
        for e in range(n_experiments):
            pick = rng.choice(half, size=m, replace=False)
            l_e, u_e = loss[pool][pick], U[pool][pick]
            cert = _certify(l_e[None], u_e[None], **options)
            # the bound this experiment certified: its own bins, evaluated on the truth pool
            fit_delta = l_e[: cert.n_fit, :, 1] - l_e[: cert.n_fit, :, 0]
            stat = _loss_difference(fit_delta, t_delta, n_bins)
            _, cosh = _plug_in_pairs(stat, U[truth])
            plug = float(np.mean([pair_terms(l_e[:, i, 0], l_e[:, i, 1], u_e[:, i], n_bins=n_bins)["ld_cosh"]
                                  for i in range(loss.shape[1])]))
            rows.append(dict(m=m, experiment=e, certified_ld_cmi_cosh=cert.values["ld_cmi_cosh"],
                             certified_e_cmi_cosh=cert.values["e_cmi_cosh"],
                             certified_held_out=cert.values["held_out"], certified_min=min(cert.values.values()),
                             plug_in=plug, true_gap=true_gap, true_gap_sem=true_sem,
                             true_bound=float(cosh.mean() + stat.error.mean()), confidence=confidence))
    return rows


def summarise_coverage(rows) -> list[dict]:
    """Per number of masks m: how often each number fell below the truth, and the medians.

    ``below_gap``: fraction of experiments whose smallest certified value is below the true
    gap; ``below_bound``: fraction whose certified loss-difference cosh value is below the
    true value of that bound; ``plug_in_below_bound``: the same for the plug-in estimate.
    Each fraction comes with its count; δ = 1 − confidence is what a certificate may miss.
    """
    out = []
    for m in sorted({r["m"] for r in rows}):
        rs = [r for r in rows if r["m"] == m]
        count = lambda f: int(sum(f(r) for r in rs))  # noqa: E731
        below_gap = count(lambda r: r["certified_min"] < r["true_gap"])
        below_bound = count(lambda r: r["certified_ld_cmi_cosh"] < r["true_bound"])
        plug_below = count(lambda r: r["plug_in"] < r["true_bound"])
        plug_below_gap = count(lambda r: r["plug_in"] < r["true_gap"])
        med = lambda key: float(np.median([r[key] for r in rs]))  # noqa: E731
        q = lambda key, p: float(np.quantile([r[key] for r in rs], p))  # noqa: E731
        out.append(dict(m=m, experiments=len(rs), delta=1 - rs[0]["confidence"],
                        below_gap=below_gap / len(rs), below_gap_count=below_gap,
                        below_bound=below_bound / len(rs), below_bound_count=below_bound,
                        plug_in_below_bound=plug_below / len(rs), plug_in_below_bound_count=plug_below,
                        plug_in_below_gap=plug_below_gap / len(rs), plug_in_below_gap_count=plug_below_gap,
                        certified=med("certified_ld_cmi_cosh"), certified_lo=q("certified_ld_cmi_cosh", 0.1),
                        certified_hi=q("certified_ld_cmi_cosh", 0.9), certified_min=med("certified_min"),
                        held_out=med("certified_held_out"), plug_in=med("plug_in"),
                        plug_in_lo=q("plug_in", 0.1), plug_in_hi=q("plug_in", 0.9),
                        true_bound=med("true_bound"), true_gap=rs[0]["true_gap"], true_gap_sem=rs[0]["true_gap_sem"]))
    return out
