"""Generation priors over the latent variables J ∈ [K]^L (chapter 7).

A VQ-VAE generates by drawing J from a prior π and decoding g(e_J). Chapter 7 compares

* :class:`UniformPrior`: π(j) = K^{-L}, nothing learned;
* :class:`AggregatedPrior`: a product over positions of the aggregated posterior
  π_l(k) ∝ α + Σ_x q_l(k | x) (Laplace-smoothed with α > 0), independent positions;
* :class:`MarkovPrior`: an autoregressive prior over the L positions, a first-order
  Markov chain π(j) = π_1(j_1) Π_{l≥2} π_l(j_l | j_{l−1}) with Laplace-smoothed
  transition tables, which models the dependence between neighbouring positions.

Common API: ``.fit(codes_or_posteriors)`` returns the prior; codes are integers of shape
(n, L), posteriors floats of shape (n, L, K) (per-position q(k | x), fitted by expected
counts). ``.sample(n, seed=)`` gives a LongTensor (n, L); ``.log_prob(codes)`` the
log-probabilities in nats, shape (n,); ``.kl_from_posteriors(q)`` the KL divergences
KL(q(·|x) ‖ π) of product posteriors, shape (n,); ``.max_neg_log_prob()`` the largest
−log π(j) over all j, the range of those KLs (the generation bound uses it for a
confidence bound on their mean).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._checks import check_seed, positive_float, positive_int, real_array

__all__ = ["AggregatedPrior", "LatentPrior", "MarkovPrior", "UniformPrior", "PRIORS", "make_prior"]


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class LatentPrior:
    """A law on [K]^L that can be fitted, sampled and scored (chapter 7)."""

    name = "prior"

    def __init__(self, K: int, L: int):
        self.K = positive_int(K, "K")
        self.L = positive_int(L, "L")
        self.fitted = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(K={self.K}, L={self.L})"

    # ---------------------------------------------------------------- checks
    def check_codes(self, codes, name: str = "codes") -> np.ndarray:
        """``codes`` as an int64 array (n, L) with values in [0, K), or ValueError."""
        arr = _as_numpy(codes)
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must be integers, got dtype {arr.dtype}")
        if arr.ndim != 2 or arr.shape[1] != self.L:
            raise ValueError(f"{name} must have shape (n, L={self.L}), got {arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.K):
            raise ValueError(f"{name} must lie in [0, K={self.K}), got values in [{arr.min()}, {arr.max()}]")
        return arr.astype(np.int64)

    def check_posteriors(self, q, name: str = "posteriors") -> np.ndarray:
        """``q`` as a float64 array (n, L, K) of per-position distributions, or ValueError."""
        arr = real_array(q, name, finite=False, allow_empty=True)  # refuses complex values and non-numbers
        if arr.ndim != 3 or arr.shape[1:] != (self.L, self.K):
            raise ValueError(f"{name} must have shape (n, L={self.L}, K={self.K}), got {arr.shape}")
        if not np.all(np.isfinite(arr)) or arr.min(initial=0.0) < 0:
            raise ValueError(f"{name} must be finite and non-negative")
        if arr.size and not np.allclose(arr.sum(-1), 1.0, atol=1e-4):
            raise ValueError(f"{name} must sum to 1 over the K codes at every position")
        return arr / arr.sum(-1, keepdims=True) if arr.size else arr

    def _data(self, data) -> np.ndarray:
        """Fitting input as per-position distributions (n, L, K): codes become one-hot."""
        arr = _as_numpy(data)
        if arr.ndim == 2:
            codes = self.check_codes(arr)
            q = np.zeros((len(codes), self.L, self.K))
            np.put_along_axis(q, codes[..., None], 1.0, axis=-1)
        elif arr.ndim == 3:
            q = self.check_posteriors(arr)
        else:
            raise ValueError(f"fit expects codes (n, L={self.L}) or posteriors (n, L, K={self.K}), "
                             f"got shape {arr.shape}")
        if len(q) == 0:
            raise ValueError("fit needs at least one input; got an empty array")
        return q

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise ValueError(f"{type(self).__name__} is not fitted: call .fit(codes or posteriors) first")

    # ---------------------------------------------------------------- API
    def fit(self, codes_or_posteriors) -> "LatentPrior":  # pragma: no cover - abstract
        raise NotImplementedError

    def log_prob(self, codes) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, n: int, seed: int = 0) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def kl_from_posteriors(self, q) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def max_neg_log_prob(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def cross_entropy(self, q) -> np.ndarray:
        """E_{J ~ q(·|x)}[−log π(J)] per input for product posteriors q (n, L, K)."""
        q = self.check_posteriors(q)
        return self.kl_from_posteriors(q) + _entropy(q).sum(-1)


def _entropy(q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(q > 0, q * np.log(q), 0.0).sum(-1)


def _n_and_generator(n, seed) -> tuple[int, torch.Generator]:
    n = positive_int(n, "n")
    seed = check_seed(seed)
    return n, torch.Generator().manual_seed(seed)


class _ProductPrior(LatentPrior):
    """π(j) = Π_l π_l(j_l) with per-position tables ``probs`` (L, K)."""

    probs: np.ndarray

    def log_prob(self, codes) -> np.ndarray:
        self._check_fitted()
        codes = self.check_codes(codes)
        logp = np.log(self.probs)
        return logp[np.arange(self.L)[None, :], codes].sum(-1)

    def sample(self, n: int, seed: int = 0) -> Tensor:
        self._check_fitted()
        n, gen = _n_and_generator(n, seed)
        probs = torch.as_tensor(self.probs, dtype=torch.float64)
        return torch.multinomial(probs, n, replacement=True, generator=gen).T.contiguous().long()

    def kl_from_posteriors(self, q) -> np.ndarray:
        self._check_fitted()
        q = self.check_posteriors(q)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(q > 0, q * (np.log(q) - np.log(self.probs)[None]), 0.0)
        return np.maximum(terms.sum((-1, -2)), 0.0)

    def max_neg_log_prob(self) -> float:
        self._check_fitted()
        return float(-np.log(self.probs.min(-1)).sum())


class UniformPrior(_ProductPrior):
    """π(j) = K^{-L}: every latent variable equally likely (chapter 7's baseline).

    Needs no data: ``fit`` only checks its input. The KL of a posterior to it is
    L log K minus the posterior's entropy.
    """

    name = "uniform"

    def __init__(self, K: int, L: int):
        super().__init__(K, L)
        self.probs = np.full((self.L, self.K), 1.0 / self.K)
        self.fitted = True

    def fit(self, codes_or_posteriors=None) -> "UniformPrior":
        if codes_or_posteriors is not None:
            self._data(codes_or_posteriors)
        return self


class AggregatedPrior(_ProductPrior):
    """Per-position aggregated posterior, Laplace-smoothed (chapter 7).

    π_l(k) = (α + Σ_x q_l(k | x)) / (n + αK): the average code frequencies of each
    position (expected frequencies when fitted from soft posteriors), with α > 0 added
    to every count so that no code has probability 0. Positions are independent.
    """

    name = "aggregated"

    def __init__(self, K: int, L: int, alpha: float = 1.0):
        super().__init__(K, L)
        self.alpha = positive_float(alpha, "alpha")

    def fit(self, codes_or_posteriors) -> "AggregatedPrior":
        q = self._data(codes_or_posteriors)
        counts = q.sum(0) + self.alpha
        self.probs = counts / counts.sum(-1, keepdims=True)
        self.fitted = True
        return self


class MarkovPrior(LatentPrior):
    """An autoregressive prior over the L positions: a first-order Markov chain (chapter 7).

    π(j) = π_1(j_1) Π_{l=2}^{L} T_l(j_l | j_{l−1}), with a separate K × K transition
    table T_l for each step, each row Laplace-smoothed: T_l(b | a) ∝ α + Σ_x q_{l−1}(a|x) q_l(b|x)
    (counts of the pairs (a, b) when fitted from codes). Fitting is counting, so it is
    deterministic; sampling draws each position given the previous one.
    """

    name = "markov"

    def __init__(self, K: int, L: int, alpha: float = 1.0):
        super().__init__(K, L)
        self.alpha = positive_float(alpha, "alpha")

    def fit(self, codes_or_posteriors) -> "MarkovPrior":
        q = self._data(codes_or_posteriors)
        first = q[:, 0].sum(0) + self.alpha
        self.first = first / first.sum()
        # pair counts of positions (l-1, l): (L-1, K, K)
        pairs = np.einsum("nla,nlb->lab", q[:, :-1], q[:, 1:]) + self.alpha
        self.transitions = pairs / pairs.sum(-1, keepdims=True)
        self.fitted = True
        return self

    def log_prob(self, codes) -> np.ndarray:
        self._check_fitted()
        codes = self.check_codes(codes)
        out = np.log(self.first)[codes[:, 0]]
        for l in range(1, self.L):
            out = out + np.log(self.transitions[l - 1])[codes[:, l - 1], codes[:, l]]
        return out

    def sample(self, n: int, seed: int = 0) -> Tensor:
        self._check_fitted()
        n, gen = _n_and_generator(n, seed)
        out = torch.empty(n, self.L, dtype=torch.long)
        out[:, 0] = torch.multinomial(torch.as_tensor(self.first).expand(n, -1), 1, replacement=True,
                                      generator=gen).squeeze(1)
        for l in range(1, self.L):
            rows = torch.as_tensor(self.transitions[l - 1])[out[:, l - 1]]
            out[:, l] = torch.multinomial(rows, 1, generator=gen).squeeze(1)
        return out

    def kl_from_posteriors(self, q) -> np.ndarray:
        """KL(q ‖ π) for product posteriors: −H(q) − E_q[log π_1(J_1) + Σ_l log T_l(J_l | J_{l−1})]."""
        self._check_fitted()
        q = self.check_posteriors(q)
        cross = -(q[:, 0] @ np.log(self.first))
        if self.L > 1:
            cross = cross - np.einsum("nla,lab,nlb->n", q[:, :-1], np.log(self.transitions), q[:, 1:])
        return np.maximum(cross - _entropy(q).sum(-1), 0.0)

    def max_neg_log_prob(self) -> float:
        """max_j −log π(j), by dynamic programming over the chain (a Viterbi pass)."""
        self._check_fitted()
        best = -np.log(self.first)
        for l in range(1, self.L):
            best = (best[:, None] - np.log(self.transitions[l - 1])).max(0)
        return float(best.max())


PRIORS = {"uniform": UniformPrior, "aggregated": AggregatedPrior, "markov": MarkovPrior}


def make_prior(name: str, K: int, L: int, **kwargs) -> LatentPrior:
    """A prior by name: ``"uniform"``, ``"aggregated"`` or ``"markov"`` (chapter 7)."""
    if name not in PRIORS:
        raise ValueError(f"prior={name!r} is not one of {tuple(PRIORS)}")
    if name == "uniform":
        return UniformPrior(K, L)
    return PRIORS[name](K, L, **kwargs)
