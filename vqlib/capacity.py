"""Who controls the generalization gap: encoder, latents or decoder (chapter 8).

The paper's empirical claim is that decoder capacity barely moves the gap while the
encoder's capacity, the codebook size K and the number of latent positions L do.
Chapter 8 tests it on the digits with one-axis-at-a-time sweeps around a base model:

* :func:`capacity_settings` lists the distinct model settings of such a sweep (the base
  once, then every departure of one axis from it);
* :func:`capacity_runs` trains VQ-VAEs of one setting (one per seed) on n training
  digits and measures the train loss, the held-out test loss, the gap (test − train) and the
  information carried by the latent variables (LVs) on the training set;
* :func:`axis_rows` picks, from all rows, those of one axis (every other axis at base);
* :func:`summarise` reduces rows to mean ± standard deviation over seeds per setting;
* :func:`paired_differences` compares two settings seed by seed (same training data),
  with a Student-t interval over seeds;
* :func:`paired_log_fit` fits y = a + b·log x *within each seed* and reports the mean
  slope with its standard error over seeds and a Student-t interval (df = seeds − 1):
  the slope of the gap, or of the LV information, per unit of log K (or log width, …)
  when the same seeds are shared by every setting of an axis;
* :func:`axis_verdict` turns a slope and a paired difference into "moves the gap" or
  "within noise" with Student-t quantiles (:func:`t_quantile`);
* :func:`log_fit` is the pooled least-squares fit of y = a + b·log x, every point an
  independent observation; :func:`line_fit` is the same fit against x itself (the gap
  against the training loss).

Seeds: ``data_seed`` draws the n training and the held-out test digits, ``train_seed``
the initial weights and the batch order; both are in every row. Chapter 8 uses the same
seeds in every setting (a repeated-measures design), so two rows with the same seed are
not independent: a seed whose training draw is hard has a larger gap at every setting.
Its slopes and differences are therefore computed seed by seed, and their uncertainty
comes from the scatter *between* seeds, with seeds − 1 degrees of freedom.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from scipy import stats

from ._checks import positive_float, positive_int, unit_float
from .data import check_images
from .information import entropy
from .metrics import codebook_usage
from .model import VQVAE
from .prior_bounds import uniform_kl

__all__ = ["AXES", "axis_rows", "axis_verdict", "capacity_runs", "capacity_settings", "line_fit", "log_fit",
           "paired_differences", "paired_log_fit", "summarise", "t_quantile"]

#: The model arguments chapter 8 sweeps, in the order the chapter shows them.
AXES = ("decoder_depth", "decoder_width", "encoder_depth", "encoder_width", "K", "L")


def _check_base(base: Mapping) -> dict:
    base = dict(base)
    missing = [a for a in AXES if a not in base]
    if missing:
        raise ValueError(f"base must set every axis {AXES}; missing {missing}")
    for axis in AXES:
        positive_int(base[axis], f"base[{axis!r}]", minimum=0 if axis.endswith("depth") else 1)
    return base


def capacity_settings(base: Mapping, axes: Mapping[str, Sequence[int]]) -> list[dict]:
    """The distinct settings of a one-axis-at-a-time sweep around ``base`` (chapter 8).

    ``base`` gives a value to every name in :data:`AXES`; ``axes[name]`` lists the values
    that axis takes while the others stay at base. Returns a list of full settings (one
    dict per model to train), the base first and each setting once, even where a list
    contains the base value.
    """
    base = _check_base(base)
    unknown = sorted(set(axes) - set(AXES))
    if unknown:
        raise ValueError(f"axes has unknown name(s) {unknown}; known: {AXES}")
    settings = [base]
    for axis, values in axes.items():
        values = list(values)
        if not values:
            raise ValueError(f"axes[{axis!r}] is empty")
        for v in values:
            positive_int(v, f"axes[{axis!r}] entry", minimum=0 if axis.endswith("depth") else 1)
            setting = dict(base, **{axis: int(v)})
            if setting not in settings:
                settings.append(setting)
    return settings


def axis_rows(rows: Iterable[Mapping], axis: str, base: Mapping) -> list[dict]:
    """The rows of ``axis``'s sweep: every other axis at its ``base`` value, and the base's
    ``architecture`` (default ``"mlp"``) (chapter 8).

    Rows are sorted by the axis value (then by ``data_seed`` when present).
    """
    if axis not in AXES:
        raise ValueError(f"axis={axis!r} is not one of {AXES}")
    base = _check_base(base)
    others = [a for a in AXES if a != axis]
    arch = base.get("architecture", "mlp")
    out = [dict(r) for r in rows if all(r.get(a) == base[a] for a in others)
           and r.get("architecture", "mlp") == arch]
    if not out:
        raise ValueError(f"no rows with every axis but {axis!r} at its base value")
    return sorted(out, key=lambda r: (r[axis], r.get("data_seed", 0)))


def summarise(rows: Iterable[Mapping], by: str | Sequence[str],
              values: Sequence[str] = ("train_loss", "test_loss", "gap")) -> list[dict]:
    """Mean and standard deviation over seeds of ``values``, per setting of ``by`` (chapter 8).

    Returns one dict per distinct value of the ``by`` key(s), in sorted order, with the
    ``by`` entries, ``count`` (rows in the group) and ``<v>_mean``, ``<v>_std`` (sample
    standard deviation, ddof = 1; NaN for a group of one row) for every ``v`` in
    ``values``. Missing keys and non-finite values raise ``ValueError``.
    """
    by = [by] if isinstance(by, str) else list(by)
    rows = list(rows)
    if not rows:
        raise ValueError("rows is empty")
    if not by or not values:
        raise ValueError("by and values must each name at least one key")
    groups: dict[tuple, list[Mapping]] = {}
    for i, r in enumerate(rows):
        for key in [*by, *values]:
            if key not in r:
                raise ValueError(f"row {i} has no key {key!r}")
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    out = []
    for key in sorted(groups):
        group = groups[key]
        entry = dict(zip(by, key), count=len(group))
        for v in values:
            arr = np.array([g[v] for g in group], dtype=float)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{v} has a non-finite value in the group {dict(zip(by, key))}")
            entry[f"{v}_mean"] = float(arr.mean())
            entry[f"{v}_std"] = float(arr.std(ddof=1)) if len(arr) > 1 else float("nan")
        out.append(entry)
    return out


def paired_differences(rows: Iterable[Mapping], axis: str, low, high, value: str = "gap",
                       pair_key: str = "data_seed", level: float = 0.95) -> dict:
    """``value`` at ``axis = high`` minus at ``axis = low``, seed by seed (chapter 8).

    Rows with the same ``pair_key`` were trained on the same n digits, so their
    difference removes the variation of the gap between training sets. Returns the
    differences (sorted by ``pair_key``), their ``mean``, ``std`` (ddof = 1), standard error
    ``sem``, ``count`` (seeds), ``df`` = count − 1, ``t`` = mean / sem, the two-sided
    Student-t quantile ``t_crit`` = :func:`t_quantile` (df, ``level``), the interval ``ci`` =
    mean ± t_crit · sem at that ``level``, and ``detected`` (|t| ≥ t_crit: the interval
    excludes zero). With one seed, ``std``, ``sem``, ``t``, ``t_crit`` and ``ci`` are NaN and
    ``detected`` is False. Raises ``ValueError`` when a seed lacks one of the two settings,
    a seed appears twice in a setting, or no seed has both.
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
                **_t_summary(mean, sem, d.size - 1, level))


