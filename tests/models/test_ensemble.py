"""Ensemble training (vqlib.models.ensemble, serving chapters 2–4's runner) against vqlib.fit.

The claim tested: a model trained in an ensemble ends with the weights, EMA statistics,
codes and losses that vqlib.fit gives it alone with the same construction, data and
seed. On the CPU the two agree bit for bit in every case below (the batched products
round like the single ones here); the tolerance allowed is 1e-6 absolute on every
weight and loss, which a single flipped code assignment or an off-by-one batch order
would exceed by orders of magnitude (checked by the last test).
"""
import pytest
import torch

import vqlib
from vqlib.models import fit_ensemble
from vqlib.bounds import draw_mask, make_supersample, split

TOL = 1e-6


@pytest.fixture(scope="module")
def digits():
    return vqlib.load_dataset("digits", split="all")


def _halves(x, n, R):
    ss = make_supersample(x, n, supersample_seed=0)
    return [split(ss, draw_mask(n, mask_seed=m))[0] for m in range(R)], ss.flat()


def _max_diff(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max((sa[k].double() - sb[k].double()).abs().max().item() for k in sa if sa[k].is_floating_point())


def _compare(x, n, seeds, epochs=8, chunk_size=None, batch_size=64, **kw):
    xs, flat = _halves(x, n, len(seeds))
    alone = [vqlib.VQVAE((1, 8, 8), 8, 4, seed=s, hidden=32, **kw) for s in seeds]
    batch = [vqlib.VQVAE((1, 8, 8), 8, 4, seed=s, hidden=32, **kw) for s in seeds]
    hist = [vqlib.fit(m, xx, epochs=epochs, batch_size=batch_size, train_seed=s, device="cpu")
            for m, xx, s in zip(alone, xs, seeds)]
    ens = fit_ensemble(batch, xs, epochs=epochs, batch_size=batch_size, train_seeds=seeds, chunk_size=chunk_size,
                       device="cpu")
    for a, b, h, loss, s in zip(alone, batch, hist, ens.train_loss, seeds):
        assert not b.training
        assert _max_diff(a, b) <= TOL
        assert abs(h.final.train_loss - loss) <= TOL
        # the same codes and per-point losses on every supersample point, train and test
        assert torch.equal(vqlib.encode_indices(a, flat, seed=s), vqlib.encode_indices(b, flat, seed=s))
        la, lb = vqlib.reconstruction_loss(a, flat, seed=s), vqlib.reconstruction_loss(b, flat, seed=s)
        assert (la - lb).abs().max().item() <= TOL
    return ens


def test_nearest_ema_matches_fit_chunked(digits):
    # the book's quick VQ-VAE setting (chapter 2), seeds mixed, chunks of uneven size
    ens = _compare(digits, 16, [0, 1, 2, 0, 5], chunk_size=2)
    assert ens.chunks == [2, 2, 1]


def test_several_batches_per_epoch_and_codebook_by_loss(digits):
    _compare(digits, 100, [0, 3, 4], batch_size=32, codebook="loss")


def test_other_architectures_and_inits(digits):
    _compare(digits, 40, [1, 2], init="data", encoder_depth=1, decoder_depth=3, dead_code_reset=True)
    _compare(digits, 40, [1, 2], init="random", encoder_depth=0, dead_code_reset=False)


def test_softmax_quantizer_matches_fit(digits):
    # fit draws the latents from the global generator seeded with its seed; the ensemble
    # gives every model a generator seeded the same way, so the draws match too
    _compare(digits, 16, [0, 1, 2], quantizer="softmax", beta=4.0)


def test_frozen_codebook_and_decoder(digits):
    xs, _ = _halves(digits, 30, 3)
    ref = vqlib.VQVAE((1, 8, 8), 8, 4, seed=0, hidden=32)
    vqlib.fit(ref, digits[200:400], epochs=2, train_seed=0, device="cpu")
    alone, batch = [], []
    for _ in range(3):
        for group in (alone, batch):
            m = vqlib.VQVAE((1, 8, 8), 8, 4, seed=0, hidden=32)
            m.load_state_dict(ref.state_dict())
            group.append(m.freeze_codebook_and_decoder())
    for m, xx in zip(alone, xs):
        vqlib.fit(m, xx, epochs=5, train_seed=0, device="cpu")
    fit_ensemble(batch, xs, epochs=5, train_seeds=0, device="cpu", evaluate=False)
    for a, b in zip(alone, batch):
        assert _max_diff(a, b) <= TOL
        assert torch.equal(b.decoder[0].weight, ref.decoder[0].weight)
        assert torch.equal(b.quantizer.codebook, ref.quantizer.codebook)
        assert not torch.equal(b.encoder[0].weight, ref.encoder[0].weight)


def test_tolerance_detects_a_different_seed(digits):
    # the comparison can fail: one model's seed changed gives differences far above TOL
    xs, _ = _halves(digits, 16, 2)
    a = vqlib.VQVAE((1, 8, 8), 8, 4, seed=0, hidden=32)
    b = vqlib.VQVAE((1, 8, 8), 8, 4, seed=0, hidden=32)
    vqlib.fit(a, xs[0], epochs=4, train_seed=0, device="cpu")
    fit_ensemble([b, vqlib.VQVAE((1, 8, 8), 8, 4, seed=0, hidden=32)], xs, epochs=4, train_seeds=[1, 0], device="cpu")
    assert _max_diff(a, b) > 1e3 * TOL


def test_rejects_bad_input(digits):
    xs, _ = _halves(digits, 16, 2)
    models = [vqlib.VQVAE((1, 8, 8), 8, 4, seed=s) for s in (0, 1)]
    with pytest.raises(ValueError, match="same size"):
        fit_ensemble(models, [xs[0], xs[1][:10]])
    with pytest.raises(ValueError, match="one training set per model"):
        fit_ensemble(models, xs[:1])
    with pytest.raises(ValueError, match="architecture"):
        fit_ensemble([models[0], vqlib.VQVAE((1, 8, 8), 16, 4)], xs)
    with pytest.raises(ValueError, match="seeds"):
        fit_ensemble(models, xs, train_seeds=[0, 1, 2])
    with pytest.raises(ValueError, match="kl_weight"):
        fit_ensemble(models, xs, kl_weight=0.1)
    with pytest.raises(ValueError, match="epochs"):
        fit_ensemble(models, xs, epochs=0)
    with pytest.raises(ValueError, match="non-empty"):
        fit_ensemble([], xs)
    bad = xs[1].clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError):
        fit_ensemble(models, [xs[0], bad])
