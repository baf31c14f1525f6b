"""Tests of training and evaluation (vqlib.models.fit) on the digits.

Determinism on the CPU, learning that beats the trivial baselines, the history record,
per-input reconstruction losses, and the argument checks of fit / reconstruction_loss.
"""
from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
import torch

import vqlib
from vqlib import VQVAE, codebook_usage

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return vqlib.load_dataset("digits", n=600, seed=0)


def _model(K=8, L=2, quantizer="nearest", codebook="ema", beta=2.0, seed=0, hidden=32, **kw):
    return VQVAE(SHAPE, K=K, L=L, code_dim=4, quantizer=quantizer, beta=beta, codebook=codebook,
                 hidden=hidden, seed=seed, **kw)


def _params(model: VQVAE) -> dict[str, torch.Tensor]:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["quantizer.recent_count"] = model.quantizer.recent_count.clone()
    return state


def _same_params(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- determinism -------------------------------------------------------------------


@pytest.mark.parametrize("quantizer,codebook", [
    ("nearest", "ema"), ("softmax", "ema"), ("nearest", "loss"), ("softmax", "loss"),
])
def test_fit_is_deterministic(digits, quantizer, codebook):
    x, x_val = digits[:160], digits[160:220]
    kw = dict(epochs=3, batch_size=32, device="cpu", x_val=x_val)

    def run(seed, global_seed):
        torch.manual_seed(global_seed)  # the global RNG must not matter
        model = _model(K=8, L=2, quantizer=quantizer, codebook=codebook)
        state = torch.get_rng_state()
        history = vqlib.fit(model, x, train_seed=seed, **kw)
        assert torch.equal(torch.get_rng_state(), state), "fit changed the global RNG state"
        losses = vqlib.reconstruction_loss(model, x, seed=seed)
        return model, history, losses

    m1, h1, l1 = run(seed=7, global_seed=1)
    m2, h2, l2 = run(seed=7, global_seed=2)
    m3, h3, l3 = run(seed=8, global_seed=1)

    assert _same_params(_params(m1), _params(m2))
    assert h1.rows() == h2.rows() and h1.to_csv() == h2.to_csv()
    assert torch.equal(l1, l2)

    assert not _same_params(_params(m1), _params(m3))
    assert [r["train_loss"] for r in h1.rows()] != [r["train_loss"] for r in h3.rows()]
    assert not torch.equal(l1, l3)


def test_fit_continues_without_reinitialising_codebook(digits):
    """A second fit call starts from the trained codebook (and is deterministic too)."""
    x = digits[:160]
    a, b = _model(), _model()
    for m in (a, b):
        vqlib.fit(m, x, epochs=1, batch_size=32, train_seed=0, device="cpu")
        assert bool(m.codebook_initialised)
    codebook = a.quantizer.codebook.detach().clone()
    ha = vqlib.fit(a, x, epochs=1, batch_size=32, train_seed=1, device="cpu")
    hb = vqlib.fit(b, x, epochs=1, batch_size=32, train_seed=1, device="cpu")
    assert ha.rows() == hb.rows() and _same_params(_params(a), _params(b))
    # an EMA training epoch moved the codebook from where it was, not from a fresh k-means
    assert not torch.equal(a.quantizer.codebook, codebook)
    fresh = _model()
    vqlib.fit(fresh, x, epochs=1, batch_size=32, train_seed=1, device="cpu")
    assert not _same_params(_params(fresh), _params(a))


# --- learning --------------------------------------------------------------------


def test_training_beats_trivial_baselines(digits):
    x = digits
    kw = dict(epochs=30, batch_size=32, lr=5e-3, train_seed=0, device="cpu")
    model = VQVAE(SHAPE, K=16, L=4, code_dim=8, hidden=128)
    baseline = VQVAE(SHAPE, K=1, L=4, code_dim=8, hidden=128)  # one code: output ignores x
    h = vqlib.fit(model, x, **kw)
    h1 = vqlib.fit(baseline, x, **kw)

    mean_image_loss = float(((x - x.mean(0)) ** 2).mean())
    # K = 1 decodes every input to the same image, so it can never beat the mean image
    assert h1.final.train_loss >= mean_image_loss * (1 - 1e-6)
    assert h1.final.perplexity == pytest.approx(1.0)
    out1 = baseline(x[:5])
    assert torch.allclose(out1.x_hat, out1.x_hat[:1].expand_as(out1.x_hat))

    assert h.final.train_loss < 0.8 * h1.final.train_loss
    assert h.final.train_loss < 0.8 * mean_image_loss
    assert h.final.train_loss < h.epochs[0].train_loss
    assert h.final.perplexity > 1
    assert h.final.used_fraction > 0.5

    # the history's numbers are those of the trained model in eval mode
    assert float(vqlib.reconstruction_loss(model, x).mean()) == pytest.approx(h.final.train_loss, rel=1e-5)
    ev = vqlib.model_summary(model, x)
    usage = codebook_usage(vqlib.encode_indices(model, x), model.K)
    assert ev["loss"] == pytest.approx(h.final.train_loss, rel=1e-5)
    assert ev["nmse"] == pytest.approx(ev["loss"] / mean_image_loss, rel=1e-4)
    assert ev["nmse"] < 0.8
    assert ev["perplexity"] == pytest.approx(usage.perplexity) == pytest.approx(h.final.perplexity)
    assert ev["used_fraction"] == usage.used_fraction == h.final.used_fraction


# --- end state and history -----------------------------------------------------------


def test_fit_end_state_and_history_csv(digits):
    x, x_val = digits[:160], digits[160:220]
    model = _model()
    model.train()
    h = vqlib.fit(model, x, epochs=3, batch_size=32, train_seed=11, device="cpu", x_val=x_val)
    assert not model.training
    assert model.device == torch.device("cpu")
    assert h.train_seed == 11 and h.final is h.epochs[-1]
    assert [r.epoch for r in h.epochs] == [1, 2, 3]
    assert h.config["K"] == 8 and h.config["L"] == 2
    assert h.config["epochs"] == 3 and h.config["batch_size"] == 32 and h.config["lr"] == 2e-3
    rows = h.rows()
    assert len(rows) == 3 and all(r["train_seed"] == 11 for r in rows)
    for r in h.epochs:
        assert 0 <= r.train_loss <= 1 and 0 <= r.val_loss <= 1
        assert 1 <= r.perplexity <= model.K and 0 < r.used_fraction <= 1
        assert 0 <= r.dead_codes_reset <= model.K
    assert h.final.val_loss == pytest.approx(float(vqlib.reconstruction_loss(model, x_val, seed=11).mean()),
                                             rel=1e-5)

    parsed = list(csv.DictReader(io.StringIO(h.to_csv())))
    assert len(parsed) == 3
    for row, ref in zip(parsed, rows):
        assert set(row) == set(ref)
        assert int(row["train_seed"]) == ref["train_seed"] and int(row["epoch"]) == ref["epoch"]
        assert int(row["dead_codes_reset"]) == ref["dead_codes_reset"]
        for key in ("train_loss", "perplexity", "used_fraction", "val_loss"):
            assert float(row[key]) == ref[key], key

    # without validation data the column is empty, and the numbers still read back
    h2 = vqlib.fit(_model(), x, epochs=1, batch_size=32, train_seed=0, device="cpu")
    (row,) = csv.DictReader(io.StringIO(h2.to_csv()))
    assert row["val_loss"] == "" and float(row["train_loss"]) == h2.final.train_loss


# --- reconstruction_loss -----------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(digits):
    models = {}
    for quantizer in ("nearest", "softmax"):
        m = _model(quantizer=quantizer)
        vqlib.fit(m, digits[:200], epochs=2, batch_size=32, train_seed=0, device="cpu")
        models[quantizer] = m
    return models


def _manual_losses(model, x, generator=None):
    model.eval()
    with torch.no_grad():
        out = model(x, generator=generator)
    return ((x - out.x_hat) ** 2).reshape(len(x), -1).mean(1)


def test_reconstruction_loss_nearest(digits, fitted):
    model, x = fitted["nearest"], digits[200:300]
    losses = vqlib.reconstruction_loss(model, x)
    assert losses.shape == (100,) and losses.dtype == torch.float32
    assert losses.min() >= 0 and losses.max() <= 1
    torch.testing.assert_close(losses, _manual_losses(model, x), rtol=0, atol=1e-7)
    # batching and the seed do not matter for the deterministic quantizer
    torch.testing.assert_close(vqlib.reconstruction_loss(model, x, batch_size=7, seed=3), losses,
                               rtol=0, atol=1e-7)
    # per-input: each entry is that image's loss
    torch.testing.assert_close(vqlib.reconstruction_loss(model, x[5:6]), losses[5:6], rtol=0, atol=1e-7)
    assert losses.std() > 0


def test_reconstruction_loss_softmax_is_seeded(digits, fitted):
    model, x = fitted["softmax"], digits[200:300]
    a = vqlib.reconstruction_loss(model, x, seed=4)
    b = vqlib.reconstruction_loss(model, x, seed=4)
    c = vqlib.reconstruction_loss(model, x, seed=5)
    assert a.shape == (100,) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    manual = _manual_losses(model, x, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, manual, rtol=0, atol=1e-7)
    assert torch.equal(vqlib.encode_indices(model, x, seed=4), vqlib.encode_indices(model, x, seed=4))
    assert not torch.equal(vqlib.encode_indices(model, x, seed=4), vqlib.encode_indices(model, x, seed=5))


# --- argument checks ---------------------------------------------------------------


def _bad_x(digits):
    x = digits[:40].clone()
    nan = x.clone()
    nan[3, 0, 2, 2] = float("nan")
    inf = x.clone()
    inf[0, 0, 0, 0] = float("inf")
    high = x.clone()
    high[1, 0, 4, 4] = 1.5
    low = x.clone()
    low[2, 0, 1, 1] = -0.1
    return {
        "nan": nan, "inf": inf, "above_one": high, "below_zero": low,
        "wrong_image_shape": x.reshape(40, 1, 4, 16),
        "flat": x.reshape(40, 64),
        "three_channels": x.expand(40, 3, 8, 8).contiguous(),
        "empty": x[:0],
        "integer": (x * 16).long(),
        "list": x.tolist(),
    }


BAD_X = ["nan", "inf", "above_one", "below_zero", "wrong_image_shape", "flat", "three_channels",
         "empty", "integer", "list"]


@pytest.mark.parametrize("case", BAD_X)
def test_fit_rejects_bad_x(digits, case):
    model = _model()
    before = _params(model)
    with pytest.raises(ValueError, match=r"\bx\b"):
        vqlib.fit(model, _bad_x(digits)[case], epochs=1, device="cpu")
    assert _same_params(before, _params(model))
    assert not bool(model.codebook_initialised)


@pytest.mark.parametrize("case", ["nan", "above_one", "wrong_image_shape"])
def test_fit_rejects_bad_x_val(digits, case):
    with pytest.raises(ValueError, match=r"\bx_val\b"):
        vqlib.fit(_model(), digits[:40], epochs=1, device="cpu", x_val=_bad_x(digits)[case])


@pytest.mark.parametrize("kwargs,name", [
    (dict(epochs=0), "epochs"),
    (dict(epochs=-2), "epochs"),
    (dict(epochs=1.5), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(lr=0), "lr"),
    (dict(lr=-1e-3), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(train_seed=-1), "train_seed"),
    (dict(train_seed=1.0), "train_seed"),
    (dict(device="nonsense"), "device"),
])
def test_fit_rejects_bad_arguments(digits, kwargs, name):
    args = dict(epochs=1, device="cpu")
    args.update(kwargs)
    model = _model()
    before = _params(model)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        vqlib.fit(model, digits[:40], **args)
    assert _same_params(before, _params(model))


@pytest.mark.parametrize("func", [vqlib.reconstruction_loss, vqlib.encode_indices, vqlib.model_summary])
@pytest.mark.parametrize("case", ["nan", "above_one", "below_zero", "wrong_image_shape", "flat", "empty"])
def test_evaluation_rejects_bad_x(digits, fitted, func, case):
    with pytest.raises(ValueError, match=r"\bx\b"):
        func(fitted["nearest"], _bad_x(digits)[case])


@pytest.mark.parametrize("func", [vqlib.reconstruction_loss, vqlib.encode_indices])
def test_evaluation_rejects_bad_batch_size(digits, fitted, func):
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match=r"\bbatch_size\b"):
            func(fitted["nearest"], digits[:10], batch_size=bad)


