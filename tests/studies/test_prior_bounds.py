"""Latent-variable bounds with a supersample prior (chapter 4), against closed forms."""
import json
import math

import numpy as np
import pytest
import torch

import vqlib
from vqlib.bounds import latent_kl_terms
from vqlib.studies.prior_bounds import (EncoderRuns, LVResult, encoder_loss, encoder_only_runs, kl_to_prior, leave_one_out_prior, lv_summary, pair_kl_terms, smooth, swap_mixture_kl, train_reference, training_half_prior, uniform_kl)


@pytest.fixture(scope="module")
def digits():
    return vqlib.load_dataset("digits", split="all")


@pytest.fixture(scope="module")
def reference(digits):
    return train_reference(digits[:200], K=8, L=2, epochs=3, hidden=16)


# ------------------------------------------------------------------ closed forms


def test_uniform_kl_closed_form():
    assert uniform_kl(16, 4) == pytest.approx(4 * math.log(16))
    assert uniform_kl(16, 4, entropy=1.5) == pytest.approx(4 * math.log(16) - 1.5)
    assert uniform_kl(1, 3) == 0.0
    # agrees with the KL of one-hot posteriors to the uniform prior
    post = np.eye(16)[np.array([[3, 0, 15, 7]])]  # (1, L=4, K=16)
    assert kl_to_prior(post, np.full(16, 1 / 16))[0] == pytest.approx(uniform_kl(16, 4))


@pytest.mark.parametrize("kwargs, name", [
    (dict(K=0, L=1), "K"), (dict(K=4, L=0), "L"), (dict(K=4, L=2, entropy=3.0), "entropy"),
    (dict(K=4, L=2, entropy=-0.1), "entropy"),
])
def test_uniform_kl_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        uniform_kl(**kwargs)


def test_kl_to_prior_closed_forms():
    q = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])  # L = 2 positions, K = 3
    pi = np.array([[0.25, 0.25, 0.5], [0.5, 0.25, 0.25]])
    expected = 0.5 * math.log(2) * 2 + math.log(2)  # Σ_l KL(q_l ‖ π_l)
    assert kl_to_prior(q, pi) == pytest.approx(expected)
    assert kl_to_prior(q, q) == 0.0
    # mass where the prior has none: infinite
    assert kl_to_prior(q, np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])) == np.inf
    # leading axes and broadcasting
    many = np.stack([q, q, q])
    assert np.allclose(kl_to_prior(many, pi), expected)


