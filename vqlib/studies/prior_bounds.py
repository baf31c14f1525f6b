"""Latent-variable bounds with a prior chosen from the supersample (chapter 4).

The paper's second result bounds the reconstruction gap through the latent variables
(LVs) and the encoder only: a KL term between the LV posterior and a *data-dependent
prior*, a prior that may depend on the supersample X̃ but not on the mask U. Chapter 4
proves, when decoder and codebook do not depend on U (they are frozen at a reference
model trained on separate data),

    gen ≤ (1/n) Σ_i E sqrt( 2 E_U E_W Σ_{b,l} KL( q_W(·|X̃_{i,b})_l ‖ π_{i,b,l} ) ),

and this module computes every piece of it:

* :func:`train_reference`: the reference VQ-VAE, trained on data disjoint from every
  supersample, whose codebook and decoder stay frozen.
* :func:`encoder_only_runs`: for each supersample and mask, the reference's encoder is
  trained further on the training half (all runs at once, full-batch Adam), and every
  run's losses and LVs on all 2n points are recorded, with the reference's own.
* The priors and their KL terms: :func:`uniform_kl` (closed form L log K − H),
  :func:`kl_to_prior`, :func:`leave_one_out_prior` (the mask-marginal estimated from the
  *other* runs), :func:`swap_mixture_kl` (½[π₀⊗π₁ + π₁⊗π₀], by a log-sum-exp) and
  :func:`training_half_prior` (code frequencies of the trained model on its training
  half: **not** a valid prior, computed to show what goes wrong).
* :func:`lv_summary`: the measured gap (with its standard error, plainly and with the
  reference model as a control variate), every bound per supersample and on average,
  the KL terms, and the "bounds" of the invalid priors, kept apart.

`vqlib.run_supersample(train="encoder")` runs the same setting with a reference model
retrained for every supersample on all data outside it; this module trains one reference
per (K, L) on a separate pool and fine-tunes all masks in one batch, records the LVs, and
estimates the gap with the control variate, which chapter 4 needs to see a gap of a few
thousandths above its noise.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import MISSING, dataclass, field, fields

import numpy as np
import torch
from torch import Tensor

from .._checks import positive_float, positive_int
from ..bounds.certificates import CertificateWarning, certify
from ..bounds.cmi import pair_terms
from ..bounds.supersample import draw_mask, make_supersample, split
from ..data import check_images
from ..models.engine import Stack, evaluate_stack, train
from ..models.fit import train_reference
from ..models.vqvae import VQVAE
from ..tables import rows_to_csv
from .statistics import sem

__all__ = [
    "EncoderRuns",
    "LVResult",
    "train_reference",
    "encoder_only_runs",
    "encoder_loss",
    "uniform_kl",
    "kl_to_prior",
    "smooth",
    "leave_one_out_prior",
    "swap_mixture_kl",
    "training_half_prior",
    "pair_kl_terms",
    "lv_summary",
    "VALID_BOUNDS",
    "INVALID_PRIORS",
]

#: The proved bounds :func:`lv_summary` estimates (``.bounds``; all plug-in estimates), with their
#: names in the book. ``lv_marginal`` is not a bound with a valid prior: its prior, the average
#: of all runs' posteriors, includes the run's own, so it depends on that run's mask. It
#: estimates the bound with the true mask-marginal prior, from below (chapter 4).
VALID_BOUNDS = {
    "e_cmi_cosh": "e-CMI, pair of losses, cosh form",
    "ld_cmi_cosh": "loss-difference CMI, cosh form",
    "e_cmi": "e-CMI, pair of losses, range 1",
    "ld_cmi": "loss-difference CMI, range 1",
    "lv_marginal": "LV, mask-marginal prior, in-sample estimate (its prior sees the run's mask)",
    "lv_marginal_loo": "LV, mask-marginal prior (leave one run out)",
    "lv_reference": "LV, reference model's posterior",
    "lv_swap": "LV, swap-symmetric mixture of the reference posteriors",
    "lv_aggregated": "LV, reference posterior aggregated over X̃",
    "lv_uniform": "LV, uniform prior",
}

#: Priors that look at the mask (through the trained model): not bounds.
INVALID_PRIORS = {
    "own": "the trained model's own posterior",
    "training_half": "code frequencies on the training half (an EMA prior)",
    "swap_trained": "swap-symmetric mixture of the trained posteriors",
}


# --------------------------------------------------------------------------- models


def encoder_stack(reference: VQVAE, params: list[Tensor] | None = None, R: int = 1) -> Stack:
    """R encoders sharing ``reference``'s frozen codebook and decoder, as the training engine
    holds them (chapters 4 and 6): the encoder weights ``params`` (stacked weights and biases,
    layer by layer: (R, out, in), (R, out), …), or R copies of the reference's own encoder."""
    if params is None:
        return Stack.of([reference] * R, trained=_encoder_names(reference))
    names = _encoder_names(reference)
    if len(params) != len(names):
        raise ValueError(f"params must hold {len(names)} tensors (weight and bias of every encoder layer), "
                         f"got {len(params)}")
    own = {name: value.detach() for name, value in reference.named_parameters()}
    own.update(zip(names, params))
    return Stack(reference, own, params[0].shape[0], tuple(names), {})


