"""Codebooks and quantizers (chapter 1; the softmax quantizer is chapter 6's subject).

A quantizer maps each of the L encoder vectors f(x)_l ∈ R^{code_dim} to a code index
J_l ∈ {0, …, K-1} and returns e_{J_l}:

* ``"nearest"``: J_l = argmin_k ‖f(x)_l − e_k‖² (deterministic);
* ``"softmax"``: J_l ~ q(k | x) ∝ exp(−β ‖f(x)_l − e_k‖²) (the exponential mechanism).

Both report the posterior q(· | x) per position (one-hot for ``"nearest"``), which is
what the latent-variable bounds of chapters 4–7 are computed from.

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

from ._checks import choice, positive_float, positive_int, unit_float

__all__ = ["Quantized", "VectorQuantizer", "kmeans", "QUANTIZERS", "CODEBOOK_UPDATES"]

QUANTIZERS = ("nearest", "softmax")
CODEBOOK_UPDATES = ("ema", "loss")  # "frozen" is set by VQVAE.freeze_codebook_and_decoder


@dataclass
class Quantized:
    """What a quantizer returns for a batch of N inputs with L positions each."""

    z_q: Tensor  # (N, L, D): the chosen codes, with straight-through gradients
    indices: Tensor  # (N, L): the latent variables J, int64 in [0, K)
    probs: Tensor  # (N, L, K): the posterior q(k | x) per position
    codebook_loss: Tensor  # scalar: ‖sg[f(x)] − e_J‖² (zero for the EMA codebook)
    commitment_loss: Tensor  # scalar: ‖f(x) − sg[e_J]‖²


def squared_distances(z: Tensor, codebook: Tensor) -> Tensor:
    """‖z_i − e_k‖² for rows z_i of ``z`` (M, D) and codes e_k of ``codebook`` (K, D).

    Rounding can push the expanded form slightly below 0; it is clamped there.
    """
    d = (z * z).sum(-1, keepdim=True) - 2 * z @ codebook.T + (codebook * codebook).sum(-1)
    return d.clamp_min(0.0)


def sphere_distances(z: Tensor, codes: Tensor) -> Tensor:
    """Squared distances between unit vectors, clamped to their exact range [0, 4]."""
    return squared_distances(z, codes).clamp_max(4.0)


def kmeans(z: Tensor, K: int, *, iters: int = 25, generator: torch.Generator | None = None) -> Tensor:
    """K centres of the rows of ``z`` by Lloyd's algorithm with k-means++ seeding.

    Used to initialise a codebook on the first encodings (chapter 1). With fewer distinct
    rows than K the remaining centres are copies of data rows, so every centre is finite.
    """
    K = positive_int(K, "K")
    m = z.shape[0]
    if m == 0:
        raise ValueError("z must hold at least one row to initialise a codebook")
    z = z.detach()
    first = torch.randint(m, (1,), generator=generator, device="cpu").item()
    centres = [z[first]]
    closest = squared_distances(z, z[first : first + 1]).squeeze(1)
    for _ in range(1, K):
        total = closest.sum()
        if total <= 0:  # every row already coincides with a centre
            pick = torch.randint(m, (1,), generator=generator, device="cpu").item()
        else:
            weights = (closest / total).cpu()
            pick = torch.multinomial(weights, 1, generator=generator).item()
        centres.append(z[pick])
        closest = torch.minimum(closest, squared_distances(z, z[pick : pick + 1]).squeeze(1))
    c = torch.stack(centres)
    for _ in range(iters):
        onehot = F.one_hot(squared_distances(z, c).argmin(1), K).to(z.dtype)
        counts = onehot.sum(0)
        sums = onehot.T @ z
        moved = counts > 0
        c = torch.where(moved[:, None], sums / counts.clamp_min(1)[:, None], c)
    return c


class VectorQuantizer(nn.Module):
    """A codebook of K vectors in R^{code_dim} and the rule that assigns codes to inputs.

    Parameters mirror the book's notation: ``K`` codes, temperature ``beta`` (β) for the
    softmax quantizer, ``update`` = ``"ema"`` or ``"loss"`` for how the codebook learns.
    """

    def __init__(
        self,
        K: int,
        code_dim: int,
        *,
        quantizer: str = "nearest",
        beta: float = 1.0,
        update: str = "ema",
        decay: float = 0.99,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.K = positive_int(K, "K")
        self.code_dim = positive_int(code_dim, "code_dim")
        self.quantizer = choice(quantizer, "quantizer", QUANTIZERS)
        # β only matters to the softmax quantizer, so only there must it be valid.
        self.beta = positive_float(beta, "beta") if quantizer == "softmax" else float(beta)
        self.update = choice(update, "codebook", CODEBOOK_UPDATES)
        self.decay = unit_float(decay, "decay", open_left=True, open_right=True)
        self.eps = positive_float(eps, "eps")
        codebook = torch.randn(self.K, self.code_dim)
        self.codebook = nn.Parameter(codebook, requires_grad=self.update == "loss")
        self.register_buffer("ema_count", torch.ones(self.K))
        self.register_buffer("ema_sum", codebook.clone())
        # How often each code was chosen in training since the last dead-code check.
        self.register_buffer("recent_count", torch.zeros(self.K), persistent=False)

    def extra_repr(self) -> str:
        beta = f", beta={self.beta}" if self.quantizer == "softmax" else ""
        return f"K={self.K}, code_dim={self.code_dim}, quantizer={self.quantizer!r}{beta}, update={self.update!r}"

    @property
    def codes(self) -> Tensor:
        """The K code vectors e_k, each of unit length, shape (K, code_dim)."""
        return F.normalize(self.codebook, dim=-1)

    def posterior(self, z: Tensor) -> Tensor:
        """q(k | x) per position for encoder outputs ``z`` (N, L, D) → (N, L, K)."""
        d = sphere_distances(z.reshape(-1, self.code_dim), self.codes)
        if self.quantizer == "nearest":
            probs = F.one_hot(d.argmin(1), self.K).to(z.dtype)
        else:
            probs = torch.softmax(-self.beta * d, dim=1)
        return probs.reshape(*z.shape[:-1], self.K)

    def forward(self, z: Tensor, generator: torch.Generator | None = None) -> Quantized:
        n, L, D = z.shape
        flat = z.reshape(-1, D)
        # Normalising makes a new tensor, so the in-place EMA step below leaves the graph intact.
        codebook = self.codes if self.update == "loss" else self.codes.detach()
        d = sphere_distances(flat, codebook)
        if self.quantizer == "nearest":
            idx = d.argmin(1)
            probs = F.one_hot(idx, self.K).to(z.dtype)
        else:
            probs = torch.softmax(-self.beta * d, dim=1)
            idx = torch.multinomial(probs.detach(), 1, generator=generator).squeeze(1)
        chosen = codebook[idx]
        # Straight-through: the value is exactly e_J (flat − flat.detach() is 0), the gradient
        # reaches f(x) unchanged.
        z_q = chosen + (flat - flat.detach())
        codebook_loss = (
            F.mse_loss(chosen, flat.detach()) if self.update == "loss" else flat.new_zeros(())
        )
        commitment_loss = F.mse_loss(flat, chosen.detach())
        if self.training:
            with torch.no_grad():
                self.recent_count += torch.bincount(idx, minlength=self.K).to(self.recent_count.dtype)
                if self.update == "ema":
                    self._ema_step(flat.detach(), idx)  # after quantizing: this batch used the old codes
        return Quantized(
            z_q=z_q.reshape(n, L, D),
            indices=idx.reshape(n, L),
            probs=probs.reshape(n, L, self.K),
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
        )

    @torch.no_grad()
    def _ema_step(self, flat: Tensor, idx: Tensor) -> None:
        counts = torch.bincount(idx, minlength=self.K).to(flat.dtype)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, idx, flat)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + self.K * self.eps) * total
        self.codebook.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def set_codebook(self, codes: Tensor) -> None:
        """Replace the codebook (k-means or data init) and restart the EMA statistics."""
        if codes.shape != self.codebook.shape:
            raise ValueError(f"codes has shape {tuple(codes.shape)}, expected {tuple(self.codebook.shape)}")
        codes = F.normalize(codes, dim=-1)
        self.codebook.copy_(codes)
        self.ema_sum.copy_(codes)
        self.ema_count.fill_(1.0)
        self.recent_count.zero_()

    @torch.no_grad()
    def reset_dead_codes(self, z: Tensor, generator: torch.Generator | None = None) -> int:
        """Move every code unused since the last call onto a random encoder output.

        ``z`` holds encoder outputs (M, D) to draw from. Returns how many codes moved.
        """
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
