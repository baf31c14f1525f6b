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
* :func:`~vqlib.studies.statistics.paired_differences` compares two settings seed by seed
  (same training data), with a Student-t interval over seeds;
* :func:`~vqlib.studies.statistics.paired_log_fit` fits y = a + b·log x *within each seed*
  and reports the mean slope with its standard error over seeds and a Student-t interval
  (df = seeds − 1): the slope of the gap, or of the LV information, per unit of log K (or log width, …)
  when the same seeds are shared by every setting of an axis;
* :func:`axis_verdict` turns a slope and a paired difference into "moves the gap" or
  "within noise" with Student-t quantiles (:func:`~vqlib.studies.statistics.t_quantile`);
* :func:`~vqlib.studies.statistics.log_fit` is the pooled least-squares fit of
  y = a + b·log x, every point an independent observation;
  :func:`~vqlib.studies.statistics.line_fit` is the same fit against x itself (the gap
  against the training loss).

The statistics functions live in :mod:`vqlib.studies.statistics`, shared with other
chapters; this module imports only :func:`~vqlib.studies.statistics.t_quantile`.

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

from .._checks import positive_float, positive_int
from ..bounds.information import entropy
from ..data import check_images
from ..models.engine import evaluate_models
from ..models.ensemble import fit_ensemble
from ..models.metrics import codebook_usage
from ..models.vqvae import VQVAE
from .prior_bounds import uniform_kl
from .statistics import t_quantile