def _encoder_names(model: VQVAE) -> list[str]:
    return [name for name, _ in model.named_parameters() if name.startswith("encoder.")]


def encoder_loss(reference: VQVAE, params: list[Tensor], x: Tensor) -> Tensor:
    """The training loss of ``VQVAE.forward`` for R encoders sharing ``reference``'s frozen
    codebook and decoder, shape (R,) (chapter 4).

    ``params`` lists the stacked encoder weights and biases, layer by layer ((R, out, in),
    (R, out), …); ``x`` is (R, N, C, H, W), one training set per encoder. The loss is
    reconstruction + commitment weight × commitment (the codebook loss is 0 for a frozen
    codebook), computed by the training engine (:class:`vqlib.models.engine.Stack`) that trains
    the encoders; a test checks it equals ``model(x).loss`` run by run.
    """
    stack = encoder_stack(reference, params)
    xb = x.reshape(x.shape[0], x.shape[1], -1)
    return stack.loss(xb, stack.forward(xb))  # R encoders, nearest code (straight-through), shared decoder


@dataclass
class EncoderRuns:
    """What :func:`encoder_only_runs` recorded (chapter 4): S supersamples × M masks.

    ``masks[s, m, i]`` = U_i; ``losses[s, m, i, b]`` = ℓ of X̃_{i,b} after training on
    mask m; ``codes[s, m, i, b, l]`` = its LV at position l; ``reference_losses[s, i, b]``
    and ``reference_codes[s, i, b, l]``: the same for the reference model (no training
    on the supersample). Seeds: ``supersample_seeds[s]``, ``mask_seeds[s, m]``,
    ``train_seed`` (the reference's; encoder training is deterministic full-batch Adam).
    """

    masks: np.ndarray
    losses: np.ndarray
    codes: np.ndarray
    reference_losses: np.ndarray
    reference_codes: np.ndarray
    supersample_seeds: list[int]
    mask_seeds: np.ndarray
    train_seed: int
    K: int
    L: int
    config: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.masks.shape[2]

    def posteriors(self, s: int) -> np.ndarray:
        """One-hot posteriors of supersample s, shape (M, n, 2, L, K)."""
        return np.eye(self.K)[self.codes[s]]

    def reference_posteriors(self, s: int) -> np.ndarray:
        """The reference model's one-hot posteriors on supersample s, shape (n, 2, L, K)."""
        return np.eye(self.K)[self.reference_codes[s]]

    def first_masks(self, n_masks: int) -> "EncoderRuns":
        """The same runs restricted to the first ``n_masks`` masks of every supersample."""
        M = positive_int(n_masks, "n_masks", minimum=2)
        if M > self.masks.shape[1]:
            raise ValueError(f"n_masks={M} exceeds the {self.masks.shape[1]} masks recorded")
        return EncoderRuns(masks=self.masks[:, :M], losses=self.losses[:, :M], codes=self.codes[:, :M],
                           reference_losses=self.reference_losses, reference_codes=self.reference_codes,
                           supersample_seeds=self.supersample_seeds, mask_seeds=self.mask_seeds[:, :M],
                           train_seed=self.train_seed, K=self.K, L=self.L, config=dict(self.config, n_masks=M))


