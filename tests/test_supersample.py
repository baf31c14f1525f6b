"""Supersample, mask and permutation construction, and the runner (chapters 2–5)."""
import json

import numpy as np
import pytest
import torch

import vqlib
from vqlib.supersample import (draw_mask, draw_permutation, make_supersample, run_supersample, split,
                               split_by_permutation)


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


@pytest.mark.parametrize("kwargs, name", [
    (dict(n=0), "n"), (dict(n=900), "n"), (dict(n_masks=1), "n_masks"),
    (dict(train="decoder"), "train"), (dict(n_supersamples=0), "n_supersamples"), (dict(K=0), "K"),
])
def test_runner_rejects_bad_input(digits, kwargs, name):
    args = dict(n=5, K=4, L=2, n_masks=2, n_supersamples=1, epochs=1) | kwargs
    with pytest.raises(ValueError, match=name):
        run_supersample(digits, **args)


def test_split_rejects_bad_masks(digits):
    ss = make_supersample(digits, 4, supersample_seed=0)
    with pytest.raises(ValueError, match="U"):
        split(ss, [0, 1, 2, 0])
    with pytest.raises(ValueError, match="U"):
        split(ss, [0, 1])


def test_every_bound_is_above_the_measured_gap(digits):
    """Validity on a quick configuration over 10 supersamples: each bound, conditional on
    each supersample, is at least the gap measured on it minus two standard errors."""
    r = run_supersample(digits, n=16, K=8, L=4, n_masks=6, n_supersamples=10, epochs=30, train_seed=0,
                        hidden=32)
    assert r.gap > 0  # small n overfits: the experiment has something to bound
    assert {"e_cmi", "ld_cmi", "lv_marginal"} <= set(r.bounds)
    for per in r.per_supersample:
        for name in r.bounds:
            assert per[name] >= per["gap"] - 2 * per["gap_sem"], (name, per)
    for name, value in r.bounds.items():
        assert value >= r.gap - 2 * r.gap_sem, name
    # the tidy table: one row per (supersample, mask, pair) with the three seeds
    assert len(r.rows) == 10 * 6 * 16
    assert {"supersample_seed", "mask_seed", "train_seed", "U", "loss0", "loss1"} <= set(r.rows[0])
    json.dumps(r.to_json())
    assert r.to_csv().count("\n") == len(r.rows) + 1


def test_runner_is_reproducible(digits):
    a = run_supersample(digits, n=6, K=4, L=2, n_masks=2, n_supersamples=1, epochs=3, hidden=16)
    b = run_supersample(digits, n=6, K=4, L=2, n_masks=2, n_supersamples=1, epochs=3, hidden=16)
    assert a.rows == b.rows and a.bounds == b.bounds


def test_encoder_only_training_keeps_codebook_and_decoder(digits):
    r = run_supersample(digits, n=8, K=4, L=2, n_masks=3, n_supersamples=1, epochs=5, train="encoder",
                        hidden=16)
    assert r.diagnostics["decoder_slack"] == 0.0
    assert all(np.isfinite(v) for v in r.bounds.values())


def test_freeze_codebook_and_decoder_really_freezes(digits):
    model = vqlib.VQVAE((1, 8, 8), K=8, L=2, hidden=16)
    vqlib.fit(model, digits[:100], epochs=2)
    model.freeze_codebook_and_decoder()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    vqlib.fit(model, digits[100:200], epochs=3, train_seed=1)
    after = model.state_dict()
    for k in before:
        same = torch.equal(before[k], after[k])
        assert same == (not k.startswith("encoder")), k
