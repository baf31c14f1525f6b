"""Tests of the VQ-VAE core (vqlib.models.vqvae, vqlib.models.quantizers, vqlib.models.codebook_usage).

Every test runs a real model on real data (slices of the digits) or on hand-made points
whose answer is known. The invariants are the ones the book relies on: output shapes and
ranges, eval mode never touching the codebook, quantize-then-update for the EMA codebook,
Laplace-smoothed EMA counts, decoding from indices, the posterior, distances in [0, 4],
k-means, dead-code reset, perplexity/used fraction, and argument checks.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

import vqlib
from vqlib import VQVAE, codebook_usage, per_input_loss
from vqlib.data import synthetic_prototypes
from vqlib.models import VectorQuantizer, kmeans
from vqlib.models.quantizers import squared_distances

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return vqlib.load_dataset("digits", n=200, seed=0)


def _model(K=8, L=2, code_dim=4, quantizer="nearest", codebook="ema", beta=2.0, seed=0, **kw):
    return VQVAE(SHAPE, K=K, L=L, code_dim=code_dim, quantizer=quantizer, beta=beta,
                 codebook=codebook, hidden=32, seed=seed, **kw)


def _initialised(x, **kw) -> VQVAE:
    """A model whose codebook was started by k-means on its encodings of ``x`` (as fit does)."""
    model = _model(**kw)
    model.init_codebook(x, generator=torch.Generator().manual_seed(0))
    return model


_TRAINED: dict = {}


def _trained(x, quantizer="nearest", codebook="ema") -> VQVAE:
    """A briefly fitted model (cached; callers get their own deep copy)."""
    key = (quantizer, codebook)
    if key not in _TRAINED:
        model = _model(K=8, L=2, quantizer=quantizer, codebook=codebook)
        vqlib.fit(model, x, epochs=2, batch_size=32, train_seed=0, device="cpu")
        _TRAINED[key] = model
    return copy.deepcopy(_TRAINED[key])


def _snapshot(model: VQVAE) -> dict[str, torch.Tensor]:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["quantizer.recent_count"] = model.quantizer.recent_count.clone()
    return state


def _assert_same_state(model: VQVAE, before: dict[str, torch.Tensor]) -> None:
    after = _snapshot(model)
    assert after.keys() == before.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"eval-mode calls changed {changed}"


# --- shapes and ranges of VQOutput ------------------------------------------------


@pytest.mark.parametrize("codebook", ["ema", "loss"])
@pytest.mark.parametrize("quantizer", ["nearest", "softmax"])
@pytest.mark.parametrize("K,L,code_dim", [(1, 1, 4), (8, 7, 3), (16, 16, 2), (5, 1, 8)])
@pytest.mark.parametrize("training", [False, True])
def test_output_fields(digits, K, L, code_dim, quantizer, codebook, training):
    x = digits[:24]
    model = _initialised(x, K=K, L=L, code_dim=code_dim, quantizer=quantizer, codebook=codebook)
    model.train(training)
    out = model(x, generator=torch.Generator().manual_seed(1))
    n = len(x)

    assert out.x_hat.shape == (n, *SHAPE) and out.x_hat.dtype == torch.float32
    assert out.x_hat.min() >= 0 and out.x_hat.max() <= 1

    assert out.indices.shape == (n, L) and out.indices.dtype == torch.int64
    assert out.indices.min() >= 0 and out.indices.max() < K

    assert out.probs.shape == (n, L, K)
    assert (out.probs >= 0).all()
    torch.testing.assert_close(out.probs.sum(-1), torch.ones(n, L), rtol=0, atol=1e-5)
    if quantizer == "nearest":
        assert torch.equal(out.probs, F.one_hot(out.indices, K).float())
    else:  # a sampled code always has positive posterior probability
        assert (out.probs.gather(-1, out.indices[..., None]) > 0).all()

    assert out.z_e.shape == (n, L, code_dim) and out.z_q.shape == (n, L, code_dim)
    torch.testing.assert_close(out.z_e.norm(dim=-1), torch.ones(n, L))
    # z_q carries the values of the chosen codes (up to the straight-through rounding)
    if not (training and codebook == "ema"):  # (an EMA training step has moved the codes since)
        torch.testing.assert_close(out.z_q, model.quantizer.codes.detach()[out.indices], rtol=0, atol=1e-6)

    losses = per_input_loss(x, out.x_hat)
    assert losses.shape == (n,) and losses.min() >= 0 and losses.max() <= 1
    torch.testing.assert_close(out.recon_loss, losses.mean())
    for part in (out.recon_loss, out.codebook_loss, out.commitment_loss, out.loss):
        assert part.shape == () and torch.isfinite(part) and part >= 0
    if codebook == "ema":
        assert out.codebook_loss == 0
    torch.testing.assert_close(
        out.loss, out.recon_loss + out.codebook_loss + model.commitment * out.commitment_loss)

    assert 1 - 1e-9 <= out.perplexity <= min(K, n * L) + 1e-6
    used = len(torch.unique(out.indices))
    assert out.used_fraction == pytest.approx(used / K)
    if K == 1:
        assert out.perplexity == pytest.approx(1.0) and out.used_fraction == 1.0


def test_forward_on_non_square_input_shape():
    """The flat encoder serves any input shape: (3, 4, 5) with L = 7."""
    x = torch.rand(6, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    model = VQVAE((3, 4, 5), K=4, L=7, code_dim=3, hidden=16)
    model.eval()
    out = model(x)
    assert out.x_hat.shape == (6, 3, 4, 5) and out.indices.shape == (6, 7)
    assert out.probs.shape == (6, 7, 4) and out.z_e.shape == (6, 7, 3)


# --- eval mode never touches the codebook -------------------------------------------


@pytest.mark.parametrize("codebook", ["ema", "loss"])
@pytest.mark.parametrize("quantizer", ["nearest", "softmax"])
def test_eval_mode_never_changes_codebook_state(digits, quantizer, codebook):
    x = digits[:100]
    model = _trained(x, quantizer, codebook)
    model.train()  # leave non-zero counts in recent_count, so that a reset would show
    model(x[:10])
    model.eval()
    before = _snapshot(model)

    with torch.no_grad():
        for _ in range(3):
            model(x)
        model(x, generator=torch.Generator().manual_seed(5))
        model.posterior(x)
        model.decode_indices(torch.zeros(4, model.L, dtype=torch.long))
    model(x).loss.backward()  # with gradients too (no optimiser step)
    vqlib.reconstruction_loss(model, x)
    vqlib.model_summary(model, x)
    vqlib.encode_indices(model, x)
    _assert_same_state(model, before)
    assert not model.training

    # the library's evaluation functions switch to eval mode themselves and restore the mode
    model.train()
    vqlib.reconstruction_loss(model, x, seed=3)
    vqlib.model_summary(model, x, seed=3)
    vqlib.encode_indices(model, x, seed=3)
    _assert_same_state(model, before)
    assert model.training


def test_train_mode_forward_with_ema_changes_state(digits):
    """The contrast to the eval-mode test: a training forward does move the EMA codebook."""
    x = digits[:100]
    model = _trained(x, "nearest", "ema")
    model.eval()
    before = _snapshot(model)
    model.train()
    out = model(x[:32])
    after = _snapshot(model)
    for key in ("quantizer.ema_count", "quantizer.ema_sum", "quantizer.codebook"):
        assert not torch.equal(before[key], after[key]), key
    # recent_count counted every position of the batch
    added = after["quantizer.recent_count"] - before["quantizer.recent_count"]
    assert torch.equal(added, torch.bincount(out.indices.reshape(-1), minlength=model.K).float())
    # the network weights are untouched by a forward pass alone
    for key in before:
        if key.startswith(("encoder", "decoder")):
            assert torch.equal(before[key], after[key]), key


# --- EMA: quantize with the old codebook, then update -------------------------------


@pytest.mark.parametrize("quantizer", ["nearest", "softmax"])
def test_ema_quantizes_before_updating(digits, quantizer):
    x = digits[:64]
    # codebook from other images, so that this batch's means differ from the codes
    model = _initialised(digits[100:200], K=8, L=2, quantizer=quantizer, codebook="ema")
    model.train()
    old = model.quantizer.codes.detach().clone()
    out = model(x, generator=torch.Generator().manual_seed(0))
    new = model.quantizer.codes.detach()
    flat_idx = out.indices.reshape(-1)
    z_q = out.z_q.detach().reshape(-1, model.code_dim)

    torch.testing.assert_close(z_q, old[flat_idx], rtol=0, atol=1e-6)
    if quantizer == "nearest":
        z_e = out.z_e.detach().reshape(-1, model.code_dim)
        assert torch.equal(flat_idx, squared_distances(z_e, old).argmin(1))
    # the codebook did move, and the returned codes are not the updated ones
    used = torch.unique(flat_idx)
    assert (new[used] - old[used]).abs().max() > 1e-4
    assert (z_q - new[flat_idx]).abs().max() > 1e-4


# --- EMA statistics: no division by zero, Laplace smoothing ---------------------


def _check_ema_step(q: VectorQuantizer, z: torch.Tensor) -> None:
    count0, sum0, codes0 = q.ema_count.clone(), q.ema_sum.clone(), q.codes.detach().clone()
    q.train()
    out = q(z)
    idx = out.indices.reshape(-1)
    hits = torch.bincount(idx, minlength=q.K).float()
    assert (hits == 0).sum() >= q.K - len(idx)  # most codes got nothing
    assert torch.isfinite(q.codebook).all() and torch.isfinite(q.codes).all()
    assert torch.isfinite(q.ema_count).all() and torch.isfinite(q.ema_sum).all()

    count = q.decay * count0 + (1 - q.decay) * hits
    torch.testing.assert_close(q.ema_count, count)
    assert (q.ema_count > 0).all()
    sums = torch.zeros_like(sum0).index_add_(0, idx, z.reshape(-1, q.code_dim))
    torch.testing.assert_close(q.ema_sum, q.decay * sum0 + (1 - q.decay) * sums)
    total = count.sum()
    smoothed = (count + q.eps) / (total + q.K * q.eps) * total  # Laplace smoothing
    torch.testing.assert_close(q.codebook.detach(), q.ema_sum / smoothed[:, None])
    # codes that received nothing keep their direction
    unused = hits == 0
    torch.testing.assert_close(q.codes.detach()[unused], codes0[unused], rtol=0, atol=1e-5)


def test_ema_start_is_finite_with_empty_codes():
    g = torch.Generator().manual_seed(0)
    q = VectorQuantizer(64, 8, update="ema")
    assert torch.equal(q.ema_count, torch.ones(64))  # counts start at one, not zero
    z = F.normalize(torch.randn(2, 1, 8, generator=g), dim=-1)
    _check_ema_step(q, z)

    q.set_codebook(torch.randn(64, 8, generator=g))
    assert torch.equal(q.ema_count, torch.ones(64))
    torch.testing.assert_close(q.codebook.norm(dim=-1), torch.ones(64))
    _check_ema_step(q, z)

    # many steps on the same two vectors: unused counts decay but stay positive
    for _ in range(300):
        q(z)
    assert (q.ema_count > 0).all() and torch.isfinite(q.codes).all()


def test_ema_counts_that_decay_to_zero_stay_finite():
    """Unused codes' counts underflow to zero (fast with decay 0.5); smoothing keeps 0/0 away."""
    q = VectorQuantizer(16, 4, update="ema", decay=0.5)
    q.set_codebook(torch.randn(16, 4, generator=torch.Generator().manual_seed(0)))
    q.train()
    z = q.codes.detach()[:2].clone()[None]  # always picks codes 0 and 1
    for _ in range(400):
        out = q(z)
    assert torch.equal(out.indices, torch.tensor([[0, 1]]))
    assert q.ema_count[2:].max() < 1e-30  # the unused counts are (numerically) gone
    assert torch.isfinite(q.codebook).all() and torch.isfinite(q.codes).all()
    torch.testing.assert_close(q.codes[:2].detach(), z[0])
    # and the quantizer still works: every distance finite, an input near code 5 is handled
    out = q(F.normalize(torch.randn(3, 1, 4, generator=torch.Generator().manual_seed(1)), dim=-1))
    assert torch.isfinite(out.z_q).all() and torch.isfinite(out.probs).all()


