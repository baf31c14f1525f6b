"""The VQ-VAE the book trains (chapter 1): encoder, codebook of K codes, L latent
positions per input, decoder with outputs in [0, 1].

The encoder maps an input to L vectors in R^{code_dim}; the quantizer replaces each by a
code e_{J_l}; the decoder maps (e_{J_1}, …, e_{J_L}) to x̂. Two architectures:

* ``"mlp"``: encoder and decoder are multilayer perceptrons whose depth and width are
  arguments, because chapter 8 sweeps them; a flat (vector) encoder works for every L ≥ 1
  and every image shape (C, H, W), and its L positions are slots, not places.
* ``"conv"``: the convolutional VQ-VAE of van den Oord et al. (2017) and SQ-VAE: strided
  4 × 4 convolutions halve the image s times, a 3 × 3 convolution and residual blocks
  (ReLU, 3 × 3, ReLU, 1 × 1, added back) follow, and a 1 × 1 convolution gives one code_dim
  vector per place of an h × w **latent grid**, h = H/2^s, w = W/2^s: L = h·w, position
  l = i·w + j at row i, column j, each seeing the patch of the image around its place
  (:func:`receptive_fields`). The decoder mirrors it with transposed convolutions. The valid
  L are those of :func:`latent_grids` (on 8 × 8 digits 16 or 4, on 28 × 28 images 196 or 49);
  depth counts residual blocks and width counts channels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import (
    check_seed,
    choice,
    fits_in_memory,
    nonnegative_float,
    positive_int,
)
from ..data import check_images
from .engine import init_codebooks
from .layers import conv_decoder, conv_encoder, conv_parameter_count, mlp
from .metrics import codebook_usage
from .quantizers import DEFAULT_DECAY, QUANTIZERS, VectorQuantizer, _generator, _tensor, check_beta

__all__ = ["VQVAE", "VQOutput", "ARCHITECTURES", "latent_grids", "receptive_fields"]

#: The encoder/decoder architectures of :class:`VQVAE`.
ARCHITECTURES = ("mlp", "conv")


@dataclass
class VQOutput:
    """One forward pass of :class:`VQVAE`: the reconstruction, the latent variables and the loss parts (chapter 1).

    Attributes
    ----------
    x_hat : Tensor (N, *in_shape), values in [0, 1]
        The reconstruction x̂ = g(e_{J_1}, …, e_{J_L}).
    indices : Tensor (N, L), int64 in [0, K)
        The latent variables J.
    probs : Tensor (N, L, K)
        The posterior q(k | x) per position (one-hot for the nearest quantizer).
    z_e : Tensor (N, L, code_dim)
        Encoder outputs f(x), on the unit sphere.
    z_q : Tensor (N, L, code_dim)
        The chosen codes e_J, with straight-through gradients to f(x).
    recon_loss : Tensor, scalar
        Mean over inputs of ‖x − x̂‖² / d, in [0, 1].
    codebook_loss, commitment_loss : Tensor, scalar
        ‖sg[f(x)] − e_J*‖² (zero for the EMA codebook) and ‖f(x) − sg[e_J*]‖², J* the nearest code.
    loss : Tensor, scalar
        What training minimises: recon + codebook + commitment weight × commitment (+ β's term).
    perplexity : float
        exp(entropy of the batch's code frequencies).
    used_fraction : float
        Fraction of the K codes chosen at least once in the batch.

    See also: :meth:`VQVAE.forward`, :class:`vqlib.models.quantizers.Quantized`; chapter 1.
    """

    x_hat: Tensor  # (N, *in_shape) in [0, 1]
    indices: Tensor  # (N, L) the latent variables J
    probs: Tensor  # (N, L, K) the posterior q(k | x) per position
    z_e: Tensor  # (N, L, code_dim) encoder outputs f(x)
    z_q: Tensor  # (N, L, code_dim) chosen codes e_J
    recon_loss: Tensor  # mean over inputs of ‖x − x̂‖² / d, in [0, 1]
    codebook_loss: Tensor
    commitment_loss: Tensor
    loss: Tensor  # what training minimises: recon + codebook + commitment weight × commitment (+ β's term)
    perplexity: float  # exp(entropy of the batch's code frequencies)
    used_fraction: float  # fraction of the K codes chosen at least once in the batch


def latent_grids(in_shape) -> dict[int, tuple[int, int]]:
    """The latent grids the convolutional :class:`VQVAE` can make on inputs of ``in_shape`` (chapter 1).

    ``{L: (h, w)}`` for every number s ≥ 1 of stride-2 halvings that leaves whole sides of at
    least 2: h = H/2^s, w = W/2^s, L = h·w, largest grid first. ``(1, 8, 8)`` gives
    ``{16: (4, 4), 4: (2, 2)}``, ``(1, 28, 28)`` gives ``{196: (14, 14), 49: (7, 7)}``.

    Parameters
    ----------
    in_shape : tuple (C, H, W)
        The shape of one input.

    Returns
    -------
    dict {L: (h, w)}
        The valid L of ``architecture="conv"`` and their grids, largest first.

    Raises
    ------
    ValueError
        Naming ``in_shape``: not three positive integers, or too small for one halving (a side
        odd or under 4).

    See also: :class:`VQVAE`, :func:`receptive_fields`; chapter 1.
    """
    C, H, W = _shape(in_shape)
    grids: dict[int, tuple[int, int]] = {}
    s = 1
    while H % 2 ** s == 0 and W % 2 ** s == 0 and H // 2 ** s >= 2 and W // 2 ** s >= 2:
        grids[(H // 2 ** s) * (W // 2 ** s)] = (H // 2 ** s, W // 2 ** s)
        s += 1
    if not grids:
        raise ValueError(f"in_shape={tuple(in_shape)!r} is too small for architecture='conv': its height and width "
                         "must be even and at least 4 (one stride-2 convolution to a latent grid of at least 2 × 2)")
    return grids


def _shape(in_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(in_shape)
    except TypeError:
        raise ValueError(f"in_shape must be a tuple (C, H, W) such as (1, 8, 8), got {in_shape!r}") from None
    if len(shape) != 3:
        raise ValueError(f"in_shape must have 3 entries (C, H, W), got {in_shape!r}")
    for s in shape:
        positive_int(s, f"in_shape entry (in {in_shape!r})")
    return tuple(int(s) for s in shape)


def _parameter_bytes(d: int, K: int, L: int, code_dim: int, enc: list[int], dec: list[int]) -> int:
    """float32 bytes of the weights, the codebook and its EMA statistics (before building them)."""
    layers = lambda sizes: sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))  # noqa: E731
    return 4 * (layers([d, *enc, L * code_dim]) + layers([L * code_dim, *dec, d]) + 2 * K * code_dim + 2 * K)


class VQVAE(nn.Module):
    """A VQ-VAE with K codes and L latent positions per input (chapter 1).

    The encoder maps x to f(x)_1, …, f(x)_L on the unit sphere of R^{code_dim}, the quantizer picks
    J_l = argmin_k ‖f(x)_l − e_k‖² (nearest) or draws J_l ~ q ∝ exp(−β‖f(x)_l − e_k‖²) (softmax),
    and the decoder gives x̂ = g(e_{J_1}, …, e_{J_L}) in [0, 1].

    Parameters
    ----------
    in_shape : tuple (C, H, W)
        The shape of one input, e.g. ``(1, 8, 8)`` for the digits.
    K : int
        Codebook size (K ≥ 1).
    L : int
        Latent positions per input (L ≥ 1); the latent variable J lies in [K]^L. With
        ``architecture="conv"`` L must be one of :func:`latent_grids` (the h × w grid it makes).
    code_dim : int
        Dimension of each code vector.
    quantizer : {"nearest", "softmax"}
        ``"nearest"`` (deterministic) or ``"softmax"`` (J_l ~ q ∝ exp(−β‖f_l − e_k‖²)).
    beta : float or "learned"
        The softmax quantizer's inverse temperature: a number β > 0, or ``"learned"`` (trained
        with the loss from β = 1, see :mod:`vqlib.models.quantizers`; ``model.beta`` is its current value)
        (chapter 6).
    architecture : {"mlp", "conv"}
        ``"mlp"`` (multilayer perceptrons) or ``"conv"`` (strided convolutions and
        residual blocks on a latent grid; see the module's docstring).
    hidden : int, optional
        Width of every hidden layer (MLP) or number of channels (conv), unless
        ``encoder_width``/``decoder_width`` are given; default 128 (MLP) or 64 (conv).
    encoder_depth, decoder_depth : int
        Number of hidden layers (MLP; 0 gives a linear map) or of residual blocks (conv).
    encoder_width, decoder_width : int, optional
        Width (channels) of the encoder's or decoder's hidden layers; default ``hidden``.
    codebook : {"ema", "loss"}
        How the codebook learns.
    commitment : float
        Weight (≥ 0) of the commitment loss.
    decay : float in (0, 1), optional
        The EMA codebook's decay (default 0.99 for the nearest quantizer, 0.9 for the softmax one).
    init : {"kmeans", "data", "random"}
        How :func:`vqlib.fit` starts the codebook.
    dead_code_reset : bool
        Whether :func:`vqlib.fit` moves unused codes onto encoder outputs.
    seed : int
        Seeds the initial weights, so construction is reproducible.

    Raises
    ------
    ValueError
        Naming the argument and the bad value (an L that is not a latent grid lists the valid
        ones); also for a model whose weights alone would exceed this machine's memory.

    See also: :func:`vqlib.fit`, :func:`latent_grids`, :class:`VQOutput`; chapter 1.
    """

    def __init__(
        self,
        in_shape,
        K: int,
        L: int,
        code_dim: int = 8,
        quantizer: str = "nearest",
        beta: float | str = 1.0,
        *,
        architecture: str = "mlp",
        hidden: int | None = None,
        encoder_depth: int = 2,
        decoder_depth: int = 2,
        encoder_width: int | None = None,
        decoder_width: int | None = None,
        codebook: str = "ema",
        commitment: float = 0.25,
        decay: float | None = None,
        init: str = "kmeans",
        dead_code_reset: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        self.in_shape = _shape(in_shape)
        self.K = positive_int(K, "K")
        self.L = positive_int(L, "L")
        self.code_dim = positive_int(code_dim, "code_dim")
        quantizer = choice(quantizer, "quantizer", QUANTIZERS)
        beta = check_beta(beta, quantizer)
        decay = DEFAULT_DECAY[quantizer] if decay is None else decay
        self.architecture = choice(architecture, "architecture", ARCHITECTURES)
        if self.architecture == "conv":
            grids = latent_grids(self.in_shape)
            if self.L not in grids:
                valid = ", ".join(f"{L} ({h} × {w})" for L, (h, w) in grids.items())
                raise ValueError(f"L={self.L} is not a latent grid of architecture='conv' on inputs of shape "
                                 f"{self.in_shape}: valid L are {valid}")
            self.grid = grids[self.L]
            self.halvings = int(math.log2(self.in_shape[1] // self.grid[0]))
        hidden = positive_int((128 if self.architecture == "mlp" else 64) if hidden is None else hidden, "hidden")
        enc_w = positive_int(encoder_width if encoder_width is not None else hidden, "encoder_width")
        dec_w = positive_int(decoder_width if decoder_width is not None else hidden, "decoder_width")
        enc_d = positive_int(encoder_depth, "encoder_depth", minimum=0)
        dec_d = positive_int(decoder_depth, "decoder_depth", minimum=0)
        init = choice(init, "init", ("kmeans", "data", "random"))
        self.commitment = nonnegative_float(commitment, "commitment")
        if not isinstance(dead_code_reset, (bool, np.bool_)) and dead_code_reset not in (0, 1):
            raise ValueError(f"dead_code_reset must be True or False, got {dead_code_reset!r}")
        self.init, self.dead_code_reset, self.seed = init, bool(dead_code_reset), check_seed(seed)
        self.config = dict(
            in_shape=self.in_shape, K=self.K, L=self.L, code_dim=self.code_dim, architecture=self.architecture,
            quantizer=quantizer,
            beta=beta if beta == "learned" else float(beta), hidden=hidden, encoder_depth=enc_d, decoder_depth=dec_d,
            encoder_width=enc_w, decoder_width=dec_w, codebook=codebook,
            commitment=self.commitment, decay=decay, init=init,
            dead_code_reset=self.dead_code_reset, seed=self.seed,
        )
        d = math.prod(self.in_shape)
        if self.architecture == "mlp":
            n_bytes = _parameter_bytes(d, self.K, self.L, self.code_dim, [enc_w] * enc_d, [dec_w] * dec_d)
        else:
            C = self.in_shape[0]
            n_bytes = 4 * (conv_parameter_count(C, enc_w, self.halvings, enc_d, self.code_dim) // 2
                           + conv_parameter_count(C, dec_w, self.halvings, dec_d, self.code_dim) // 2
                           + 2 * self.K * self.code_dim + 2 * self.K)
        fits_in_memory(n_bytes, f"a VQVAE with K={self.K}, L={self.L}, code_dim={self.code_dim}, "
                                f"encoder {enc_d}×{enc_w}, decoder {dec_d}×{dec_w}")
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only (the weights are made on the CPU), restored on leaving:
            # torch.manual_seed would also queue a reseeding of every GPU, costly in deep stacks
            torch.default_generator.manual_seed(self.seed)
            C = self.in_shape[0]
            if self.architecture == "mlp":
                self.encoder = mlp([d] + [enc_w] * enc_d + [self.L * self.code_dim])
            else:
                self.encoder = conv_encoder(C, enc_w, self.halvings, enc_d, self.code_dim)
            self.quantizer = VectorQuantizer(
                self.K, self.code_dim, quantizer=quantizer, beta=beta, update=codebook, decay=decay
            )
            if self.architecture == "mlp":
                self.decoder = mlp([self.L * self.code_dim] + [dec_w] * dec_d + [d])
            else:
                self.decoder = conv_decoder(C, dec_w, self.halvings, dec_d, self.code_dim)
        # Set once fit() has initialised the codebook from data; saved with the weights.
        self.register_buffer("codebook_initialised", torch.tensor(False))

    @property
    def beta(self) -> float:
        """The quantizer's β as a float: the fixed value, or the current value of a learned one (chapter 6)."""
        return self.quantizer.beta

    @property
    def device(self) -> torch.device:
        """The device the model's weights are on (that of its codebook) (chapter 1)."""
        return self.quantizer.codebook.device

    def encode(self, x: Tensor) -> Tensor:
        """Encoder outputs f(x)_l on the unit sphere of R^{code_dim} (chapters 1, 6).

        Codes lie on the same sphere (see :class:`vqlib.models.VectorQuantizer`), so every
        squared distance ‖f(x)_l − e_k‖² lies in [0, 4]: the scale on which the softmax
        quantizer's β means something, and the sensitivity of chapter 6's stability bound.
        For ``architecture="conv"`` position l = i·w + j is row i, column j of the h × w grid.

        Parameters
        ----------
        x : Tensor or numpy array (N, *in_shape), floating, values in [0, 1]
            Inputs, checked as :meth:`forward` checks them (moved to the model's device and dtype).

        Returns
        -------
        Tensor (N, L, code_dim)
            f(x)_l, each of unit length.

        Raises
        ------
        ValueError
            Naming ``x``, as :meth:`forward`.

        See also: :meth:`decode`, :meth:`posterior`; chapter 1.
        """
        return self._encode(self.check_batch(x))

    def _encode(self, x: Tensor) -> Tensor:
        """:meth:`encode` without its checks (the model's own passes, on inputs already checked)."""
        if self.architecture == "conv":  # (N, D, h, w) → position l = i·w + j
            z = self.encoder(x.reshape(x.shape[0], *self.in_shape)).permute(0, 2, 3, 1).reshape(-1, self.L, self.code_dim)
        else:
            z = self.encoder(x.reshape(x.shape[0], math.prod(self.in_shape))).reshape(-1, self.L, self.code_dim)
        return F.normalize(z, dim=-1)

    def decode(self, z_q: Tensor) -> Tensor:
        """The decoder g(z_q), outputs in [0, 1] through a sigmoid (chapter 1).

        Parameters
        ----------
        z_q : Tensor (N, L, code_dim)
            One code vector per position (position l = i·w + j of the grid for ``"conv"``).

        Returns
        -------
        Tensor (N, *in_shape), values in [0, 1]

        Raises
        ------
        ValueError
            Naming ``z_q`` when it is not a finite real tensor of shape (N, L, code_dim).

        See also: :meth:`decode_indices`, :meth:`encode`; chapter 1.
        """
        if not (isinstance(z_q, Tensor) and z_q.dim() == 3 and tuple(z_q.shape[1:]) == (self.L, self.code_dim)):
            got = tuple(z_q.shape) if isinstance(z_q, Tensor) else type(z_q).__name__
            raise ValueError(f"z_q must have shape (N, L={self.L}, code_dim={self.code_dim}), got {got}")
        z_q = _tensor(z_q, "z_q", (3,), finite=True)
        return self._decode(z_q.to(device=self.device, dtype=self.quantizer.codebook.dtype))

    def _decode(self, z_q: Tensor) -> Tensor:
        """:meth:`decode` without its checks (the model's own codes)."""
        if self.architecture == "conv":
            h, w = self.grid
            grid = z_q.reshape(z_q.shape[0], h, w, self.code_dim).permute(0, 3, 1, 2)
            return torch.sigmoid(self.decoder(grid)).reshape(-1, *self.in_shape)
        out = torch.sigmoid(self.decoder(z_q.reshape(z_q.shape[0], self.L * self.code_dim)))
        return out.reshape(-1, *self.in_shape)

    def decode_indices(self, indices: Tensor) -> Tensor:
        """The images x̂ = g(e_{J_1}, …, e_{J_L}) of latent variables ``indices`` (chapters 1, 7).

        Parameters
        ----------
        indices : Tensor or array-like (N, L), integers in [0, K)
            Latent variables J; N = 0 gives none.

        Returns
        -------
        Tensor (N, *in_shape), values in [0, 1], on the model's device

        Raises
        ------
        ValueError
            Naming ``indices`` when it is not of shape (N, L), not integers (strings, complex numbers,
            floats, booleans and integers beyond int64 are refused), or outside [0, K).

        See also: :meth:`decode`, :func:`vqlib.generate`; chapter 7.
        """
        if not isinstance(indices, Tensor):
            try:
                raw = np.asarray(indices)
            except (ValueError, TypeError, OverflowError):  # ragged lists, objects numpy cannot hold
                raise ValueError("indices must be integers in an array of shape (N, L), got "
                                 f"{type(indices).__name__} numpy cannot read") from None
            if raw.dtype.kind not in "iu":
                raise ValueError(f"indices must be integers, got dtype {raw.dtype}")
            if raw.size and (raw.min() < 0 or raw.max() >= self.K):
                raise ValueError(f"indices must lie in [0, K={self.K}), got values in [{raw.min()}, {raw.max()}]")
            indices = raw.astype(np.int64)
        indices = torch.as_tensor(indices, device=self.device)
        if indices.dim() != 2 or indices.shape[1] != self.L:
            raise ValueError(f"indices must have shape (N, L={self.L}), got {tuple(indices.shape)}")
        if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
            raise ValueError(f"indices must be integers, got dtype {indices.dtype}")
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.K):
            raise ValueError(f"indices must lie in [0, K={self.K}), got values in "
                             f"[{int(indices.min())}, {int(indices.max())}]")
        return self._decode(self.quantizer.codes[indices])

    def posterior(self, x: Tensor) -> Tensor:
        """The latent-variable posterior q(k | x) per position (chapters 4–7).

        One-hot on J_l = argmin_k ‖f(x)_l − e_k‖² for the nearest quantizer; for the softmax one
        q(k | x)_l ∝ exp(−β‖f(x)_l − e_k‖²) at the current β.

        Parameters
        ----------
        x : Tensor or numpy array (N, *in_shape), floating, values in [0, 1]
            Checked as :meth:`forward` checks it.

        Returns
        -------
        Tensor (N, L, K)
            Each row a probability vector over the K codes.

        Raises
        ------
        ValueError
            Naming ``x``, as :meth:`forward`.
        FloatingPointError
            When the model's weights give non-finite probabilities (it diverged).

        See also: :meth:`vqlib.models.VectorQuantizer.posterior`, :func:`vqlib.models.evaluate_models`; chapter 4.
        """
        return self.quantizer._posterior(self._encode(self.check_batch(x)))

    def check_batch(self, x, name: str = "x") -> Tensor:
        """``x`` as a batch this model can take, or ``ValueError`` naming ``name`` (chapter 1).

        Every public pass of the model (:meth:`forward`, :meth:`encode`, :meth:`posterior`,
        :meth:`init_codebook`) checks its batch here before any state changes: a torch tensor or
        numpy array of a floating dtype (integers are refused rather than rescaled, complex numbers
        rather than cut), of shape (N, *in_shape) with N ≥ 1, every value finite and in [0, 1] (the
        loss ‖x − x̂‖²/d is then in [0, 1], as every bound needs). One pass over the batch.

        Parameters
        ----------
        x : Tensor or numpy array (N, *in_shape), floating
        name : str
            The argument's name in error messages.

        Returns
        -------
        Tensor (N, *in_shape)
            ``x`` on the model's device in the model's dtype (the same tensor when it is already;
            a tensor that requires grad keeps its graph).

        Raises
        ------
        ValueError
            Naming ``name`` and what is wrong: the type, the dtype, the shape, NaN, infinite values,
            or the range found outside [0, 1].

        See also: :meth:`forward`, :func:`vqlib.data.check_images`; chapter 1.
        """
        if isinstance(x, np.ndarray):
            if x.dtype.kind != "f":
                raise ValueError(f"{name} must have a floating dtype, got numpy {x.dtype}")
            x = torch.from_numpy(x)
        elif not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
        if x.dim() != len(self.in_shape) + 1 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)}, which does not match in_shape={self.in_shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
        x = x.to(device=self.device, dtype=self.quantizer.codebook.dtype)
        lo, hi = (float(v) for v in torch.aminmax(x.detach()))  # one pass; NaN propagates to both
        if not (lo >= 0 and hi <= 1):
            if math.isnan(lo) or math.isnan(hi):
                raise ValueError(f"{name} contains NaN")
            if math.isinf(lo) or math.isinf(hi):
                raise ValueError(f"{name} contains infinite values")
            raise ValueError(f"{name} must lie in [0, 1] (the loss is bounded), found values in [{lo:.6g}, {hi:.6g}]")
        return x

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> VQOutput:
        """One pass: encode, quantize, decode, and the loss parts training minimises (chapter 1).

        z_e = f(x); J by the quantizer; x̂ = g(z_q) with the straight-through z_q = e_J; loss =
        mean ‖x − x̂‖²/d + codebook loss + commitment × commitment loss (+ a learned β's
        :func:`vqlib.models.quantizers.precision_loss`). In training mode the EMA codebook takes its
        step and the usage counts grow, after quantizing.

        Parameters
        ----------
        x : Tensor or numpy array (N, *in_shape), floating, values in [0, 1]
            Checked first (:meth:`check_batch`), before any state changes; moved to the model's
            device and dtype.
        generator : torch.Generator, optional
            Draws the softmax quantizer's latent variables (None: the global generator); the nearest
            quantizer draws nothing.

        Returns
        -------
        VQOutput

        Raises
        ------
        ValueError
            Naming ``x`` when it is not a batch of ``in_shape`` with finite values in [0, 1] of a
            floating dtype (so a bad batch never reaches the EMA codebook); naming ``generator``.
        FloatingPointError
            When the softmax quantizer's probabilities are not finite (the model diverged).

        See also: :class:`VQOutput`, :func:`vqlib.fit`, :func:`vqlib.reconstruction_loss`; chapter 1.
        """
        return self._forward(self.check_batch(x), _generator(generator))

    def _forward(self, x: Tensor, generator: torch.Generator | None = None) -> VQOutput:
        """:meth:`forward` without its checks (:func:`vqlib.fit`'s steps, on a training set it checked)."""
        z_e = self._encode(x)
        q = self.quantizer._quantize(z_e, generator=generator)
        x_hat = self._decode(q.z_q)
        recon = F.mse_loss(x_hat, x)
        usage = codebook_usage(q.indices.detach(), self.K)
        return VQOutput(
            x_hat=x_hat, indices=q.indices, probs=q.probs, z_e=z_e, z_q=q.z_q,
            recon_loss=recon, codebook_loss=q.codebook_loss, commitment_loss=q.commitment_loss,
            loss=recon + q.codebook_loss + self.commitment * q.commitment_loss + q.beta_loss,
            perplexity=usage.perplexity, used_fraction=usage.used_fraction,
        )

    def freeze_codebook_and_decoder(self) -> "VQVAE":
        """Fix codebook and decoder, so that training changes the encoder only (chapter 3).

        No gradient reaches them (nor a learned β), the EMA and dead-code resets stop, and the
        codebook is marked initialised.

        Returns
        -------
        VQVAE
            The model itself, frozen in place.

        See also: :func:`vqlib.models.train_reference`; chapters 3, 4, 6.
        """
        for p in [*self.quantizer.parameters(), *self.decoder.parameters()]:
            p.requires_grad_(False)
        self.quantizer.update = "frozen"
        self.dead_code_reset = False
        self.codebook_initialised.fill_(True)
        return self

    @torch.no_grad()
    def init_codebook(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        """Start encoder and codebook from data ``x`` (called once by :func:`vqlib.fit`) (chapter 1).

        First the encoder's last layer is rescaled so that, over ``x``, each output unit
        has mean 0 and variance 1 before the projection onto the sphere: freshly
        initialised networks map all inputs to nearly the same direction, which would
        give every input the same code at each position. Then the codebook starts from
        k-means on the encodings (or random encodings, for ``init="data"``). The rescaling
        needs a spread: ``x`` must hold at least 2 inputs. The training engine starts many
        models the same way at once (:func:`vqlib.models.engine.init_codebooks`); this is its
        one-model case.

        Parameters
        ----------
        x : Tensor (m, *in_shape), values in [0, 1], m ≥ 2
        generator : torch.Generator, optional
            Draws the k-means seeding (None: the global generator).

        Returns
        -------
        None; the model changes in place.

        Raises
        ------
        ValueError
            When ``x`` holds fewer than 2 inputs or is not a batch :meth:`forward` takes (named ``x``);
            naming ``generator`` when it is not a ``torch.Generator``.

        See also: :func:`vqlib.models.kmeans_batched`, :func:`vqlib.fit`; chapter 1.
        """

        init_codebooks([self], self.check_batch(x)[None], [_generator(generator)])


def receptive_fields(model: VQVAE, x) -> Tensor:
    """Which pixels each latent position reads (chapter 1).

    The mean over the inputs ``x`` of |∂ f(x)_l / ∂x| (summed over the code dimensions and the
    channels), normalised per position. For the convolutional architecture each map is a patch
    around the position's place on the grid; for the MLP every position may read every pixel.

    Parameters
    ----------
    model : VQVAE
    x : Tensor or array (N, C, H, W), values in [0, 1], of the model's ``in_shape``

    Returns
    -------
    Tensor (L, H, W), on the CPU
        One map per position, each summing to 1.

    Raises
    ------
    ValueError
        Naming ``model`` when it is not a :class:`VQVAE`, naming ``x`` when it is not such images.

    See also: :func:`latent_grids`, :meth:`VQVAE.encode`; chapter 1.
    """

    if not isinstance(model, VQVAE):
        raise ValueError(f"model must be a vqlib.VQVAE, got {type(model).__name__}")
    x = check_images(x, name="x", in_shape=model.in_shape).to(model.device)
    was_training = model.training
    model.eval()
    try:
        xr = x.clone().requires_grad_(True)
        z = model.encode(xr)  # (N, L, D), one forward pass for every position
        maps = []
        for l in range(model.L):
            grads = [torch.autograd.grad(z[:, l, k].sum(), xr, retain_graph=True)[0].abs()
                     for k in range(model.code_dim)]
            maps.append(torch.stack(grads).sum(0).mean(0).sum(0))  # (H, W)
    finally:
        model.train(was_training)
    out = torch.stack(maps).detach().cpu()
    return out / out.sum((1, 2), keepdim=True).clamp_min(1e-30)
