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
    """A law π on [K]^L that can be fitted, sampled and scored (chapter 7).

    The common API of :class:`UniformPrior`, :class:`AggregatedPrior` and :class:`MarkovPrior`
    (see the module's docstring); scoring and sampling need a fitted prior.

    Parameters
    ----------
    K : int
        Codes per position.
    L : int
        Latent positions.

    Raises
    ------
    ValueError
        Naming ``K`` or ``L`` when it is not an integer ≥ 1.

    See also: :func:`make_prior`, :func:`vqlib.generate`; chapter 7.
    """

    name = "prior"

    def __init__(self, K: int, L: int):
        self.K = positive_int(K, "K")
        self.L = positive_int(L, "L")
        self.fitted = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(K={self.K}, L={self.L})"

    # ---------------------------------------------------------------- checks
    def check_codes(self, codes, name: str = "codes") -> np.ndarray:
        """``codes`` as an int64 array (n, L) with values in [0, K) (chapter 7).

        Parameters
        ----------
        codes : Tensor or array-like (n, L) of integers
        name : str
            The name the error gives.

        Returns
        -------
        ndarray (n, L), int64

        Raises
        ------
        ValueError
            Naming ``name`` when ``codes`` is not integers, not (n, L), or outside [0, K).
        """
        arr = _as_numpy(codes)
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must be integers, got dtype {arr.dtype}")
        if arr.ndim != 2 or arr.shape[1] != self.L:
            raise ValueError(f"{name} must have shape (n, L={self.L}), got {arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.K):
            raise ValueError(f"{name} must lie in [0, K={self.K}), got values in [{arr.min()}, {arr.max()}]")
        return arr.astype(np.int64)

    def check_posteriors(self, q, name: str = "posteriors") -> np.ndarray:
        """``q`` as a float64 array (n, L, K) of per-position distributions (chapter 7).

        Parameters
        ----------
        q : Tensor or array-like (n, L, K)
            Finite, non-negative, summing to 1 over the K codes at every position (to 1e-4).
        name : str
            The name the error gives.

        Returns
        -------
        ndarray (n, L, K), float64, renormalised to sum to 1 exactly

        Raises
        ------
        ValueError
            Naming ``name`` when ``q`` is not real numbers, not (n, L, K), not finite and
            non-negative, or does not sum to 1.
        """
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
        """Fit the prior to latent variables or posteriors and return it (chapter 7).

        Parameters
        ----------
        codes_or_posteriors : array (n, L) of integers in [0, K), or (n, L, K) of probabilities
            Codes, or per-position posteriors q(k | x) (fitted by expected counts); n ≥ 1.

        Returns
        -------
        LatentPrior
            The prior itself, fitted.

        Raises
        ------
        ValueError
            When the input is neither (naming ``codes`` or ``posteriors``), or empty.
        """
        raise NotImplementedError

    def log_prob(self, codes) -> np.ndarray:  # pragma: no cover - abstract
        """log π(j) in nats for every row j of ``codes`` (chapter 7).

        Parameters
        ----------
        codes : array (n, L) of integers in [0, K)

        Returns
        -------
        ndarray (n,)

        Raises
        ------
        ValueError
            When the prior is not fitted, or naming ``codes``.
        """
        raise NotImplementedError

    def sample(self, n: int, seed: int = 0) -> Tensor:  # pragma: no cover - abstract
        """``n`` latent variables J ~ π, reproducibly from ``seed`` (chapter 7).

        Parameters
        ----------
        n : int ≥ 1
        seed : int in [0, 2⁶³ − 1]

        Returns
        -------
        LongTensor (n, L), values in [0, K)

        Raises
        ------
        ValueError
            When the prior is not fitted, or naming ``n`` or ``seed``.
        """
        raise NotImplementedError

    def kl_from_posteriors(self, q) -> np.ndarray:  # pragma: no cover - abstract
        """KL(q(·|x) ‖ π) in nats for product posteriors q, one per input (chapter 7).

        Parameters
        ----------
        q : array (n, L, K)
            Per-position posteriors, the law of J being Π_l q_l(j_l | x).

        Returns
        -------
        ndarray (n,), values ≥ 0

        Raises
        ------
        ValueError
            When the prior is not fitted, or naming ``posteriors``.
        """
        raise NotImplementedError

    def max_neg_log_prob(self) -> float:  # pragma: no cover - abstract
        """max_j −log π(j) over all j ∈ [K]^L: the range of the KLs of :meth:`kl_from_posteriors` (chapter 7).

        The generation bound uses it for a confidence bound on their mean.

        Returns
        -------
        float

        Raises
        ------
        ValueError
            When the prior is not fitted.
        """
        raise NotImplementedError

    def cross_entropy(self, q) -> np.ndarray:
        """E_{J ~ q(·|x)}[−log π(J)] per input for product posteriors q (chapter 7).

        KL(q ‖ π) + H(q), in nats.

        Parameters
        ----------
        q : array (n, L, K)

        Returns
        -------
        ndarray (n,)

        Raises
        ------
        ValueError
            When the prior is not fitted, or naming ``posteriors``.
        """
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
        """log π(j) = Σ_l log π_l(j_l) in nats for every row j of ``codes``, shape (n,) (chapter 7).

        ``ValueError`` when the prior is not fitted, or naming ``codes``.
        """
        self._check_fitted()
        codes = self.check_codes(codes)
        logp = np.log(self.probs)
        return logp[np.arange(self.L)[None, :], codes].sum(-1)

    def sample(self, n: int, seed: int = 0) -> Tensor:
        """``n`` latent variables J ~ π, each position drawn independently from π_l, from ``seed`` (chapter 7).

        Returns a LongTensor (n, L); ``ValueError`` when the prior is not fitted, or naming ``n`` or ``seed``.
        """
        self._check_fitted()
        n, gen = _n_and_generator(n, seed)
        probs = torch.as_tensor(self.probs, dtype=torch.float64)
        return torch.multinomial(probs, n, replacement=True, generator=gen).T.contiguous().long()

    def kl_from_posteriors(self, q) -> np.ndarray:
        """KL(q ‖ π) = Σ_l Σ_k q_l(k|x) (log q_l(k|x) − log π_l(k)) per input, shape (n,), ≥ 0 (chapter 7).

        ``q`` (n, L, K) holds product posteriors; ``ValueError`` when the prior is not fitted, or naming
        ``posteriors``.
        """
        self._check_fitted()
        q = self.check_posteriors(q)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(q > 0, q * (np.log(q) - np.log(self.probs)[None]), 0.0)
        return np.maximum(terms.sum((-1, -2)), 0.0)

    def max_neg_log_prob(self) -> float:
        """max_j −log π(j) = −Σ_l log min_k π_l(k) (chapter 7).

        ``ValueError`` when the prior is not fitted.
        """
        self._check_fitted()
        return float(-np.log(self.probs.min(-1)).sum())


class UniformPrior(_ProductPrior):
    """π(j) = K^{-L}: every latent variable equally likely (chapter 7's baseline).

    Needs no data: ``fit`` only checks its input. The KL of a posterior to it is
    L log K minus the posterior's entropy.

    Parameters
    ----------
    K, L : int
        Codes per position and positions.

    See also: :class:`AggregatedPrior`, :class:`MarkovPrior`, :func:`vqlib.generate`; chapter 7.
    """

    name = "uniform"

    def __init__(self, K: int, L: int):
        super().__init__(K, L)
        self.probs = np.full((self.L, self.K), 1.0 / self.K)
        self.fitted = True

    def fit(self, codes_or_posteriors=None) -> "UniformPrior":
        """Check ``codes_or_posteriors`` (if given) and return the prior, unchanged (chapter 7).

        Parameters
        ----------
        codes_or_posteriors : array (n, L) or (n, L, K), optional

        Returns
        -------
        UniformPrior

        Raises
        ------
        ValueError
            As :meth:`LatentPrior.fit`, for a bad input.
        """
        if codes_or_posteriors is not None:
            self._data(codes_or_posteriors)
        return self


class AggregatedPrior(_ProductPrior):
    """Per-position aggregated posterior, Laplace-smoothed (chapter 7).

    π_l(k) = (α + Σ_x q_l(k | x)) / (n + αK): the average code frequencies of each
    position (expected frequencies when fitted from soft posteriors), with α > 0 added
    to every count so that no code has probability 0. Positions are independent.

    Parameters
    ----------
    K, L : int
        Codes per position and positions.
    alpha : float > 0
        α, the count added to every code.

    Raises
    ------
    ValueError
        Naming ``K``, ``L`` or ``alpha``.

    See also: :class:`MarkovPrior`, :func:`make_prior`; chapter 7.
    """

    name = "aggregated"

    def __init__(self, K: int, L: int, alpha: float = 1.0):
        super().__init__(K, L)
        self.alpha = positive_float(alpha, "alpha")

    def fit(self, codes_or_posteriors) -> "AggregatedPrior":
        """Count the codes (or expected codes) of every position and return the fitted prior (chapter 7).

        Parameters
        ----------
        codes_or_posteriors : array (n, L) of integers in [0, K), or (n, L, K) of probabilities, n ≥ 1

        Returns
        -------
        AggregatedPrior
            The prior itself, with ``probs`` (L, K).

        Raises
        ------
        ValueError
            As :meth:`LatentPrior.fit`.
        """
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

    Parameters
    ----------
    K, L : int
        Codes per position and positions.
    alpha : float > 0
        α, the count added to every entry of π_1 and of every T_l.

    Raises
    ------
    ValueError
        Naming ``K``, ``L`` or ``alpha``.

    See also: :class:`AggregatedPrior`, :func:`make_prior`; chapter 7.
    """

    name = "markov"

    def __init__(self, K: int, L: int, alpha: float = 1.0):
        super().__init__(K, L)
        self.alpha = positive_float(alpha, "alpha")

    def fit(self, codes_or_posteriors) -> "MarkovPrior":
        """Count first codes and pairs of neighbouring codes and return the fitted chain (chapter 7).

        π_1(k) ∝ α + Σ_x q_1(k|x) and T_l(b | a) ∝ α + Σ_x q_{l−1}(a|x) q_l(b|x).

        Parameters
        ----------
        codes_or_posteriors : array (n, L) of integers in [0, K), or (n, L, K) of probabilities, n ≥ 1

        Returns
        -------
        MarkovPrior
            The prior itself, with ``first`` (K,) and ``transitions`` (L − 1, K, K).

        Raises
        ------
        ValueError
            As :meth:`LatentPrior.fit`.
        """
        q = self._data(codes_or_posteriors)
        first = q[:, 0].sum(0) + self.alpha
        self.first = first / first.sum()
        # pair counts of positions (l-1, l): (L-1, K, K)
        pairs = np.einsum("nla,nlb->lab", q[:, :-1], q[:, 1:]) + self.alpha
        self.transitions = pairs / pairs.sum(-1, keepdims=True)
        self.fitted = True
        return self

    def log_prob(self, codes) -> np.ndarray:
        """log π(j) = log π_1(j_1) + Σ_{l≥2} log T_l(j_l | j_{l−1}) in nats, shape (n,) (chapter 7).

        ``codes`` (n, L) of integers in [0, K); ``ValueError`` when the prior is not fitted, or naming ``codes``.
        """
        self._check_fitted()
        codes = self.check_codes(codes)
        out = np.log(self.first)[codes[:, 0]]
        for l in range(1, self.L):
            out = out + np.log(self.transitions[l - 1])[codes[:, l - 1], codes[:, l]]
        return out

    def sample(self, n: int, seed: int = 0) -> Tensor:
        """``n`` latent variables drawn along the chain, J_1 ~ π_1, J_l ~ T_l(· | J_{l−1}), from ``seed`` (chapter 7).

        Returns a LongTensor (n, L); ``ValueError`` when the prior is not fitted, or naming ``n`` or ``seed``.
        """
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
        """KL(q ‖ π) for product posteriors: −H(q) − E_q[log π_1(J_1) + Σ_l log T_l(J_l | J_{l−1})] (chapter 7).

        ``q`` (n, L, K); returns the KLs (n,), ≥ 0. ``ValueError`` when the prior is not fitted, or
        naming ``posteriors``.
        """
        self._check_fitted()
        q = self.check_posteriors(q)
        cross = -(q[:, 0] @ np.log(self.first))
        if self.L > 1:
            cross = cross - np.einsum("nla,lab,nlb->n", q[:, :-1], np.log(self.transitions), q[:, 1:])
        return np.maximum(cross - _entropy(q).sum(-1), 0.0)

    def max_neg_log_prob(self) -> float:
        """max_j −log π(j), by dynamic programming over the chain (a Viterbi pass) (chapter 7).

        ``ValueError`` when the prior is not fitted.
        """
        self._check_fitted()
        best = -np.log(self.first)
        for l in range(1, self.L):
            best = (best[:, None] - np.log(self.transitions[l - 1])).max(0)
        return float(best.max())


PRIORS = {"uniform": UniformPrior, "aggregated": AggregatedPrior, "markov": MarkovPrior}


def make_prior(name: str, K: int, L: int, **kwargs) -> LatentPrior:
    """A prior by name: ``"uniform"``, ``"aggregated"`` or ``"markov"`` (chapter 7).

    Parameters
    ----------
    name : {"uniform", "aggregated", "markov"}
    K, L : int
        Codes per position and positions.
    **kwargs
        Passed to the prior (``alpha``); ignored by ``"uniform"``.

    Returns
    -------
    LatentPrior
        Not yet fitted, but for :class:`UniformPrior`.

    Raises
    ------
    ValueError
        When ``name`` is none of them (the message calls it ``prior``), or as the prior's class.

    See also: :class:`UniformPrior`, :class:`AggregatedPrior`, :class:`MarkovPrior`; chapter 7.
    """
    if name not in PRIORS:
        raise ValueError(f"prior={name!r} is not one of {tuple(PRIORS)}")
    if name == "uniform":
        return UniformPrior(K, L)
    return PRIORS[name](K, L, **kwargs)
