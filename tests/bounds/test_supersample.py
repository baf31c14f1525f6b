"""Supersample, mask and permutation construction (chapters 2–5)."""

import numpy as np
import pytest
import torch

import vqlib
from vqlib.bounds import draw_mask, draw_permutation, make_supersample, split, split_by_permutation


@pytest.fixture(scope="module")
def digits():
    return vqlib.load_dataset("digits", split="all")


def test_supersample_draws_distinct_points_reproducibly(digits):
    ss = make_supersample(digits, 50, supersample_seed=3)
    assert ss.points.shape == (50, 2, 1, 8, 8) and ss.n == 50
    assert len(set(ss.source_index.reshape(-1).tolist())) == 100
    assert torch.equal(ss.points[7, 1], digits[ss.source_index[7, 1]])
    again = make_supersample(digits, 50, supersample_seed=3)
    assert np.array_equal(ss.source_index, again.source_index)
    other = make_supersample(digits, 50, supersample_seed=4)
    assert not np.array_equal(ss.source_index, other.source_index)
    assert torch.equal(ss.flat()[2 * 7 + 1], ss.points[7, 1])


def test_mask_and_split(digits):
    ss = make_supersample(digits, 20, supersample_seed=0)
    U = draw_mask(20, mask_seed=5)
    assert set(U.tolist()) <= {0, 1} and np.array_equal(U, draw_mask(20, mask_seed=5))
    train, test = split(ss, U)
    for i in range(20):
        assert torch.equal(train[i], ss.points[i, U[i]]) and torch.equal(test[i], ss.points[i, 1 - U[i]])
    # masks are fair coins: over many seeds, about half ones
    assert abs(np.mean([draw_mask(20, mask_seed=s).mean() for s in range(200)]) - 0.5) < 0.03


def test_permutation_split(digits):
    ss = make_supersample(digits, 6, supersample_seed=0)
    T = draw_permutation(6, mask_seed=1)
    assert sorted(T.tolist()) == list(range(12))
    train, test = split_by_permutation(ss, T)
    assert torch.equal(train[0], ss.flat()[T[0]]) and torch.equal(test[-1], ss.flat()[T[-1]])
    with pytest.raises(ValueError, match="T must be a permutation"):
        split_by_permutation(ss, np.arange(11))


def test_split_rejects_bad_masks(digits):
    ss = make_supersample(digits, 4, supersample_seed=0)
    with pytest.raises(ValueError, match="U"):
        split(ss, [0, 1, 2, 0])
    with pytest.raises(ValueError, match="U"):
        split(ss, [0, 1])