def t_quantile(df, level: float = 0.95) -> float:
    """The two-sided Student-t critical value t_{(1 + level)/2, df} (chapter 8).

    An interval estimate ± t_quantile(df) · s.e. covers the true value with probability
    ``level`` when the estimate is the mean of df + 1 independent normal values (the
    per-seed slopes or differences of chapter 8). ``t_quantile(2) = 4.30`` for three
    seeds, against 1.96 for a normal quantile. Raises ``ValueError`` for df < 1 or a level
    outside (0, 1).
    """
    df = positive_int(df, "df", minimum=1)
    level = unit_float(level, "level", open_left=True, open_right=True)
    return float(stats.t.ppf(0.5 + level / 2, df))


def _t_summary(estimate: float, se: float, df: int, level: float) -> dict:
    """t, df, the t quantile, the interval and whether it excludes zero, for a mean over seeds."""
    if df < 1 or not math.isfinite(se):
        nan = float("nan")
        return dict(df=int(df), level=level, t=nan, t_crit=nan, ci=(nan, nan), detected=False)
    t_crit = t_quantile(df, level)
    t_stat = estimate / se if se > 0 else (0.0 if estimate == 0 else math.copysign(math.inf, estimate))
    return dict(df=int(df), level=level, t=t_stat, t_crit=t_crit,
                ci=(estimate - t_crit * se, estimate + t_crit * se), detected=bool(abs(t_stat) >= t_crit))


