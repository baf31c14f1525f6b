"""The temperature of the softmax quantizer: stability bounds (chapter 6, the paper's
fourth result).

The softmax quantizer draws each latent J_l from q(k | x)_l ∝ exp(−β ‖f(x)_l − e_k‖²):
McSherry and Talwar's exponential mechanism with utility −‖f(x)_l − e_k‖². Encoder
outputs and codes lie on the unit sphere, so every squared distance lies in [0, s] with
s = 4. Chapter 6 proves, for any inputs, encoders and codebooks (same β):

* the log-ratio bound |log q(k|x)_l − log q'(k|x')_l| ≤ 2βs, and |log q(k|x)_l + log K| ≤ βs
  (:func:`log_ratio_bound`);
* a KL bound from the width w of the log-ratio's range: KL ≤ min(w, w²/8)
  (:func:`kl_from_width`), hence KL(q ‖ uniform) ≤ L·min(βs, (βs)²/8, log K) per input and
  KL(q ‖ q') ≤ L·min(2βs, (βs)²/2) for any two posteriors (:func:`kl_stability_bound`);
* with codebook and decoder frozen and only the encoder trained (chapter 4's setting), the
  information a pair's sampled LVs carry about its mask bit is at most
  min(2·KL-to-uniform bound, log 2) (:func:`stability_information`), which bounds the gap
  without looking at data (:func:`stability_gap_bound`), or in its cosh form with the
  moment of the observed loss differences (:func:`stability_cosh_bound`, an estimate;
  :func:`temperature_summary` also certifies it).

The experiment: :func:`train_reference` trains and freezes a reference VQ-VAE on data
disjoint from the supersamples, with the softmax quantizer at β trained from scratch (or
with the nearest quantizer, which :func:`with_temperature` gives the softmax quantizer at β
afterwards), and :func:`softmax_encoder_runs`
trains its encoder further on the training half of every (supersample, mask), all runs at
once, and records the posteriors and losses of all 2n points with sampled LVs;
:func:`temperature_summary` computes the gap, the stability bounds and chapter 2 and 4's
estimates on the same runs. :func:`max_log_ratio` measures the left side of the log-ratio
bound on trained models.
"""
from __future__ import annotations

import copy
import math
import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .._checks import positive_float, positive_int
from ..bounds.certificates import CertificateWarning, certify
from ..bounds.cmi import dv_cosh_bound, pair_terms
from ..bounds.supersample import draw_mask, make_supersample, split
from ..data import check_images
from ..models.engine import train
from ..models.fit import train_reference
from ..models.quantizers import sphere_distances
from ..models.vqvae import VQVAE
from .prior_bounds import check_encoder_runs, encoder_stack
from .statistics import sem

__all__ = [
    "SPHERE_RANGE",
    "log_ratio_bound",
    "kl_from_width",
    "kl_stability_bound",
    "stability_information",
    "stability_gap_bound",
    "stability_cosh_bound",
    "log_posterior",
    "max_log_ratio",
    "train_reference",
    "with_temperature",
    "TemperatureRuns",
    "softmax_encoder_runs",
    "temperature_summary",
    "BOUNDS",
]

#: s, the range of ‖f(x)_l − e_k‖² for unit vectors: every squared distance lies in [0, 4].
SPHERE_RANGE = 4.0

#: The bounds :func:`temperature_summary` reports, with their names in the book.
BOUNDS = {
    "stability": "stability, range 1 (data-free)",
    "stability_cosh": "stability, cosh form",
    "lv_uniform": "LV, uniform prior (measured KL)",
    "lv_reference": "LV, reference posterior (measured KL)",
    "ld_cmi_cosh": "loss-difference CMI, cosh form",
    "e_cmi_cosh": "e-CMI, pair of losses, cosh form",
}


def _beta(beta) -> float:
    return positive_float(beta, "beta")


def _range(s) -> float:
    return positive_float(s, "s")


# --------------------------------------------------------------------------- the bounds


