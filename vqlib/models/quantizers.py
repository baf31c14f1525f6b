"""Codebooks and quantizers (chapter 1; the softmax quantizer is chapter 6's subject).

A quantizer maps each of the L encoder vectors f(x)_l ∈ R^{code_dim} to a code index
J_l ∈ {0, …, K-1} and returns e_{J_l}:

* ``"nearest"``: J_l = argmin_k ‖f(x)_l − e_k‖² (deterministic);
* ``"softmax"``: J_l ~ q(k | x) ∝ exp(−β ‖f(x)_l − e_k‖²) (the exponential mechanism).

Both report the posterior q(· | x) per position (one-hot for ``"nearest"``), which is
what the latent-variable bounds of chapters 4–7 are computed from.

What training follows (:func:`training_indices`, the one rule that :class:`VectorQuantizer`
and the training engine share): the decoder sees the sampled code e_J (straight-through
gradients to the encoder), but the codebook's EMA step, the codebook and commitment losses
and the usage counts behind dead-code resets follow the *nearest* code, the posterior's
mode. Were they to follow the sampled code, at moderate β every code's EMA mean would drift
towards the centroid of all encoder outputs and the commitment loss would pull every output
towards a random code: codes bunch together, distances shrink, samples get noisier, and
training collapses to the mean image (chapter 6). With the nearest code the codebook is a
running k-means of the encoder outputs whatever β is; for the nearest quantizer the two
rules coincide. The softmax quantizer's EMA also forgets faster by default (decay 0.9
instead of 0.99, :data:`DEFAULT_DECAY`): a codebook that lags the encoder leaves outputs
farther from their codes, which at a fixed β makes every draw noisier.

The inverse temperature is a number or ``"learned"``: then β = exp(:data:`LEARNED_BETA_RATE` × θ)
with θ a parameter (β = 1 at the start) trained with the loss through the term
:func:`precision_loss`, β·‖f(x) − e_J‖² − (D/2)·log β: the negative log-density of a Gaussian
N(e_J, I/(2β)) around the sampled code, as SQ-VAE learns its quantization variance. Its
minimiser is the maximum-likelihood precision D / (2·E‖f(x) − e_J‖²): as training pulls
encoder outputs onto their codes, β rises and the quantizer anneals towards the nearest one.

Encoder outputs and codes live on the unit sphere of R^{code_dim} (the stored codebook
is normalised when used), so squared distances lie in [0, 4] whatever the dimension.

The codebook is learned either by the loss (codebook + commitment terms) or by an
exponential moving average (EMA) of the encoder vectors assigned to each code. The EMA
update runs *after* quantizing a batch, only in training mode, and its counts start at
one and are Laplace-smoothed, so no division by zero can occur.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import choice, fits_in_memory, positive_float, positive_int, real_number, unit_float

__all__ = ["Quantized", "VectorQuantizer", "nearest", "training_indices",
           "learned_beta", "precision_loss", "check_beta", "QUANTIZERS", "CODEBOOK_UPDATES", "DEFAULT_DECAY", "LEARNED_BETA_RATE",
           "MAX_BETA"]

QUANTIZERS = ("nearest", "softmax")
CODEBOOK_UPDATES = ("ema", "loss")  # "frozen" is set by VQVAE.freeze_codebook_and_decoder
#: The EMA decay of each quantizer when none is given (see the module's docstring).
DEFAULT_DECAY = {"nearest": 0.99, "softmax": 0.9}
#: A learned β is exp(LEARNED_BETA_RATE × θ): Adam moves θ by about lr per step, so log β moves
#: by about 10·lr, enough to cross two orders of magnitude within a few hundred steps (at rate 1
#: a 40-epoch fit on the digits could not take β beyond about 6.6, lr × steps = log 6.6).
LEARNED_BETA_RATE = 10.0
#: The largest fixed β the softmax quantizer takes: β·‖f − e‖² ≤ 4β must be a finite float32, or
#: exp(−β·d) turns to NaN (∞·0) and no latent variable can be drawn. At this β the quantizer is the
#: nearest one in all but exact ties.
MAX_BETA = float(torch.finfo(torch.float32).max) / 4


def check_beta(beta, quantizer: str = "softmax", *, learned: bool = True):
    """β as the quantizer takes it (chapter 6).

    For ``"softmax"`` a number in (0, :data:`MAX_BETA`] or (with ``learned``) the string
    ``"learned"``; for ``"nearest"`` any number but NaN (the β its tempered copies and chapter 7's
    penalty use; ∞ is the nearest quantizer's own).

    Parameters
    ----------
    beta : float or "learned"
    quantizer : {"softmax", "nearest"}
    learned : bool, keyword-only
        Whether ``"learned"`` is accepted (a β set on a quantizer or a tempered copy is a number).

    Returns
    -------
    float or "learned"

    Raises
    ------
    ValueError
        Naming ``beta`` and the valid choices (``"learned"`` with the nearest quantizer too); a β
        above :data:`MAX_BETA` for the softmax quantizer.

    See also: :class:`VectorQuantizer`, :func:`learned_beta`; chapter 6.
    """
    what = "a finite number > 0 or 'learned'" if learned else "a finite number > 0"
    if isinstance(beta, str):
        if beta == "learned" and quantizer == "softmax" and learned:
            return beta
        if beta == "learned" and learned:
            raise ValueError("beta='learned' needs quantizer='softmax' (the nearest quantizer has no temperature "
                             "to learn)")
        raise ValueError(f"beta must be {what}, got {beta!r}")
    if quantizer != "softmax":
        value = real_number(beta, "beta")
        if value != value:
            raise ValueError(f"beta must be a number (∞ included), got {beta!r}")
        return value
    try:
        value = positive_float(beta, "beta")
    except ValueError:
        raise ValueError(f"beta must be {what}, got {beta!r}") from None
    if value > MAX_BETA:
        raise ValueError(f"beta must be at most {MAX_BETA:.4g} (beta times a squared distance ≤ 4 must stay a "
                         f"finite float32), got {beta!r}")
    return value


def _tensor(value, name: str, ndims: tuple[int, ...], *, last: int | None = None, finite: bool = False) -> Tensor:
    """``value`` if it is a real floating tensor of one of ``ndims`` dimensions (last axis ``last``), else
    ``ValueError`` naming ``name``; with ``finite``, one pass refuses NaN and infinite entries."""
    if not isinstance(value, Tensor):
        raise ValueError(f"{name} must be a torch tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must hold real floating numbers, got dtype {value.dtype}")
    if value.dim() not in ndims or (last is not None and value.shape[-1] != last):
        dims = " or ".join(f"{d}-D" for d in ndims)
        tail = f" with a last axis of {last}" if last is not None else ""
        raise ValueError(f"{name} must be {dims}{tail}, got shape {tuple(value.shape)}")
    if finite and value.numel() and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must be finite, found NaN or infinite values")
    return value


def _generator(generator, name: str = "generator"):
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def _check_probabilities(probs: Tensor, beta) -> None:
    """FloatingPointError when the softmax quantizer's probabilities are not finite (before drawing
    from them): the encoder outputs, the codes or a learned β have diverged."""
    if not bool(torch.isfinite(probs).all()):
        raise FloatingPointError(f"the softmax quantizer's probabilities are not finite (beta={beta!r}): the encoder "
                                 "outputs, the codes or a learned beta are not finite")


@dataclass
class Quantized:
    """What a quantizer returns for a batch of N inputs with L positions each (chapter 1).

    Attributes
    ----------
    z_q : Tensor (N, L, D)
        The chosen codes e_J, with straight-through gradients.
    indices : Tensor (N, L), int64 in [0, K)
        The latent variables J.
    probs : Tensor (N, L, K)
        The posterior q(k | x) per position.
    codebook_loss : Tensor, scalar
        ‖sg[f(x)] − e_J*‖², J* the nearest code (zero for the EMA codebook).
    commitment_loss : Tensor, scalar
        ‖f(x) − sg[e_J*]‖², J* the nearest code (:func:`training_indices`).
    beta_loss : Tensor, scalar
        :func:`precision_loss` for a learned β (zero otherwise).

    See also: :meth:`VectorQuantizer.forward`, :class:`vqlib.models.VQOutput`; chapter 1.
    """

    z_q: Tensor  # (N, L, D): the chosen codes, with straight-through gradients
    indices: Tensor  # (N, L): the latent variables J, int64 in [0, K)
    probs: Tensor  # (N, L, K): the posterior q(k | x) per position
    codebook_loss: Tensor  # scalar: ‖sg[f(x)] − e_J*‖², J* the nearest code (zero for the EMA codebook)
    commitment_loss: Tensor  # scalar: ‖f(x) − sg[e_J*]‖², J* the nearest code (:func:`training_indices`)
    beta_loss: Tensor | None = None  # scalar: :func:`precision_loss` for a learned β (zero otherwise)


def squared_distances(z: Tensor, codebook: Tensor) -> Tensor:
    """‖z_i − e_k‖² for rows z_i of ``z`` (M, D) and codes e_k of ``codebook`` (K, D): shape (M, K) (chapter 1).

    Rounding can push the expanded form slightly below 0; it is clamped there.
    """
    _tensor(z, "z", (2,))
    _tensor(codebook, "codebook", (2,), last=z.shape[-1])
    d = (z * z).sum(-1, keepdim=True) - 2 * z @ codebook.T + (codebook * codebook).sum(-1)
    return d.clamp_min(0.0)


def sphere_distances(z: Tensor, codes: Tensor) -> Tensor:
    """Squared distances between unit vectors, clamped to their exact range [0, 4] (chapter 6).

    ``z`` (M, D) and ``codes`` (K, D) give (M, K).
    """
    return squared_distances(z, codes).clamp_max(4.0)


@torch.no_grad()
def nearest(z: Tensor, codes: Tensor) -> Tensor:
    """The nearest code of every row, argmin_k ‖z − e_k‖²: the nearest quantizer's rule (every chapter).

    ‖z‖² is the same for every k, so it is left out: argmin_k (‖e_k‖² − 2 z·e_k), one matrix
    product (in blocks of rows that stay in the cache) and no clamping. :class:`VectorQuantizer`,
    the training engine and the posteriors all use this one rule, so a model's codes do not
    depend on where they are computed.

    Parameters
    ----------
    z : Tensor (M, D) or (R, M, D)
        Encoder outputs.
    codes : Tensor (K, D), shared, or (R, K, D), one codebook per model (the training engine)

    Returns
    -------
    Tensor of int64 indices in [0, K), shape ``z.shape[:-1]``

    Raises
    ------
    ValueError
        Naming ``z`` or ``codes`` when they are not real floating tensors of these shapes (one
        codebook per model needs as many models in ``z``), or not finite.

    See also: :func:`training_indices`, :class:`VectorQuantizer`; chapter 1.
    """
    _tensor(z, "z", (2, 3), finite=True)
    _tensor(codes, "codes", (2, 3) if z.dim() == 3 else (2,), last=z.shape[-1], finite=True)
    if codes.dim() == 3 and codes.shape[0] != z.shape[0]:
        raise ValueError(f"codes holds {codes.shape[0]} codebooks for {z.shape[0]} models in z")
    if codes.shape[-2] == 0:
        raise ValueError("codes must hold at least one code")
    return _nearest(z, codes)


@torch.no_grad()
def _nearest(z: Tensor, codes: Tensor) -> Tensor:
    """:func:`nearest` without its checks (the quantizer and the engine, on what they made)."""
    cc = (codes * codes).sum(-1)
    if codes.dim() == 2:
        flat = z.reshape(-1, z.shape[-1])
        rows = max(64, 2 ** 17 // codes.shape[0])  # blocks of distances that stay in the cache
        return torch.cat([torch.addmm(cc, flat[a:a + rows], codes.T, alpha=-2).argmin(-1)
                          for a in range(0, flat.shape[0], rows)]).reshape(z.shape[:-1])
    rows = max(16, 2 ** 17 // (codes.shape[0] * codes.shape[1]))
    cT, bias = codes.transpose(1, 2), cc.unsqueeze(1)
    return torch.cat([torch.baddbmm(bias, z[:, a:a + rows], cT, alpha=-2).argmin(-1)
                      for a in range(0, z.shape[1], rows)], 1)


def training_indices(z: Tensor, codes: Tensor, indices: Tensor, quantizer: str) -> Tensor:
    """The codes training follows for encoder outputs ``z`` whose latent variables are ``indices`` (chapters 1, 6).

    They drive the EMA step, the codebook and commitment losses and the usage counts: the
    nearest code, argmin_k ‖z − e_k‖² (:func:`nearest`), the posterior's mode. For the
    nearest quantizer that is ``indices`` itself; for the softmax quantizer it differs from the
    sampled code that the decoder sees (see the module's docstring for why).
    :class:`VectorQuantizer` and the training engine both call this one rule.

    Parameters
    ----------
    z : Tensor (M, D) or (R, M, D)
        Encoder outputs (no gradient needed).
    codes : Tensor (K, D) or (R, K, D)
    indices : Tensor of int64, shape ``z.shape[:-1]``
        The latent variables J (sampled, for the softmax quantizer).
    quantizer : {"nearest", "softmax"}

    Returns
    -------
    Tensor of int64, shape ``z.shape[:-1]``
        ``indices`` itself (the same object) for ``"nearest"``, else the nearest codes.

    See also: :func:`nearest`, :class:`VectorQuantizer`; chapter 6.
    """
    quantizer = choice(quantizer, "quantizer", QUANTIZERS)
    if not isinstance(indices, Tensor) or tuple(indices.shape) != tuple(z.shape[:-1]):
        raise ValueError(f"indices must be a tensor of shape {tuple(z.shape[:-1])} (z's without its last axis), got "
                         f"{tuple(indices.shape) if isinstance(indices, Tensor) else type(indices).__name__}")
    return indices if quantizer == "nearest" else _nearest(z, codes)


def learned_beta(theta: Tensor) -> Tensor:
    """A learned β from its parameter θ: exp(:data:`LEARNED_BETA_RATE` × θ), elementwise (chapter 6).

    Used by :class:`VectorQuantizer` and the training engine's stacked models; θ = 0 gives β = 1.

    Parameters
    ----------
    theta : Tensor, any shape

    Returns
    -------
    Tensor, the shape of ``theta``, values > 0 (with θ's gradient)

    See also: :func:`precision_loss`, :func:`check_beta`; chapter 6.
    """
    if not isinstance(theta, Tensor) or not theta.is_floating_point():
        raise ValueError(f"theta must be a real floating tensor, got {getattr(theta, 'dtype', type(theta).__name__)}")
    return torch.exp(LEARNED_BETA_RATE * theta)


def precision_loss(beta: Tensor, sq_distance: Tensor, code_dim: int) -> Tensor:
    """β·d − (D/2)·log β: the term that trains a learned β (chapter 6), elementwise over models.

    Up to a constant it is −log N(f(x); e_J, I/(2β)), the Gaussian around the sampled code of
    SQ-VAE's quantizer; its minimiser over β is the maximum-likelihood precision D / (2d).

    Parameters
    ----------
    beta : Tensor, scalar or (R,)
        The current β (with its gradient).
    sq_distance : Tensor, the shape of ``beta``
        d, the mean squared distance ‖f(x) − e_J‖² between encoder outputs and their sampled
        codes (no gradient).
    code_dim : int
        D.

    Returns
    -------
    Tensor, the shape of ``beta``

    See also: :func:`learned_beta`, :class:`VectorQuantizer`; chapter 6.
    """
    code_dim = positive_int(code_dim, "code_dim")
    return beta * sq_distance - 0.5 * code_dim * torch.log(beta)


class VectorQuantizer(nn.Module):
    """A codebook of K vectors in R^{code_dim} and the rule that assigns codes to inputs (chapters 1, 6).

    Parameters mirror the book's notation: J_l = argmin_k ‖f(x)_l − e_k‖² (``"nearest"``) or
    J_l ~ q(k | x) ∝ exp(−β‖f(x)_l − e_k‖²) (``"softmax"``), codes e_k on the unit sphere.

    Parameters
    ----------
    K : int
        Number of codes.
    code_dim : int
        D, the dimension of each code.
    quantizer : {"nearest", "softmax"}
    beta : float or "learned"
        Inverse temperature β for the softmax quantizer (a number > 0, or ``"learned"``).
    update : {"ema", "loss"}
        How the codebook learns (``"frozen"`` is set by :meth:`vqlib.VQVAE.freeze_codebook_and_decoder`).
    decay : float in (0, 1), optional
        The EMA's decay (default :data:`DEFAULT_DECAY` of the quantizer).
    eps : float > 0
        The Laplace smoothing of the EMA counts.

    Raises
    ------
    ValueError
        Naming the argument (``update`` is named ``codebook``, as :class:`vqlib.VQVAE` calls it).

    See also: :func:`nearest`, :func:`training_indices`, :class:`vqlib.VQVAE`; chapters 1, 6.
    """

    def __init__(
        self,
        K: int,
        code_dim: int,
        *,
        quantizer: str = "nearest",
        beta: float | str = 1.0,
        update: str = "ema",
        decay: float | None = None,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.K = positive_int(K, "K")
        self.code_dim = positive_int(code_dim, "code_dim")
        self.quantizer = choice(quantizer, "quantizer", QUANTIZERS)
        # β only matters to the softmax quantizer, so only there must it be valid.
        beta = check_beta(beta, quantizer)
        self.learned_beta = beta == "learned"
        self._beta = 1.0 if self.learned_beta else float(beta)
        self.update = choice(update, "codebook", CODEBOOK_UPDATES)
        decay = DEFAULT_DECAY[self.quantizer] if decay is None else decay
        self.decay = unit_float(decay, "decay", open_left=True, open_right=True)
        self.eps = positive_float(eps, "eps")
        # the codebook, the EMA sum and three count vectors, float32: refused before allocating
        fits_in_memory(4 * (2 * self.K * self.code_dim + 3 * self.K),
                       f"a codebook of K={self.K} codes of dimension code_dim={self.code_dim}")
        codebook = torch.randn(self.K, self.code_dim)
        self.codebook = nn.Parameter(codebook, requires_grad=self.update == "loss")
        if self.learned_beta:  # β = exp(LEARNED_BETA_RATE · θ), 1 at the start
            self.beta_param = nn.Parameter(torch.zeros(()))
        self.register_buffer("ema_count", torch.ones(self.K))
        self.register_buffer("ema_sum", codebook.clone())
        # How often each code was the nearest in training since the last dead-code check.
        self.register_buffer("recent_count", torch.zeros(self.K), persistent=False)

    def extra_repr(self) -> str:
        """K, code_dim, the quantizer, β (softmax only) and the codebook update, for ``repr`` (chapter 1)."""
        beta = f", beta={'learned' if self.learned_beta else self.beta}" if self.quantizer == "softmax" else ""
        return f"K={self.K}, code_dim={self.code_dim}, quantizer={self.quantizer!r}{beta}, update={self.update!r}"

    @property
    def beta(self) -> float:
        """β as a float: the fixed value, or the current value of a learned one (chapter 6).

        Setting it fixes β at a number in (0, :data:`MAX_BETA`] (``ValueError`` naming ``beta`` otherwise);
        a learned β then stops learning (its parameter goes).
        """
        if self.learned_beta:
            return float(self.beta_tensor().detach())
        return self._beta

    @beta.setter
    def beta(self, value) -> None:
        """Fix β at ``value`` (a number in (0, :data:`MAX_BETA`]); a learned β stops learning (its parameter goes)
        (chapter 6)."""
        value = check_beta(value, "softmax", learned=False)
        if self.learned_beta:
            del self.beta_param
            self.learned_beta = False
        self._beta = value

    def beta_tensor(self) -> Tensor:
        """β as a 0-d tensor, with its gradient when learned (the training engine stacks it per model) (chapter 6)."""
        if self.learned_beta:
            return learned_beta(self.beta_param)
        return torch.tensor(self._beta)

    @property
    def codes(self) -> Tensor:
        """The K code vectors e_k, each of unit length, shape (K, code_dim) (chapter 1)."""
        return F.normalize(self.codebook, dim=-1)

    def posterior(self, z: Tensor) -> Tensor:
        """q(k | x) per position for encoder outputs ``z`` (chapters 4–7).

        One-hot on the nearest code (``"nearest"``), or softmax(−β‖z_l − e_k‖²) over k (``"softmax"``).

        Parameters
        ----------
        z : Tensor (N, L, D)

        Returns
        -------
        Tensor (N, L, K), each row a probability vector

        Raises
        ------
        ValueError
            Naming ``z`` when it is not a finite real tensor (N, L, code_dim).
        FloatingPointError
            When the codes (or a learned β) are not finite.

        See also: :func:`nearest`, :meth:`vqlib.VQVAE.posterior`; chapter 4.
        """
        return self._posterior(_tensor(z, "z", (3,), last=self.code_dim, finite=True))

    def _posterior(self, z: Tensor) -> Tensor:
        """:meth:`posterior` without its checks (:meth:`vqlib.VQVAE.posterior`, on encoder outputs it made)."""
        if self.quantizer == "nearest":
            probs = F.one_hot(_nearest(z.reshape(-1, self.code_dim), self.codes), self.K).to(z.dtype)
        else:
            probs = torch.softmax(-self.beta * sphere_distances(z.reshape(-1, self.code_dim), self.codes), dim=1)
            _check_probabilities(probs, self.beta)
        return probs.reshape(*z.shape[:-1], self.K)

    def forward(self, z: Tensor, generator: torch.Generator | None = None) -> Quantized:
        """Quantize encoder outputs ``z``: latent variables, chosen codes and the codebook losses (chapters 1, 6).

        J by the quantizer's rule; z_q = e_J + (z − sg[z]), exactly e_J in value with the gradient
        reaching z unchanged (straight-through). The losses and, in training mode, the usage counts
        and the EMA step (after quantizing: this batch used the old codes) follow the nearest code
        (:func:`training_indices`).

        Parameters
        ----------
        z : Tensor (N, L, D)
        generator : torch.Generator, optional
            Draws the softmax quantizer's latent variables (None: the global generator).

        Returns
        -------
        Quantized

        Raises
        ------
        ValueError
            Naming ``z`` when it is not a finite real tensor (N, L, code_dim), checked before the EMA
            step; naming ``generator`` when it is not a ``torch.Generator``.
        FloatingPointError
            When the softmax quantizer's probabilities are not finite (the codes or a learned β diverged).

        See also: :class:`Quantized`, :meth:`vqlib.VQVAE.forward`; chapter 1.
        """
        z = _tensor(z, "z", (3,), last=self.code_dim, finite=True)
        if z.shape[0] * z.shape[1] == 0:
            raise ValueError(f"z must hold at least one encoder output, got shape {tuple(z.shape)}")
        return self._quantize(z, _generator(generator))

    def _quantize(self, z: Tensor, generator: torch.Generator | None = None) -> Quantized:
        """:meth:`forward` without its checks (:meth:`vqlib.VQVAE.forward`, on encoder outputs it made)."""
        n, L, D = z.shape
        flat = z.reshape(-1, D)
        # Normalising makes a new tensor, so the in-place EMA step below leaves the graph intact.
        codebook = self.codes if self.update == "loss" else self.codes.detach()
        beta_loss = flat.new_zeros(())
        if self.quantizer == "nearest":
            idx = _nearest(flat, codebook)
            probs = F.one_hot(idx, self.K).to(z.dtype)
        else:
            d = sphere_distances(flat.detach(), codebook.detach())
            probs = torch.softmax(-self.beta * d, dim=1)  # a learned β's current value, no gradient
            _check_probabilities(probs, self.beta)  # torch.multinomial would fail with a RuntimeError
            idx = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            if self.learned_beta and self.training and self.beta_param.requires_grad:
                beta_loss = precision_loss(self.beta_tensor(), d.gather(1, idx[:, None]).mean(), D)
        target = training_indices(flat.detach(), codebook.detach(), idx, self.quantizer)
        chosen = codebook[idx]
        # Straight-through: the value is exactly e_J (flat − flat.detach() is 0), the gradient
        # reaches f(x) unchanged.
        z_q = chosen + (flat - flat.detach())
        nearest_code = chosen if target is idx else codebook[target]
        codebook_loss = (
            F.mse_loss(nearest_code, flat.detach()) if self.update == "loss" else flat.new_zeros(())
        )
        commitment_loss = F.mse_loss(flat, nearest_code.detach())
        if self.training:
            with torch.no_grad():
                self.recent_count += torch.bincount(target, minlength=self.K).to(self.recent_count.dtype)
                if self.update == "ema":
                    self._ema_step(flat.detach(), target)  # after quantizing: this batch used the old codes
        return Quantized(
            z_q=z_q.reshape(n, L, D),
            indices=idx.reshape(n, L),
            probs=probs.reshape(n, L, self.K),
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            beta_loss=beta_loss,
        )

    @torch.no_grad()
    def _ema_step(self, flat: Tensor, idx: Tensor) -> None:
        """One EMA step towards the mean encoder output of each code. It never writes a non-finite value:
        a code whose new sum would not be finite (a non-finite encoder output, which only a diverged
        encoder makes: :meth:`vqlib.VQVAE.forward` refuses non-finite input) keeps its statistics, and
        :func:`vqlib.fit` raises at the epoch's end on the diverged weights."""
        counts = torch.bincount(idx, minlength=self.K).to(flat.dtype)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, idx, flat)
        new_count = self.ema_count.mul(self.decay).add_(counts, alpha=1 - self.decay)
        new_sum = self.ema_sum.mul(self.decay).add_(sums, alpha=1 - self.decay)
        finite = torch.isfinite(new_sum).all(-1)
        self.ema_count.copy_(torch.where(finite, new_count, self.ema_count))
        self.ema_sum.copy_(torch.where(finite[:, None], new_sum, self.ema_sum))
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + self.K * self.eps) * total
        self.codebook.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def set_codebook(self, codes: Tensor) -> None:
        """Replace the codebook (k-means or data init) and restart the EMA statistics (chapter 1).

        Parameters
        ----------
        codes : Tensor (K, code_dim)
            Normalised onto the unit sphere before they are stored.

        Raises
        ------
        ValueError
            Naming ``codes`` when it is not a finite real tensor of shape (K, code_dim).
        """
        _tensor(codes, "codes", (2,))
        if codes.shape != self.codebook.shape:
            raise ValueError(f"codes has shape {tuple(codes.shape)}, expected {tuple(self.codebook.shape)}")
        _tensor(codes, "codes", (2,), finite=True)
        codes = F.normalize(codes, dim=-1)
        self.codebook.copy_(codes)
        self.ema_sum.copy_(codes)
        self.ema_count.fill_(1.0)
        self.recent_count.zero_()

    @torch.no_grad()
    def reset_dead_codes(self, z: Tensor, generator: torch.Generator | None = None) -> int:
        """Move every code unused since the last call onto a random encoder output (chapter 1).

        Parameters
        ----------
        z : Tensor (M, D)
            Encoder outputs to draw from.
        generator : torch.Generator, optional
            Draws which outputs (None: the global generator).

        Returns
        -------
        int
            How many codes moved.

        Raises
        ------
        ValueError
            Naming ``z`` when it is not a finite real tensor (M, code_dim), ``generator`` when it is not a
            ``torch.Generator``.

        See also: :func:`vqlib.fit`; chapter 1.
        """
        return self._reset_dead_codes(_tensor(z, "z", (2,), last=self.code_dim, finite=True), _generator(generator))

    @torch.no_grad()
    def _reset_dead_codes(self, z: Tensor, generator: torch.Generator | None = None) -> int:
        """:meth:`reset_dead_codes` without its checks (:func:`vqlib.fit`, which checks the weights after)."""
        dead = (self.recent_count == 0).nonzero().squeeze(1)
        self.recent_count.zero_()
        if dead.numel() == 0 or z.shape[0] == 0:
            return 0
        rows = torch.randint(z.shape[0], (dead.numel(),), generator=generator).to(z.device)
        new = z[rows].detach()
        self.codebook[dead] = new
        self.ema_sum[dead] = new
        self.ema_count[dead] = 1.0
        return int(dead.numel())