def check_encoder_runs(x, reference: VQVAE, n, supersample_seeds, n_masks, steps, lr, train_seed):
    """The checked arguments of an encoder-only ensemble (chapters 4 and 6).

    ``reference`` must have its codebook and decoder frozen and match the images ``x``;
    returns ``(x, n, seeds, n_masks, steps, lr, train_seed)``, or raises ValueError
    naming the bad value.
    """
    x = check_images(x, name="x")
    if reference.quantizer.update != "frozen":
        raise ValueError("reference must have a frozen codebook and decoder (train_reference does this)")
    if tuple(x.shape[1:]) != reference.in_shape:
        raise ValueError(f"x has image shape {tuple(x.shape[1:])}, reference expects {reference.in_shape}")
    n = positive_int(n, "n")
    if 2 * n > len(x):
        raise ValueError(f"n={n} is larger than half the data ({len(x)} inputs allow n ≤ {len(x) // 2})")
    seeds = [positive_int(s, "supersample_seeds", minimum=0) for s in np.atleast_1d(supersample_seeds).tolist()]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"supersample_seeds must be distinct and non-empty, got {supersample_seeds!r}")
    return (x, n, seeds, positive_int(n_masks, "n_masks", minimum=2), positive_int(steps, "steps", minimum=0),
            positive_float(lr, "lr"), positive_int(train_seed, "train_seed", minimum=0))


def encoder_only_runs(x, reference: VQVAE, n: int, *, supersample_seeds, n_masks: int = 6,
                      steps: int = 100, lr: float = 1e-2, train_seed: int = 0) -> EncoderRuns:
    """Train only the encoder on the training half of every (supersample, mask) (chapter 4).

    Supersamples of ``n`` pairs are drawn from ``x`` (which must not overlap the
    reference's training data) with ``supersample_seeds``; mask m of supersample s uses
    ``mask_seed = 1000·s + m``, as :func:`vqlib.run_supersample` does. Each run starts
    from the reference's encoder and takes ``steps`` full-batch Adam steps (learning rate
    ``lr``) on its n training points, with the reference's codebook and decoder frozen;
    all S·M runs train at once, through the training engine (:mod:`vqlib.models.engine`; each run
    ends as :func:`vqlib.fit` would leave a copy of the reference trained on its half in one
    batch per step, to float rounding). Then every run's losses and LVs on all 2n points
    are recorded (CPU, eval mode, nearest quantizer), with the reference's. ``train_seed``
    is the reference's seed, recorded in every row.
    """
    if not isinstance(reference, VQVAE):
        raise ValueError(f"reference must be a vqlib.VQVAE, got {type(reference).__name__}")
    if reference.config["quantizer"] != "nearest":
        raise ValueError("reference must use the nearest quantizer")
    x, n, seeds, n_masks, steps, lr, train_seed = check_encoder_runs(
        x, reference, n, supersample_seeds, n_masks, steps, lr, train_seed)

    device = reference.device
    reference = reference.cpu()
    try:
        S, M = len(seeds), n_masks
        sss = [make_supersample(x, n, supersample_seed=s) for s in seeds]
        mask_seeds = np.array([[1000 * s + m for m in range(M)] for s in seeds])
        masks = np.array([[draw_mask(n, mask_seed=int(ms)) for ms in row] for row in mask_seeds])
        halves = torch.stack([split(sss[a], masks[a, m])[0] for a in range(S) for m in range(M)])
        stack = encoder_stack(reference, R=S * M)  # encoders stacked; codebook and decoder held once, shared
        if steps:  # full batch: every step on the n training points, all runs at once
            train(stack, halves, epochs=steps, lr=lr)
        losses = np.zeros((S, M, n, 2))
        codes = np.zeros((S, M, n, 2, reference.L), dtype=np.int64)
        ref_losses = np.zeros((S, n, 2))
        ref_codes = np.zeros((S, n, 2, reference.L), dtype=np.int64)
        alone = encoder_stack(reference)
        for a, ss in enumerate(sss):
            flat = ss.flat()
            lo, co = evaluate_stack(stack.select(a * M, (a + 1) * M), flat)
            losses[a], codes[a] = lo.numpy().astype(float).reshape(M, n, 2), co.numpy().reshape(M, n, 2, -1)
            lo, co = evaluate_stack(alone, flat)
            ref_losses[a], ref_codes[a] = lo.numpy().astype(float).reshape(n, 2), co.numpy().reshape(n, 2, -1)
    finally:
        reference.to(device)
    config = dict(n=n, K=reference.K, L=reference.L, n_masks=M, steps=steps, lr=lr, train_seed=train_seed,
                  supersample_seeds=seeds, hidden=reference.config["encoder_width"])
    return EncoderRuns(masks=masks, losses=losses, codes=codes, reference_losses=ref_losses,
                       reference_codes=ref_codes, supersample_seeds=seeds, mask_seeds=mask_seeds,
                       train_seed=train_seed, K=reference.K, L=reference.L, config=config)


