"""The exact 2-Wasserstein distance vqlib.w2 (chapter 7) against closed forms and exact references."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import vqlib
from vqlib.bounds import W2NotConverged


def _quantile_w2_1d(x, y):
    """W2 between two 1-D empirical laws: the L2 distance between their quantile functions."""
    x, y = np.sort(x), np.sort(y)
    n, m = len(x), len(y)
    # breakpoints of both step quantile functions on (0, 1]
    t = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    widths = np.diff(np.concatenate([[0.0], t]))
    mid = t - widths / 2
    qx = x[np.minimum((mid * n).astype(int), n - 1)]
    qy = y[np.minimum((mid * m).astype(int), m - 1)]
    return math.sqrt(float(np.sum(widths * (qx - qy) ** 2)))


def test_one_dimension_equal_sizes_sorted_formula():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=200), rng.exponential(size=200)
    expected = math.sqrt(np.mean((np.sort(x) - np.sort(y)) ** 2))
    assert vqlib.w2(x, y) == pytest.approx(expected, rel=1e-9)
    assert vqlib.w2(x[:, None], y[:, None]) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n, m", [(7, 3), (50, 80), (101, 37)])
def test_one_dimension_unequal_sizes_quantiles(n, m):
    rng = np.random.default_rng(n * m)
    x, y = rng.normal(size=n), rng.uniform(-1, 3, size=m)
    assert vqlib.w2(x, y) == pytest.approx(_quantile_w2_1d(x, y), rel=1e-9)


def test_two_points_closed_form():
    # δ_0 vs ½δ_0 + ½δ_v: half the mass moves by |v|
    x = np.zeros((2, 3))
    y = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    assert vqlib.w2(x, y) == pytest.approx(math.sqrt(0.5 * 25))


@pytest.mark.parametrize("dim", [2, 10, 64])
def test_equal_sizes_match_assignment_solver(dim):
    rng = np.random.default_rng(dim)
    x, y = rng.uniform(size=(60, dim)), rng.uniform(size=(60, dim))
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    assert vqlib.w2(x, y) == pytest.approx(math.sqrt(cost[rows, cols].mean()), rel=1e-9)


def test_translation_self_and_symmetry():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 5))
    v = np.array([0.3, -1.0, 2.0, 0.0, 0.5])
    assert vqlib.w2(x, x + v) == pytest.approx(np.linalg.norm(v), rel=1e-9)
    assert vqlib.w2(x, x) == pytest.approx(0.0, abs=1e-12)
    y = rng.normal(size=(25, 5))
    assert vqlib.w2(x, y) == pytest.approx(vqlib.w2(y, x), rel=1e-9)


def test_images_are_flattened_and_tensors_accepted():
    x = vqlib.load_dataset("digits", split="all")[:30]
    y = vqlib.load_dataset("digits", split="all")[30:50]
    flat = vqlib.w2(x.reshape(30, -1).numpy(), y.reshape(20, -1).numpy())
    assert vqlib.w2(x, y) == pytest.approx(flat)
    assert isinstance(vqlib.w2(torch.zeros(3, 2), torch.ones(2, 2)), float)


def test_tiny_budget_retries_then_succeeds_or_raises():
    rng = np.random.default_rng(2)
    x, y = rng.uniform(size=(150, 4)), rng.uniform(size=(150, 4))
    exact = vqlib.w2(x, y)
    # a budget of 10 iterations stops early; the retries (×10 each) reach optimality
    assert vqlib.w2(x, y, num_itermax=10, retries=4) == pytest.approx(exact, rel=1e-9)
    with pytest.raises(W2NotConverged, match="did not reach optimality"):
        vqlib.w2(x, y, num_itermax=10, retries=0)
    with pytest.raises(ValueError):  # W2NotConverged is a ValueError
        vqlib.w2(x, y, num_itermax=2, retries=1)


@pytest.mark.parametrize("x, y, match", [
    (np.zeros((3, 2)), np.zeros((3, 3)), "different dimensions"),
    (np.zeros((0, 2)), np.zeros((3, 2)), "x is empty"),
    (np.zeros((3, 2)), np.zeros((0, 2)), "y is empty"),
    (np.array([[0.0, np.nan]]), np.zeros((3, 2)), "x contains NaN"),
    (np.zeros((3, 2)), np.array([[np.inf, 0.0]]), "y contains NaN or infinite"),
    (np.float64(1.0), np.zeros((3, 1)), "x must have at least one dimension"),
])
def test_bad_inputs(x, y, match):
    with pytest.raises(ValueError, match=match):
        vqlib.w2(x, y)


@pytest.mark.parametrize("kwargs, match", [(dict(num_itermax=0), "num_itermax"), (dict(retries=-1), "retries")])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vqlib.w2(np.zeros((2, 1)), np.ones((2, 1)), **kwargs)