# --- numpy input ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_input(digits, dtype):
    x = digits[:160]
    a, b = _model(), _model()
    ha = vqlib.fit(a, x, epochs=2, batch_size=32, train_seed=0, device="cpu")
    hb = vqlib.fit(b, x.numpy().astype(dtype), epochs=2, batch_size=32, train_seed=0, device="cpu",
                   x_val=x[:20].numpy().astype(dtype))
    assert [r.train_loss for r in ha.epochs] == [r.train_loss for r in hb.epochs]
    assert _same_params(_params(a), _params(b))
    losses = vqlib.reconstruction_loss(b, x.numpy().astype(dtype))
    assert isinstance(losses, torch.Tensor) and losses.shape == (160,)
    assert torch.equal(losses, vqlib.reconstruction_loss(b, x))
    assert torch.equal(vqlib.encode_indices(b, x.numpy().astype(dtype)), vqlib.encode_indices(b, x))
    ev = vqlib.model_summary(b, x.numpy().astype(dtype))
    assert math.isfinite(ev["loss"]) and ev["loss"] == pytest.approx(float(losses.mean()))


# --- model and training agree on input shapes ---------------------------------------


def test_in_shape_must_be_an_image_shape(digits):
    """fit validates x as (N, C, H, W), so the model rejects any other in_shape up front."""
    for bad in [(64,), (8, 8), (1, 1, 8, 8)]:
        with pytest.raises(ValueError, match="in_shape"):
            VQVAE(bad, K=4, L=2)