def axis_verdict(slope: Mapping, paired: Mapping | None = None, level: float = 0.95) -> str:
    """The verdict "moves the gap" or "within noise" for one axis of chapter 8's sweep.

    ``slope`` is a :func:`paired_log_fit` result and ``paired`` (optional) a
    :func:`paired_differences` result; each carries its ``t`` and ``df``. The axis *moves
    the gap* when either |t| ≥ :func:`t_quantile` (df, ``level``), i.e. when the two-sided
    Student-t interval at ``level`` of the mean per-seed slope, or of the mean per-seed
    difference between the largest and the smallest value, excludes zero; otherwise it is
    *within noise* (not detected, which is not the same as zero). With three seeds (df = 2)
    a t value of 3 is within noise: t_{0.975, 2} = 4.30.
    """
    for result in (slope, paired):
        if result is None:
            continue
        for key in ("t", "df"):
            if key not in result:
                raise ValueError(f"a slope or paired result must have {key!r}; got keys {sorted(result)}")
        t_stat, df = float(result["t"]), int(result["df"])
        if df >= 1 and not math.isnan(t_stat) and abs(t_stat) >= t_quantile(df, level):
            return "moves the gap"
    return "within noise"


def line_fit(x, y) -> dict:
    """Least-squares fit y = a + b·x with standard errors (chapter 8).

    Every (x, y) pair is taken as an independent observation: the standard errors are
    those of ordinary least squares, from the residual variance with m − 2 degrees of
    freedom. When the points come in groups that share a seed (chapter 8's sweeps), they
    are not independent; use :func:`paired_log_fit` for the slope and its uncertainty.
    Returns a dict with ``a``, ``b``, their standard errors ``se_a``, ``se_b``, ``t`` =
    b / se_b, ``df`` = m − 2, ``r2``, ``m`` (number of points) and ``sigma`` (the residual
    standard deviation). Raises ``ValueError`` for NaN or inf,
    lengths that differ, or fewer than three distinct x values (a line through two
    points has no error estimate).
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
    …): :func:`line_fit` on (log x, y), with the same keys. Raises ``ValueError`` for
    x ≤ 0, NaN or inf, lengths that differ, or fewer than three distinct x values.
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

    Returns a dict with ``b``, ``se_b``, ``a`` and ``se_a`` (the same for the intercepts
    a_s), ``t`` = b / se_b, ``df`` = S − 1, ``t_crit`` = :func:`t_quantile` (df, ``level``),
    ``ci`` = b ± t_crit · se_b, ``detected`` (|t| ≥ t_crit), ``level``, ``slopes`` and
    ``intercepts`` (per seed), ``seeds`` (sorted), ``count`` = S, ``m`` (points) and ``r2``
    (the share of the variance of all points that the line a + b log x explains; a
    description, not a test). Raises ``ValueError`` for x ≤ 0, NaN or inf, lengths that
    differ, fewer than two seeds, or a seed with fewer than two distinct x values.
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
    return dict(b=b, se_b=se_b, a=a, se_a=se_a, **_t_summary(b, se_b, S - 1, level), slopes=slopes,
                intercepts=intercepts, seeds=keys, count=S, m=int(x.size), r2=r2)


def _lv_information(codes: torch.Tensor) -> dict:
    """Plug-in information of the LVs of n training inputs (nats).

    For the deterministic (nearest) quantizer J is a function of X, so I(X; J) = H(J)
    under the empirical law of the n inputs. ``lv_rate`` = Σ_l H(J_l) (≤ L log K) and
    ``lv_joint`` = H(J_1, …, J_L) (≤ min(L log K, log n)).
    """
    codes = codes.numpy()
    rate = float(sum(entropy(codes[:, l]) for l in range(codes.shape[1])))
    tuples = np.unique(codes, axis=0, return_inverse=True)[1].ravel()
    return dict(lv_rate=rate, lv_joint=entropy(tuples))


def capacity_runs(x, setting: Mapping, *, data_seeds: Sequence[int], train_seeds: Sequence[int], n: int,
                  n_test: int, epochs: int = 100, batch_size: int = 25, lr: float = 3e-3, code_dim: int = 8,
                  device=None) -> list[dict]:
    """Train VQ-VAEs of one ``setting`` on n digits each; measure gap and LV information (chapter 8).

    ``setting`` gives every name in :data:`AXES` (decoder/encoder depth and width, K, L) and may
    name the ``architecture`` (``"mlp"``, the default, or ``"conv"``: then depth counts residual
    blocks, width channels, and L must be a latent grid, :func:`vqlib.model.latent_grids`).
    Run r draws n training inputs and n_test held-out inputs, disjoint, from ``x`` with
    ``data_seeds[r]``, and seeds the weights and batch order with ``train_seeds[r]``; the
    runs train together with :func:`vqlib.ensemble.fit_ensemble` (each ends as
    :func:`vqlib.fit` would leave it). Returns one row per run with the setting, both
    seeds, ``train_loss`` and ``test_loss`` (mean per-input ‖x − x̂‖²/d), ``gap`` = test −
    train, the parameter counts of encoder and decoder, codebook usage on the training
    set, the plug-in LV information ``lv_rate`` = Σ_l H(J_l) and ``lv_joint`` = H(J) on the
    training inputs (nats; for the deterministic quantizer J is a function of X, so these
    are I(X; J_l) summed and I(X; J) under the empirical law) and ``kl_uniform`` = L log K,
    the uniform-prior KL of each input's one-hot posterior.
    """
    from .engine import evaluate_models
    from .ensemble import fit_ensemble

    setting = _check_base(setting)
    x = check_images(x, name="x")
    n, n_test = positive_int(n, "n"), positive_int(n_test, "n_test")
    if n + n_test > len(x):
        raise ValueError(f"n + n_test = {n + n_test} is more than the {len(x)} inputs of x")
    data_seeds = [positive_int(s, "data_seeds entry", minimum=0) for s in data_seeds]
    train_seeds = [positive_int(s, "train_seeds entry", minimum=0) for s in train_seeds]
    if not data_seeds or len(data_seeds) != len(train_seeds):
        raise ValueError(f"data_seeds and train_seeds must be non-empty and of equal length, got "
                         f"{len(data_seeds)} and {len(train_seeds)}")
    positive_float(lr, "lr")
    splits = []
    for s in data_seeds:
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(s))
        splits.append((x[order[:n]], x[order[n:n + n_test]]))
    architecture = setting.get("architecture", "mlp")
    models = [VQVAE(x.shape[1:], setting["K"], setting["L"], code_dim=code_dim, architecture=architecture,
                    encoder_depth=setting["encoder_depth"], decoder_depth=setting["decoder_depth"],
                    encoder_width=setting["encoder_width"], decoder_width=setting["decoder_width"], seed=t)
              for t in train_seeds]
    fit_ensemble(models, [tr for tr, _ in splits], epochs=epochs, batch_size=batch_size, lr=lr,
                 train_seeds=train_seeds, device=device, evaluate=False)
    train_losses, train_codes = evaluate_models(models, torch.stack([tr for tr, _ in splits]), train_seeds=train_seeds)
    test_losses, _ = evaluate_models(models, torch.stack([te for _, te in splits]), train_seeds=train_seeds)
    rows = []
    for model, d, t, train, test, codes in zip(models, data_seeds, train_seeds, train_losses, test_losses,
                                               train_codes):
        usage = codebook_usage(codes, setting["K"])
        rows.append(dict(
            {a: int(setting[a]) for a in AXES}, architecture=architecture, data_seed=d, train_seed=t, n=n,
            n_test=n_test,
            epochs=epochs, train_loss=float(train.mean()), test_loss=float(test.mean()),
            gap=float(test.mean() - train.mean()),
            encoder_params=sum(p.numel() for p in model.encoder.parameters()),
            decoder_params=sum(p.numel() for p in model.decoder.parameters()),
            perplexity=usage.perplexity, used_fraction=usage.used_fraction,
            kl_uniform=uniform_kl(setting["K"], setting["L"]), **_lv_information(codes),
        ))
    return rows
