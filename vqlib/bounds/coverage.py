"""Does a certificate hold as often as it says? The coverage study of chapter 2.

One supersample and many independent runs of a learner on it (masks from disjoint seeds). A
*truth pool* of thousands of runs gives the expected gap given X̃ up to a small standard error,
and the value at the learner's law of any bound whose bins are fixed. The other runs are cut
into **independent experiments** of m runs each (no run is shared between two experiments), and
each experiment is certified exactly as a reader with m masks would certify it
(:func:`vqlib.bounds.certify`, the families of chapter 2's table). A certificate at confidence
1 − δ may fall below the truth in at most a fraction δ of experiments: over E independent
experiments the number of misses is a binomial count, so its Clopper–Pearson interval says
whether the study *could* see a miss rate above δ (:func:`summarise_coverage`).

For every experiment the study records the certified values, the plug-in estimate of the same
loss-difference bound (the experiment's own bins, with the estimation runs' frequencies in place
of the boxes: an estimate, not a bound), the true gap and the *true value of each bound the
experiment certified* (its own bins and bin values, fitted on its fit runs, evaluated on the truth
pool).
"""
from __future__ import annotations

import math

import numpy as np

from .._checks import binary_array, fits_in_memory, positive_int, real_array, short, unit_array, unit_float
from .certificates import (_certify, _loss_difference, _pair_of_losses, _plug_in_pairs, certify_bytes, check_cells,
                           check_runs, clopper_pearson)

__all__ = ["coverage_study", "summarise_coverage", "true_values"]

#: The families chapter 2's table certifies, and so the ones the coverage study checks.
FAMILIES = ("ld", "e", "held_out")
#: Bytes per (truth run, pair, bin) :func:`true_values` holds at once (the binned statistics of both
#: bounds and their residuals), measured with tracemalloc and rounded up.
TRUTH_BYTES = 200


def _check_pool(losses, masks, lname: str, mname: str, least: int) -> tuple[np.ndarray, np.ndarray]:
    """A pool of runs of one supersample: losses (T, n, 2) in [0, 1] and masks (T, n) of 0/1, T ≥ ``least``."""
    loss = unit_array(losses, lname, allow_bool=False)
    if loss.ndim != 3 or loss.shape[-1] != 2:
        raise ValueError(f"{lname} must have shape (T, n, 2) (runs, pairs, the pair's two points), got {loss.shape}")
    if len(loss) < least:
        raise ValueError(f"{lname} must hold at least {least} runs, got {len(loss)}"
                         + (" (the standard error of the true gap needs two)" if least == 2 else ""))
    U = binary_array(masks, mname)
    if U.shape != loss.shape[:2]:
        raise ValueError(f"{mname} must have shape {loss.shape[:2]} (T, n) to match {lname}, got {U.shape}")
    return loss, U


def true_values(fit_losses, fit_masks, truth_losses, truth_masks, n_bins: int = 2) -> dict[str, float]:
    """The true gap and the true value of the loss-difference and e-CMI bounds with the bins that
    ``fit_*`` choose, read off a truth pool (chapter 2).

    Each bound is the cosh form at the law of the binned statistic plus the mean signed residual
    (−1)^U (Δ − b), both computed on the truth runs: with thousands of runs, the bound's value at
    the learner's law up to a small error (plug-in JS is biased upwards by about (k − 1)/(2T)).

    Parameters
    ----------
    fit_losses : array (m_fit, n, 2), fit_masks : array (m_fit, n), the experiment's fit runs
    truth_losses : array (T, n, 2), truth_masks : array (T, n), runs independent of the experiment
    n_bins : int, as in :func:`vqlib.bounds.certify`

    Returns
    -------
    dict: ``gap``, ``gap_sem`` (over truth runs), ``ld_cmi_cosh``, ``e_cmi_cosh``.
    """
    fl, fu = _check_pool(fit_losses, fit_masks, "fit_losses", "fit_masks", least=1)
    tl, tu = _check_pool(truth_losses, truth_masks, "truth_losses", "truth_masks", least=2)
    if tl.shape[1] != fl.shape[1]:
        raise ValueError(f"truth_losses must have n = {fl.shape[1]} pairs like fit_losses, got {tl.shape[1]}")
    n_bins = positive_int(n_bins, "n_bins")
    fits_in_memory(TRUTH_BYTES * len(tl) * tl.shape[1] * (n_bins + 1),
                   f"true_values on a truth pool of {len(tl)} runs of {tl.shape[1]} pairs with n_bins={short(n_bins)}",
                   need="of working memory")
    t_delta = tl[..., 1] - tl[..., 0]
    per_run = ((1 - 2 * tu) * t_delta).mean(1)
    out = dict(gap=float(per_run.mean()), gap_sem=float(per_run.std(ddof=1) / math.sqrt(len(per_run))))
    for name, stat in (("ld_cmi_cosh", _loss_difference(fl[..., 1] - fl[..., 0], t_delta, n_bins, fu)),
                       ("e_cmi_cosh", _pair_of_losses(fl, tl, n_bins))):
        _, cosh = _plug_in_pairs(stat, tu)
        out[name] = float(cosh.mean() + ((1 - 2 * tu) * stat.signed_error).mean())
    return out