def log_ratio_bound(beta, s: float = SPHERE_RANGE, L: int = 1) -> float:
    """ε = 2βsL: the largest |log q(j | x) − log q'(j | x')| over j ∈ [K]^L (chapter 6).

    For the softmax quantizer with inverse temperature β, any two inputs x, x', any two
    encoders and codebooks, squared distances in [0, s] and L positions sampled
    independently: the exponential mechanism's privacy parameter. Per position (L = 1)
    it is 2βs. Raises ``ValueError`` for β ≤ 0, NaN or infinity.
    """
    return 2.0 * _beta(beta) * _range(s) * positive_int(L, "L")


def kl_from_width(width) -> float:
    """min(w, w²/8): the largest KL(p ‖ p') when log(p/p') takes values in an interval of
    width w (chapter 6, the KL lemma).

    The w²/8 is Hoeffding's lemma for the tilted family between p' and p; the w holds
    because the log-ratio's smallest value is ≤ 0. ``width`` must be a finite number ≥ 0.
    """
    if isinstance(width, bool) or not isinstance(width, numbers.Real):
        raise ValueError(f"width must be a finite number ≥ 0, got {width!r}")
    w = float(width)
    if not math.isfinite(w) or w < 0:
        raise ValueError(f"width must be a finite number ≥ 0, got {width!r}")
    return min(w, w * w / 8.0)


def kl_stability_bound(beta, s: float = SPHERE_RANGE, L: int = 1, *, K: int | None = None,
                       prior: str = "uniform") -> float:
    """Upper bound on the KL between a softmax quantizer's posterior on [K]^L and a prior
    (chapter 6), whatever the encoder, codebook and input.

    ``prior="uniform"``: KL(q(·|x) ‖ uniform) ≤ L·min(βs, (βs)²/8), and ≤ L log K when ``K``
    is given. ``prior="softmax"``: KL(q(·|x) ‖ q'(·|x')) for any other softmax posterior
    with the same β (another encoder, codebook or input) ≤ L·min(2βs, (βs)²/2).
    """
    beta, s, L = _beta(beta), _range(s), positive_int(L, "L")
    if prior == "uniform":
        per = kl_from_width(beta * s)
        if K is not None:
            per = min(per, math.log(positive_int(K, "K")))
    elif prior == "softmax":
        per = kl_from_width(2 * beta * s)
    else:
        raise ValueError(f"prior={prior!r} is not one of ('uniform', 'softmax')")
    return L * per


def stability_information(beta, L: int, s: float = SPHERE_RANGE, K: int | None = None) -> float:
    """Upper bound on I(J̃_i; U_i | Z), a pair's sampled LVs against its mask bit (chapter 6).

    min(2·:func:`kl_stability_bound` (uniform prior), log 2): two points per pair, and a
    fair coin carries at most log 2 nats. Holds with codebook and decoder frozen (chapter
    4's assumption) for any training algorithm of the encoder.
    """
    return min(2.0 * kl_stability_bound(beta, s, L, K=K, prior="uniform"), math.log(2))


def stability_gap_bound(beta, L: int, s: float = SPHERE_RANGE, K: int | None = None,
                        loss_range: float = 1.0) -> float:
    """The data-free stability bound on the expected gap: c·sqrt(2·I) with I from
    :func:`stability_information` and c = ``loss_range`` bounding |ℓ_{i,1} − ℓ_{i,0}|
    (chapter 6's theorem; c = 1 for a loss in [0, 1])."""
    c = positive_float(loss_range, "loss_range")
    return c * math.sqrt(2.0 * stability_information(beta, L, s, K))


def stability_cosh_bound(beta, L: int, differences, s: float = SPHERE_RANGE, K: int | None = None) -> float:
    """The stability bound in its cosh form, for one pair (chapter 6): an estimate.

    inf_λ (I + log mean cosh(λ Δ))/λ with I from :func:`stability_information` and
    ``differences`` the pair's observed loss differences ℓ_{i,1} − ℓ_{i,0} (each computed
    with one sampled LV per point) over runs: a sample from their law, whose empirical
    cosh moment stands in for the true one (the plug-in of chapter 2's cosh bounds; the
    certified version is in :func:`temperature_summary`).
    """

    return dv_cosh_bound(stability_information(beta, L, s, K), differences)


# --------------------------------------------------------------------------- measured on models


