"""Chapter 6: the softmax quantizer's stability bounds, checked against exact values,
worst cases and trained models."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vqlib
from vqlib.studies import temperature as tp
from vqlib.models import VectorQuantizer


def kl(p, q):
    p, q = np.asarray(p, float), np.asarray(q, float)
    return float(np.sum(np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)))


# --------------------------------------------------------------------------- closed forms


def test_log_ratio_bound_values():
    assert tp.log_ratio_bound(1.0) == pytest.approx(8.0)
    assert tp.log_ratio_bound(0.5, s=2.0, L=3) == pytest.approx(6.0)
    assert tp.SPHERE_RANGE == 4.0


@pytest.mark.parametrize("beta", [0, -1.0, float("nan"), float("inf"), "1", None, True])
def test_bad_beta_raises(beta):
    with pytest.raises(ValueError, match="beta"):
        tp.log_ratio_bound(beta)
    with pytest.raises(ValueError, match="beta"):
        tp.kl_stability_bound(beta)
    with pytest.raises(ValueError, match="beta"):
        tp.stability_gap_bound(beta, L=2)


def test_other_bad_inputs_raise():
    with pytest.raises(ValueError, match="width"):
        tp.kl_from_width(-0.1)
    with pytest.raises(ValueError, match="width"):
        tp.kl_from_width(float("nan"))
    with pytest.raises(ValueError, match="prior"):
        tp.kl_stability_bound(1.0, prior="gaussian")
    with pytest.raises(ValueError, match="L"):
        tp.log_ratio_bound(1.0, L=0)
    with pytest.raises(ValueError, match="s"):
        tp.log_ratio_bound(1.0, s=-4)
    with pytest.raises(ValueError, match="loss_range"):
        tp.stability_gap_bound(1.0, L=1, loss_range=0)
    with pytest.raises(ValueError, match="K"):
        tp.kl_stability_bound(1.0, K=0)


def test_kl_from_width_is_min_of_linear_and_quadratic():
    assert tp.kl_from_width(0.0) == 0.0
    assert tp.kl_from_width(1.0) == pytest.approx(1 / 8)
    assert tp.kl_from_width(8.0) == pytest.approx(8.0)  # the two meet at w = 8
    assert tp.kl_from_width(20.0) == pytest.approx(20.0)


def test_kl_lemma_holds_on_random_pairs_and_is_tight_for_small_width():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        K = int(rng.integers(2, 12))
        p0 = rng.dirichlet(np.ones(K) * rng.uniform(0.2, 3))
        r = rng.uniform(0, rng.uniform(0.01, 12), size=K)  # log-ratio before normalising
        p1 = p0 * np.exp(r)
        p1 /= p1.sum()
        width = float(np.ptp(np.log(p1) - np.log(p0)))
        assert kl(p1, p0) <= tp.kl_from_width(width) + 1e-12
    # two points, log-ratio ±w/2 up to a constant: KL = (w/2) tanh(w/2) − log cosh(w/2) → w²/8
    w = 0.01
    p = np.array([math.exp(w / 2), math.exp(-w / 2)]) / (2 * math.cosh(w / 2))
    assert kl(p, [0.5, 0.5]) / tp.kl_from_width(w) > 0.99


def test_stability_information_and_gap_bound():
    beta, L, K = 0.1, 4, 64
    per_input = L * (beta * 4) ** 2 / 8
    assert tp.kl_stability_bound(beta, L=L, K=K) == pytest.approx(per_input)
    assert tp.stability_information(beta, L, K=K) == pytest.approx(2 * per_input)
    assert tp.stability_gap_bound(beta, L, K=K) == pytest.approx(math.sqrt(4 * per_input))
    assert tp.stability_information(100.0, L, K=K) == pytest.approx(math.log(2))  # a coin's entropy caps it
    assert tp.kl_stability_bound(100.0, L=L, K=K) == pytest.approx(L * math.log(K))
    assert tp.kl_stability_bound(beta, L=L, prior="softmax") == pytest.approx(L * (2 * beta * 4) ** 2 / 8)
    # monotone in β: the bound falls as β falls
    values = [tp.stability_gap_bound(b, L, K=K) for b in (0.01, 0.03, 0.1, 0.2)]
    assert values == sorted(values) and values[0] < values[-1]
    d = np.linspace(-0.02, 0.02, 11)
    assert tp.stability_cosh_bound(beta, L, d, K=K) <= tp.stability_gap_bound(beta, L, K=K) * 0.02 + 1e-12


# --------------------------------------------------------------------------- the quantizer itself


def _softmax_quantizer(codes, beta):
    vq = VectorQuantizer(codes.shape[0], codes.shape[1], quantizer="softmax", beta=beta)
    vq.set_codebook(codes)
    return vq


def test_vqlib_softmax_posteriors_obey_every_bound():
    gen = torch.Generator().manual_seed(0)
    for beta in (0.05, 0.5, 3.0):
        for K, D in ((2, 2), (16, 8), (64, 3)):
            vq = _softmax_quantizer(torch.randn(K, D, generator=gen), beta)
            other = _softmax_quantizer(torch.randn(K, D, generator=gen), beta)  # another codebook
            z = F.normalize(torch.randn(50, 1, D, generator=gen), dim=-1)
            logs = vq.posterior(z).double().log().reshape(50, K)
            logs_other = other.posterior(z.flip(0)).double().log().reshape(50, K)
            bound = tp.log_ratio_bound(beta)
            assert float((logs.max(0).values - logs.min(0).values).max()) <= bound + 1e-6
            assert float((logs - logs_other).abs().max()) <= bound + 1e-6
            assert float((logs + math.log(K)).abs().max()) <= beta * 4 + 1e-6
            p = logs.exp().numpy()
            for i in range(0, 49, 7):
                assert kl(p[i], np.full(K, 1 / K)) <= tp.kl_stability_bound(beta, K=K) + 1e-9
                assert kl(p[i], p[i + 1]) <= tp.kl_stability_bound(beta, prior="softmax") + 1e-9
                assert kl(p[i], logs_other[i].exp().numpy()) <= tp.kl_stability_bound(beta, prior="softmax") + 1e-9


def test_log_ratio_bound_is_attained_in_the_limit():
    """One code at e, K − 1 codes at −e; inputs z = e and z' = −e: the ratio of code 0 is
    4β + log((K−1)/(1 + (K−1)e^{−4β})), which tends to 2βs = 8β as K grows."""
    beta, K = 1.0, 1001
    e = torch.zeros(1, 3)
    e[0, 0] = 1.0
    codes = torch.cat([e, -e.repeat(K - 1, 1)])
    vq = _softmax_quantizer(codes, beta)
    z = torch.stack([e, -e])  # (2, 1, 3)
    logs = vq.posterior(z).double().log()
    ratio = float(logs[0, 0, 0] - logs[1, 0, 0])
    exact = 4 * beta + math.log((K - 1) / (1 + (K - 1) * math.exp(-4 * beta)))
    assert ratio == pytest.approx(exact, rel=1e-5)
    assert 0.98 * tp.log_ratio_bound(beta) < ratio <= tp.log_ratio_bound(beta)


# --------------------------------------------------------------------------- trained models


@pytest.fixture(scope="module")
def digits():
    x = vqlib.load_dataset("digits", split="all")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[order[:300]], x[order[300:]]


@pytest.fixture(scope="module")
def reference(digits):
    return tp.train_reference(digits[0], 8, 2, epochs=4, lr=5e-3, hidden=32, train_seed=0)


def test_with_temperature_changes_only_the_rule(reference, digits):
    hot = tp.with_temperature(reference, 2.0)
    assert reference.quantizer.quantizer == "nearest" and hot.quantizer.quantizer == "softmax"
    assert hot.beta == 2.0 and hot.config["beta"] == 2.0 and hot.quantizer.update == "frozen"
    x = digits[1][:20]
    with torch.no_grad():
        z = reference.encode(x).reshape(-1, reference.code_dim)
        d = ((z[:, None] - reference.quantizer.codes[None]) ** 2).sum(-1)
    expected = torch.log_softmax(-2.0 * d, dim=1).reshape(20, 2, 8)
    assert torch.allclose(tp.log_posterior(hot, x), expected, atol=1e-5)
    with pytest.raises(ValueError, match="beta"):
        tp.with_temperature(reference, 0.0)
    with pytest.raises(ValueError, match="softmax"):
        tp.log_posterior(reference, x)


def test_measured_log_ratio_on_trained_models_is_within_the_bound(reference, digits):
    x_ref, pool = digits
    beta = 3.0
    model = tp.with_temperature(reference, beta)
    other = tp.with_temperature(reference, beta)
    for p in other.encoder.parameters():
        p.requires_grad_(True)
    vqlib.fit(other, pool[:100], epochs=3, lr=1e-2, train_seed=1)  # another encoder, trained on other data
    x = pool[100:400]
    across_inputs = tp.max_log_ratio(model, x)
    across_models = tp.max_log_ratio(model, x, other)
    across_both = tp.max_log_ratio(model, x, other, x.flip(0))
    bound = tp.log_ratio_bound(beta)
    for measured in (across_inputs, across_models, across_both):
        assert 0 < measured <= bound
    assert across_inputs > 1.0  # real inputs spread their posteriors: the check is not vacuous
    with pytest.raises(ValueError, match="beta"):
        tp.max_log_ratio(model, x, tp.with_temperature(reference, 1.0))
    with pytest.raises(ValueError, match="rows"):
        tp.max_log_ratio(model, x, other, x[:5])


def test_sampling_follows_the_posterior():
    gen = torch.Generator().manual_seed(0)
    log_q = torch.log_softmax(torch.randn(2, 3, 2, 5, generator=gen), -1)
    u = torch.rand(3, 20000, 2, generator=gen)
    j = tp._sample_codes(log_q, u)
    assert j.shape == (2, 3, 20000, 2) and j.min() >= 0 and j.max() < 5
    freq = F.one_hot(j, 5).double().mean(2)
    assert torch.allclose(freq, log_q.exp().double(), atol=0.015)
    per_run = tp._sample_codes(log_q, torch.rand(2, 3, 7, 2, generator=gen))  # one set of uniforms per run
    assert per_run.shape == (2, 3, 7, 2)
    # common random numbers: equal posteriors draw equal codes
    same = tp._sample_codes(log_q[:1].expand(2, -1, -1, -1), u)
    assert torch.equal(same[0], same[1])


def test_encoder_runs_and_summary(reference, digits):
    pool = digits[1]
    hot = tp.with_temperature(reference, 1.0)
    kwargs = dict(supersample_seeds=[0, 1], n_masks=3, steps=5, lr=1e-2, n_samples=4)
    runs = tp.softmax_encoder_runs(pool, hot, 8, **kwargs)
    assert runs.losses.shape == (2, 3, 8, 2) and runs.log_q.shape == (2, 3, 8, 2, 2, 8)
    assert np.allclose(np.exp(runs.log_q).sum(-1), 1, atol=1e-5)
    assert np.all((runs.losses >= 0) & (runs.losses <= 1))
    again = tp.softmax_encoder_runs(pool, hot, 8, **kwargs)
    assert np.array_equal(runs.losses, again.losses) and np.array_equal(runs.single, again.single)
    rows = tp.temperature_summary(runs)
    assert len(rows) == 2
    for r in rows:
        for key in ("supersample_seed", "mask_seeds", "train_seed", "sample_seed", "beta"):
            assert key in r
        assert r["kl_uniform_max"] <= r["kl_uniform_bound"]
        assert r["kl_reference_max"] <= r["kl_reference_bound"]
        assert r["max_log_ratio"] <= r["log_ratio_bound"]
        assert r["lv_uniform"] <= r["stability"] + 1e-12  # the measured KL is below its worst case
        assert r["stability"] == pytest.approx(tp.stability_gap_bound(1.0, 2, K=8))
        for name in tp.BOUNDS:
            assert math.isfinite(r[name]) and r[name] >= 0
        assert set(r["certified"]) == {"stability", "stability_cosh", "ld_cmi_cosh", "e_cmi_cosh", "held_out",
                                       "lv_uniform", "lv_reference"}
        assert r["certified_kinds"]["stability"] == "exact" and r["confidence"] == 0.95
        assert r["certified"] == rows[0]["certified"]  # one certificate for the β: the average over supersamples
        assert all(0 <= v <= 1 for v in r["certified"].values())
    # without training every run is the reference: the control-variate gap is exactly 0
    still = tp.temperature_summary(tp.softmax_encoder_runs(pool, hot, 8, **dict(kwargs, steps=0)))
    assert all(r["gap"] == 0 and r["kl_reference"] == 0 for r in still)
    with pytest.raises(ValueError, match="frozen"):
        unfrozen = tp.with_temperature(vqlib.VQVAE((1, 8, 8), 8, 2, hidden=32), 1.0)
        tp.softmax_encoder_runs(pool, unfrozen, 8, **kwargs)
    with pytest.raises(ValueError, match="softmax"):
        tp.softmax_encoder_runs(pool, reference, 8, **kwargs)
    with pytest.raises(ValueError, match="n="):
        tp.softmax_encoder_runs(pool, hot, 10_000, **kwargs)
    with pytest.raises(ValueError, match="runs"):
        tp.temperature_summary({"masks": 1})


def test_sweep_is_registered():
    from vqlib import sweeps

    sweep = sweeps.get("ch06-temperature")
    assert sweep.chapter == "06_temperature" and sweep.grid == ("beta",)
    quick = sweep.config("quick")
    assert len(quick["beta"]) >= 5 and min(quick["beta"]) < 0.1 and max(quick["beta"]) >= 30