def coverage_study(losses, masks, truth_losses, truth_masks, *, confidence: float = 0.95,
                   n_bins: int = 2) -> list[dict]:
    """Certified values, plug-in estimates and the truth for many independent experiments (chapter 2).

    Parameters
    ----------
    losses : array (E, m, n, 2) in [0, 1]: E experiments of m runs each on one supersample, no run
        in two experiments
    masks : array (E, m, n) of 0/1, their masks
    truth_losses : array (T, n, 2), truth_masks : array (T, n): the truth pool, independent runs on
        the same supersample (T in the thousands)
    confidence : float in (0, 1), of every certificate
    n_bins : int, as in :func:`vqlib.bounds.certify`

    Returns
    -------
    list of dict, one per experiment: ``m``, ``experiment``, ``certified_ld_cmi_cosh``,
    ``certified_e_cmi_cosh``, ``certified_held_out``, ``certified_min`` (the smallest certified
    value: all hold at once), ``plug_in`` (the plug-in estimate of the certified loss-difference bound),
    ``true_gap``, ``true_gap_sem``, ``true_ld_cmi_cosh``, ``true_e_cmi_cosh`` (this experiment's
    bins, on the truth pool), ``confidence``.

    Raises
    ------
    ValueError naming the argument: shapes that do not match, losses outside [0, 1], masks not 0/1.

    See also: :func:`summarise_coverage`, :func:`vqlib.bounds.certify`; chapter 2.
    """
    loss = real_array(losses, "losses", allow_empty=True, allow_bool=False)
    U = real_array(masks, "masks", allow_empty=True)
    if loss.ndim != 4 or U.shape != loss.shape[:3]:
        raise ValueError(f"losses must have shape (E, m, n, 2) and masks (E, m, n), got {loss.shape}, {U.shape}")
    loss, U = check_runs(loss, U)  # (E, m, n, 2): the same checks as S supersamples of m runs
    t_loss, t_U = _check_pool(truth_losses, truth_masks, "truth_losses", "truth_masks", least=2)
    if t_loss.shape[1] != loss.shape[2]:
        raise ValueError(f"truth_losses must have n = {loss.shape[2]} pairs like losses, got {t_loss.shape[1]}")
    confidence = unit_float(confidence, "confidence", open_left=True, open_right=True)
    n_bins = positive_int(n_bins, "n_bins")
    check_cells(n_bins, f"the loss difference (n_bins={short(n_bins)})")
    check_cells(n_bins * n_bins, f"the pair of losses (n_bins={short(n_bins)})")
    E, m, n, _ = loss.shape
    # one experiment's certificate at a time, and the truth pool binned by each experiment's bins
    fits_in_memory(certify_bytes(1, m, n, n_bins, FAMILIES) + TRUTH_BYTES * t_loss.shape[0] * n * (n_bins + 1),
                   f"coverage_study of {E} experiments of m={m} runs and a truth pool of {t_loss.shape[0]} runs "
                   f"of n={n} pairs", need="of working memory")
    options = dict(confidence=confidence, n_bins=n_bins, fit_fraction=0.1, posteriors=None, reference=None,
                   decoder_information=math.log(2), eps=0.01, information=None, families=FAMILIES, select=False)
    rows = []
    for e in range(E):
        cert = _certify(loss[e][None], U[e][None], **options)
        truth = true_values(loss[e, :cert.n_fit], U[e, :cert.n_fit], t_loss, t_U, n_bins)
        plug = cert.plug_in["ld_cmi_cosh"]  # the same bound, with frequencies in place of boxes: an estimate
        rows.append(dict(m=m, experiment=e, certified_ld_cmi_cosh=cert.values["ld_cmi_cosh"],
                         certified_e_cmi_cosh=cert.values["e_cmi_cosh"], certified_held_out=cert.values["held_out"],
                         certified_min=min(cert.values.values()), plug_in=plug, true_gap=truth["gap"],
                         true_gap_sem=truth["gap_sem"], true_ld_cmi_cosh=truth["ld_cmi_cosh"],
                         true_e_cmi_cosh=truth["e_cmi_cosh"], confidence=confidence))
    return rows