def _softmax_model(model, name: str) -> VQVAE:
    if not isinstance(model, VQVAE):
        raise ValueError(f"{name} must be a vqlib.VQVAE, got {type(model).__name__}")
    if model.quantizer.quantizer != "softmax":
        raise ValueError(f"{name} uses the {model.quantizer.quantizer!r} quantizer; "
                         "the log-ratio bound needs 'softmax'")
    return model


@torch.no_grad()
def log_posterior(model: VQVAE, x) -> Tensor:
    """log q(k | x)_l = −β‖f(x)_l − e_k‖² − log Σ_j exp(−β‖f(x)_l − e_j‖²), shape (N, L, K)
    (chapter 6).

    Computed with a log-softmax, so tiny probabilities keep their exact logarithm.
    """
    model = _softmax_model(model, "model")
    x = check_images(x, name="x", in_shape=model.in_shape)
    z = model.encode(x.to(model.device))
    d = sphere_distances(z.reshape(-1, model.code_dim), model.quantizer.codes)
    return torch.log_softmax(-model.beta * d, dim=1).reshape(len(x), model.L, model.K).cpu()


def max_log_ratio(model: VQVAE, x, other: VQVAE | None = None, x_other=None) -> float:
    """The largest |log q(k | x_i)_l − log q'(k | x'_i)_l| over rows i, positions l and codes k
    (chapter 6: the left side of the log-ratio bound, measured).

    ``other`` (default ``model``) gives q'; ``x_other`` (default ``x``) the inputs x'_i.
    With neither given, every pair of rows of ``x`` under ``model`` is compared. Both
    models need the softmax quantizer with the same β, K and L; by the log-ratio lemma the
    result is at most 2βs = 8β (:func:`log_ratio_bound`).
    """
    model = _softmax_model(model, "model")
    a = log_posterior(model, x)
    if other is None and x_other is None:
        return float((a.max(0).values - a.min(0).values).max())
    other = model if other is None else _softmax_model(other, "other")
    if (other.beta, other.K, other.L) != (model.beta, model.K, model.L):
        raise ValueError(f"other has (beta, K, L) = {(other.beta, other.K, other.L)}, "
                         f"model has {(model.beta, model.K, model.L)}")
    b = log_posterior(other, x if x_other is None else x_other)
    if a.shape != b.shape:
        raise ValueError(f"x and x_other must have the same number of rows, got {len(a)} and {len(b)}")
    return float((a - b).abs().max())


# --------------------------------------------------------------------------- the experiment


def with_temperature(model: VQVAE, beta) -> VQVAE:
    """A copy of ``model`` whose quantizer samples J_l ~ q ∝ exp(−β‖f(x)_l − e_k‖²) (chapter 6).

    Weights, codebook and frozen state are copied; only the quantization rule changes.
    """
    if not isinstance(model, VQVAE):
        raise ValueError(f"model must be a vqlib.VQVAE, got {type(model).__name__}")
    beta = _beta(beta)
    out = copy.deepcopy(model)
    out.quantizer.quantizer = "softmax"
    out.quantizer.beta = beta
    out.config = dict(out.config, quantizer="softmax", beta=beta)
    return out


