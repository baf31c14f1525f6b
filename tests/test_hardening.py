"""Hostile and unusual input to the library (issue 15): each case gives a clear ValueError
naming the bad value, or a correct result; never a silent NaN or a wrong number.

The command line's cases are in tests/book/test_cli.py, the cache's in tests/sweeps/test_cache.py.
"""
import math
import warnings

import numpy as np
import pytest
import torch

import vqlib
from vqlib.bounds import latent_kl_terms, pair_terms
from vqlib.models import fit_ensemble


@pytest.fixture(scope="module")
def x():
    return vqlib.load_dataset("digits", split="all")


def tiny(K=2, L=2, **kwargs):
    return vqlib.VQVAE((1, 8, 8), K=K, L=L, hidden=8, **kwargs)


# 1. one training row -------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [dict(K=1), dict(K=4), dict(K=4, init="data"), dict(K=4, quantizer="softmax")])
def test_one_training_row_is_refused_not_nan(x, kwargs):
    model = tiny(**kwargs)
    with pytest.raises(ValueError, match=r"x must hold at least 2 inputs .* got 1"):
        vqlib.fit(model, x[:1], epochs=1)
    with pytest.raises(ValueError, match="at least 2 inputs"):
        model.init_codebook(x[:1])
    with pytest.raises(ValueError, match=r"xs\[0\] must hold at least 2 inputs"):
        fit_ensemble([tiny(**kwargs), tiny(**kwargs)], [x[:1], x[1:2]], epochs=1)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # nothing was half-trained


@pytest.mark.parametrize("kwargs", [dict(K=4), dict(K=1), dict(K=4, init="data")])
def test_supersample_of_one_pair_is_refused(x, kwargs):
    with pytest.raises(ValueError, match=r"n=1.*n ≥ 2"):
        vqlib.run_supersample(x, 1, L=1, n_masks=2, n_supersamples=1, epochs=1, **kwargs)


def test_a_trained_codebook_trains_on_one_row_and_a_kmeans_learner_on_one_pair(x):
    model = tiny(K=4)
    vqlib.fit(model, x[:8], epochs=1)
    history = vqlib.fit(model, x[:1], epochs=1)  # the codebook already started from data
    assert math.isfinite(history.final.train_loss)
    r = vqlib.run_supersample(x, 1, 4, 1, n_masks=2, n_supersamples=1, learner="kmeans", confidence=None)
    assert math.isfinite(r.gap) and all(map(math.isfinite, r.bounds.values()))


def test_divergence_is_an_error_not_nan(x):
    with pytest.raises(FloatingPointError, match="lr=1e\\+30"):
        vqlib.fit(tiny(), x[:32], epochs=2, lr=1e30)
    with pytest.raises(ValueError, match="lr must be at most"):
        vqlib.fit(tiny(), x[:32], epochs=1, lr=1e300)


# 2. latent_kl_terms --------------------------------------------------------------------


@pytest.mark.parametrize("posteriors, match", [
    (np.full((3, 2, 1, 2), np.nan), "posteriors must be finite"),
    (np.array([[[[1.5, -0.5]]] * 2] * 3), "posteriors must be non-negative"),
    (np.full((3, 2, 1, 2), 0.7), "posteriors must sum to 1"),
    (np.full((3, 2, 1, 2), 0.5 + 0j), "posteriors must hold real numbers"),
    (np.full((3, 3, 1, 2), 0.5), r"shape \(runs ≥ 2, 2, L, K\)"),
])
def test_latent_kl_terms_refuse_what_is_not_posteriors(posteriors, match):
    with pytest.raises(ValueError, match=match):
        latent_kl_terms(posteriors)


def test_latent_kl_terms_check_the_priors_and_eps():
    p = np.full((3, 2, 1, 2), 0.5)
    with pytest.raises(ValueError, match="reference must sum to 1"):
        latent_kl_terms(p, reference=np.full((2, 1, 2), 0.6))
    with pytest.raises(ValueError, match="aggregated must be finite"):
        latent_kl_terms(p, aggregated=np.full((1, 2), np.nan))
    with pytest.raises(ValueError, match="eps"):
        latent_kl_terms(p, eps=float("nan"))
    assert latent_kl_terms(p)["kl_uniform"] == 0.0  # uniform posteriors: KL exactly 0, never −1e-16


