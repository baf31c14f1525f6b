"""The held-out test-set bound: the practical reference every bound is compared with (chapters 2, 7, 9).

A test set of m losses that no training run saw bounds the expected loss directly, with
probability ≥ 1 − δ over the test set; :func:`test_set_bound` gives Hoeffding's form and
the binary-kl inverse (:func:`vqlib.bounds.information.kl_inverse_upper`).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._checks import real_array, unit_float
from .information import kl_inverse_upper

__all__ = ["test_set_bound"]


def test_set_bound(test_losses: ArrayLike, delta: float = 0.05) -> dict[str, float]:
    """Held-out test-set upper bounds on the expected loss (chapter 2 baseline; chapters 7, 9).

    For ``m`` i.i.d. losses in ``[0, 1]`` with empirical mean ``q``, each of the
    following holds with probability at least ``1 - delta`` over the test set:

    * Hoeffding: ``R <= q + sqrt(log(1/delta) / (2 m))`` (may exceed 1);
    * binary kl (Langford; Dziugaite-Roy / Maurer style):
      ``R <= kl_inverse_upper(q, log(1/delta) / m)``.

    The kl form rests on the Chernoff bound
    ``P(q <= t) <= exp(-m kl(t || R))`` for ``t < R``.  It holds for losses in
    ``[0, 1]``, not only 0/1 losses: by convexity ``exp(-s x) <= 1 - x + x exp(-s)``
    on ``[0, 1]``, so each loss's moment generating function is at most that of a
    Bernoulli with the same mean.  By Pinsker (``kl >= 2 (p - q)^2``) the kl bound
    is never above the Hoeffding one.

    The losses must not have been seen by the training that produced the model.

    Parameters
    ----------
    test_losses : array (m,) or any shape (flattened), values in [0, 1]
        The held-out losses, m ≥ 1.
    delta : float in (0, 1), default 0.05
        The allowed failure probability.

    Returns
    -------
    dict
        Keys ``m`` (int), ``mean`` (q), ``delta``, ``hoeffding`` and ``kl_inverse`` (floats).

    Raises
    ------
    ValueError
        When ``test_losses`` is empty, holds a value outside [0, 1] (NaN included), complex
        values or non-numbers, or ``delta`` is not in (0, 1).

    See also
    --------
    vqlib.bounds.information.kl_inverse_upper, vqlib.bounds.information.kl_bernoulli; chapter 2, chapter 7.
    """
    losses = real_array(test_losses, "test_losses", finite=False, allow_empty=True, allow_bool=False).ravel()
    if losses.size == 0:
        raise ValueError("test_losses must not be empty")
    if not np.all((losses >= 0.0) & (losses <= 1.0)):
        raise ValueError("test_losses must lie in [0, 1]")
    delta = unit_float(delta, "delta", open_left=True, open_right=True)
    m = losses.size
    mean = float(losses.mean())
    log_term = np.log(1.0 / delta)
    return {
        "m": m,
        "mean": mean,
        "delta": delta,
        "hoeffding": mean + float(np.sqrt(log_term / (2.0 * m))),
        "kl_inverse": float(kl_inverse_upper(mean, log_term / m)),
    }


# The name starts with "test_": keep pytest from collecting it where it is imported.
test_set_bound.__test__ = False  # type: ignore[attr-defined]