def test_old_seed_names_still_work_with_a_deprecation_warning(digits):
    """fit(seed=), fit_ensemble(seeds=), run_supersample(seed=) and History.seed: the names of
    the last release, kept for one more, each with a DeprecationWarning and the same result."""
    from vqlib.models import fit_ensemble

    x = digits[:64]
    a, b = _model(), _model()
    with pytest.warns(DeprecationWarning, match="train_seed"):
        ha = vqlib.fit(a, x, epochs=1, batch_size=32, seed=3, device="cpu")
    hb = vqlib.fit(b, x, epochs=1, batch_size=32, train_seed=3, device="cpu")
    assert torch.equal(a.encoder[0].weight, b.encoder[0].weight) and ha.train_seed == 3
    with pytest.warns(DeprecationWarning, match="train_seed"):
        assert ha.seed == 3
    with pytest.raises(ValueError, match="both"):
        vqlib.fit(_model(), x, epochs=1, train_seed=4, seed=3)
    c, d = _model(), _model()
    with pytest.warns(DeprecationWarning, match="train_seeds"):
        hc = fit_ensemble([c], [x], epochs=1, batch_size=32, seeds=3, device="cpu")
    assert hc.train_seeds == [3] and torch.allclose(c.encoder[0].weight, b.encoder[0].weight, atol=1e-6)
    with pytest.warns(DeprecationWarning, match="train_seeds"):
        assert hc.seeds == [3]
    x = vqlib.load_dataset("digits", split="all")
    kw = dict(n=4, K=2, L=1, n_masks=2, n_supersamples=2, learner="kmeans", confidence=None)
    with pytest.warns(DeprecationWarning, match="supersample_seeds"):
        old = vqlib.run_supersample(x, seed=5, **kw)
    new = vqlib.run_supersample(x, supersample_seeds=[5, 6], train_seed=5, **kw)
    assert old.rows == new.rows and old.config == new.config