# 3. pair_terms --------------------------------------------------------------------------


@pytest.mark.parametrize("loss0, loss1, U, match", [
    ([.1, .2, .3], [.5, .1, .9], [5, -3, 7], "U must hold only 0 and 1, found 5"),
    ([.1, .2, .3], [.5, .1, .9], [0.5, 1, 0], "U must hold only 0 and 1"),
    ([.1, 5, .3], [.5, .1, .9], [0, 1, 0], r"loss0 must lie in \[0, 1\]"),
    ([.1, .2, .3], [.5, -10, .9], [0, 1, 0], r"loss1 must lie in \[0, 1\]"),
    ([.1, np.nan, .3], [.5, .1, .9], [0, 1, 0], "loss0 must be finite"),
    ([.1, .2, .3], ["a", "b", "c"], [0, 1, 0], "loss1 must be an array of numbers"),
])
def test_pair_terms_refuse_what_is_not_losses_and_mask_bits(loss0, loss1, U, match):
    with pytest.raises(ValueError, match=match):
        pair_terms(loss0, loss1, U)


def test_pair_terms_information_never_exceeds_log_2():
    t = pair_terms([.1, .2, .3, .4], [.5, .1, .9, .0], [True, False, True, False])
    assert 0 <= t["e_mi"] <= math.log(2) + 1e-12 and 0 <= t["ld_mi"] <= math.log(2) + 1e-12


# 9. seeds, W2, decoding, sizes, devices, models ----------------------------------------------


@pytest.mark.parametrize("seed, match", [(2**70, "at most 2\\*\\*63 - 1"), (2**64 + 5, "at most"), (None, "integer"),
                                         (1.5, "integer, got 1.5"), (-1, "at least 0"), (True, "integer")])
def test_seeds_are_checked_everywhere(x, seed, match):
    with pytest.raises(ValueError, match=f"seed must be .*{match}"):
        vqlib.VQVAE((1, 8, 8), K=2, L=1, seed=seed)
    with pytest.raises(ValueError, match=f"seed must be .*{match}"):
        vqlib.fit(tiny(), x[:8], epochs=1, train_seed=seed)
    with pytest.raises(ValueError, match=f"seeds must be .*{match}"):
        fit_ensemble([tiny(), tiny()], [x[:8], x[8:16]], epochs=1, train_seeds=seed)
    with pytest.raises(ValueError, match=f"seed must be .*{match}"):
        vqlib.reconstruction_loss(tiny(), x[:2], seed=seed)
    with pytest.raises(ValueError, match=f"seed must be .*{match}"):
        vqlib.run_supersample(x, 4, 2, 1, n_masks=2, n_supersamples=1, train_seed=seed)
    with pytest.raises(ValueError, match=f"seed.* must be .*{match}"):
        vqlib.run_supersample(x, 4, 2, 1, n_masks=2, supersample_seeds=[seed])
    with pytest.raises(ValueError, match=f"mask_seed must be .*{match}"):
        vqlib.draw_mask(4, mask_seed=seed)
    with pytest.raises(ValueError, match=f"seed must be .*{match}"):
        vqlib.UniformPrior(2, 1).sample(2, seed=seed)
    assert vqlib.VQVAE((1, 8, 8), K=2, L=1, seed=2**63 - 1).seed == 2**63 - 1  # the largest seed works


@pytest.mark.parametrize("budget", [float("inf"), float("nan"), 0, 2**64, "many"])
def test_w2_names_a_bad_budget(budget):
    with pytest.raises(ValueError, match="num_itermax"):
        vqlib.w2(np.zeros((3, 2)), np.ones((3, 2)), num_itermax=budget)


def test_w2_of_huge_and_tiny_values_is_exact():
    assert vqlib.w2(np.full((3, 2), 1e200), np.ones((3, 2))) == pytest.approx(math.sqrt(2) * 1e200, rel=1e-12)
    assert vqlib.w2(np.array([0.0, 3e-300]), np.array([1e-300, 4e-300])) == pytest.approx(1e-300, rel=1e-12)
    assert vqlib.w2(np.array([1.7e308]), np.array([1.0e308])) == pytest.approx(0.7e308, rel=1e-12)
    with pytest.raises(ValueError, match="too far apart"):
        vqlib.w2(np.array([1.7e308]), np.array([-1.7e308]))