def test_fresh_model_ema_forward_is_finite(digits):
    model = _model(K=64, L=1, codebook="ema")
    model.train()
    out = model(digits[:2])
    assert torch.isfinite(out.loss)
    assert torch.isfinite(model.quantizer.codebook).all()
    assert torch.isfinite(model.quantizer.codes).all()
    assert (model.quantizer.ema_count > 0).all()
    model.quantizer.set_codebook(torch.randn(64, model.code_dim))
    model(digits[2:4])
    assert torch.isfinite(model.quantizer.codebook).all()


def test_set_codebook_rejects_wrong_shape():
    q = VectorQuantizer(4, 3)
    with pytest.raises(ValueError, match="codes"):
        q.set_codebook(torch.randn(5, 3))


# --- decoding from indices ----------------------------------------------------


@pytest.mark.parametrize("quantizer", ["nearest", "softmax"])
def test_decode_indices_reproduces_eval_output(digits, quantizer):
    x = digits[:100]
    model = _trained(x, quantizer, "ema")
    with torch.no_grad():
        out = model(x, generator=torch.Generator().manual_seed(2))
        decoded = model.decode_indices(out.indices)
        torch.testing.assert_close(decoded, out.x_hat, rtol=0, atol=1e-6)
        # a list of lists is accepted too
        torch.testing.assert_close(model.decode_indices(out.indices[:3].tolist()), out.x_hat[:3],
                                   rtol=0, atol=1e-6)
        # other indices give another picture (so the comparison above can fail)
        other = (out.indices + 1) % model.K
        assert (model.decode_indices(other) - out.x_hat).abs().max() > 1e-3