def _rate(count: int, total: int, level: float = 0.95) -> dict:
    lo, hi = clopper_pearson(count, total, 1 - level)
    return dict(count=int(count), rate=count / total, lo=float(lo), hi=float(hi))


def summarise_coverage(rows) -> list[dict]:
    """Per number of masks m: how often each certified value fell below its truth (chapter 2).

    Misses are binomial counts over independent experiments; each comes with its two-sided 95%
    Clopper–Pearson interval, to read next to δ = 1 − confidence (a miss rate whose interval lies
    above δ would refute the certificate). ``below_gap``: the smallest certified value below the
    true gap; ``below_bound``: the certified loss-difference cosh value below the true value of
    that bound (with the experiment's bins); ``held_out_below_gap``; ``plug_in_below_bound``: the
    same for the plug-in estimate (not a bound: it misses often). Ratios certified ÷ true: medians
    and 10–90% ranges. Returns one dict per m.
    """
    out = []
    for m in sorted({r["m"] for r in rows}):
        rs = [r for r in rows if r["m"] == m]
        E = len(rs)
        count = lambda f: int(sum(f(r) for r in rs))  # noqa: E731
        med = lambda key: float(np.median([r[key] for r in rs]))  # noqa: E731
        q = lambda key, p: float(np.quantile([r[key] for r in rs], p))  # noqa: E731
        ratio = lambda a, b: [r[a] / r[b] for r in rs if r[b] > 0]  # noqa: E731
        rates = {
            "below_gap": _rate(count(lambda r: r["certified_min"] < r["true_gap"]), E),
            "below_bound": _rate(count(lambda r: r["certified_ld_cmi_cosh"] < r["true_ld_cmi_cosh"]), E),
            "e_below_bound": _rate(count(lambda r: r["certified_e_cmi_cosh"] < r["true_e_cmi_cosh"]), E),
            "held_out_below_gap": _rate(count(lambda r: r["certified_held_out"] < r["true_gap"]), E),
            "plug_in_below_bound": _rate(count(lambda r: r["plug_in"] < r["true_ld_cmi_cosh"]), E),
            "plug_in_below_gap": _rate(count(lambda r: r["plug_in"] < r["true_gap"]), E),
        }
        entry = dict(m=m, experiments=E, delta=1 - rs[0]["confidence"])
        for key, rate in rates.items():
            entry.update({key: rate["rate"], f"{key}_count": rate["count"], f"{key}_lo": rate["lo"],
                          f"{key}_hi": rate["hi"]})
        for key, (a, b) in {"held_out_ratio": ("certified_held_out", "true_gap"),
                            "ld_ratio": ("certified_ld_cmi_cosh", "true_ld_cmi_cosh"),
                            "ld_gap_ratio": ("certified_ld_cmi_cosh", "true_gap")}.items():
            values = ratio(a, b)
            entry.update({key: float(np.median(values)) if values else float("nan"),
                          f"{key}_lo": float(np.quantile(values, 0.1)) if values else float("nan"),
                          f"{key}_hi": float(np.quantile(values, 0.9)) if values else float("nan")})
        entry.update(certified=med("certified_ld_cmi_cosh"), certified_lo=q("certified_ld_cmi_cosh", 0.1),
                     certified_hi=q("certified_ld_cmi_cosh", 0.9), certified_min=med("certified_min"),
                     held_out=med("certified_held_out"), plug_in=med("plug_in"), plug_in_lo=q("plug_in", 0.1),
                     plug_in_hi=q("plug_in", 0.9), true_bound=med("true_ld_cmi_cosh"), true_gap=rs[0]["true_gap"],
                     true_gap_sem=rs[0]["true_gap_sem"])
        out.append(entry)
    return out