# --------------------------------------------------------------------------- priors


def uniform_kl(K: int, L: int, entropy: float = 0.0) -> float:
    """KL of one input's posterior to the uniform prior on [K]^L: L log K − H (chapter 4).

    ``entropy`` is H = Σ_l H(q(·|x)_l), 0 for the nearest quantizer, at most L log K.
    """
    K, L = positive_int(K, "K"), positive_int(L, "L")
    top = L * math.log(K)
    if not math.isfinite(entropy) or entropy < 0 or entropy > top + 1e-9:
        raise ValueError(f"entropy must lie in [0, L log K = {top:.6g}], got {entropy!r}")
    return top - entropy


def _posteriors(p, name: str, min_ndim: int = 3) -> np.ndarray:
    arr = np.asarray(p, dtype=float)
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} axes (…, L, K), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or not np.allclose(arr.sum(-1), 1.0, atol=1e-6):
        raise ValueError(f"{name} must hold probability vectors along its last axis")
    return arr


def smooth(prior, eps: float) -> np.ndarray:
    """(1 − ε)·prior + ε/K along the last axis (chapter 4): a changed code costs at most log(K/ε)."""
    arr = _posteriors(prior, "prior", min_ndim=1)
    if not 0 <= eps < 1:
        raise ValueError(f"eps must lie in [0, 1), got {eps!r}")
    return (1 - eps) * arr + eps / arr.shape[-1]


def kl_to_prior(posteriors, prior) -> np.ndarray:
    """Σ over the last-but-one axis (positions) of KL(q_l ‖ π_l), for each leading index (chapter 4).

    ``posteriors`` (…, L, K) and ``prior`` broadcastable to it; returns shape (…). A
    posterior that puts mass where the prior has none gives ``inf``. Sum further axes
    (the pair's two points) yourself.
    """
    q = _posteriors(posteriors, "posteriors", min_ndim=2)
    pi = _posteriors(prior, "prior", min_ndim=1)
    try:
        pi = np.broadcast_to(pi, q.shape)
    except ValueError:
        raise ValueError(f"prior of shape {np.shape(prior)} does not broadcast to posteriors {q.shape}") from None
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * (np.log(np.where(q > 0, q, 1.0)) - np.log(pi)), 0.0)
    return np.maximum(terms.sum((-1, -2)), 0.0)


def leave_one_out_prior(posteriors, eps: float = 0.01) -> np.ndarray:
    """For each run m, the average of the *other* runs' posteriors, smoothed by ε (chapter 4).

    ``posteriors`` has runs on its first axis (M ≥ 2, …, K). The prior of run m depends
    on the other masks only, which are independent of mask m: a valid prior for run m
    (unlike the in-sample average, which contains run m itself). Returns the same shape.
    """
    p = _posteriors(posteriors, "posteriors", min_ndim=2)
    M = p.shape[0]
    if M < 2:
        raise ValueError(f"posteriors needs at least 2 runs on its first axis, got {M}")
    others = (p.sum(0, keepdims=True) - p) / (M - 1)
    return smooth(others, eps)


