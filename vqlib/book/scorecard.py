"""Every bound on the same runs, and a scorecard of the paper's claims (chapter 9).

Chapter 9 trains nothing. It reads the registered sweeps of chapters 2 to 8 (the same
runs those chapters show) and puts their numbers side by side. This module serves that
chapter only:

* the *configurations*: :func:`supersample_configuration` (a row of ``ch02-kmeans`` or
  ``ch02-vqvae``: everything trained on the training half), :func:`encoder_only_configuration`
  (the row of ``ch04-main``: decoder and codebook frozen) and :func:`temperature_configuration`
  (the rows of ``ch06-temperature`` at one β) turn each sweep's rows into one dict with the
  same keys, which :func:`vqlib.book.bounds_table` and :func:`vqlib.book.plots.bounds_against_gap`
  read: the measured gap and its standard error over supersamples, the plug-in estimates
  (``bounds``, with ``per_supersample`` values for their standard errors) and the certified
  or exact values (``certified``, ``certified_kinds``, ``confidence``);
* their checks: :func:`target_gap` (which gap a value bounds: chapter 6 certifies two),
  :func:`configuration_table` (every value with its kind, next to the gap it bounds),
  :func:`certified_checks` (is every certified or exact value at or above the gap it bounds minus
  two standard errors?), :func:`tightest`, and the price of certifying a mean from J runs,
  :func:`certification_floor` (chapter 2's exercise ``ex-02-floor``) with :func:`estimation_runs`;
* the *claims* (:data:`CLAIMS`): one function per claim turns the sweeps' rows into a verdict
  (:data:`VERDICTS`) and the evidence behind it. Every uncertainty is a standard error over
  seeds or supersamples with a Student-t quantile, computed by chapter 8's own functions
  (:func:`vqlib.studies.statistics.paired_log_fit`, :func:`vqlib.studies.statistics.paired_differences`,
  :func:`vqlib.studies.capacity.axis_verdict`): the same computation, never a second copy.

A verdict is one of "confirmed", "refuted" and "not testable here"; each claim function says
in its docstring exactly which computed facts lead to which verdict.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .._checks import positive_float, positive_int, unit_float
from ..bounds.certificates import STAKE
from ..studies.capacity import AXES, axis_rows, axis_verdict
from ..studies.statistics import paired_differences, paired_log_fit, sem

__all__ = ["CLAIMS", "NAMES", "TARGET_NAMES", "VERDICTS", "axis_evidence", "certification_floor",
           "certified_checks", "configuration_table", "decoder_claim", "encoder_only_configuration",
           "estimation_runs", "log_k_claim", "n_claim", "penalty_claim", "prior_gap_claim", "prior_generation_claim",
           "supersample_configuration", "target_gap", "temperature_claim", "temperature_configuration", "tightest"]

#: The paper's claims the book tests (chapter 9's scorecard), by key.
CLAIMS = {
    "a": "decoder capacity barely moves the generalization gap",
    "b": "the latent term grows like log K",
    "c_gap": "the KL between the LV posterior and a prior controls the gap",
    "c_prior": "a generation prior with a smaller KL generates better samples",
    "c_penalty": "penalising that KL in training improves generation",
    "d": "the bounds fall with n",
    "e": "the temperature trades generalization against reconstruction",
}

#: The three verdicts of the scorecard.
VERDICTS = ("confirmed", "refuted", "not testable here")

#: Short names of every bound on the gap that chapter 9 tabulates (keys of the sweeps' rows).
NAMES = {
    "ld_cmi_cosh": "loss-difference CMI, cosh form",
    "e_cmi_cosh": "e-CMI (pair of losses), cosh form",
    "held_out": "held-out ghosts",
    "ld_cmi": "loss-difference CMI, range 1",
    "e_cmi": "e-CMI, range 1",
    "stability": "stability √(2 I_β), data-free",
    "stability_cosh": "stability, cosh form",
    "lv_marginal": "LV, mask-marginal prior",
    "lv_uniform": "LV, uniform prior",
    "lv_reference": "LV, reference prior",
    "lv_aggregated": "LV, aggregated prior",
    "lv_swap": "LV, swap-symmetric prior",
}

#: The estimates of chapter 6's rows that are estimates of bounds on the gap (``stability`` is
#: exact and sits with the certified values).
TEMPERATURE_ESTIMATES = ("ld_cmi_cosh", "e_cmi_cosh", "ld_cmi", "e_cmi", "stability_cosh", "lv_uniform",
                         "lv_reference")


def _require(row: Mapping, keys: Iterable[str], what: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise ValueError(f"{what} lacks {missing}; got keys {sorted(row)[:20]}")


# --------------------------------------------------------------------------- configurations


def _held_out_inputs(cert: Mapping, S: int, M: int) -> dict:
    """The runs J and the δ the held-out certificate used (the floor's inputs), from the certificate's
    terms and allocation; without them, the estimation runs of all supersamples and δ = None."""
    terms, allocation = cert.get("terms") or {}, cert.get("allocation") or {}
    runs = terms.get("held_out_runs", S * (cert.get("n_estimate") or estimation_runs(M)))
    return dict(held_out_runs=int(runs), held_out_delta=allocation.get("held_out"))


def supersample_configuration(row: Mapping) -> dict:
    """One job of chapter 2's sweeps (``ch02-kmeans``, ``ch02-vqvae``) as a chapter-9 configuration.

    Everything is trained on the training half (the k-means toy's centres; the VQ-VAE's
    encoder, codebook and decoder), so the latent-variable bounds pay log 2 per pair for the
    decoder and are exactly 1 (kind *exact*). Returns the keys every configuration has:
    ``gap``, ``gap_sem`` (over supersamples), ``bounds`` (plug-in estimates),
    ``per_supersample``, ``certified``, ``certified_kinds``, ``confidence``, the setting
    (``learner``, ``trained``, ``n``, ``K``, ``L``, ``beta`` = None), the experiment's size
    (``n_supersamples``, ``n_masks``, ``n_estimate`` = estimation runs per supersample), the
    held-out certificate's runs and δ (``held_out_runs``, ``held_out_delta``: the inputs of
    :func:`certification_floor`) and ``source``.
    """
    _require(row, ("gap", "gap_sem", "bounds", "per_supersample", "certified", "certified_kinds", "confidence",
                   "n", "K", "L", "learner", "n_supersamples", "n_masks"), "a chapter-2 row")
    cert = row.get("certificate") or {}
    return dict(source="ch02-kmeans" if row["learner"] == "kmeans" else "ch02-vqvae", learner=row["learner"],
                trained="all", n=row["n"], K=row["K"], L=row["L"], beta=None,
                n_supersamples=row["n_supersamples"], n_masks=row["n_masks"],
                n_estimate=cert["n_estimate"] if "n_estimate" in cert else estimation_runs(row["n_masks"]),
                gap=float(row["gap"]), gap_sem=float(row["gap_sem"]), bounds=dict(row["bounds"]),
                per_supersample=[dict(p) for p in row["per_supersample"]], certified=dict(row["certified"]),
                certified_kinds=dict(row["certified_kinds"]), confidence=float(row["confidence"]),
                **_held_out_inputs(cert, row["n_supersamples"], row["n_masks"]))


def encoder_only_configuration(row: Mapping) -> dict:
    """The row of ``ch04-main`` (encoder trained, decoder and codebook frozen) as a configuration.

    Its ``summary`` (:func:`vqlib.studies.prior_bounds.lv_summary`) has two estimates of the
    mask-marginal LV bound: ``lv_marginal``, in-sample (its "prior" includes the run it scores,
    so it is not a valid prior: an estimate from below), and ``lv_marginal_loo``, leave one run
    out (a valid prior for every run). The configuration keeps the valid one, under the name
    ``lv_marginal`` that chapter 2's rows and the certificate use. The gap is chapter 4's
    control-variate estimate. Keys as in :func:`supersample_configuration`.
    """
    _require(row, ("summary", "K", "L", "n", "supersample_seeds", "mask_seeds"), "a ch04-main row")
    s = row["summary"]
    _require(s, ("gap", "gap_sem", "bounds", "per_supersample", "certified", "certified_kinds", "confidence"),
             "the row's summary")

    def valid(d: Mapping) -> dict:
        out = {k: v for k, v in d.items() if k not in ("lv_marginal", "lv_marginal_loo")}
        if "lv_marginal_loo" in d:
            out["lv_marginal"] = d["lv_marginal_loo"]
        return out

    S = len(row["supersample_seeds"])
    M = np.asarray(row["mask_seeds"]).size // S  # one mask seed per (supersample, mask)
    cert = s.get("certificate") or {}
    return dict(source="ch04-main", learner="vqvae", trained="encoder", n=row["n"], K=row["K"], L=row["L"],
                beta=None, n_supersamples=S, n_masks=M,
                n_estimate=cert["n_estimate"] if "n_estimate" in cert else estimation_runs(M),
                gap=float(s["gap"]), gap_sem=float(s["gap_sem"]), bounds=valid(s["bounds"]),
                per_supersample=[valid(p) for p in s["per_supersample"]], certified=dict(s["certified"]),
                certified_kinds=dict(s["certified_kinds"]), confidence=float(s["confidence"]),
                **_held_out_inputs(cert, S, M))


def temperature_configuration(rows: Iterable[Mapping], beta: float) -> dict:
    """The rows of ``ch06-temperature`` at inverse temperature ``beta`` as one configuration.

    Chapter 6 has one row per (β, supersample). The gap is the mean of the supersamples'
    control-variate gaps of the shared-uniform averaged losses and ``gap_sem`` their standard error
    (ddof = 1), as chapter 6 reports them; ``gap_single`` and ``gap_single_sem`` are the same for the
    single-draw losses. Each estimate of :data:`TEMPERATURE_ESTIMATES` is averaged over the
    supersamples. The certified values (the same dict in every row of a β: they bound the average over
    its supersamples) include the data-free stability bound, kind *exact*; ``certified_targets`` says
    which gap each bounds: ``"shared"`` (``gap``) or ``"single"`` (``gap_single``). Raises
    ``ValueError`` when no row has this β or the rows of the β disagree on their certified values.
    """
    chosen = [r for r in rows if r.get("beta") == beta]
    if not chosen:
        raise ValueError(f"no row with beta={beta!r}")
    for r in chosen:
        _require(r, ("gap", "gap_sem", "supersample_seed", "certified", "certified_kinds", "confidence",
                     "mask_seeds", "K", "L", "n", *TEMPERATURE_ESTIMATES), "a ch06-temperature row")
    first = chosen[0]
    if any(r["certified"] != first["certified"] for r in chosen):
        raise ValueError(f"the rows with beta={beta!r} disagree on their certified values")
    gaps = [float(r["gap"]) for r in chosen]
    singles = [float(r.get("gap_single", r["gap"])) for r in chosen]
    per = [dict({k: float(r[k]) for k in TEMPERATURE_ESTIMATES}, gap=float(r["gap"]), gap_sem=float(r["gap_sem"]),
                gap_single=float(r.get("gap_single", r["gap"])), supersample_seed=r["supersample_seed"])
           for r in chosen]
    M = len(first["mask_seeds"])
    targets = dict(first.get("certified_targets") or {k: "shared" for k in first["certified"]})
    return dict(source="ch06-temperature", learner="vqvae", trained="encoder", n=first["n"], K=first["K"],
                L=first["L"], beta=float(beta), n_supersamples=len(chosen), n_masks=M,
                n_estimate=estimation_runs(M), gap=float(np.mean(gaps)), gap_sem=sem(gaps),
                gap_single=float(np.mean(singles)), gap_single_sem=sem(singles),
                bounds={k: float(np.mean([p[k] for p in per])) for k in TEMPERATURE_ESTIMATES},
                per_supersample=per, certified=dict(first["certified"]),
                certified_kinds=dict(first["certified_kinds"]), certified_targets=targets,
                confidence=float(first["confidence"]),
                **_held_out_inputs((first.get("certified_terms") or {}).get("shared") or {}, len(chosen), M))


def target_gap(config: Mapping, name: str) -> tuple[float, float]:
    """(gap, s.e.) that the certified value ``name`` of ``config`` bounds (chapters 6 and 9).

    A configuration's values bound its ``gap`` unless ``certified_targets`` says ``"single"``:
    chapter 6's single-draw certificate bounds ``gap_single``.
    """
    if (config.get("certified_targets") or {}).get(name, "shared") == "single":
        return float(config["gap_single"]), float(config["gap_single_sem"])
    return float(config["gap"]), float(config["gap_sem"])


def tightest(config: Mapping, kinds: Sequence[str] = ("certified", "exact"),
             target: str = "shared") -> tuple[str, float]:
    """(name, value) of the smallest certified or exact value of ``config`` whose kind is in ``kinds``
    and that bounds the configuration's ``gap`` (``target="shared"``; ``"single"``: chapter 6's
    single-draw gap); ``kinds=("estimate",)`` picks the smallest plug-in estimate instead (chapter 9).
    Values that bound different gaps are never compared: an estimate is taken to bound the gap of
    the certified value of the same name (chapter 6 computes both on the same losses), ``"shared"``
    when there is none."""
    targets = config.get("certified_targets") or {}
    if tuple(kinds) == ("estimate",):
        values = {k: v for k, v in config["bounds"].items() if targets.get(k, "shared") == target}
    else:
        values = {k: v for k, v in config["certified"].items() if config["certified_kinds"].get(k) in kinds
                  and targets.get(k, "shared") == target}
    if not values:
        raise ValueError(f"the configuration has no value of kind {tuple(kinds)} for the {target} gap")
    name = min(values, key=values.get)
    return name, float(values[name])


#: How chapter 9's tables name the two gaps of chapter 6 (``certified_targets``).
TARGET_NAMES = {"shared": "shared uniforms", "single": "single draw"}


def _ratio(value: float, gap: float, gap_sem: float, sigmas: float) -> str:
    """A value's ratio to the gap it bounds, as chapter 9's tables print it."""
    if value >= 1:
        return "vacuous"
    if gap - sigmas * gap_sem > 0:
        r = value / gap
        return f"{r:.1f}" if r < 100 else f"{r:.0f}"
    upper = gap + sigmas * gap_sem  # the gap is within noise of 0: a ratio to it means nothing
    return f"gap ≈ 0; ÷ (gap + {sigmas:g} s.e.) = {value / upper:.0f}" if upper > 0 else "gap ≈ 0"


def configuration_table(config: Mapping, names: Mapping[str, str] = NAMES, sigmas: float = 2.0) -> str:
    """A Markdown table of every bound of a configuration, each next to the gap it bounds (chapter 9).

    One line per (bound, kind): *estimate ± s.e.* (over the supersamples), *certified (δ = …,
    jointly)* or *exact*, the value and its ratio to the gap it bounds (:func:`target_gap`; an
    estimate is compared with the gap of the certified value of the same name). The ratio reads
    "vacuous" for a value ≥ 1; where the gap is within ``sigmas`` standard errors of 0 a ratio to it
    means nothing, and the line gives the value's ratio to the gap's upper end gap + ``sigmas``·s.e.
    instead. With ``certified_targets`` (chapter 6) a column says which gap each line bounds
    (:data:`TARGET_NAMES`). Display it with ``IPython.display.Markdown``.
    """
    bounds, certified = config.get("bounds") or {}, config.get("certified") or {}
    kinds, per = config.get("certified_kinds") or {}, config.get("per_supersample") or []
    targets = config.get("certified_targets")
    delta = 1 - float(config["confidence"])
    head = ["bound", "kind", "value", *(["bounds the gap of"] if targets else []), "÷ that gap"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in [k for k in names if k in bounds or k in certified]:
        gap, gap_sem = target_gap(config, k)
        where = [TARGET_NAMES[targets.get(k, "shared")]] if targets else []
        if k in bounds:
            vals = [float(p[k]) for p in per if k in p]
            se = f" ± {sem(vals):.4f}" if len(vals) >= 2 else ""
            cells = [names[k], "estimate ± s.e.", f"{bounds[k]:.4f}{se}", *where,
                     _ratio(bounds[k], gap, gap_sem, sigmas)]
            lines.append("| " + " | ".join(cells) + " |")
        if k in certified:
            kind = kinds.get(k, "certified")
            label = f"certified (δ = {delta:.2g}, jointly)" if kind == "certified" else kind
            cells = [names[k], label, f"{certified[k]:.4f}", *where, _ratio(certified[k], gap, gap_sem, sigmas)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def certified_checks(configs: Mapping[str, Mapping], sigmas: float = 2.0) -> dict:
    """Is every certified or exact value at or above its configuration's gap − ``sigmas`` s.e.? (chapter 9)

    A certified value bounds the average over the configuration's supersamples of the
    expected gap given each, the quantity the measured gap estimates; all values of one
    configuration hold at once with probability at least its ``confidence``, so a violation
    is possible (probability ≤ δ per configuration) but every one is worth a look. Returns
    ``passed``, ``total`` and ``failures`` (configuration, bound, value, gap, gap_sem).
    """
    passed = total = 0
    failures = []
    for name, c in configs.items():
        for key, value in c["certified"].items():
            gap, gap_sem = target_gap(c, key)
            total += 1
            if value >= gap - sigmas * gap_sem:
                passed += 1
            else:
                failures.append((name, key, float(value), gap, gap_sem))
    return dict(passed=passed, total=total, failures=failures)


def estimation_runs(n_masks: int, fit_fraction: float = 0.1) -> int:
    """Runs per supersample that :func:`vqlib.bounds.certify` estimates with (the others fit).

    The first ``min(max(1, ceil(fit_fraction · M)), M − 1)`` of the M runs fix the bins and
    priors; the rest estimate (chapter 2, ``thm-certified``); chapter 9 counts them for the
    certification floor. ``tests/book/test_scorecard.py`` checks this against ``certify``'s own count.
    """
    M = positive_int(n_masks, "n_masks", minimum=2)
    f = unit_float(fit_fraction, "fit_fraction", open_left=True, open_right=True)
    return M - min(max(1, math.ceil(f * M)), M - 1)


def certification_floor(runs: int, delta: float = 0.05, headroom: float = 1.0, stake: float = STAKE) -> float:
    """The least a betting certificate of a mean adds to it: h·r/(c + r), r = δ^(−1/J) − 1 (chapters 2 and 9).

    For J values with mean X̄ below the top b of their proved range, with h = b − X̄ (``headroom``)
    and the stake λ(μ) = c/(b − μ) of chapter 2's ``lem-betting`` (c = ``stake``), the bound at
    level δ is at least X̄ + h·r/(c + r) ≈ X̄ + h·log(1/δ)/(cJ), whatever the spread of the values:
    the capital Π_j (1 + λ(μ)(μ − X_j)) is at most (1 + λ(μ)(μ − X̄))^J by the AM–GM inequality,
    and it must reach 1/δ (chapter 2's exercise ``ex-02-floor``: equal values reach it). The floor
    pays the distance from the mean to the top of the range, not the whole range: a gap of losses
    in [0, 1] lies in [−1, 1], and with a mean near 0 it pays h ≈ 1, half what a stake fixed at
    1/(b − a) would pay.

    Parameters
    ----------
    runs : int, J ≥ 1
    delta : float in (0, 1), the level of the certificate (δ is split between the certified families)
    headroom : float > 0, b − X̄
    stake : float in (0, 1], c

    Returns
    -------
    float, the floor, in the values' units.
    """
    J = positive_int(runs, "runs")
    delta = unit_float(delta, "delta", open_left=True, open_right=True)
    h = positive_float(headroom, "headroom")
    c = unit_float(stake, "stake", open_left=True)
    r = delta ** (-1.0 / J) - 1.0
    return h * r / (c + r)


# --------------------------------------------------------------------------- claims


def _verdict(evidence: Sequence[Mapping], direction: int) -> str:
    """confirmed if every result is detected with the sign ``direction``; refuted if any is
    detected with the other sign; otherwise not testable here."""
    signs = [math.copysign(1, r["mean"] if "mean" in r else r["b"]) for r in evidence]
    if any(r["detected"] and s != direction for r, s in zip(evidence, signs)):
        return "refuted"
    if all(r["detected"] and s == direction for r, s in zip(evidence, signs)):
        return "confirmed"
    return "not testable here"


def axis_evidence(rows: Iterable[Mapping], axis: str, base: Mapping, level: float = 0.95) -> dict:
    """Chapter 8's verdict on one capacity axis, by chapter 8's own computation (chapter 9).

    The axis's rows (:func:`vqlib.studies.capacity.axis_rows`), the gap's slope against log capacity
    fitted seed by seed (:func:`vqlib.studies.statistics.paired_log_fit`, data_seed as the seed), the
    paired difference between the largest and the smallest value
    (:func:`vqlib.studies.statistics.paired_differences`) and :func:`vqlib.studies.capacity.axis_verdict`.
    Returns the verdict, the slope per doubling ± its standard error over seeds with t, df and
    its interval, the paired difference ± s.e. with t, the smallest and largest values and
    the number of seeds.
    """
    by = axis_rows(rows, axis, base)
    values = sorted({r[axis] for r in by})
    fit = paired_log_fit([r[axis] for r in by], [r["gap"] for r in by], [r["data_seed"] for r in by], level=level)
    paired = paired_differences(by, axis, values[0], values[-1], level=level)
    log2 = math.log(2)
    return dict(axis=axis, verdict=axis_verdict(fit, paired, level), slope=fit["b"] * log2,
                slope_se=fit["se_b"] * log2, t=fit["t"], df=fit["df"], t_crit=fit["t_crit"],
                ci=(fit["ci"][0] * log2, fit["ci"][1] * log2), paired=paired["mean"], paired_sem=paired["sem"],
                paired_t=paired["t"], low=values[0], high=values[-1], seeds=fit["count"])


def decoder_claim(rows: Iterable[Mapping], base: Mapping, level: float = 0.95) -> dict:
    """Claim (a), decoder capacity barely moves the gap, from chapter 8's capacity sweep.

    Every axis gets chapter 8's verdict (:func:`axis_evidence`). **Refuted** if the decoder's
    depth or width "moves the gap"; **confirmed** if neither does while some other axis
    (encoder depth or width, K, L) does, so that the experiment can see an effect; **not
    testable here** if nothing moves the gap. Returns ``verdict`` and ``axes`` (axis → evidence).
    """
    rows = list(rows)
    axes = {axis: axis_evidence(rows, axis, base, level) for axis in AXES}
    decoder = [axes[a]["verdict"] for a in ("decoder_depth", "decoder_width")]
    others = [axes[a]["verdict"] for a in AXES if not a.startswith("decoder")]
    if "moves the gap" in decoder:
        verdict = "refuted"
    elif "moves the gap" in others:
        verdict = "confirmed"
    else:
        verdict = "not testable here"
    return dict(verdict=verdict, axes=axes)


def log_k_claim(capacity_rows: Iterable[Mapping], base: Mapping, kl_points: Iterable[Mapping],
                level: float = 0.95) -> dict:
    """Claim (b), the latent term grows like log K, from chapters 8 and 4.

    Two slopes per nat of log K, each fitted seed by seed (:func:`vqlib.studies.statistics.paired_log_fit`):
    ``rate``, the information the LVs carry about the input, Σ_l H(J_l) on the training set, along
    chapter 8's K axis (seed: data_seed); and ``kl``, the KL per input to the best valid prior of
    chapter 4's bound (the mask-marginal, leave one run out), from ``kl_points`` (dicts with ``K``,
    ``kl`` and ``supersample_seed``; seed: supersample). Also ``joint`` (H(J), capped at log n)
    and ``gap`` (the measured gap) along chapter 8's K axis, and the ceiling L of the rate's slope.
    **Confirmed** if both slopes are detected (Student-t interval at ``level`` excludes 0) and
    positive; **refuted** if either is detected negative; else **not testable here**.
    """
    k_rows = axis_rows(capacity_rows, "K", base)
    K, seeds = [r["K"] for r in k_rows], [r["data_seed"] for r in k_rows]
    fits = {key: paired_log_fit(K, [r[key] for r in k_rows], seeds, level=level)
            for key in ("lv_rate", "lv_joint", "gap")}
    points = list(kl_points)
    kl = paired_log_fit([p["K"] for p in points], [p["kl"] for p in points], [p["supersample_seed"] for p in points],
                        level=level)
    return dict(verdict=_verdict([fits["lv_rate"], kl], +1), rate=fits["lv_rate"], joint=fits["lv_joint"],
                gap=fits["gap"], kl=kl, ceiling=int(base["L"]), Ks=sorted(set(K)),
                kl_Ks=sorted({p["K"] for p in points}))


def prior_gap_claim(configs: Mapping[str, Mapping], sigmas: float = 2.0) -> dict:
    """Claim (c) for the gap: does a KL-to-prior bound say anything here? (chapters 4 and 6)

    The rule, written before the runs were looked at: the latent-variable bound of chapter 4 is
    proved, so what can be tested is whether it gives a number below 1 (every gap of a loss in
    [0, 1] is at most 1), i.e. whether the KL of the LV posterior to a prior, measured and
    certified, is small enough to control the gap. **Confirmed** if some certified LV value (kind
    *certified*, not the exact value 1 of a trained decoder or of a prior the fit runs set aside)
    is below 1; otherwise **not testable here**: the bound is valid but vacuous at this scale.
    "Confirmed" says that the KL term certifies a number below 1, nothing more: not that the bound
    follows the gap (where the gap is within noise of 0 a ratio to it means nothing).
    Returns the verdict, the smallest certified LV value with its configuration, bound, the gap it
    bounds (:func:`target_gap`) with its s.e., their ratio (inf for a gap ≤ 0), the gap's upper end
    gap + ``sigmas``·s.e. and whether the gap is within noise of 0 (gap − ``sigmas``·s.e. ≤ 0), every
    certified LV value below 1 (``below_1``: (value, configuration, bound), smallest first), the
    smallest LV estimate, and how many certified LV values there are, below 1 and equal to 1.
    """
    cert, est = [], []
    for name, c in configs.items():
        for key, value in c["certified"].items():
            if key.startswith("lv_") and c["certified_kinds"].get(key) == "certified":
                cert.append((float(value), name, key))
        for key, value in c["bounds"].items():
            if key.startswith("lv_"):
                est.append((float(value), name, key))
    if not cert:
        raise ValueError("no configuration has a certified latent-variable value")
    best_cert, best_est = min(cert), min(est)
    gap, gap_sem = target_gap(configs[best_cert[1]], best_cert[2])
    verdict = "confirmed" if best_cert[0] < 1 else "not testable here"
    return dict(verdict=verdict, best_certified=best_cert[0], best_certified_at=best_cert[1],
                best_certified_bound=best_cert[2], best_certified_gap=gap, best_certified_gap_sem=gap_sem,
                best_certified_ratio=best_cert[0] / gap if gap > 0 else float("inf"),
                best_certified_gap_upper=gap + sigmas * gap_sem,
                best_certified_gap_within_noise=bool(gap - sigmas * gap_sem <= 0),
                below_1=sorted(v for v in cert if v[0] < 1),
                best_estimate=best_est[0], best_estimate_at=best_est[1],
                best_estimate_bound=best_est[2], certified_count=len(cert),
                certified_below_1=sum(v < 1 for v, _, _ in cert), certified_vacuous=sum(v >= 1 for v, _, _ in cert))


def prior_generation_claim(rows: Iterable[Mapping], beta: float | None = 5.0, fitted: str = "markov",
                           level: float = 0.95) -> dict:
    """Claim (c) for generation: does the prior with the smaller KL generate closer samples? (chapter 7)

    From ``ch07-priors`` at evaluation temperature ``beta``: for every trained model (K, L,
    train_seed) the uniform prior and the ``fitted`` prior are compared on the same model, so
    the differences uniform − fitted of the mean KL from posterior to prior (``kl``) and of
    the measured W2 to the test digits (``w2``) are paired by model, with a Student-t interval
    over models (:func:`vqlib.studies.statistics.paired_differences`). **Confirmed** if both differences
    are detected positive (smaller KL, smaller W2); **refuted** if the KL difference is
    detected positive and the W2 difference detected negative; else **not testable here**.

    What the interval covers: every trained model of the sweep is one replicate, so with chapter 7's
    design (two (K, L) settings × three training seeds, one data split) it treats the six models as
    exchangeable, and the difference between the two settings counts as noise. It is an interval for
    the mean difference over models drawn as these were (a training seed, and one of these settings),
    given the one split of the digits into training, held-out and test digits (``splits``); it says
    nothing about other (K, L) or other splits. ``by_setting`` gives the same paired differences within
    each (K, L), over its seeds alone (evidence, not part of the rule).
    """
    chosen = [dict(r, model=f"K{r['K']}-L{r['L']}-seed{r['train_seed']}") for r in rows if r.get("beta") == beta]
    if not chosen:
        raise ValueError(f"no row with beta={beta!r}")
    kl = paired_differences(chosen, "prior", fitted, "uniform", value="kl_mean", pair_key="model", level=level)
    w2 = paired_differences(chosen, "prior", fitted, "uniform", value="w2_gen", pair_key="model", level=level)
    if kl["detected"] and kl["mean"] > 0 and w2["detected"]:
        verdict = "confirmed" if w2["mean"] > 0 else "refuted"
    else:
        verdict = "not testable here"
    by_setting = {}
    for K, L in sorted({(r["K"], r["L"]) for r in chosen}):
        part = [r for r in chosen if (r["K"], r["L"]) == (K, L)]
        by_setting[K, L] = {v: paired_differences(part, "prior", fitted, "uniform", value=key, pair_key="model",
                                                  level=level) for v, key in (("kl", "kl_mean"), ("w2", "w2_gen"))}
    return dict(verdict=verdict, kl=kl, w2=w2, models=kl["count"], beta=beta, fitted=fitted, by_setting=by_setting,
                splits=sorted({r["split_seed"] for r in chosen if "split_seed" in r}))


def penalty_claim(rows: Iterable[Mapping], weight: float, prior: str = "uniform", level: float = 0.95) -> dict:
    """Claim (c) for training: does a KL-to-prior penalty improve generation? (chapter 7)

    From ``ch07-penalty``: the mean KL from posterior to ``prior`` and the measured W2 of
    samples generated from it, at penalty ``weight`` minus at weight 0, paired by training
    seed (:func:`vqlib.studies.statistics.paired_differences`). **Confirmed** if the KL falls (detected)
    and W2 falls (detected); **refuted** if the KL falls and W2 rises (both detected); **not
    testable here** otherwise (the penalty did not move the KL, or W2 moved within noise).
    """
    chosen = [r for r in rows if r.get("prior") == prior]
    kl = paired_differences(chosen, "kl_weight", 0.0, weight, value="kl_mean", pair_key="train_seed", level=level)
    w2 = paired_differences(chosen, "kl_weight", 0.0, weight, value="w2_gen", pair_key="train_seed", level=level)
    if kl["detected"] and kl["mean"] < 0 and w2["detected"]:
        verdict = "confirmed" if w2["mean"] < 0 else "refuted"
    else:
        verdict = "not testable here"
    return dict(verdict=verdict, kl=kl, w2=w2, seeds=kl["count"], weight=weight, prior=prior)


def n_claim(rows: Iterable[Mapping], key: str = "ld_cmi_cosh", level: float = 0.95) -> dict:
    """Claim (d), the bounds fall with n, from chapter 2's toy sweep (``ch02-kmeans``).

    For every K, the log of bound ``key`` (the plug-in estimate of each supersample) against
    log n, fitted supersample by supersample (:func:`vqlib.studies.statistics.paired_log_fit`, the
    supersample seed as the seed): the log-log slope with its standard error over supersamples;
    the same for the measured gap (None when some supersample's gap is not positive); and the
    certified value at the smallest and the largest n.
    **Confirmed** if for every K the slope is detected negative and the certified value at the
    largest n is below the one at the smallest; **refuted** if some slope is detected positive;
    else **not testable here**. Returns ``verdict`` and ``by_K`` (K → evidence).
    """
    rows = list(rows)
    by_K = {}
    for K in sorted({r["K"] for r in rows}):
        rs = sorted((r for r in rows if r["K"] == K), key=lambda r: r["n"])
        pts = [(r["n"], p[key], p["gap"], p["supersample_seed"]) for r in rs for p in r["per_supersample"]]
        if any(b <= 0 for _, b, _, _ in pts):
            raise ValueError(f"K={K}: a value of {key!r} is not positive; a log-log slope needs positive values")
        n_, b_, g_, s_ = (list(v) for v in zip(*pts))
        bound = paired_log_fit(n_, np.log(b_), s_, level=level)
        # the gap's own log-log slope, for comparison; undefined (None) if a supersample's gap is not positive
        gap = paired_log_fit(n_, np.log(g_), s_, level=level) if min(g_) > 0 else None
        by_K[K] = dict(bound=bound, gap=gap, ns=[r["n"] for r in rs], certified_first=rs[0]["certified"][key],
                       certified_last=rs[-1]["certified"][key], gap_first=rs[0]["gap"], gap_last=rs[-1]["gap"],
                       falls=rs[-1]["certified"][key] < rs[0]["certified"][key])
    if any(e["bound"]["detected"] and e["bound"]["b"] > 0 for e in by_K.values()):
        verdict = "refuted"
    elif all(e["bound"]["detected"] and e["bound"]["b"] < 0 and e["falls"] for e in by_K.values()):
        verdict = "confirmed"
    else:
        verdict = "not testable here"
    return dict(verdict=verdict, by_K=by_K, key=key)


def temperature_claim(rows: Iterable[Mapping], level: float = 0.95) -> dict:
    """Claim (e), the temperature trades generalization against reconstruction, from chapter 6.

    Between the largest and the smallest β of ``ch06-temperature``, paired by supersample
    (:func:`vqlib.studies.statistics.paired_differences`): ``train`` = training loss at the smallest β
    minus at the largest (the reconstruction a hot quantizer loses), and ``gap`` = gap at the
    largest β minus at the smallest (the generalization it gains). **Confirmed**
    if both are detected positive; **refuted** if either is detected negative; else **not
    testable here**.

    What the interval covers: the variation over the supersamples (each one's gap and training loss
    are means over its masks and LV draws), *given* the reference model of each β, whose decoder and
    codebook every run of that β shares. Chapter 6 trains one reference per β (``references``: the
    training seeds of the references at the two ends), so a different reference seed, which could move
    either end, is not part of the interval: it compares two trained references, not two temperatures
    averaged over references.
    """
    rows = list(rows)
    betas = sorted({r["beta"] for r in rows})
    if len(betas) < 2:
        raise ValueError("need at least two values of beta")
    lo, hi = betas[0], betas[-1]
    train = paired_differences(rows, "beta", hi, lo, value="train_loss", pair_key="supersample_seed", level=level)
    gap = paired_differences(rows, "beta", lo, hi, value="gap", pair_key="supersample_seed", level=level)
    references = {b: sorted({r["train_seed"] for r in rows if r["beta"] == b and "train_seed" in r})
                  for b in (lo, hi)}
    return dict(verdict=_verdict([train, gap], +1), train=train, gap=gap, beta_lo=lo, beta_hi=hi,
                supersamples=train["count"], references=references)
