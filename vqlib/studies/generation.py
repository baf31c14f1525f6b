"""The 2-Wasserstein generation bound and its measured counterpart (chapter 7).

With D the data law on [0, 1]^d, P_rec the law of g(e_J) with J ~ q(·|X), X ~ D, and
P_gen the law of g(e_J) with J ~ π (the generation prior), chapter 7 proves

    W2(D, P_gen) ≤ W2(D, P_rec) + W2(P_rec, P_gen)
                 ≤ sqrt(d · R) + diam · min(1, sqrt(KL / 2))^{1/2},

with R = E_X ℓ(X, g(e_J)) the reconstruction risk (ℓ = ‖x − x̂‖²/d, hence the factor
d), diam ≤ √d the diameter of [0, 1]^d, and KL = E_X KL(q(·|X) ‖ π) ≥ KL(P_J ‖ π).
:func:`generation_bound` computes every term from a trained model, a prior and a held-out
sample: R by the binary-kl test-set bound and the mean KL by the same bound on the
scaled KLs (each with confidence δ/2), so the printed bound holds with probability at
least 1 − δ over the held-out sample. It also returns the plug-in estimates.
:func:`measure_w2` computes the exact W2 between generated and real samples, next to the
reference W2 between two real samples of the same size.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from .._checks import nonnegative_float, positive_float, positive_int, unit_float
from ..bounds.held_out import test_set_bound
from ..bounds.information import kl_inverse_upper
from ..bounds.wasserstein import w2
from ..data import check_images
from ..models.fit import check_model, reconstruction_loss
from ..models.layers import Residual
from ..models.priors import LatentPrior
from ..models.sampling import generate
from ..models.vqvae import VQVAE

__all__ = ["diameter_bound", "generation_bound", "measure_w2", "output_ranges", "posteriors", "tempered", "w2_terms"]


def tempered(model: VQVAE, beta: float) -> VQVAE:
    """A copy of ``model`` whose quantizer draws J_l ~ q_β(k|x) ∝ exp(−β‖f(x)_l − e_k‖²) (chapter 7).

    Encoder, codebook and decoder are shared values (copied); only the quantization
    rule changes. Chapter 7 trains with the nearest-code quantizer and evaluates the
    generation bound on this stochastic version: its posterior can be close to a prior
    (small KL) at the price of a larger reconstruction risk. Large β approaches the
    nearest-code model.

    Parameters
    ----------
    model : VQVAE
        The trained model; left unchanged.
    beta : float
        The inverse temperature β, > 0.

    Returns
    -------
    VQVAE
        A deep copy with the softmax quantizer at ``beta`` (also in its ``config``), in eval mode.

    Raises
    ------
    ValueError
        When ``beta`` is not a finite number > 0.

    See also
    --------
    posteriors, generation_bound; chapter 7.
    """
    model = check_model(model)
    beta = positive_float(beta, "beta")
    copy_ = copy.deepcopy(model)
    copy_.quantizer.quantizer = "softmax"
    copy_.quantizer.beta = beta
    copy_.config = dict(copy_.config, quantizer="softmax", beta=beta)
    return copy_.eval()


@torch.no_grad()
def posteriors(model: VQVAE, x, *, batch_size: int = 1024) -> np.ndarray:
    """The per-position posteriors q(k | x) of ``model`` on images ``x``, shape (n, L, K), float64 (chapter 7).

    For the softmax quantizer q(k | x) ∝ exp(−β‖f(x)_l − e_k‖²) at each position l; the model's
    training mode is restored afterwards.

    Parameters
    ----------
    model : VQVAE
        The model.
    x : tensor or array (n, C, H, W)
        Images in [0, 1] of the model's image shape.
    batch_size : int, default 1024
        Inputs per forward pass (no effect on the result).

    Returns
    -------
    ndarray (n, L, K), float64
        ``out[i, l]`` is the probability vector q(· | x_i) at position l.

    Raises
    ------
    ValueError
        When ``x`` is not a batch of images in [0, 1] of the model's image shape.

    See also
    --------
    tempered, generation_bound, vqlib.models.priors.LatentPrior; chapter 7.
    """
    model = check_model(model, finite=True)
    batch_size = positive_int(batch_size, "batch_size")
    x = check_images(x, name="x", in_shape=model.in_shape)
    was_training = model.training
    model.eval()
    try:
        out = [model.posterior(x[i:i + batch_size].to(model.device)).double().cpu()
               for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy()


@torch.no_grad()
def _interval(layer: torch.nn.Module, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A box [lo', hi'] holding ``layer(z)`` for every z in the box [lo, hi] (interval arithmetic, chapter 7).

    ReLU is monotone; a linear layer (Linear, Conv2d, ConvTranspose2d) maps the box's centre through
    itself and its radius through the same layer with |W| and no bias; a residual block x + f(x) gets
    the sum of the two boxes (valid, ignoring that both terms share x); a Sequential goes layer by layer.
    """
    if isinstance(layer, torch.nn.Sequential):
        for sub in layer:
            lo, hi = _interval(sub, lo, hi)
        return lo, hi
    if isinstance(layer, torch.nn.ReLU):
        return lo.clamp_min(0), hi.clamp_min(0)
    if isinstance(layer, Residual):
        blo, bhi = _interval(layer.block, lo, hi)
        return lo + blo, hi + bhi
    centre, radius = (hi + lo) / 2, (hi - lo) / 2
    if isinstance(layer, torch.nn.Linear):
        radius = radius @ layer.weight.abs().T
    elif isinstance(layer, torch.nn.Conv2d):
        radius = torch.nn.functional.conv2d(radius, layer.weight.abs(), None, layer.stride, layer.padding,
                                            layer.dilation, layer.groups)
    elif isinstance(layer, torch.nn.ConvTranspose2d):
        radius = torch.nn.functional.conv_transpose2d(radius, layer.weight.abs(), None, layer.stride, layer.padding,
                                                      layer.output_padding, layer.groups, layer.dilation)
    else:
        raise ValueError(f"output_ranges handles Linear, Conv2d, ConvTranspose2d, ReLU and Residual layers, "
                         f"got {type(layer).__name__}")
    centre = layer(centre)
    return centre - radius, centre + radius