# --- posterior ------------------------------------------------------------------


def test_posterior_nearest_is_one_hot_of_forward(digits):
    x = digits[:100]
    model = _trained(x, "nearest", "ema")
    with torch.no_grad():
        out = model(x)
        post = model.posterior(x)
    assert torch.equal(post, out.probs)
    assert torch.equal(post.argmax(-1), out.indices)


def _hand_posterior(model: VQVAE, x: torch.Tensor, beta: float) -> torch.Tensor:
    z = model.encode(x)  # (N, L, D)
    e = model.quantizer.codes
    d = ((z[:, :, None, :] - e[None, None]) ** 2).sum(-1)  # (N, L, K), direct formula
    return torch.softmax(-beta * d, dim=-1)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


def test_posterior_softmax_matches_hand_computation(digits):
    x = digits[:100]
    model = _trained(x, "softmax", "ema")
    with torch.no_grad():
        post = model.posterior(x)
        torch.testing.assert_close(post, _hand_posterior(model, x, model.beta), rtol=0, atol=1e-5)
        out = model(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.probs, post)
    # every code keeps probability ≥ exp(−4β)/K since distances lie in [0, 4]
    assert post.min() >= math.exp(-4 * model.beta) / model.K * (1 - 1e-4)


def test_larger_beta_gives_sharper_posterior(digits):
    x = digits[:100]
    cold = _initialised(x, K=8, L=2, quantizer="softmax", beta=1.0)
    hot = _initialised(x, K=8, L=2, quantizer="softmax", beta=20.0)
    # same encoder and codebook: only β differs
    for key, value in cold.state_dict().items():
        assert torch.equal(value, hot.state_dict()[key]), key
    with torch.no_grad():
        h_cold, h_hot = _entropy(cold.posterior(x)), _entropy(hot.posterior(x))
        torch.testing.assert_close(hot.posterior(x), _hand_posterior(hot, x, 20.0), rtol=0, atol=1e-5)
    assert (h_hot <= h_cold + 1e-5).all()
    assert h_hot.mean() < h_cold.mean() - 0.1


