"""The softmax quantizer trained from scratch and the learned temperature (chapter 6).

What is tested: training follows the nearest code (the posterior's mode) for the EMA step,
the commitment loss and the usage counts, while the decoder sees the sampled code; the
nearest quantizer is untouched by that rule; a softmax model trained from scratch leaves
the mean-image plateau (it collapsed onto it before); ``beta="learned"`` starts at 1,
anneals upwards, is a float on ``model.beta``, trains in an ensemble exactly as ``fit``
trains it, and is fixed by ``with_temperature``; bad values of β are refused by name.
"""
import math

import pytest
import torch

import vqlib
from vqlib.models import fit_ensemble
from vqlib.models.quantizers import (DEFAULT_DECAY, LEARNED_BETA_RATE, check_beta, nearest, precision_loss, training_indices)
from vqlib.models import VectorQuantizer
from vqlib.studies.temperature import with_temperature


@pytest.fixture(scope="module")
def digits():
    return vqlib.load_dataset("digits", split="all")


def test_training_follows_the_nearest_code_while_the_decoder_sees_the_sample():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 3, quantizer="softmax", beta=0.5, decay=0.5)
    codes = torch.eye(3)[[0, 1, 2, 0]] * torch.tensor([[1.0], [1.0], [1.0], [-1.0]])
    vq.set_codebook(codes)
    before = vq.codes.clone()
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1, 0.0]]).repeat(400, 1), dim=-1)
    out = vq(z.reshape(100, 4, 3), generator=torch.Generator().manual_seed(0))
    sampled = out.indices.reshape(-1)
    assert (sampled != 0).sum() > 100  # β = 0.5: many draws are not the nearest code
    # the EMA statistics moved only for the nearest code (0): the others kept count 0.5 (decay 0.5 of 1)
    assert vq.ema_count[0] == pytest.approx(0.5 + 0.5 * 400)
    assert torch.allclose(vq.ema_count[1:], torch.full((3,), 0.5))
    assert vq.recent_count.tolist() == [400.0, 0.0, 0.0, 0.0]
    # the commitment loss is to the nearest code, not to the sampled one
    assert out.commitment_loss.item() == pytest.approx(((z - codes[0]) ** 2).mean().item(), abs=1e-6)
    # the decoder's input is the sampled code
    assert torch.equal(out.z_q.reshape(-1, 3), before[sampled])


def test_training_indices_is_the_nearest_rule_and_leaves_the_nearest_quantizer_alone():
    gen = torch.Generator().manual_seed(1)
    z, codes = torch.randn(50, 4, generator=gen), torch.randn(6, 4, generator=gen)
    idx = torch.randint(6, (50,), generator=gen)
    assert training_indices(z, codes, idx, "nearest") is idx
    assert torch.equal(training_indices(z, codes, idx, "softmax"), nearest(z, codes))
    # batched (R, M, D) with one codebook per model, as the training engine calls it
    zs, cs = torch.randn(3, 20, 4, generator=gen), torch.randn(3, 6, 4, generator=gen)
    got = training_indices(zs, cs, torch.zeros(3, 20, dtype=torch.long), "softmax")
    assert torch.equal(got, torch.stack([nearest(zs[r], cs[r]) for r in range(3)]))


def test_precision_loss_is_minimised_at_the_maximum_likelihood_precision():
    d, D = 0.2, 8
    betas = torch.linspace(1, 60, 5901)
    best = betas[precision_loss(betas, torch.tensor(d), D).argmin()].item()
    assert best == pytest.approx(D / (2 * d), abs=0.02)


def test_softmax_from_scratch_leaves_the_mean_image(digits):
    # before the nearest-code rule this configuration stayed at the mean image (ratio 1.0007)
    x, test = digits[:1000], digits[1000:1400]
    mean_image = float(((test - x.mean(0)) ** 2).mean())
    model = vqlib.VQVAE((1, 8, 8), 32, 4, quantizer="softmax", beta=30.0, hidden=64)
    vqlib.fit(model, x, epochs=20, train_seed=0)
    assert model.quantizer.decay == DEFAULT_DECAY["softmax"] == 0.9
    assert float(vqlib.reconstruction_loss(model, test).mean()) < 0.8 * mean_image  # measured: 0.67


def test_learned_beta_starts_at_one_and_anneals(digits):
    model = vqlib.VQVAE((1, 8, 8), 32, 4, quantizer="softmax", beta="learned", hidden=64)
    assert isinstance(model.beta, float) and model.beta == 1.0
    assert model.config["beta"] == "learned"
    history = vqlib.fit(model, digits[:600], epochs=6, train_seed=0)
    assert isinstance(model.beta, float) and model.beta > 2.0  # measured 3.6: it rises as outputs commit
    assert history.final.used_fraction >= 0.5
    param = model.quantizer.beta_param
    assert model.beta == pytest.approx(math.exp(LEARNED_BETA_RATE * float(param)), rel=1e-6)
    # a saved learned β comes back
    twin = vqlib.VQVAE((1, 8, 8), 32, 4, quantizer="softmax", beta="learned", hidden=64)
    twin.load_state_dict(model.state_dict())
    assert twin.beta == model.beta


def test_with_temperature_fixes_a_learned_beta(digits):
    model = vqlib.VQVAE((1, 8, 8), 8, 2, quantizer="softmax", beta="learned", hidden=16)
    vqlib.fit(model, digits[:100], epochs=2, train_seed=0)
    fixed = with_temperature(model, 7.0)
    assert fixed.beta == 7.0 and not fixed.quantizer.learned_beta
    assert "quantizer.beta_param" not in dict(fixed.named_parameters())
    assert model.quantizer.learned_beta  # the original keeps learning


def test_fit_ensemble_trains_a_learned_beta_as_fit_does(digits):
    from vqlib.bounds import draw_mask, make_supersample, split

    ss = make_supersample(digits, 16, supersample_seed=0)
    xs = [split(ss, draw_mask(16, mask_seed=m))[0] for m in range(3)]
    kw = dict(quantizer="softmax", beta="learned", hidden=32)
    alone = [vqlib.VQVAE((1, 8, 8), 8, 4, seed=s, **kw) for s in range(3)]
    batch = [vqlib.VQVAE((1, 8, 8), 8, 4, seed=s, **kw) for s in range(3)]
    for m, x, s in zip(alone, xs, range(3)):
        vqlib.fit(m, x, epochs=8, train_seed=s, device="cpu")
    fit_ensemble(batch, xs, epochs=8, train_seeds=[0, 1, 2], device="cpu")
    for a, b in zip(alone, batch):
        assert a.beta != 1.0
        assert b.beta == pytest.approx(a.beta, rel=1e-5)
        for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert (va.double() - vb.double()).abs().max().item() <= 1e-5, name


@pytest.mark.parametrize("beta", [0, -1.0, float("nan"), float("inf"), 10 ** 400, "learnd", "Learned", None, True])
def test_bad_beta_is_refused_naming_it_and_the_choices(beta):
    with pytest.raises(ValueError, match=r"beta.*'learned'"):
        vqlib.VQVAE((1, 8, 8), 4, 2, quantizer="softmax", beta=beta)
    with pytest.raises(ValueError, match=r"beta.*'learned'"):
        check_beta(beta)


def test_learned_beta_needs_the_softmax_quantizer():
    with pytest.raises(ValueError, match="beta='learned' needs quantizer='softmax'"):
        vqlib.VQVAE((1, 8, 8), 4, 2, beta="learned")