def _first_layer_ranges(model: VQVAE, first: torch.nn.Module, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact per-unit bounds of the decoder's first (linear) layer over all LVs j ∈ [K]^L (chapter 7).

    Positions enter additively, so each unit's minimum (maximum) is its bias plus, over the positions
    it sees, the minimum (maximum) over the K codes of that position's contribution.
    """
    if isinstance(first, torch.nn.Linear):  # MLP: the L codes are concatenated
        blocks = first.weight.reshape(first.out_features, model.L, model.code_dim)
        scores = torch.einsum("uld,kd->ulk", blocks, codes)  # (units, L, K)
        return first.bias + scores.min(-1).values.sum(-1), first.bias + scores.max(-1).values.sum(-1)
    if isinstance(first, torch.nn.Conv2d) and first.groups == 1:  # conv: each kernel offset sees one position
        scores = torch.einsum("ocab,kc->okab", first.weight, codes)  # (out, K, kh, kw)
        ones = torch.ones(1, 1, *model.grid, dtype=codes.dtype, device=codes.device)  # which offsets fall inside
        lo = torch.nn.functional.conv2d(ones, scores.min(1, keepdim=True).values, first.bias, first.stride,
                                        first.padding, first.dilation)
        hi = torch.nn.functional.conv2d(ones, scores.max(1, keepdim=True).values, first.bias, first.stride,
                                        first.padding, first.dilation)
        return lo, hi
    raise ValueError(f"output_ranges needs a Linear or Conv2d first decoder layer, got {type(first).__name__}")


def output_ranges(model: VQVAE, *, max_enumerate: int = 2 ** 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel bounds lo ≤ h_p(j) ≤ hi over all LVs j ∈ [K]^L, for the diameter (chapter 7).

    When K^L ≤ ``max_enumerate`` every j is decoded and the ranges are exact. Otherwise
    they are certified by interval arithmetic through the decoder: the first layer's
    pre-activations are exact per unit (Σ over the positions a unit sees of max_k and min_k
    over the codes, since positions enter additively), then each ReLU, linear, convolution,
    transposed convolution and residual block maps boxes to boxes, and the final sigmoid is
    monotone. Both architectures (``"mlp"``, ``"conv"``) are handled.

    Parameters
    ----------
    model : VQVAE
        The model whose decoder h is bounded; its training mode is restored afterwards.
    max_enumerate : int, default 2 ** 16
        Decode every LV when K^L is at most this (0 always uses interval arithmetic).

    Returns
    -------
    lo, hi : tensor (d,)
        Two CPU tensors, d = C·H·W, with lo ≤ h(j) ≤ hi for every j.

    Raises
    ------
    ValueError
        When ``max_enumerate`` is not an integer ≥ 0, or interval arithmetic meets a decoder
        layer it does not handle.

    See also
    --------
    diameter_bound, generation_bound; chapter 7.
    """
    model = check_model(model, finite=True)
    # 2**24 decodings take minutes on a CPU; beyond, enumeration would run for hours: interval arithmetic instead
    max_enumerate = positive_int(max_enumerate, "max_enumerate", minimum=0, maximum=2**24)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            codes = model.quantizer.codes.detach()
            if model.K ** model.L <= max_enumerate:
                lo = hi = None
                for chunk in torch.cartesian_prod(*[torch.arange(model.K)] * model.L).reshape(-1, model.L).split(8192):
                    out = model.decode_indices(chunk.to(model.device)).reshape(len(chunk), -1)
                    lo = out.min(0).values if lo is None else torch.minimum(lo, out.min(0).values)
                    hi = out.max(0).values if hi is None else torch.maximum(hi, out.max(0).values)
                return lo.cpu(), hi.cpu()
            layers = list(model.decoder)
            lo, hi = _first_layer_ranges(model, layers[0], codes)
            lo, hi = _interval(torch.nn.Sequential(*layers[1:]), lo, hi)
            return torch.sigmoid(lo).reshape(-1).cpu(), torch.sigmoid(hi).reshape(-1).cpu()
    finally:
        model.train(was_training)


def diameter_bound(model: VQVAE, *, max_enumerate: int = 2 ** 16) -> float:
    """An upper bound on diam(h) = max_{j, j'} ‖h(j) − h(j')‖ (chapter 7).

    sqrt(Σ_p (hi_p − lo_p)²) with the ranges of :func:`output_ranges`, capped at √d.

    Parameters
    ----------
    model : VQVAE
        The model whose decoder h is bounded.
    max_enumerate : int, default 2 ** 16
        As in :func:`output_ranges`.

    Returns
    -------
    float
        The bound, in [0, √d].

    Raises
    ------
    ValueError
        As :func:`output_ranges`.

    See also
    --------
    output_ranges, w2_terms, generation_bound; chapter 7.
    """
    lo, hi = output_ranges(model, max_enumerate=max_enumerate)
    return min(float(((hi - lo).double() ** 2).sum().sqrt()), math.sqrt(lo.numel()))


def w2_terms(d: int, risk: float, kl: float, diam: float | None = None) -> dict[str, float]:
    """The two terms of the generation bound from a risk and a mean KL (chapter 7).

    ``rec = sqrt(d · risk)`` bounds W2(D, P_rec); ``gen = diam · min(1, sqrt(kl/2))^{1/2}``
    bounds W2(P_rec, P_gen) (Pinsker, and TV ≤ 1); ``diam`` defaults to √d (outputs in [0, 1]^d).

    Parameters
    ----------
    d : int
        Number of pixels, ≥ 1.
    risk : float
        The reconstruction risk R (or a bound on it), finite and ≥ 0.
    kl : float
        The mean KL (or a bound on it), in nats, finite and ≥ 0.
    diam : float, optional
        The diameter of the decoded outputs (default √d).

    Returns
    -------
    dict
        ``rec``, ``gen``, ``total`` = rec + gen, ``tv`` = min(1, sqrt(kl/2)) and ``diam``.

    Raises
    ------
    ValueError
        When ``d`` is not an integer ≥ 1, or ``risk`` or ``kl`` is not a finite number ≥ 0.

    See also
    --------
    generation_bound, diameter_bound; chapter 7.
    """
    d = positive_int(d, "d", maximum=2**62)  # pixels: far beyond any image, and √d stays exact enough
    risk = nonnegative_float(risk, "risk")
    kl = nonnegative_float(kl, "kl")
    diam = math.sqrt(d) if diam is None else nonnegative_float(diam, "diam")
    tv = min(1.0, math.sqrt(kl / 2.0))  # Pinsker, and TV ≤ 1
    rec, gen = math.sqrt(d * risk), diam * math.sqrt(tv)
    return {"rec": rec, "gen": gen, "total": rec + gen, "tv": tv, "diam": diam}


def generation_bound(model: VQVAE, prior: LatentPrior, x_test, *, delta: float = 0.05, seed: int = 0,
                     diam: float | None = None) -> dict:
    """Every term of chapter 7's W2 generation bound, computed on held-out images ``x_test`` (chapter 7).

    W2(D, P_gen) ≤ sqrt(d · R) + diam · min(1, sqrt(KL / 2))^{1/2}, with R bounded by the
    binary-kl test-set bound on the losses and the mean KL by the same bound on KL/kl_max,
    each at confidence δ/2, so the bound holds with probability ≥ 1 − δ over ``x_test``.

    Parameters
    ----------
    model : VQVAE
        The trained model (typically :func:`tempered`).
    prior : LatentPrior
        The generation prior π (a :mod:`vqlib.models.priors` prior) with the model's K and L.
    x_test : tensor or array (m, C, H, W)
        Held-out images in [0, 1], independent of the training data and of the prior's fit.
    delta : float, default 0.05
        The failure probability δ, in (0, 1).
    seed : int, default 0
        Seeds the quantizer's draws for the reconstruction losses.
    diam : float, optional
        An upper bound on the diameter of the decoded outputs, in [0, √d]
        (default :func:`diameter_bound`).

    Returns
    -------
    dict
        * ``d``, ``sqrt_d`` (√d), ``m`` (held-out size), ``delta``, ``diam`` (an upper bound on
          the diameter of the decoded outputs: :func:`diameter_bound` unless given; at most √d);
        * ``test_loss`` (mean held-out loss, estimates R) and ``risk_upper`` (its binary-kl
          upper bound at confidence δ/2);
        * ``kl_mean`` (mean of KL(q(·|x) ‖ π) over ``x_test``, estimates E_X KL), ``kl_max``
          (max_j −log π(j), the range of each KL) and ``kl_upper`` (binary-kl upper bound on
          the mean of KL/kl_max, times kl_max, at confidence δ/2);
        * ``rec_term`` = sqrt(d · risk_upper), ``gen_term`` = diam · min(1, sqrt(kl_upper/2))^{1/2},
          ``bound`` = their sum: holds with probability ≥ 1 − δ over ``x_test``;
        * ``rec_estimate``, ``gen_estimate``, ``bound_estimate``: the same with the plug-in
          means in place of the upper bounds (estimates, not bounds).

    Raises
    ------
    ValueError
        When ``prior`` is not a LatentPrior or its K, L differ from the model's, ``delta`` is
        outside (0, 1), ``x_test`` is not a non-empty batch of images in [0, 1] of the model's
        image shape, or ``diam`` is outside [0, √d].

    See also
    --------
    w2_terms, diameter_bound, measure_w2, tempered, vqlib.bounds.held_out.test_set_bound; chapter 7.
    """
    model = check_model(model, finite=True)
    if diam is not None:
        diam = nonnegative_float(diam, "diam")
    if not isinstance(prior, LatentPrior):
        raise ValueError(f"prior must be a vqlib.models.priors prior, got {type(prior).__name__}")
    if (prior.K, prior.L) != (model.K, model.L):
        raise ValueError(f"prior has K={prior.K}, L={prior.L} but the model has K={model.K}, L={model.L}")
    delta = unit_float(delta, "delta", open_left=True, open_right=True)
    x_test = check_images(x_test, name="x_test", in_shape=model.in_shape)
    if len(x_test) == 0:
        raise ValueError("x_test is empty")
    d = math.prod(model.in_shape)
    losses = reconstruction_loss(model, x_test, seed=seed).double().numpy()
    risk = test_set_bound(np.clip(losses, 0.0, 1.0), delta / 2)
    kls = prior.kl_from_posteriors(posteriors(model, x_test))
    kl_max = prior.max_neg_log_prob()
    m = len(kls)
    kl_mean = float(kls.mean())
    if kl_max > 0:
        scaled = float(np.clip(kl_mean / kl_max, 0.0, 1.0))
        kl_upper = kl_max * float(kl_inverse_upper(scaled, math.log(2 / delta) / m))
    else:
        kl_upper = 0.0
    diam = diameter_bound(model) if diam is None else float(diam)
    if not 0 <= diam <= math.sqrt(d) + 1e-9:
        raise ValueError(f"diam must lie in [0, √d = {math.sqrt(d):.4g}], got {diam!r}")
    bound = w2_terms(d, risk["kl_inverse"], kl_upper, diam)
    estimate = w2_terms(d, risk["mean"], kl_mean, diam)
    return {
        "d": d, "m": m, "delta": delta, "diam": bound["diam"], "sqrt_d": math.sqrt(d),
        "test_loss": risk["mean"], "risk_upper": risk["kl_inverse"],
        "kl_mean": kl_mean, "kl_max": kl_max, "kl_upper": kl_upper,
        "rec_term": bound["rec"], "gen_term": bound["gen"], "bound": bound["total"],
        "rec_estimate": estimate["rec"], "gen_estimate": estimate["gen"], "bound_estimate": estimate["total"],
    }


def measure_w2(model: VQVAE, prior: LatentPrior, x_a, x_b, *, seed: int = 0) -> dict[str, float]:
    """Measured W2 for chapter 7: generated vs real, reconstructed vs real, real vs real (chapter 7).

    Exact 2-Wasserstein distances between samples (:func:`vqlib.w2`). ``w2_ref`` is the floor
    that finite-sample W2 sits on even between two samples of the same law.

    Parameters
    ----------
    model : VQVAE
        The trained model.
    prior : LatentPrior
        The generation prior the n generated images are drawn from (:func:`vqlib.generate`).
    x_a : tensor or array (n, C, H, W)
        Real images in [0, 1], the reference sample.
    x_b : tensor or array (n, C, H, W)
        A disjoint real sample of the same size.
    seed : int, default 0
        Seeds the generation and the quantizer's draws for the reconstructions.

    Returns
    -------
    dict
        ``w2_gen`` = W2(n generated samples, x_a), ``w2_rec`` = W2(reconstructions of x_b, x_a),
        ``w2_ref`` = W2(x_b, x_a) and ``n_w2`` = n.

    Raises
    ------
    ValueError
        When ``x_a`` or ``x_b`` is not a batch of images in [0, 1] of the model's image shape,
        or their sizes differ.

    See also
    --------
    generation_bound, vqlib.w2, vqlib.generate; chapter 7.
    """
    x_a = check_images(x_a, name="x_a", in_shape=model.in_shape)
    x_b = check_images(x_b, name="x_b", in_shape=model.in_shape)
    if len(x_a) != len(x_b) or len(x_a) == 0:
        raise ValueError(f"x_a and x_b must be non-empty and of the same size, got {len(x_a)} and {len(x_b)}")
    fake = generate(model, len(x_a), prior, seed=seed)
    with torch.no_grad():
        was_training = model.training
        model.eval()
        gen = torch.Generator(device=model.device).manual_seed(seed)
        recon = model(x_b.to(model.device), generator=gen).x_hat.cpu()
        model.train(was_training)
    return {"w2_gen": w2(fake, x_a), "w2_rec": w2(recon, x_a), "w2_ref": w2(x_b, x_a), "n_w2": len(x_a)}