def swap_mixture_kl(codes, log_prior0, log_prior1) -> np.ndarray:
    """KL(δ_(j₀, j₁) ‖ ½[π₀⊗π₁ + π₁⊗π₀]) for a pair's LVs (chapter 4), by a log-sum-exp.

    ``codes`` (…, 2, L): the LVs j₀, j₁ of the pair's two points (deterministic
    quantizer); ``log_prior0``, ``log_prior1`` (…, L, K): the log of the product priors
    π₀, π₁ (−inf allowed), broadcastable to the leading axes. With a = log π₀(j₀) + log π₁(j₁)
    and c = log π₁(j₀) + log π₀(j₁) the result is log 2 − logsumexp(a, c): at most
    log 2 + min(−a, −c), and exactly log 2 when π₀, π₁ are point masses at j₀ ≠ j₁.
    """
    j = np.asarray(codes)
    if j.ndim < 2 or j.shape[-2] != 2 or not np.issubdtype(j.dtype, np.integer):
        raise ValueError(f"codes must be integers of shape (…, 2, L), got {j.dtype} {j.shape}")
    lp0, lp1 = np.asarray(log_prior0, float), np.asarray(log_prior1, float)
    if lp0.shape != lp1.shape or lp0.ndim < 2 or lp0.shape[-2] != j.shape[-1]:
        raise ValueError(f"log_prior0 and log_prior1 must share a shape (…, L={j.shape[-1]}, K), "
                         f"got {lp0.shape} and {lp1.shape}")
    K = lp0.shape[-1]
    if j.min() < 0 or j.max() >= K:
        raise ValueError(f"codes must lie in [0, K={K})")
    lead = np.broadcast_shapes(j.shape[:-2], lp0.shape[:-2])
    j = np.broadcast_to(j, lead + j.shape[-2:])
    lp0 = np.broadcast_to(lp0, lead + lp0.shape[-2:])
    lp1 = np.broadcast_to(lp1, lead + lp1.shape[-2:])

    def at(lp, jj):  # Σ_l log π_l(j_l)
        return np.take_along_axis(lp, jj[..., None], axis=-1)[..., 0].sum(-1)

    a = at(lp0, j[..., 0, :]) + at(lp1, j[..., 1, :])
    c = at(lp1, j[..., 0, :]) + at(lp0, j[..., 1, :])
    top = np.maximum(a, c)
    with np.errstate(invalid="ignore", over="ignore"):
        lse = top + np.log1p(np.exp(np.minimum(a, c) - top))
    return np.where(np.isneginf(top), np.inf, np.maximum(math.log(2) - lse, 0.0))


def training_half_prior(posteriors, masks, eps: float = 0.01) -> np.ndarray:
    """Per run, the code frequencies of the trained model on its training points (chapter 4).

    ``posteriors`` (M, n, 2, L, K), ``masks`` (M, n). Returns (M, L, K): for run m and
    position l, (1 − ε)·(1/n) Σ_i q_m(·|X̃_{i,U_i})_l + ε/K, what an exponential moving
    average of training codes converges to. It depends on the mask (through the
    training points and the trained encoder): **not** a valid prior for the bound;
    chapter 4 computes it to show that nothing guarantees the resulting number.
    """
    p = _posteriors(posteriors, "posteriors", min_ndim=5)
    U = np.asarray(masks)
    if U.shape != p.shape[:2] or not np.isin(U, (0, 1)).all():
        raise ValueError(f"masks must hold 0/1 of shape {p.shape[:2]}, got {U.shape}")
    rows = np.arange(p.shape[1])
    train = np.stack([p[m, rows, U[m]] for m in range(p.shape[0])])  # (M, n, L, K)
    return smooth(train.mean(1), eps)


# --------------------------------------------------------------------------- summary