def test_kl_to_prior_rejects_bad_input():
    with pytest.raises(ValueError, match="posteriors"):
        kl_to_prior(np.array([[0.5, 0.6]]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="prior"):
        kl_to_prior(np.full((2, 3), 1 / 3), np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="prior"):
        kl_to_prior(np.full((2, 3), 1 / 3), np.array([0.5, 0.7, -0.2]))


def test_smooth():
    p = np.array([1.0, 0.0, 0.0, 0.0])
    s = smooth(p, 0.2)
    assert np.allclose(s, [0.85, 0.05, 0.05, 0.05]) and s.sum() == pytest.approx(1)
    # a changed code costs log(K/ε) up to the 1−ε factor: −log(ε/K)
    assert kl_to_prior(np.eye(4)[[[2]]], smooth(np.eye(4)[[[0]]], 0.01)) == pytest.approx(math.log(4 / 0.01))
    with pytest.raises(ValueError, match="eps"):
        smooth(p, 1.0)


def test_leave_one_out_prior_closed_form():
    post = np.eye(3)[np.array([[0], [1], [1]])]  # M = 3 runs, one position, K = 3
    loo = leave_one_out_prior(post, eps=0.0)
    assert np.allclose(loo[0, 0], [0, 1, 0])  # the other two runs chose code 1
    assert np.allclose(loo[1, 0], [0.5, 0.5, 0])
    eps = 0.03
    loo = leave_one_out_prior(post, eps=eps)
    kl = kl_to_prior(post, loo)
    assert kl[0] == pytest.approx(-math.log(eps / 3))  # code 0 unseen by the others
    assert kl[1] == pytest.approx(-math.log((1 - eps) * 0.5 + eps / 3))
    with pytest.raises(ValueError, match="posteriors"):
        leave_one_out_prior(post[:1])


def test_in_sample_and_leave_one_out_bracket_the_marginal_entropy():
    """For a deterministic quantizer the mask-marginal KL of one position is the entropy
    H(p) of its code over masks: the in-sample estimate is below it on average (plug-in
    entropy), the leave-one-out one above it (cross-entropy to an independent estimate)."""
    rng = np.random.default_rng(0)
    p = np.array([0.6, 0.25, 0.1, 0.05])
    H = -(p * np.log(p)).sum()
    ins, loo = [], []
    for _ in range(400):
        post = np.eye(4)[rng.choice(4, size=(8, 1), p=p)]  # M = 8 runs, one position
        ins.append(kl_to_prior(post, post.mean(0, keepdims=True)).mean())
        loo.append(kl_to_prior(post, leave_one_out_prior(post, eps=0.01)).mean())
    assert np.mean(ins) < H - 0.05 and np.mean(loo) > H + 0.05


def test_swap_mixture_kl_closed_forms():
    K, eps = 5, 0.1
    j = np.array([[1, 2], [3, 0]])  # the pair's codes: point 0 → (1, 2), point 1 → (3, 0); L = 2
    r = smooth(np.full((2, K), 1 / K), eps)
    # equal priors: the mixture is the product itself
    expected = -4 * math.log(1 / K)
    assert swap_mixture_kl(j, np.log(r), np.log(r)) == pytest.approx(expected)
    # point masses at the pair's own codes: the mixture gives each order ½, so KL = log 2
    with np.errstate(divide="ignore"):
        lp0, lp1 = np.log(np.eye(K)[j[0]]), np.log(np.eye(K)[j[1]])
    assert swap_mixture_kl(j, lp0, lp1) == pytest.approx(math.log(2))
    # a pair whose two points share their codes: the two components coincide, KL = 0
    same = np.array([[1, 2], [1, 2]])
    assert swap_mixture_kl(same, lp0, lp0) == pytest.approx(0.0)
    # codes the prior excludes in both orders: infinite
    assert swap_mixture_kl(j, lp0, lp0) == np.inf
    # log-sum-exp against a direct computation on smoothed point masses
    s0, s1 = smooth(np.eye(K)[j[0]], eps), smooth(np.eye(K)[j[1]], eps)
    a = np.log(s0[[0, 1], j[0]]).sum() + np.log(s1[[0, 1], j[1]]).sum()
    c = np.log(s1[[0, 1], j[0]]).sum() + np.log(s0[[0, 1], j[1]]).sum()
    assert swap_mixture_kl(j, np.log(s0), np.log(s1)) == pytest.approx(-math.log(0.5 * (math.exp(a) + math.exp(c))))


def test_swap_mixture_kl_rejects_bad_input():
    lp = np.log(np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="codes"):
        swap_mixture_kl(np.array([[0, 9], [1, 1]]), lp, lp)
    with pytest.raises(ValueError, match="codes"):
        swap_mixture_kl(np.array([0.0, 1.0]), lp, lp)
    with pytest.raises(ValueError, match="log_prior"):
        swap_mixture_kl(np.array([[0, 1], [1, 1]]), lp, lp[:1])


def test_training_half_prior_closed_form():
    # M = 1 run, n = 2 pairs, L = 1, K = 3: training points are X̃_{0,1} (code 2) and X̃_{1,0} (code 0)
    codes = np.array([[[[0], [2]], [[0], [1]]]])  # (M, n, 2, L)
    post = np.eye(3)[codes]
    prior = training_half_prior(post, np.array([[1, 0]]), eps=0.0)
    assert np.allclose(prior[0, 0], [0.5, 0, 0.5])
    with pytest.raises(ValueError, match="masks"):
        training_half_prior(post, np.array([[1, 2]]))
    with pytest.raises(ValueError, match="masks"):
        training_half_prior(post, np.array([1, 0]))


def test_pair_kl_terms_agree_with_latent_kl_terms():
    rng = np.random.default_rng(3)
    M, n, L, K = 5, 4, 3, 6
    post = np.eye(K)[rng.integers(0, K, (M, n, 2, L))]
    ref = np.eye(K)[rng.integers(0, K, (n, 2, L))]
    masks = rng.integers(0, 2, (M, n))
    terms = pair_kl_terms(post, ref, masks, eps=0.01)
    for i in range(n):
        lead = latent_kl_terms(post[:, i], reference=ref[i], aggregated=ref.mean((0, 1)), eps=0.01)
        for name, lead_name in [("uniform", "uniform"), ("marginal_loo", "marginal"), ("reference", "reference"),
                                ("aggregated", "aggregated")]:
            assert terms[name][:, i].mean() == pytest.approx(lead[f"kl_{lead_name}"], rel=1e-10), name
    assert np.allclose(terms["uniform"], 2 * L * math.log(K))
    assert np.all(terms["own"] == 0)
    assert np.all(terms["swap_trained"] <= math.log(2) + 1e-12)
    # the swap mixture of the reference posteriors costs at most log 2 more than the reference itself
    assert np.all(terms["swap"] <= terms["reference"] + math.log(2) + 1e-9)
    with pytest.raises(ValueError, match="reference"):
        pair_kl_terms(post, ref[:2], masks)
    with pytest.raises(ValueError, match="eps"):
        pair_kl_terms(post, ref, masks, eps=0)


# ------------------------------------------------------------------ runs


def test_train_reference_freezes_and_rejects_softmax(digits, reference):
    assert reference.quantizer.update == "frozen" and not reference.training
    assert not any(p.requires_grad for p in reference.decoder.parameters())
    with pytest.raises(ValueError, match="quantizer"):
        train_reference(digits[:50], 4, 1, epochs=1, hidden=8, quantizer="softmax")


def test_encoder_loss_matches_the_model(digits, reference):
    """The batched loss equals VQVAE.forward's loss for each encoder."""
    torch.manual_seed(0)
    models, params = [], []
    for r in range(3):
        m = vqlib.VQVAE((1, 8, 8), K=8, L=2, hidden=16)
        m.load_state_dict(reference.state_dict())
        m.freeze_codebook_and_decoder()
        with torch.no_grad():
            for p in m.encoder.parameters():
                p.add_(0.05 * r * torch.randn_like(p))
        models.append(m.eval())
    for layer in range(len([x for x in models[0].encoder if isinstance(x, torch.nn.Linear)])):
        idx = [i for i, x in enumerate(models[0].encoder) if isinstance(x, torch.nn.Linear)][layer]
        params += [torch.stack([m.encoder[idx].weight for m in models]), torch.stack([m.encoder[idx].bias for m in models])]
    xs = torch.stack([digits[10 * r:10 * r + 10] for r in range(3)])
    with torch.no_grad():
        got = encoder_loss(reference, params, xs)
        want = torch.stack([m(xs[r]).loss for r, m in enumerate(models)])
    assert torch.allclose(got, want, atol=1e-6)


def test_runs_without_training_reproduce_the_reference(digits, reference):
    runs = encoder_only_runs(digits[200:], reference, 6, supersample_seeds=[0, 1], n_masks=3, steps=0)
    ss = vqlib.make_supersample(digits[200:], 6, supersample_seed=1)
    flat = ss.flat()
    assert np.allclose(runs.reference_losses[1].reshape(-1), vqlib.reconstruction_loss(reference, flat).numpy(),
                       atol=1e-6)
    assert np.array_equal(runs.reference_codes[1].reshape(-1, 2), vqlib.encode_indices(reference, flat).numpy())
    assert np.allclose(runs.losses, runs.reference_losses[:, None]) and np.array_equal(
        runs.codes, np.broadcast_to(runs.reference_codes[:, None], runs.codes.shape))
    r = lv_summary(runs)
    assert r.gap == 0.0 and r.kl["marginal"] == 0.0  # nothing depends on the mask
    assert r.gap_plain != 0.0  # the plain estimate still sees which point was trained on
    assert np.array_equal(runs.masks[1, 2], vqlib.draw_mask(6, mask_seed=1002))


def test_runs_train_only_the_encoder(digits, reference):
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    runs = encoder_only_runs(digits[200:], reference, 8, supersample_seeds=[0, 1], n_masks=4, steps=30, lr=1e-2)
    for k, v in reference.state_dict().items():
        assert torch.equal(v, before[k]), k  # the reference itself is untouched
    assert runs.codes.shape == (2, 4, 8, 2, 2) and runs.losses.shape == (2, 4, 8, 2)
    assert (runs.codes != runs.reference_codes[:, None]).any()  # training moved some LVs
    again = encoder_only_runs(digits[200:], reference, 8, supersample_seeds=[0, 1], n_masks=4, steps=30, lr=1e-2)
    assert np.array_equal(runs.losses, again.losses)  # reproducible
    sub = runs.first_masks(2)
    assert sub.masks.shape == (2, 2, 8) and np.array_equal(sub.codes, runs.codes[:, :2])


@pytest.mark.parametrize("kwargs, name", [
    (dict(n=0), "n"), (dict(n=900), "n"), (dict(n_masks=1), "n_masks"), (dict(supersample_seeds=[1, 1]), "supersample_seeds"),
    (dict(supersample_seeds=[]), "supersample_seeds"), (dict(steps=-1), "steps"), (dict(lr=0), "lr"),
])
def test_runs_reject_bad_input(digits, reference, kwargs, name):
    args = dict(n=4, supersample_seeds=[0], n_masks=2, steps=1) | kwargs
    with pytest.raises(ValueError, match=name):
        encoder_only_runs(digits[200:], reference, **args)


def test_runs_need_a_frozen_reference(digits):
    model = vqlib.VQVAE((1, 8, 8), K=4, L=1, hidden=8)
    with pytest.raises(ValueError, match="reference"):
        encoder_only_runs(digits, model, 4, supersample_seeds=[0])
    with pytest.raises(ValueError, match="reference"):
        encoder_only_runs(digits, "model", 4, supersample_seeds=[0])


def test_summary_bounds_hold_and_have_their_closed_forms(digits, reference):
    runs = encoder_only_runs(digits[200:], reference, 8, supersample_seeds=[0, 1, 2], n_masks=4, steps=40, lr=1e-2)
    r = lv_summary(runs)
    K, L = 8, 2
    assert r.bounds["lv_uniform"] == pytest.approx(math.sqrt(2 * 2 * L * math.log(K)))
    assert r.invalid["own"] == 0.0 and r.invalid["swap_trained"] <= math.sqrt(2 * math.log(2)) + 1e-12
    assert r.kl["marginal"] <= r.kl["uniform"]
    for per in r.per_supersample:  # validity: every bound is above the measured gap
        for name in r.bounds:
            assert per[name] >= per["gap"] - 2 * per["gap_sem"], (name, per)
    # the two gap estimates differ by the control variate only
    s = 0
    U, los, ref = runs.masks[s], runs.losses[s], runs.reference_losses[s]
    sign = 1 - 2 * U
    plain = (sign * (los[..., 1] - los[..., 0])).mean()
    control = (sign * (ref[None, :, 1] - ref[None, :, 0])).mean()
    assert r.per_supersample[s]["gap_plain"] == pytest.approx(plain)
    assert r.per_supersample[s]["gap"] == pytest.approx(plain - control)
    assert len(r.rows) == 3 * 4 * 8
    assert {"supersample_seed", "mask_seed", "train_seed", "U", "loss0", "loss1"} <= set(r.rows[0])
    json.dumps(r.to_json())
    assert r.to_csv().count("\n") == len(r.rows) + 1
    with pytest.raises(ValueError, match="runs"):
        lv_summary("runs")
    with pytest.raises(ValueError, match="eps"):
        lv_summary(runs, eps=1.5)


def test_summary_is_certified_with_every_valid_prior(digits, reference):
    runs = encoder_only_runs(digits[200:], reference, 8, supersample_seeds=[0, 1], n_masks=64, steps=20, lr=1e-2)
    r = lv_summary(runs)
    assert r.confidence == 0.95
    assert set(r.certified) == {"ld_cmi_cosh", "ld_cmi", "e_cmi_cosh", "e_cmi", "held_out", "lv_uniform",
                                "lv_marginal", "lv_reference", "lv_aggregated", "lv_swap"}
    # frozen decoder: an LV bound costs δ when the fit runs say it can be below 1; the uniform prior of a
    # deterministic quantizer costs exactly 2L log K per pair (exact, vacuous) and the others are chosen
    kinds = r.certified_kinds
    assert kinds["lv_uniform"] == "exact" and r.certified["lv_uniform"] == 1.0
    assert all(kinds[k] == "certified" for k in ("ld_cmi_cosh", "e_cmi_cosh", "held_out"))
    for name, kind in kinds.items():
        assert (name in r.certificate["allocation"] or name.rstrip("_cmi_cosh") + "_boxes" in r.certificate["allocation"]
                or kind == "exact" or name in ("ld_cmi", "e_cmi")), name
        if kind == "exact":
            assert r.certified[name] == 1.0 and any(note.startswith(name) for note in r.certificate["notes"])
    assert sum(r.certificate["allocation"].values()) == pytest.approx(0.05)
    for name, value in r.certified.items():  # certified values bound the average gap
        assert r.gap - 2 * r.gap_sem <= value <= 1.0, name
    assert r.certified["held_out"] < 1.0  # betting on the control-variate gaps certifies something
    assert lv_summary(runs, confidence=None).certified == {}
    json.dumps(r.to_json())
    # what a cached sweep stores and chapter 4 reads back: the same result, through JSON
    back = LVResult.from_json(json.loads(json.dumps(r.to_json())))
    assert back.to_json() == json.loads(json.dumps(r.to_json()))
    stored = {k: v for k, v in r.to_json().items() if k != "rows"}
    assert LVResult.from_json(stored).certified == r.certified and LVResult.from_json(stored).rows == []
    with pytest.raises(ValueError, match="unknown fields \\['extra'\\]"):
        LVResult.from_json({**stored, "extra": 1})
    with pytest.raises(ValueError, match="missing fields \\['gap'\\]"):
        LVResult.from_json({k: v for k, v in stored.items() if k != "gap"})
    with pytest.raises(ValueError, match="data must be a dict"):
        LVResult.from_json([1])


def test_encoder_runs_is_exported():
    assert EncoderRuns.__doc__ and "chapter 4" in EncoderRuns.__doc__