def _sample_codes(log_q: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF sampling: codes (R, N, S, L) from log-posteriors (R, N, L, K) and uniforms,
    either (N, S, L), shared by every run (runs whose posteriors agree draw the same codes),
    or (R, N, S, L), one set per run."""
    R, N, L, K = log_q.shape
    if u.dim() == 3:
        u = u.unsqueeze(0).expand(R, *u.shape)
    cdf = log_q.exp().cumsum(-1)
    cdf = (cdf / cdf[..., -1:]).unsqueeze(2).expand(R, N, u.shape[2], L, K).contiguous()
    return torch.searchsorted(cdf, u.unsqueeze(-1).contiguous()).squeeze(-1).clamp_max(K - 1)


@dataclass
class TemperatureRuns:
    """What :func:`softmax_encoder_runs` recorded (chapter 6): S supersamples × M masks.

    ``masks[s, m, i]`` = U_i. ``losses[s, m, i, b]``: the loss of X̃_{i,b} after training on
    mask m, averaged over ``n_samples`` sampled LVs drawn from uniforms shared by all runs
    (same expectation as one sample, less noise, and the runs' differences are not drowned
    in sampling noise); ``single[s, m, i, b]``: with one LV drawn from uniforms of its own
    (so that over runs these are i.i.d. draws of the pair's losses, what the cosh moment of
    :func:`stability_cosh_bound` needs). ``log_q[s, m, i, b, l, k]``:
    the log-posterior. ``reference_*``: the same for the reference model. Seeds:
    ``supersample_seeds[s]``, ``mask_seeds[s, m]``, ``train_seed`` (reference and the
    sampling in training), ``sample_seed`` (the uniforms that draw LVs in evaluation).
    """

    masks: np.ndarray
    losses: np.ndarray
    single: np.ndarray
    log_q: np.ndarray
    reference_losses: np.ndarray
    reference_single: np.ndarray
    reference_log_q: np.ndarray
    supersample_seeds: list[int]
    mask_seeds: np.ndarray
    train_seed: int
    sample_seed: int
    beta: float
    K: int
    L: int
    config: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.masks.shape[2]


def softmax_encoder_runs(x, reference: VQVAE, n: int, *, supersample_seeds, n_masks: int = 8, steps: int = 100,
                         lr: float = 1e-2, train_seed: int = 0, sample_seed: int = 0,
                         n_samples: int = 16) -> TemperatureRuns:
    """Train only the encoder of a softmax-quantizer reference on every training half (chapter 6).

    Supersamples of ``n`` pairs from ``x`` (disjoint from the reference's training data),
    mask m of supersample s with ``mask_seed = 1000·s + m``; every run starts from the
    reference's encoder and takes ``steps`` full-batch Adam steps on its n training
    points, LVs sampled from q (seeded by ``train_seed``) with straight-through gradients,
    codebook and decoder frozen; all runs train at once, through the training engine
    (:mod:`vqlib.models.engine`, one generator drawing every run's LVs). Then every run's posteriors on
    all 2n points are recorded, and their losses with ``n_samples`` LVs per point drawn by
    inverse-CDF sampling from uniforms seeded by ``sample_seed``, the same uniforms for
    every run and the reference (independent of every mask), plus one LV per point and run
    from uniforms of its own (``single``).
    """

    reference = _softmax_model(reference, "reference")
    x, n, seeds, M, steps, lr, train_seed = check_encoder_runs(
        x, reference, n, supersample_seeds, n_masks, steps, lr, train_seed)
    sample_seed = positive_int(sample_seed, "sample_seed", minimum=0)
    n_samples = positive_int(n_samples, "n_samples")

    device = reference.device
    reference = reference.cpu()
    try:
        S = len(seeds)
        sss = [make_supersample(x, n, supersample_seed=s) for s in seeds]
        mask_seeds = np.array([[1000 * s + m for m in range(M)] for s in seeds])
        masks = np.array([[draw_mask(n, mask_seed=int(ms)) for ms in row] for row in mask_seeds])
        halves = torch.stack([split(sss[a], masks[a, m])[0] for a in range(S) for m in range(M)])
        stack = encoder_stack(reference, R=S * M)  # encoders stacked; codebook and decoder held once, shared
        if steps:  # full batch, LVs sampled from one generator for all runs (one draw per step)
            train(stack, halves, epochs=steps, lr=lr, sampler=torch.Generator().manual_seed(train_seed))
        sampler = torch.Generator().manual_seed(sample_seed)
        u = torch.rand(2 * n, n_samples, reference.L, generator=sampler)
        shape = (S, M, n, 2)
        losses, single = np.zeros(shape), np.zeros(shape)
        log_q = np.zeros((*shape, reference.L, reference.K), dtype=np.float32)
        ref_losses, ref_single = np.zeros((S, n, 2)), np.zeros((S, n, 2))
        ref_log_q = np.zeros((S, n, 2, reference.L, reference.K), dtype=np.float32)
        alone = encoder_stack(reference)
        with torch.no_grad():
            for a, ss in enumerate(sss):
                flat = ss.flat()
                for run, out_mean, out_single, out_lq in (
                    (stack.select(a * M, (a + 1) * M), losses, single, log_q),
                    (alone, ref_losses, ref_single, ref_log_q),
                ):
                    R = run.R
                    z = run.encode(flat.reshape(1, 2 * n, -1).expand(R, -1, -1))  # (R, 2n·L, D)
                    d = run.distances(z, run.codes())
                    lq = torch.log_softmax(-reference.beta * d, dim=-1).reshape(R, 2 * n, reference.L, reference.K)
                    # n_samples draws from uniforms shared by all runs (common random numbers), then
                    # one draw from fresh uniforms per run: across runs, i.i.d. given the supersample
                    fresh = torch.rand(R, 2 * n, 1, reference.L, generator=sampler)
                    j = torch.cat([_sample_codes(lq, u), _sample_codes(lq, fresh)], 2)  # (R, 2n, n_samples + 1, L)
                    x_hat = reference.decode(reference.quantizer.codes[j.reshape(-1, reference.L)])
                    err = (x_hat.reshape(R, 2 * n, n_samples + 1, -1) - flat.reshape(1, 2 * n, 1, -1)).pow(2).mean(-1)
                    target_shape = out_mean[a].shape
                    out_mean[a] = err[..., :-1].mean(-1).reshape(target_shape).numpy()
                    out_single[a] = err[..., -1].reshape(target_shape).numpy()
                    out_lq[a] = lq.reshape(*target_shape, reference.L, reference.K).numpy()
    finally:
        reference.to(device)
    config = dict(n=n, K=reference.K, L=reference.L, beta=reference.beta, n_masks=M, steps=steps, lr=lr,
                  train_seed=train_seed, sample_seed=sample_seed, n_samples=n_samples, supersample_seeds=seeds)
    return TemperatureRuns(masks=masks, losses=losses, single=single, log_q=log_q, reference_losses=ref_losses,
                           reference_single=ref_single, reference_log_q=ref_log_q, supersample_seeds=seeds,
                           mask_seeds=mask_seeds, train_seed=train_seed, sample_seed=sample_seed,
                           beta=float(reference.beta), K=reference.K, L=reference.L, config=config)


def _kl_sum(log_p: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
    """Σ over the last two axes (positions, codes) of p·(log p − log π), ≥ 0."""
    p = np.exp(log_p.astype(float))
    return np.maximum((p * (log_p.astype(float) - log_prior.astype(float))).sum((-1, -2)), 0.0)


def temperature_summary(runs: TemperatureRuns, *, n_bins: int = 2, confidence: float | None = 0.95) -> list[dict]:
    """One row per supersample: gap, losses, every bound of chapter 6 and the KL terms.

    * ``gap``: the control-variate estimate (chapter 4) with the reference's losses, on the
      losses averaged over n_samples LV draws from uniforms shared by every run, ``gap_sem`` its
      standard error over masks; ``gap_plain`` without the control variate; ``gap_single`` and
      ``gap_single_sem``: the gap of the single-draw losses (one fresh LV draw per point and run),
      the target of the single-draw certificate.
    * ``train_loss``, ``test_loss``: mean losses of training points and ghosts.
    * ``stability``: :func:`stability_gap_bound` (data-free, the same for every pair);
      ``stability_cosh``: :func:`stability_cosh_bound` per pair with the single-sample loss
      differences over masks, averaged over pairs.
    * ``lv_uniform``, ``lv_reference``: sqrt(2·min(KL, log 2)) per pair, averaged, with KL the
      measured Σ_{b,l} KL(q_W(·|X̃_{i,b})_l ‖ π) averaged over masks, π uniform or the
      reference posterior (a valid prior: the reference never saw the supersample).
    * ``ld_cmi_cosh``, ``e_cmi_cosh``, ``ld_cmi``, ``e_cmi``: chapter 2's estimates on the
      sample-averaged losses (:func:`vqlib.bounds.pair_terms`).
    * ``kl_uniform``, ``kl_reference``: the measured KLs per pair, next to their stability
      bounds ``kl_uniform_bound`` and ``kl_reference_bound``; ``information_bound`` = I.
    * ``certified`` (the same in every row: it bounds the average over the supersamples),
      ``certified_kinds``, ``certified_targets`` ("single" or "shared": which gap each value
      bounds), ``confidence``, ``certified_terms``: every value jointly at ``confidence``, from two
      certificates at δ/2 each (:func:`_certify_temperature`): on the single-draw losses
      ``stability_cosh``, ``lv_uniform`` and ``lv_reference`` (the KL bet on Corollary 3's range);
      on the shared-uniform averages ``ld_cmi_cosh``, ``e_cmi_cosh`` and ``held_out``;
      ``stability`` is exact (data-free).
    """

    if not isinstance(runs, TemperatureRuns):
        raise ValueError(f"runs must be a TemperatureRuns, got {type(runs).__name__}")
    n_bins = positive_int(n_bins, "n_bins")
    S, M, n = runs.masks.shape
    beta, K, L = runs.beta, runs.K, runs.L
    info = stability_information(beta, L, K=K)
    log2 = math.log(2)
    out = []
    for s in range(S):
        U, los, ref = runs.masks[s], runs.losses[s], runs.reference_losses[s]
        sign = 1 - 2 * U
        plain = (sign * (los[..., 1] - los[..., 0])).mean(1)
        control = (sign * (ref[None, :, 1] - ref[None, :, 0])).mean(1)
        cv = plain - control
        rows = np.arange(n)
        train = np.stack([los[m, rows, U[m]] for m in range(M)])
        test = np.stack([los[m, rows, 1 - U[m]] for m in range(M)])
        diff_single = runs.single[s][..., 1] - runs.single[s][..., 0]  # (M, n)
        single_gap = (sign * diff_single).mean(1)  # per run: one fresh LV draw per point
        terms = [pair_terms(los[:, i, 0], los[:, i, 1], U[:, i], n_bins=n_bins) for i in range(n)]
        lq = runs.log_q[s]  # (M, n, 2, L, K)
        kl_u = _kl_sum(lq, np.full(lq.shape, -math.log(K))).sum(-1).mean(0)  # (n,) per pair
        kl_r = _kl_sum(lq, np.broadcast_to(runs.reference_log_q[s][None], lq.shape)).sum(-1).mean(0)
        rec = dict(beta=beta, K=K, L=L, n=n, supersample_seed=runs.supersample_seeds[s],
                   mask_seeds=[int(v) for v in runs.mask_seeds[s]], train_seed=runs.train_seed,
                   sample_seed=runs.sample_seed,
                   gap=float(cv.mean()), gap_sem=sem(cv), gap_plain=float(plain.mean()), gap_plain_sem=sem(plain),
                   gap_single=float(single_gap.mean()), gap_single_sem=sem(single_gap),
                   train_loss=float(train.mean()), test_loss=float(test.mean()),
                   reference_loss=float(ref.mean()),
                   stability=stability_gap_bound(beta, L, K=K),
                   stability_cosh=float(np.mean([stability_cosh_bound(beta, L, diff_single[:, i], K=K)
                                                 for i in range(n)])),
                   lv_uniform=float(np.mean(np.sqrt(2 * np.minimum(kl_u, log2)))),
                   lv_reference=float(np.mean(np.sqrt(2 * np.minimum(kl_r, log2)))),
                   information_bound=info,
                   kl_uniform=float(kl_u.mean()), kl_uniform_max=float(kl_u.max()),
                   kl_uniform_bound=2 * kl_stability_bound(beta, L=L, K=K, prior="uniform"),
                   kl_reference=float(kl_r.mean()), kl_reference_max=float(kl_r.max()),
                   kl_reference_bound=2 * kl_stability_bound(beta, L=L, prior="softmax"),
                   log_ratio_bound=log_ratio_bound(beta),
                   max_log_ratio=float(np.abs(lq - runs.reference_log_q[s][None]).max()))
        for name, key in (("e_cmi", "e_sqrt"), ("e_cmi_cosh", "e_cosh"), ("ld_cmi", "ld_sqrt"),
                          ("ld_cmi_cosh", "ld_cosh")):
            rec[name] = float(np.mean([t[key] for t in terms]))
        out.append(rec)
    if confidence is not None:
        certified, kinds, notes, targets, terms = _certify_temperature(runs, n_bins, confidence, info)
        for rec in out:
            rec.update(certified=certified, certified_kinds=kinds, certified_targets=targets, confidence=confidence,
                       certificate_notes=notes,
                       certified_terms={k: {"terms": v["terms"], "allocation": v["allocation"]} for k, v in terms.items()})
    return out


def _certify_temperature(runs: TemperatureRuns, n_bins: int, confidence: float, info: float):
    """Chapter 6's certified numbers: two certificates at δ/2 each, so all hold at once at 1 − δ,
    each value against the gap its theorem bounds.

    * **Single draw** (one fresh LV draw per point and run, ``runs.single``; target the single-draw
      gap E[gap₁ | X̃]): ``stability_cosh``, chapter 2's loss-difference certificate on these
      losses with the information min(certified, I_β) (I_β, the stability bound, is a proved
      bound on I(J̃_i; U_i) and so, by data processing, on the binned loss difference's); where
      I_β ≥ log 2 it is chapter 2's certificate alone. ``lv_uniform`` and ``lv_reference``: chapter
      4's LV bound (codebook and decoder frozen: no decoder information) with the KL to the
      uniform prior and to the reference posterior, each betting on the range Corollary 3 proves
      for every run, 2L·min(κ(βs), log K) and 2L·min(2βs, (βs)²/2) per pair.
    * **Shared uniforms** (the n_samples-draw average with the same uniforms for every run and the
      reference, ``runs.losses``; target E[gap | X̃, uniforms], whose mean over the uniforms is the
      single-draw gap): ``ld_cmi_cosh``, ``e_cmi_cosh`` and ``held_out`` (betting on the
      control-variate gaps).

    In each certificate the fit runs choose the families worth their share of δ (``select``).
    ``stability`` is exact (data-free).
    """
    half = 1 - (1 - confidence) / 2
    beta, K, L = runs.beta, runs.K, runs.L
    control = runs.reference_losses[..., 1] - runs.reference_losses[..., 0]
    posts = np.exp(runs.log_q.astype(float))
    posts /= posts.sum(-1, keepdims=True)
    reference = np.exp(runs.reference_log_q.astype(float))
    reference /= reference.sum(-1, keepdims=True)
    ranges = {"uniform": 2 * kl_stability_bound(beta, L=L, K=K, prior="uniform"),
              # smoothing the reference by ε mixes in the uniform prior, whose range is smaller: KL is convex
              "reference": 2 * kl_stability_bound(beta, L=L, prior="softmax")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CertificateWarning)
        single = certify(np.clip(runs.single, 0, 1), runs.masks, confidence=half, n_bins=n_bins, information=info,
                         posteriors=posts, reference=reference, decoder_information=0.0, kl_ranges=ranges,
                         families=["ld", "lv_uniform", "lv_reference"], select=True, warn=False)
        averaged = certify(np.clip(runs.losses, 0, 1), runs.masks, confidence=half, n_bins=n_bins, control=control,
                           families=["ld", "e", "held_out"], select=True, warn=False)
    certified = {"stability": stability_gap_bound(beta, L, K=K), "stability_cosh": single.values["ld_cmi_cosh"],
                 "lv_uniform": single.values["lv_uniform"], "lv_reference": single.values["lv_reference"]}
    kinds = {"stability": "exact", "stability_cosh": single.kinds["ld_cmi_cosh"],
             "lv_uniform": single.kinds["lv_uniform"], "lv_reference": single.kinds["lv_reference"]}
    for name in ("ld_cmi_cosh", "e_cmi_cosh", "held_out"):
        certified[name], kinds[name] = averaged.values[name], averaged.kinds[name]
    certified = {k: float(min(v, 1.0)) for k, v in certified.items()}
    targets = {k: "single" for k in ("stability", "stability_cosh", "lv_uniform", "lv_reference")}
    targets.update({k: "shared" for k in ("ld_cmi_cosh", "e_cmi_cosh", "held_out")})
    terms = {"single": single.to_json(), "shared": averaged.to_json()}
    return certified, kinds, single.notes + averaged.notes, targets, terms