__all__ = ["AXES", "axis_rows", "axis_verdict", "capacity_runs", "capacity_settings", "summarise"]

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

    Parameters
    ----------
    base : mapping
        A value for every name in :data:`AXES` (depths integers ≥ 0, widths, K and L integers ≥ 1);
        may also name the ``architecture``.
    axes : mapping of str to sequence of int
        ``axes[name]`` lists the values that axis takes while the others stay at base; each
        name in :data:`AXES`, each list non-empty.

    Returns
    -------
    list of dict
        Full settings (one dict per model to train), the base first and each setting once,
        even where a list contains the base value.

    Raises
    ------
    ValueError
        When ``base`` misses an axis or holds a bad value, ``axes`` names an unknown axis, a
        list is empty, or a value is not an integer ≥ 0 (depths) or ≥ 1 (the others).

    See also
    --------
    capacity_runs, axis_rows; chapter 8.
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
    """The rows of ``axis``'s sweep: every other axis and the architecture at their ``base`` values (chapter 8).

    A row matches when each axis other than ``axis`` equals its ``base`` value and its
    ``architecture`` is the base's (default ``"mlp"``, for rows and base that name none).

    Parameters
    ----------
    rows : iterable of mapping
        Tidy rows of :func:`capacity_runs`.
    axis : str
        One of :data:`AXES`.
    base : mapping
        A value for every name in :data:`AXES` (depths integers ≥ 0, widths, K and L integers ≥ 1);
        may also name the ``architecture``.

    Returns
    -------
    list of dict
        Copies of the matching rows, sorted by the axis value (then by ``data_seed`` when present).

    Raises
    ------
    ValueError
        When ``axis`` is not in :data:`AXES`, ``base`` misses an axis or holds a bad value, or
        no row matches.

    See also
    --------
    capacity_settings, summarise, vqlib.studies.statistics.paired_log_fit; chapter 8.
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

    Parameters
    ----------
    rows : iterable of mapping
        Tidy rows, each holding every key of ``by`` and ``values``; at least one.
    by : str or sequence of str
        The key(s) that define a setting; at least one.
    values : sequence of str, default ("train_loss", "test_loss", "gap")
        The keys to average; at least one.

    Returns
    -------
    list of dict
        One dict per distinct value of the ``by`` key(s), in sorted order, with the ``by``
        entries, ``count`` (rows in the group) and ``<v>_mean``, ``<v>_std`` (sample standard
        deviation, ddof = 1; NaN for a group of one row) for every ``v`` in ``values``.

    Raises
    ------
    ValueError
        When ``rows``, ``by`` or ``values`` is empty, a row misses a key, or a value is not finite.

    See also
    --------
    axis_rows, vqlib.studies.statistics.sem; chapter 8.
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


def axis_verdict(slope: Mapping, paired: Mapping | None = None, level: float = 0.95) -> str:
    """The verdict "moves the gap" or "within noise" for one axis of the sweep (chapter 8).

    The axis *moves the gap* when either |t| ≥ :func:`~vqlib.studies.statistics.t_quantile`
    (df, ``level``), i.e. when the two-sided Student-t interval at ``level`` of the mean
    per-seed slope, or of the mean per-seed difference between the largest and the smallest
    value, excludes zero; otherwise it is *within noise* (not detected, which is not the same
    as zero). With three seeds (df = 2) a t value of 3 is within noise: t_{0.975, 2} = 4.30.
    A result with df < 1 or a NaN t detects nothing.

    Parameters
    ----------
    slope : mapping
        A :func:`~vqlib.studies.statistics.paired_log_fit` result; carries its ``t`` and ``df``.
    paired : mapping, optional
        A :func:`~vqlib.studies.statistics.paired_differences` result; carries its ``t`` and ``df``.
    level : float, default 0.95
        Two-sided coverage, in (0, 1).

    Returns
    -------
    str
        ``"moves the gap"`` or ``"within noise"``.

    Raises
    ------
    ValueError
        When a result lacks ``t`` or ``df``, or ``level`` is outside (0, 1) (checked for a result
        with df ≥ 1 and a t that is not NaN).

    See also
    --------
    vqlib.studies.statistics.paired_log_fit, vqlib.studies.statistics.paired_differences,
    vqlib.studies.statistics.t_quantile; chapter 8.
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

    ``setting`` may name the ``architecture`` (``"mlp"``, the default, or ``"conv"``: then depth
    counts residual blocks, width channels, and L must be a latent grid,
    :func:`vqlib.models.latent_grids`). Run r draws n training inputs and n_test held-out
    inputs, disjoint, from ``x`` with ``data_seeds[r]``, and seeds the weights and batch order
    with ``train_seeds[r]``; the runs train together with :func:`vqlib.models.fit_ensemble`
    (each ends as :func:`vqlib.fit` would leave it). For the deterministic quantizer J is a
    function of X, so H(J_l) = I(X; J_l) and H(J) = I(X; J) under the empirical law of the n
    training inputs; L log K is the uniform-prior KL of each input's one-hot posterior.

    Parameters
    ----------
    x : tensor or array (N, C, H, W)
        Images in [0, 1], N ≥ n + n_test.
    setting : mapping
        A value for every name in :data:`AXES` (decoder/encoder depth and width, K, L), and
        optionally ``architecture``.
    data_seeds : sequence of int
        One seed ≥ 0 per run for the data split; at least one.
    train_seeds : sequence of int
        One seed ≥ 0 per run for weights and batch order; as many as ``data_seeds``.
    n : int
        Training inputs per run, ≥ 1.
    n_test : int
        Held-out inputs per run, ≥ 1.
    epochs : int, default 100
        Training epochs.
    batch_size : int, default 25
        Minibatch size.
    lr : float, default 3e-3
        Learning rate, > 0.
    code_dim : int, default 8
        Dimension of the codes.
    device : str or torch.device, optional
        Where to train (default: :func:`vqlib.default_device`).

    Returns
    -------
    list of dict
        One row per run with the setting (the six axes and ``architecture``), both seeds
        (``data_seed``, ``train_seed``), ``n``, ``n_test``, ``epochs``, ``train_loss`` and
        ``test_loss`` (mean per-input ‖x − x̂‖²/d), ``gap`` = test − train, the parameter counts
        ``encoder_params`` and ``decoder_params``, codebook usage on the training set
        (``perplexity``, ``used_fraction``), the plug-in LV information ``lv_rate`` = Σ_l H(J_l)
        and ``lv_joint`` = H(J) on the training inputs (nats) and ``kl_uniform`` = L log K.

    Raises
    ------
    ValueError
        When ``setting`` misses an axis or holds a bad value, ``x`` is not a batch of images in
        [0, 1], ``n`` or ``n_test`` is not an integer ≥ 1, n + n_test exceeds the inputs of ``x``,
        the seed lists are empty, of different lengths or hold a value that is not an integer
        ≥ 0, or ``lr`` is not a number > 0 (and for model arguments :class:`vqlib.VQVAE` refuses).

    See also
    --------
    capacity_settings, axis_rows, summarise, vqlib.studies.statistics.paired_log_fit; chapter 8.
    """

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
    if not (bool(torch.isfinite(train_losses).all()) and bool(torch.isfinite(test_losses).all())):
        raise FloatingPointError(f"training diverged: some runs' losses are not finite (lr={lr!r}); "
                                 "try a smaller lr")  # never a NaN row in a table or a cache entry
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