# --- distances --------------------------------------------------------------------


def test_squared_distances_lie_in_0_4(digits):
    model = _initialised(digits[:100], K=16, L=4, code_dim=3)
    with torch.no_grad():
        z = model.encode(digits).reshape(-1, 3)
        d = squared_distances(z, model.quantizer.codes)
        # random (unnormalised) stored codebook: the quantizer normalises it first
        model.quantizer.codebook.mul_(7.0)
        d_scaled = squared_distances(z, model.quantizer.codes)
    torch.testing.assert_close(d, d_scaled, rtol=0, atol=1e-5)
    # exact interval up to float32 rounding of the expanded formula
    assert d.min() >= 0 and d.max() <= 4 + 1e-5
    torch.testing.assert_close(d, torch.cdist(z, model.quantizer.codes.detach()) ** 2, rtol=0, atol=1e-5)

    u = F.normalize(torch.randn(500, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    extremes = torch.stack([squared_distances(u[i:i + 1], torch.stack([u[i], -u[i]])) for i in range(500)])
    assert extremes.min() >= 0 and extremes.max() <= 4 + 1e-5
    torch.testing.assert_close(extremes[:, 0, 0], torch.zeros(500), rtol=0, atol=1e-5)
    torch.testing.assert_close(extremes[:, 0, 1], torch.full((500,), 4.0), rtol=0, atol=1e-5)


# --- k-means --------------------------------------------------------------------


def test_kmeans_recovers_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0], [5.0, 5.0]])
    z = (centres.repeat_interleave(40, 0) + 0.1 * torch.randn(200, 2, generator=g))
    z = z[torch.randperm(200, generator=g)]
    found = kmeans(z, 5, generator=torch.Generator().manual_seed(1))
    assert found.shape == (5, 2)
    dist = torch.cdist(centres, found)
    assert dist.min(1).values.max() < 0.1  # every true centre has a found centre nearby
    assert sorted(dist.argmin(1).tolist()) == list(range(5))  # one-to-one