@pytest.mark.parametrize("bad", [np.zeros((3, 2)) + 1j, torch.zeros(3, 2, dtype=torch.complex64)])
def test_w2_refuses_complex_points(bad):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "discards the imaginary part" warning either
        with pytest.raises(ValueError, match="x must hold real numbers"):
            vqlib.w2(bad, np.ones((3, 2)))


def test_decoding_no_latent_variables_gives_no_images():
    model = tiny(K=2, L=2)
    out = model.decode_indices(torch.zeros(0, 2, dtype=torch.long))
    assert tuple(out.shape) == (0, 1, 8, 8)
    with pytest.raises(ValueError, match=r"indices must have shape \(N, L=2\)"):
        model.decode_indices(torch.zeros(0, 3, dtype=torch.long))


def test_encoder_only_supersample_needs_data_outside_it(x):
    with pytest.raises(ValueError, match=r"n=20: train='encoder' .* 40 inputs leave 0 .* n ≤ 19"):
        vqlib.run_supersample(x[:40], 20, 4, 1, n_masks=2, n_supersamples=1, epochs=1, train="encoder")


def test_an_ensemble_holds_distinct_models(x):
    m = tiny()
    with pytest.raises(ValueError, match=r"models\[1\] is models\[0\]"):
        fit_ensemble([m, m], [x[:8], x[8:16]], epochs=1)
    with pytest.raises(ValueError, match="vqlib.VQVAE"):
        fit_ensemble([m, torch.nn.Linear(2, 2)], [x[:8], x[8:16]], epochs=1)


@pytest.mark.parametrize("device", ["meta", "xla", "nosuchdevice"])
def test_devices_vqlib_cannot_train_on_are_refused(x, device):
    with pytest.raises(ValueError, match=f"device='{device}'"):
        vqlib.fit(tiny(), x[:8], epochs=1, device=device)


def test_a_model_larger_than_memory_is_refused_before_allocating():
    with pytest.raises(ValueError, match=r"K=1000000000000, .* more than this machine's"):
        vqlib.VQVAE((1, 8, 8), K=10**12, L=1)
    with pytest.raises(ValueError, match="encoder 2×1000000000000, decoder 2×1000000000000"):
        vqlib.VQVAE((1, 8, 8), K=2, L=1, hidden=10**12)  # the layer widths too


def test_a_codebook_far_larger_than_the_data_warns(x):
    with pytest.warns(UserWarning, match=r"K=1024 codes far exceed the 16 encoder outputs of 16 training inputs"):
        vqlib.fit(vqlib.VQVAE((1, 8, 8), K=1024, L=1, hidden=8), x[:16], epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vqlib.fit(vqlib.VQVAE((1, 8, 8), K=512, L=1, hidden=8), x[:16], epochs=1)  # the book's largest K: quiet


@pytest.mark.parametrize("call", [
    lambda m, x: vqlib.fit(m, x, epochs=1),
    lambda m, x: vqlib.reconstruction_loss(m, x),
    lambda m, x: vqlib.encode_indices(m, x),
    lambda m, x: vqlib.model_summary(m, x),
    lambda m, x: vqlib.generate(m, 2),
])
def test_a_model_that_is_not_a_vqvae_is_named(x, call):
    with pytest.raises(ValueError, match="model must be a vqlib.VQVAE, got Linear"):
        call(torch.nn.Linear(64, 64), x[:4])


@pytest.mark.parametrize("kwargs, name", [(dict(beta=None), "beta"), (dict(beta="x"), "beta"),
                                          (dict(decay="0.9"), "decay"), (dict(decay=1.0), "decay"),
                                          (dict(commitment="0.25"), "commitment")])
def test_every_model_argument_is_checked(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} must"):
        vqlib.VQVAE((1, 8, 8), K=2, L=1, **kwargs)


def test_non_numbers_are_named_not_passed_to_numpy(x):
    with pytest.raises(ValueError, match="kl_prior must be an array of numbers"):
        vqlib.fit(tiny(), x[:8], epochs=1, kl_weight=0.1, kl_prior="a")
    with pytest.raises(ValueError, match="a must be a 1-D array of labels, got a ragged sequence"):
        vqlib.plugin_mi([[1, 2], [3]], [0, 1])
