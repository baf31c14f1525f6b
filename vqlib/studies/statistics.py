"""Statistics shared by the studies: standard errors, Student-t intervals, line fits (chapters 4, 6, 8, 9).

Chapter 8 trains every setting of an axis with the same seeds (a repeated-measures design), so its
slopes and differences are computed seed by seed (:func:`paired_log_fit`, :func:`paired_differences`)
and their uncertainty is the scatter *between* seeds, with the Student-t quantile of seeds − 1
degrees of freedom (:func:`t_quantile`, :func:`t_summary`). :func:`line_fit` and :func:`log_fit`
are the pooled least-squares fits, every point an independent observation; :func:`sem` is the
standard error of a mean.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from scipy import stats

from .._checks import positive_int, unit_float

__all__ = ["sem", "t_quantile", "t_summary", "line_fit", "log_fit", "paired_log_fit", "paired_differences"]


def sem(values) -> float:
    """Standard error of the mean, std (ddof = 1) / √m; NaN for fewer than two values (chapters 4, 6, 8, 9).

    s.e. = sqrt(Σ_i (v_i − v̄)² / (m − 1)) / √m over the m values.

    Parameters
    ----------
    values : array_like, any shape
        The m values (all entries, flattened), as floats.

    Returns
    -------
    float
        The standard error; NaN when m < 2.

    See also
    --------
    t_quantile, paired_differences, paired_log_fit; chapter 4, chapter 6, chapter 8, chapter 9.
    """
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")


def paired_differences(rows: Iterable[Mapping], axis: str, low, high, value: str = "gap",
                       pair_key: str = "data_seed", level: float = 0.95) -> dict:
    """``value`` at ``axis = high`` minus at ``axis = low``, seed by seed, with a Student-t interval (chapter 8).

    Rows with the same ``pair_key`` were trained on the same n digits, so their difference
    removes the variation of the gap between training sets. With d_s the difference of seed s
    and S seeds: mean d̄ = (1/S) Σ_s d_s, sem = sd(d_1, …, d_S)/√S, t = d̄ / sem with df = S − 1,
    and the interval d̄ ± t_crit · sem.

    Parameters
    ----------
    rows : iterable of mapping
        Tidy rows, one per run, each with the keys ``axis``, ``pair_key`` and ``value``; rows
        whose ``axis`` is neither ``low`` nor ``high`` are ignored.
    axis : str
        The key whose two settings are compared (``"K"``, ``"decoder_width"``, …).
    low, high : object
        The two values of ``axis``; each difference is (value at high) − (value at low).
    value : str, default "gap"
        The key of the compared quantity.
    pair_key : str, default "data_seed"
        The key that pairs rows (the same training digits).
    level : float, default 0.95
        Two-sided coverage of the interval, in (0, 1).

    Returns
    -------
    dict
        ``differences`` (list of S floats, sorted by ``pair_key``), ``seeds`` (the sorted
        ``pair_key`` values), their ``mean``, ``std`` (ddof = 1), standard error ``sem``,
        ``count`` (seeds), and from :func:`t_summary` ``df`` = count − 1, ``level``, ``t`` =
        mean / sem, the two-sided Student-t quantile ``t_crit`` = :func:`t_quantile` (df,
        ``level``), the interval ``ci`` = mean ± t_crit · sem at that ``level``, and
        ``detected`` (|t| ≥ t_crit: the interval excludes zero). With one seed, ``std``,
        ``sem``, ``t``, ``t_crit`` and ``ci`` are NaN and ``detected`` is False.

    Raises
    ------
    ValueError
        When a seed lacks one of the two settings, a seed appears twice in a setting, no seed
        has both, a difference is not finite, or (two seeds or more) ``level`` is outside (0, 1).

    See also
    --------
    paired_log_fit, t_summary, t_quantile, vqlib.studies.capacity.axis_verdict; chapter 8.
    """
    rows = list(rows)
    sides = {}
    for side in (low, high):
        chosen = {}
        for r in rows:
            if r.get(axis) == side:
                key = r[pair_key]
                if key in chosen:
                    raise ValueError(f"{pair_key}={key!r} appears twice with {axis}={side!r}")
                chosen[key] = float(r[value])
        sides[side] = chosen
    keys_low, keys_high = set(sides[low]), set(sides[high])
    if keys_low != keys_high:
        raise ValueError(f"{pair_key} values {sorted(keys_low ^ keys_high)} lack one of "
                         f"{axis}={low!r}, {axis}={high!r}")
    if not keys_low:
        raise ValueError(f"no rows with {axis}={low!r} and {axis}={high!r}")
    keys = sorted(keys_low)
    d = np.array([sides[high][k] - sides[low][k] for k in keys])
    if not np.all(np.isfinite(d)):
        raise ValueError(f"{value} has non-finite values")
    std = float(d.std(ddof=1)) if d.size > 1 else float("nan")
    mean, sem = float(d.mean()), std / math.sqrt(d.size)
    return dict(differences=d.tolist(), seeds=keys, mean=mean, std=std, sem=sem, count=int(d.size),
                **t_summary(mean, sem, d.size - 1, level))


def t_quantile(df, level: float = 0.95) -> float:
    """The two-sided Student-t critical value t_{(1 + level)/2, df} (chapter 8).

    An interval estimate ± t_quantile(df) · s.e. covers the true value with probability
    ``level`` when the estimate is the mean of df + 1 independent normal values (the
    per-seed slopes or differences of chapter 8). ``t_quantile(2) = 4.30`` for three
    seeds, against 1.96 for a normal quantile.

    Parameters
    ----------
    df : int
        Degrees of freedom, ≥ 1 (seeds − 1).
    level : float, default 0.95
        Two-sided coverage, in the open interval (0, 1).

    Returns
    -------
    float
        The (1 + level)/2 quantile of Student's t distribution with ``df`` degrees of freedom.

    Raises
    ------
    ValueError
        When ``df`` is not an integer ≥ 1 or ``level`` lies outside (0, 1).

    See also
    --------
    t_summary, paired_log_fit, paired_differences, vqlib.studies.capacity.axis_verdict; chapter 8.
    """
    df = positive_int(df, "df", minimum=1)
    level = unit_float(level, "level", open_left=True, open_right=True)
    return float(stats.t.ppf(0.5 + level / 2, df))


def t_summary(estimate: float, se: float, df: int, level: float) -> dict:
    """t, df, the t quantile, the interval and whether it excludes zero, for a mean over seeds (chapter 8).

    t = estimate / se and ci = estimate ± t_crit · se with t_crit = :func:`t_quantile` (df, level);
    the interval excludes zero exactly when |t| ≥ t_crit. With se = 0, t is 0 for a zero
    estimate and ±∞ otherwise.

    Parameters
    ----------
    estimate : float
        The mean over seeds (of slopes, of differences).
    se : float
        Its standard error.
    df : int
        Degrees of freedom, seeds − 1.
    level : float
        Two-sided coverage of the interval, in (0, 1).

    Returns
    -------
    dict
        ``df``, ``level``, ``t``, ``t_crit``, ``ci`` (the pair (low, high)) and ``detected``
        (|t| ≥ t_crit). When df < 1 or ``se`` is not finite, ``t``, ``t_crit`` and both ends of
        ``ci`` are NaN and ``detected`` is False.

    Raises
    ------
    ValueError
        When an interval is computed (df ≥ 1, finite ``se``) and :func:`t_quantile` refuses
        ``df`` (not an integer) or ``level`` (outside (0, 1)).

    See also
    --------
    t_quantile, paired_differences, paired_log_fit; chapter 8.
    """
    if df < 1 or not math.isfinite(se):
        nan = float("nan")
        return dict(df=int(df), level=level, t=nan, t_crit=nan, ci=(nan, nan), detected=False)
    t_crit = t_quantile(df, level)
    t_stat = estimate / se if se > 0 else (0.0 if estimate == 0 else math.copysign(math.inf, estimate))
    return dict(df=int(df), level=level, t=t_stat, t_crit=t_crit,
                ci=(estimate - t_crit * se, estimate + t_crit * se), detected=bool(abs(t_stat) >= t_crit))


def line_fit(x, y) -> dict:
    """Least-squares fit y = a + b·x with standard errors (chapter 8).

    b = Σ_i (x_i − x̄)(y_i − ȳ) / S_xx and a = ȳ − b·x̄, with S_xx = Σ_i (x_i − x̄)². Every (x, y)
    pair is taken as an independent observation: the standard errors are those of ordinary
    least squares, from the residual variance σ² = RSS / (m − 2) with m − 2 degrees of
    freedom: se_b = sqrt(σ² / S_xx), se_a = sqrt(σ² (1/m + x̄² / S_xx)). When the points come in
    groups that share a seed (chapter 8's sweeps), they are not independent; use
    :func:`paired_log_fit` for the slope and its uncertainty.

    Parameters
    ----------
    x : array_like (m,)
        The abscissae (flattened), finite, with at least three distinct values.
    y : array_like (m,)
        The ordinates (flattened), finite, as many as ``x``.

    Returns
    -------
    dict
        ``a``, ``b``, their standard errors ``se_a``, ``se_b``, ``t`` = b / se_b, ``df`` = m − 2,
        ``r2`` = 1 − RSS/TSS (NaN when y is constant), ``m`` (number of points) and ``sigma``
        (the residual standard deviation σ).

    Raises
    ------
    ValueError
        For NaN or inf, lengths that differ, or fewer than three distinct x values (a line
        through two points has no error estimate).

    See also
    --------
    log_fit, paired_log_fit; chapter 8.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.size != y.size:
        raise ValueError(f"x and y have different lengths {x.size} and {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite (found NaN or inf)")
    distinct = np.unique(x).size
    if distinct < 3:
        raise ValueError(f"a line fit needs at least 3 distinct x values, got {distinct}")
    m = x.size
    x_mean = x.mean()
    sxx = float(((x - x_mean) ** 2).sum())
    b = float(((x - x_mean) * (y - y.mean())).sum() / sxx)
    a = float(y.mean() - b * x_mean)
    rss = float(((y - (a + b * x)) ** 2).sum())
    sigma2 = rss / (m - 2)
    se_b = math.sqrt(sigma2 / sxx)
    se_a = math.sqrt(sigma2 * (1.0 / m + x_mean ** 2 / sxx))
    tss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - rss / tss if tss > 0 else float("nan")
    t_stat = b / se_b if se_b > 0 else (0.0 if b == 0 else math.copysign(math.inf, b))
    return dict(a=a, b=b, se_a=se_a, se_b=se_b, t=t_stat, df=int(m - 2), r2=r2, m=int(m), sigma=math.sqrt(sigma2))


def log_fit(x, y) -> dict:
    """Least-squares fit y = a + b·log x with standard errors (chapter 8).

    The slope of the gap, or of the LV information, per nat of log K (or of log width,
    …): :func:`line_fit` on (log x, y), with the same keys. Every point counts as an
    independent observation; for points that share seeds use :func:`paired_log_fit`.

    Parameters
    ----------
    x : array_like (m,)
        The settings (flattened), finite and > 0, with at least three distinct values.
    y : array_like (m,)
        The measured values (flattened), finite, as many as ``x``.

    Returns
    -------
    dict
        The keys of :func:`line_fit` (``a``, ``b``, ``se_a``, ``se_b``, ``t``, ``df``, ``r2``,
        ``m``, ``sigma``) for the line in log x.

    Raises
    ------
    ValueError
        For x ≤ 0, NaN or inf, lengths that differ, or fewer than three distinct x values.

    See also
    --------
    line_fit, paired_log_fit; chapter 8.
    """
    x = np.asarray(x, dtype=float).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError("x and y must be finite (found NaN or inf)")
    if np.any(x <= 0):
        raise ValueError(f"x must be > 0 for a fit against log x, got min {x.min()!r}")
    return line_fit(np.log(x), y)


def paired_log_fit(x, y, seeds, level: float = 0.95) -> dict:
    """Slope of y against log x fitted within each seed, averaged over seeds (chapter 8).

    Chapter 8 trains every setting of an axis with the same seeds (the same training
    digits and initial weights), so the points of one seed are a repeated measurement,
    not independent draws. For each seed s, the least-squares line y = a_s + b_s log x
    through that seed's points gives one slope b_s; the estimate is their mean
    b = (1/S) Σ_s b_s, with standard error sd(b_1, …, b_S)/√S and df = S − 1 degrees of
    freedom. The seed's own level (a_s) drops out, and the slope's uncertainty is the
    scatter of the slope *between* seeds, whatever the number of values per seed. When
    every seed has the same x values, b equals the pooled least-squares slope of
    :func:`log_fit`, but the pooled standard error (m − 2 degrees of freedom, every point
    independent) does not account for the seed effect.

    Parameters
    ----------
    x : array_like (m,)
        The settings (flattened), finite and > 0.
    y : array_like (m,)
        The measured values (flattened), finite.
    seeds : array_like (m,)
        The seed of each point (any sortable labels); at least two seeds, each with at least
        two distinct x values.
    level : float, default 0.95
        Two-sided coverage of the interval, in (0, 1).

    Returns
    -------
    dict
        ``b``, ``se_b``, ``a`` and ``se_a`` (the same for the intercepts a_s), ``t`` = b / se_b,
        ``df`` = S − 1, ``t_crit`` = :func:`t_quantile` (df, ``level``), ``ci`` = b ± t_crit · se_b,
        ``detected`` (|t| ≥ t_crit), ``level``, ``slopes`` and ``intercepts`` (lists, per seed),
        ``seeds`` (sorted), ``count`` = S, ``m`` (points) and ``r2`` (the share of the variance
        of all points that the line a + b log x explains; a description, not a test).

    Raises
    ------
    ValueError
        For x ≤ 0, NaN or inf, lengths that differ, fewer than two seeds, a seed with fewer
        than two distinct x values, or a ``level`` outside (0, 1).

    See also
    --------
    log_fit, paired_differences, t_summary, vqlib.studies.capacity.axis_verdict; chapter 8.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    seeds = np.asarray(seeds).ravel()
    if not (x.size == y.size == seeds.size):
        raise ValueError(f"x, y and seeds have different lengths {x.size}, {y.size} and {seeds.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite (found NaN or inf)")
    if np.any(x <= 0):
        raise ValueError(f"x must be > 0 for a fit against log x, got min {x.min()!r}")
    keys = sorted(set(seeds.tolist()))
    if len(keys) < 2:
        raise ValueError(f"a slope with a standard error over seeds needs at least 2 seeds, got {len(keys)}")
    t = np.log(x)
    slopes, intercepts = [], []
    for key in keys:
        ts, ys = t[seeds == key], y[seeds == key]
        if np.unique(ts).size < 2:
            raise ValueError(f"seed {key!r} has fewer than 2 distinct x values; its slope is undefined")
        tc = ts - ts.mean()
        b_s = float((tc * (ys - ys.mean())).sum() / (tc ** 2).sum())
        slopes.append(b_s)
        intercepts.append(float(ys.mean() - b_s * ts.mean()))
    S = len(keys)
    slopes_arr, intercepts_arr = np.array(slopes), np.array(intercepts)
    b, a = float(slopes_arr.mean()), float(intercepts_arr.mean())
    se_b = float(slopes_arr.std(ddof=1)) / math.sqrt(S)
    se_a = float(intercepts_arr.std(ddof=1)) / math.sqrt(S)
    tss = float(((y - y.mean()) ** 2).sum())
    rss = float(((y - a - b * t) ** 2).sum())
    r2 = 1.0 - rss / tss if tss > 0 else float("nan")
    return dict(b=b, se_b=se_b, a=a, se_a=se_a, **t_summary(b, se_b, S - 1, level), slopes=slopes,
                intercepts=intercepts, seeds=keys, count=S, m=int(x.size), r2=r2)