@dataclass
class LVResult:
    """The gap, every bound and the KL terms of an :class:`EncoderRuns` (chapter 4).

    ``gap``/``gap_sem``: the control-variate estimate (mean over supersamples; standard
    error over supersamples, or over masks for one supersample); ``gap_plain``,
    ``gap_plain_sem``: the plain estimate. ``bounds``: the valid bounds
    (:data:`VALID_BOUNDS`). ``invalid``: the same formula with the invalid priors
    (:data:`INVALID_PRIORS`), not bounds. ``kl``: per-pair KL terms (nats) of every
    prior. ``per_supersample``: all of these conditional on each X̃. ``rows``: one per
    (supersample, mask, pair) with the three seeds.
    """

    gap: float
    gap_sem: float
    gap_plain: float
    gap_plain_sem: float
    bounds: dict[str, float]
    invalid: dict[str, float]
    kl: dict[str, float]
    per_supersample: list[dict]
    rows: list[dict]
    config: dict
    certified: dict[str, float] = field(default_factory=dict)
    certified_kinds: dict[str, str] = field(default_factory=dict)
    confidence: float | None = None
    certificate: dict | None = None

    def to_csv(self, path=None) -> str:
        """The rows as CSV text (written to ``path`` when given)."""

        return rows_to_csv(self.rows, path)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in ("gap", "gap_sem", "gap_plain", "gap_plain_sem", "bounds", "invalid",
                                              "kl", "per_supersample", "config", "rows", "certified",
                                              "certified_kinds", "confidence", "certificate")}

    @classmethod
    def from_json(cls, data) -> "LVResult":
        """The result that :meth:`to_json` wrote (chapter 4 reads the one its cached sweep stored
        with :func:`vqlib.sweeps.ch04_prior.summary_of`, which leaves out the per-pair
        ``rows``: then ``rows`` is empty). An unknown or missing field is a ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"data must be a dict written by LVResult.to_json, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        missing = sorted(f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
                         and f.name not in data and f.name != "rows")
        if unknown or missing:
            raise ValueError(f"data is not an LVResult: unknown fields {unknown}, missing fields {missing}")
        return cls(**{"rows": [], **data})


def pair_kl_terms(posteriors, reference, masks, eps: float = 0.01) -> dict[str, np.ndarray]:
    """Σ_{b,l} KL(q_m(·|X̃_{i,b})_l ‖ π_{i,b,l}) for every run m and pair i, per prior (chapter 4).

    ``posteriors`` (M, n, 2, L, K): the trained models' posteriors on one supersample;
    ``reference`` (n, 2, L, K): the reference model's; ``masks`` (M, n). Returns arrays of
    shape (M, n) for the valid priors

    * ``uniform``: 1/K at every position (closed form 2L log K − Σ H);
    * ``marginal``: the average of the M runs' posteriors (in-sample, biased low);
    * ``marginal_loo``: the average of the *other* runs' posteriors, smoothed by ε (what
      :func:`vqlib.bounds.latent_kl_terms` reports as ``kl_marginal``);
    * ``reference``: the reference posterior of each point, smoothed by ε;
    * ``swap``: ½[π₀⊗π₁ + π₁⊗π₀] with π_b the smoothed reference posterior of X̃_{i,b}
      (deterministic quantizer only);
    * ``aggregated``: the reference posterior averaged over all 2n points, smoothed;

    and for the invalid ones (they see the mask through the trained model): ``own`` (the
    trained posterior itself: 0), ``training_half`` (:func:`training_half_prior`) and
    ``swap_trained`` (the swap mixture of the trained posteriors, at most log 2).
    """
    post = _posteriors(posteriors, "posteriors", min_ndim=5)
    ref = _posteriors(reference, "reference", min_ndim=4)
    if ref.shape != post.shape[1:]:
        raise ValueError(f"reference must have shape {post.shape[1:]}, got {ref.shape}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps!r}")
    K = post.shape[-1]
    one_hot = np.all((post == 0) | (post == 1)) and np.all((ref == 0) | (ref == 1))
    out = {}
    out["uniform"] = kl_to_prior(post, np.full(K, 1.0 / K)).sum(-1)
    out["marginal"] = kl_to_prior(post, post.mean(0, keepdims=True)).sum(-1)
    out["marginal_loo"] = kl_to_prior(post, leave_one_out_prior(post, eps)).sum(-1)
    ref_s = smooth(ref, eps)[None]  # (1, n, 2, L, K)
    out["reference"] = kl_to_prior(post, ref_s).sum(-1)
    agg = smooth(ref.mean((0, 1)), eps)  # (L, K)
    out["aggregated"] = kl_to_prior(post, agg).sum(-1)
    out["own"] = kl_to_prior(post, post).sum(-1)
    half = training_half_prior(post, masks, eps)  # (M, L, K)
    out["training_half"] = kl_to_prior(post, half[:, None, None]).sum(-1)
    if one_hot:
        codes = post.argmax(-1)  # (M, n, 2, L)
        with np.errstate(divide="ignore"):
            log_ref, log_post = np.log(ref_s), np.log(post)
        out["swap"] = swap_mixture_kl(codes, log_ref[..., 0, :, :], log_ref[..., 1, :, :])
        out["swap_trained"] = swap_mixture_kl(codes, log_post[:, :, 0], log_post[:, :, 1])
    return out


def lv_summary(runs: EncoderRuns, *, eps: float = 0.01, n_bins: int = 2, confidence: float | None = 0.95) -> LVResult:
    """The measured gap next to every bound of chapter 4, per supersample and on average.

    Gap: for pair i, (−1)^{U_i}(ℓ_{i,1} − ℓ_{i,0}) averaged over pairs and runs (plain),
    and the same minus the reference model's (−1)^{U_i}(ℓ⁰_{i,1} − ℓ⁰_{i,0}) (control
    variate: its mean is exactly 0 because the reference does not depend on U, so both
    estimate the same expected gap; the second has a much smaller variance).

    Bounds, per supersample, averaged over the n pairs: the e-CMI and loss-difference
    CMI terms of :func:`vqlib.bounds.pair_terms` (``n_bins`` quantile bins), and for
    every prior π the LV term sqrt(2·KL_i) with KL_i = the average over runs of
    Σ_{b,l} KL(q(·|X̃_{i,b})_l ‖ π_{i,b,l}). Priors smoothed by ``eps`` cost at most
    log(K/ε) per changed code.

    ``certified`` (unless ``confidence=None``): :func:`vqlib.bounds.certify` on the same
    runs, all values jointly at ``confidence``: chapter 2's CMI forms, the held-out value
    (betting on the control-variate gaps) and the LV bound with every valid prior whose
    prior is fixed before the estimation runs: uniform, the fit runs' average posterior
    (``lv_marginal``), reference, aggregated and swap-symmetric. Decoder and codebook are
    frozen, so the LV bounds pay no decoder information.
    """

    if not isinstance(runs, EncoderRuns):
        raise ValueError(f"runs must be an EncoderRuns, got {type(runs).__name__}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps!r}")
    n_bins = positive_int(n_bins, "n_bins")
    S, M, n = runs.masks.shape
    per_ss, rows = [], []
    prior_names = ["uniform", "marginal", "marginal_loo", "reference", "swap", "aggregated"]
    for s in range(S):
        U, los, ref = runs.masks[s], runs.losses[s], runs.reference_losses[s]
        sign = 1 - 2 * U  # (−1)^{U_i}
        plain = (sign * (los[..., 1] - los[..., 0])).mean(1)  # per run
        control = (sign * (ref[None, :, 1] - ref[None, :, 0])).mean(1)
        cv = plain - control
        terms = [pair_terms(los[:, i, 0], los[:, i, 1], U[:, i], n_bins=n_bins) for i in range(n)]
        kls = pair_kl_terms(runs.posteriors(s), runs.reference_posteriors(s), U, eps)  # each (M, n)
        rec = dict(supersample_seed=runs.supersample_seeds[s], gap=float(cv.mean()), gap_sem=sem(cv),
                   gap_plain=float(plain.mean()), gap_plain_sem=sem(plain))
        for name, key in (("e_cmi", "e_sqrt"), ("e_cmi_cosh", "e_cosh"), ("ld_cmi", "ld_sqrt"),
                          ("ld_cmi_cosh", "ld_cosh")):
            rec[name] = float(np.mean([t[key] for t in terms]))
        for prior, kl in kls.items():
            per_pair = kl.mean(0)  # E over runs (masks), one value per pair
            rec[f"kl_{prior}"] = float(per_pair.mean())
            value = float(np.mean(np.sqrt(2 * per_pair)))
            if prior in prior_names:
                rec[f"lv_{prior}"] = value
            else:
                rec[f"invalid_{prior}"] = value
        rec["changed_codes"] = float((runs.codes[s] != runs.reference_codes[s][None]).mean())
        per_ss.append(rec)
        for m in range(M):
            ch = (runs.codes[s, m] != runs.reference_codes[s]).sum(-1)  # (n, 2)
            for i in range(n):
                rows.append(dict(supersample_seed=runs.supersample_seeds[s], mask_seed=int(runs.mask_seeds[s, m]),
                                 train_seed=runs.train_seed, K=runs.K, L=runs.L, n=n, i=i, U=int(U[m, i]),
                                 loss0=float(los[m, i, 0]), loss1=float(los[m, i, 1]),
                                 reference_loss0=float(ref[i, 0]), reference_loss1=float(ref[i, 1]),
                                 changed0=int(ch[i, 0]), changed1=int(ch[i, 1])))
    mean = lambda key: float(np.mean([r[key] for r in per_ss]))  # noqa: E731
    gaps = [r["gap"] for r in per_ss]
    plains = [r["gap_plain"] for r in per_ss]
    if S >= 2:
        gap_sem, plain_sem = sem(gaps), sem(plains)
    else:
        gap_sem, plain_sem = per_ss[0]["gap_sem"], per_ss[0]["gap_plain_sem"]
    result = LVResult(
        gap=float(np.mean(gaps)), gap_sem=gap_sem, gap_plain=float(np.mean(plains)), gap_plain_sem=plain_sem,
        bounds={name: mean(name) for name in VALID_BOUNDS},
        invalid={name: mean(f"invalid_{name}") for name in INVALID_PRIORS},
        kl={key[3:]: mean(key) for key in per_ss[0] if key.startswith("kl_")},
        per_supersample=per_ss, rows=rows, config=dict(runs.config, eps=eps, n_bins=n_bins, confidence=confidence),
    )
    if confidence is not None:
        _certify_runs(result, runs, eps, n_bins, confidence)
    return result


def _certify_runs(result: LVResult, runs: EncoderRuns, eps: float, n_bins: int, confidence: float) -> None:
    """Chapter 4's certified numbers (:func:`vqlib.bounds.certify`) for the runs behind ``result``.

    Every valid prior is a candidate; the fit runs choose which are certified (``select``): with
    the nearest quantizer the uniform prior costs exactly 2L log K per pair (exact, vacuous), and
    a prior whose fit-run KL puts its bound at 1 or more pays no δ.
    """
    S, M, n = runs.masks.shape
    K, L = runs.K, runs.L
    posts = np.stack([runs.posteriors(s) for s in range(S)])
    ref = np.stack([runs.reference_posteriors(s) for s in range(S)])
    swap = np.stack([pair_kl_terms(posts[s], ref[s], runs.masks[s], eps)["swap"] for s in range(S)])
    control = runs.reference_losses[..., 1] - runs.reference_losses[..., 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CertificateWarning)
        cert = certify(runs.losses, runs.masks, confidence=confidence, n_bins=n_bins, posteriors=posts,
                       reference=ref, decoder_information=0.0, eps=eps, control=control,
                       kl_terms={"swap": (swap, 2 * L * math.log(K / eps) + math.log(2))}, select=True, warn=False)
    result.certified, result.certified_kinds = dict(cert.values), dict(cert.kinds)
    result.confidence, result.certificate = confidence, cert.to_json()
