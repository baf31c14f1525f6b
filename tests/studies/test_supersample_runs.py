"""The supersample runner: one model per (supersample, mask), the gap and every bound (chapters 2–4)."""
import json

import numpy as np
import pytest
import torch

import vqlib
from vqlib.studies import run_supersample


@pytest.fixture(scope="module")
def digits():
    return vqlib.load_dataset("digits", split="all")


@pytest.mark.parametrize("kwargs, name", [
    (dict(n=0), "n"), (dict(n=900), "n"), (dict(n_masks=1), "n_masks"),
    (dict(train="decoder"), "train"), (dict(n_supersamples=0), "n_supersamples"), (dict(K=0), "K"),
])
def test_runner_rejects_bad_input(digits, kwargs, name):
    args = dict(n=5, K=4, L=2, n_masks=2, n_supersamples=1, epochs=1) | kwargs
    with pytest.raises(ValueError, match=name):
        run_supersample(digits, **args)


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