def test_kmeans_recovers_synthetic_prototypes():
    x = vqlib.make_synthetic(400, n_clusters=4, noise=0.05, seed=3)
    protos = synthetic_prototypes(4, seed=3).reshape(4, -1)
    found = kmeans(x.reshape(400, -1), 4, generator=torch.Generator().manual_seed(0))
    err = (protos[:, None, :] - found[None]).abs().amax(-1)  # (true, found), max pixel error
    assert err.min(1).values.max() < 0.1
    assert sorted(err.argmin(1).tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("m_distinct,repeats,K", [(3, 4, 10), (1, 1, 5), (2, 3, 6)])
def test_kmeans_with_fewer_distinct_rows_than_K(m_distinct, repeats, K):
    rows = torch.randn(m_distinct, 4, generator=torch.Generator().manual_seed(0))
    z = rows.repeat(repeats, 1)
    c = kmeans(z, K, generator=torch.Generator().manual_seed(0))
    assert c.shape == (K, 4) and torch.isfinite(c).all()
    # every centre is (a copy of) a data row, and every distinct row is a centre
    d = torch.cdist(c, rows)
    assert d.min(1).values.max() < 1e-4
    assert d.min(0).values.max() < 1e-4


def test_kmeans_bad_input():
    with pytest.raises(ValueError, match=r"\bz\b"):
        kmeans(torch.zeros(0, 3), 2)
    with pytest.raises(ValueError, match=r"\bK\b"):
        kmeans(torch.zeros(4, 3), 0)


# --- dead-code reset -------------------------------------------------------------


@pytest.mark.parametrize("update", ["ema", "loss"])
def test_reset_dead_codes(update):
    g = torch.Generator().manual_seed(0)
    q = VectorQuantizer(8, 4, update=update)
    q.set_codebook(torch.randn(8, 4, generator=g))
    q.train()
    used = torch.tensor([0, 2, 5])
    with torch.no_grad():
        q(q.codes[used].detach().clone()[None])  # each input sits exactly on code 0, 2 or 5
    assert q.recent_count[used].tolist() == [1.0, 1.0, 1.0]
    before_codebook, before_sum = q.codebook.detach().clone(), q.ema_sum.clone()
    before_count = q.ema_count.clone()

    pool = F.normalize(torch.randn(50, 4, generator=g), dim=-1)
    moved = q.reset_dead_codes(pool, generator=torch.Generator().manual_seed(1))
    assert moved == 5
    dead = torch.tensor([1, 3, 4, 6, 7])
    assert torch.equal(q.codebook[used], before_codebook[used])
    assert torch.equal(q.ema_sum[used], before_sum[used])
    assert torch.equal(q.ema_count[used], before_count[used])
    # each dead code now sits on an encoder output of the pool
    d = torch.cdist(q.codebook.detach()[dead], pool)
    assert d.min(1).values.max() < 1e-6
    assert not torch.allclose(q.codebook[dead], before_codebook[dead])
    assert torch.equal(q.ema_sum[dead], q.codebook.detach()[dead])
    assert torch.equal(q.ema_count[dead], torch.ones(5))
    assert torch.equal(q.recent_count, torch.zeros(8))

    # nothing used since that call: every code counts as dead now
    assert q.reset_dead_codes(pool, generator=torch.Generator().manual_seed(2)) == 8
    # eval-mode passes do not count as use
    q.eval()
    q(pool[None])
    assert q.reset_dead_codes(pool) == 8
    # an empty pool moves nothing
    q.train()
    assert q.reset_dead_codes(pool[:0]) == 0


# --- codebook usage ---------------------------------------------------------------


@pytest.mark.parametrize("K", [1, 2, 7, 16])
def test_usage_uniform(K):
    usage = codebook_usage(torch.arange(K).repeat(3).reshape(3, K), K)
    assert usage.perplexity == pytest.approx(K)
    assert usage.used_fraction == 1.0
    assert usage.counts == (3,) * K


def test_usage_single_code():
    usage = codebook_usage(torch.full((4, 5), 2), 5)
    assert usage.perplexity == pytest.approx(1.0)
    assert usage.used_fraction == pytest.approx(0.2)
    assert usage.counts == (0, 0, 20, 0, 0)


def test_usage_hand_computed():
    usage = codebook_usage([0, 0, 1, 2], 3)  # a list works too
    p = [0.5, 0.25, 0.25]
    assert usage.perplexity == pytest.approx(math.exp(-sum(q * math.log(q) for q in p)))
    assert usage.perplexity == pytest.approx(2 ** 1.5)
    assert usage.used_fraction == 1.0 and usage.counts == (2, 1, 1)
    usage4 = codebook_usage(torch.tensor([[0, 0], [1, 2]]), 4)
    assert usage4.perplexity == pytest.approx(2 ** 1.5)
    assert usage4.used_fraction == pytest.approx(0.75) and usage4.counts == (2, 1, 1, 0)


@pytest.mark.parametrize("indices,K,name", [
    (torch.tensor([0, 1]), 0, "K"),
    (torch.tensor([0, 1]), -1, "K"),
    (torch.tensor([0, 1]), 2.5, "K"),
    (torch.tensor([0, 1]), True, "K"),
    (torch.tensor([0, 3]), 3, "indices"),
    (torch.tensor([0, -1]), 3, "indices"),
    (torch.tensor([0.0, 1.0]), 3, "indices"),
    (torch.tensor([True, False]), 3, "indices"),
    (torch.tensor([], dtype=torch.long), 3, "indices"),
])
def test_usage_bad_input(indices, K, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        codebook_usage(indices, K)


# --- argument checks ------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,name", [
    (dict(K=0), "K"),
    (dict(K=-1), "K"),
    (dict(K=2.5), "K"),
    (dict(K=True), "K"),
    (dict(L=0), "L"),
    (dict(L=1.0), "L"),
    (dict(code_dim=0), "code_dim"),
    (dict(quantizer="foo"), "quantizer"),
    (dict(quantizer="softmax", beta=0), "beta"),
    (dict(quantizer="softmax", beta=-1), "beta"),
    (dict(quantizer="softmax", beta=float("nan")), "beta"),
    (dict(quantizer="softmax", beta=float("inf")), "beta"),
    (dict(codebook="bar"), "codebook"),
    (dict(in_shape=(0, 8, 8)), "in_shape"),
    (dict(in_shape=()), "in_shape"),
    (dict(in_shape=8), "in_shape"),
    (dict(hidden=0), "hidden"),
    (dict(init="zeros"), "init"),
    (dict(commitment=-1.0), "commitment"),
    (dict(decay=1.0), "decay"),
])
def test_constructor_rejects_bad_arguments(kwargs, name):
    args = dict(in_shape=SHAPE, K=4, L=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        VQVAE(**args)


def test_decode_indices_rejects_bad_indices():
    model = _model(K=4, L=2)
    good = torch.zeros(3, 2, dtype=torch.long)
    model.decode_indices(good)
    bad = [
        torch.zeros(3, 3, dtype=torch.long),  # wrong L
        torch.zeros(3, 1, dtype=torch.long),
        torch.zeros(6, dtype=torch.long),  # not (N, L)
        torch.full((3, 2), 4),  # = K
        torch.full((3, 2), -1),
        torch.zeros(3, 2),  # float
        torch.zeros(3, 2, dtype=torch.bool),
    ]
    for indices in bad:
        with pytest.raises(ValueError, match=r"\bindices\b"):
            model.decode_indices(indices)


def test_forward_rejects_wrong_input_shape(digits):
    model = _model()
    with pytest.raises(ValueError, match="in_shape"):
        model(digits[:4].reshape(4, 1, 4, 16))


def test_construction_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = _model(seed=3), _model(seed=3), _model(seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.encoder[0].weight, c.encoder[0].weight)
