"""The exact 2-Wasserstein distance between two samples (chapter 7, the generation bound).

:func:`w2` is W2 between the empirical laws of the rows of ``x`` and ``y`` (uniform
weights, Euclidean ground cost; images are flattened): the square root of the optimal
transport cost with squared Euclidean costs, solved exactly by POT's network simplex
(``ot.emd2``; Flamary et al., 2021).

The exact solver can stop early: with POT's default ``numItermax = 1e5`` it returns a
wrong (too small) value above about 2000 points, with only a warning. Here every solve
is checked: a result code other than "optimal", or a solver warning, triggers a retry
with a ten times larger budget, and after the last retry a :class:`W2NotConverged`
(a ``ValueError``) is raised. A wrong number is never returned quietly.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from .._checks import fits_in_memory, real_array

__all__ = ["W2NotConverged", "w2"]

_OPTIMAL = 1  # POT's result code for an optimal solution
_MAX_ITER = 2**63 - 1  # the largest iteration budget POT's solver takes
# Beyond these magnitudes squared distances overflow (or underflow) in float64: the points
# are then rescaled by a power of two, which W2 follows exactly (W2(cx, cy) = c W2(x, y)).
_LARGE, _SMALL = 2.0**300, 2.0**-300
#: Bytes per (point of x, point of y) the exact solve holds at once: the float64 costs (scipy's and
#: POT's copy), the transport plan, and the network simplex's arcs (source, target, cost, flow, state).
SOLVER_BYTES = 64


class W2NotConverged(ValueError):
    """POT's exact solver stopped before optimality, even with the largest budget tried (chapter 7).

    Raised by :func:`w2` after its last retry, so that an unconverged (too small) transport
    cost is never returned as W2. A subclass of ``ValueError``: ``except ValueError`` catches
    it with the other input errors. The message gives the problem size, the last
    ``numItermax`` and POT's warning or result code.

    See also
    --------
    w2; chapter 7.
    """


def _points(x, name: str) -> np.ndarray:
    arr = real_array(x, name, finite=False, allow_empty=True, allow_bool=False)  # refuses complex and non-numbers
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (points in rows), got a scalar")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no points")
    arr = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr[:, None]
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has points of dimension 0 (shape {np.shape(x)})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _sorted_rows(arr: np.ndarray) -> np.ndarray:
    return arr[np.lexsort(arr.T[::-1])]


def w2(x, y, *, num_itermax: int = 10_000_000, retries: int = 2) -> float:
    """Exact W2 (not squared) between the empirical laws of the rows of ``x`` and ``y`` (chapter 7).

    Chapter 7 measures generated samples against test samples with it, next to the
    reference W2 between two disjoint real samples of the same size.

    W2(x, y) = sqrt(min_γ Σ_ij γ_ij ‖x_i − y_j‖²) over couplings γ ≥ 0 with row sums 1/n and
    column sums 1/m, solved by POT's network simplex (``ot.emd2``) on squared Euclidean costs
    computed from differences (scipy's ``cdist``), so that W2(x, x) is not lost to cancellation.
    A solve that is not "optimal", or that warns, is retried with a ten times larger budget.
    Points of very large or very small magnitude are rescaled by a power of two before
    solving (W2(cx, cy) = c W2(x, y), exactly). The solver is exact up to float64 rounding
    relative to the largest squared distance; two samples holding the same points (in any
    order) give exactly 0.

    Parameters
    ----------
    x, y : arrays or tensors of shape (n, ...) and (m, ...)
        n and m points (rows), each flattened to a vector; a 1-D array holds n points on
        the line. The sizes may differ; the dimensions after flattening must agree.
    num_itermax : number in [1, 2⁶³ − 1], default 10_000_000
        The solver's first iteration budget (POT's ``numItermax``).
    retries : int ≥ 0, default 2
        How many times to retry with a ten times larger budget before raising.

    Returns
    -------
    float
        The distance ``sqrt(min_γ Σ_ij γ_ij ‖x_i − y_j‖²)`` over couplings γ of the uniform
        weights 1/n and 1/m, ≥ 0.

    Raises
    ------
    ValueError
        For empty inputs, scalars, points of dimension 0, NaN, infinite, complex or boolean
        values, points of different dimensions, a distance beyond float64's range, samples
        whose n × m problem would not fit in this machine's memory (refused before solving),
        and a bad ``num_itermax`` or ``retries``.
    W2NotConverged
        If the solver does not reach optimality after the last retry.

    See also
    --------
    W2NotConverged, vqlib.generation_bound; chapter 7.
    """
    import ot  # POT imports torch and is slow to load: only when W2 is computed
    from scipy.spatial.distance import cdist  # with POT

    if isinstance(num_itermax, bool) or not isinstance(num_itermax, numbers.Real) or not 1 <= num_itermax <= _MAX_ITER:
        raise ValueError(f"num_itermax must be a number in [1, 2**63 - 1], got {num_itermax!r}")
    if isinstance(retries, bool) or not isinstance(retries, numbers.Integral) or retries < 0:
        raise ValueError(f"retries must be an integer ≥ 0, got {retries!r}")
    a_pts, b_pts = _points(x, "x"), _points(y, "y")
    if a_pts.shape[1] != b_pts.shape[1]:
        raise ValueError(f"x and y have points of different dimensions: {a_pts.shape[1]} and {b_pts.shape[1]}")
    n, m = len(a_pts), len(b_pts)
    # the exact solver holds the n × m costs, the transport plan and its network's arcs at once
    fits_in_memory(SOLVER_BYTES * n * m, f"w2 of {n} × {m} points", need="for the exact solver (O(n·m) memory)")
    if n == m and np.array_equal(_sorted_rows(a_pts), _sorted_rows(b_pts)):
        return 0.0  # the same sample (in any order): exactly 0, whatever the solver's rounding
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    top = max(float(np.abs(a_pts).max()), float(np.abs(b_pts).max()))
    scale = 1.0
    if top > _LARGE or 0 < top < _SMALL:  # exact rescaling: a power of two
        scale = math.ldexp(1.0, math.frexp(top)[1] - 1)
        a_pts, b_pts = a_pts / scale, b_pts / scale
    # Squared Euclidean costs from differences (scipy's cdist), not from ‖x‖² + ‖y‖² − 2⟨x, y⟩
    # as ot.dist does: that form cancels badly and gives W2(x, x) ≈ 1e-8 instead of 0.
    cost_matrix = cdist(a_pts, b_pts, metric="sqeuclidean")
    if not np.all(np.isfinite(cost_matrix)):
        raise ValueError("x and y are too far apart: their squared distances overflow float64")
    budget = int(num_itermax)
    for attempt in range(int(retries) + 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cost, log = ot.emd2(a, b, cost_matrix, numItermax=budget, log=True)
        messages = [str(w.message) for w in caught]
        if log.get("result_code") == _OPTIMAL and not messages and log.get("warning") is None:
            distance = math.sqrt(max(float(cost), 0.0)) * scale
            if not math.isfinite(distance):
                raise ValueError("x and y are too far apart: their W2 distance overflows float64")
            return distance
        if attempt < retries:
            if budget == _MAX_ITER:  # the largest budget already failed: the same solve again would too
                break
            budget = min(budget * 10, _MAX_ITER)
    detail = log.get("warning") or "; ".join(messages) or f"result code {log.get('result_code')}"
    raise W2NotConverged(
        f"the exact OT solver did not reach optimality for {n} × {m} points "
        f"(last numItermax={budget}): {detail}"
    )
