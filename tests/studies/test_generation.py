"""Generation (chapter 7): vqlib.generate, the W2 bound's terms, the KL penalty, the sweeps."""
import math

import numpy as np
import ot
import pytest
import torch

import vqlib
from vqlib.sweeps import ch07_generation as ch07
from vqlib.studies import generation_bound
from vqlib.studies.generation import measure_w2, posteriors, tempered, w2_terms
from vqlib.models import AggregatedPrior, MarkovPrior, UniformPrior


@pytest.fixture(scope="module")
def split():
    return ch07.split_data(vqlib.load_dataset("digits", split="all"), 897, split_seed=0)


def _model(x_train, K=16, L=4, seed=0, epochs=6, **kw):
    model = vqlib.VQVAE((1, 8, 8), K, L, hidden=32, seed=seed, beta=5.0)
    vqlib.fit(model, x_train, epochs=epochs, lr=3e-3, train_seed=seed, **kw)
    return model


@pytest.fixture(scope="module")
def model(split):
    return _model(split[0])


# ------------------------------------------------------------------ generate


def test_generate_shape_range_seed(model, split):
    prior = AggregatedPrior(16, 4).fit(vqlib.encode_indices(model, split[0]))
    for p in (None, prior):
        a = vqlib.generate(model, 37, p, seed=3)
        assert a.shape == (37, 1, 8, 8) and a.min() >= 0 and a.max() <= 1
        assert torch.equal(a, vqlib.generate(model, 37, p, seed=3))
        assert not torch.equal(a, vqlib.generate(model, 37, p, seed=4))
    # the default prior is the uniform one
    assert torch.equal(vqlib.generate(model, 5, seed=1), vqlib.generate(model, 5, UniformPrior(16, 4), seed=1))


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_generate_bad_n(model, n):
    with pytest.raises(ValueError, match="n must"):
        vqlib.generate(model, n)


def test_generate_bad_prior(model):
    with pytest.raises(ValueError, match="K=8"):
        vqlib.generate(model, 3, UniformPrior(8, 4))
    with pytest.raises(ValueError, match="vqlib.models.priors"):
        vqlib.generate(model, 3, prior="uniform")


# ------------------------------------------------------------------ the proof's steps, numerically


def test_reconstruction_coupling_step(model, split):
    """W2(sample, its reconstructions) ≤ sqrt(d · mean loss): coupling each x with x̂."""
    for m in (model, tempered(model, 5.0)):
        x = split[1]
        with torch.no_grad():
            x_hat = m(x, generator=torch.Generator().manual_seed(0)).x_hat
        loss = float(((x - x_hat) ** 2).mean())
        assert vqlib.w2(x, x_hat) <= math.sqrt(64 * loss) + 1e-9


def test_tv_step_on_random_discrete_laws():
    """W2(μ, ν)² ≤ diam² · TV(μ, ν) for laws on the same points (the generation step)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        pts = rng.uniform(size=(12, 5))
        mu, nu = rng.dirichlet(np.ones(12) * 0.3), rng.dirichlet(np.ones(12) * 0.3)
        cost = ((pts[:, None] - pts[None]) ** 2).sum(-1)
        w2sq = ot.emd2(mu, nu, cost, numItermax=10**6)
        tv = 0.5 * np.abs(mu - nu).sum()
        assert w2sq <= cost.max() * tv + 1e-12
        kl = float(np.sum(mu * np.log(mu / nu)))
        assert tv <= math.sqrt(kl / 2) + 1e-12  # Pinsker


def test_w2_terms_closed_form():
    t = w2_terms(64, 0.05, 0.5)
    assert t["rec"] == pytest.approx(math.sqrt(3.2))
    assert t["gen"] == pytest.approx(8 * 0.25 ** 0.25)  # diam · (kl/2)^{1/4}
    assert t["total"] == pytest.approx(t["rec"] + t["gen"])
    assert w2_terms(64, 0.0, 100.0)["gen"] == pytest.approx(8.0)  # TV ≤ 1
    for bad in [dict(d=0, risk=0.1, kl=0.1), dict(d=4, risk=-0.1, kl=0.1), dict(d=4, risk=0.1, kl=float("nan"))]:
        with pytest.raises(ValueError):
            w2_terms(**bad)


def test_bound_terms_consistent(model, split):
    x_train, x_a, x_b = split
    held = torch.cat([x_a, x_b])
    uniform = generation_bound(model, UniformPrior(16, 4), held)
    assert uniform["kl_mean"] == pytest.approx(4 * math.log(16))  # one-hot posterior vs uniform: L log K
    m = tempered(model, 5.0)
    q = posteriors(m, x_train)
    assert q.shape == (len(x_train), 4, 16) and np.allclose(q.sum(-1), 1)
    for prior in (UniformPrior(16, 4), AggregatedPrior(16, 4).fit(q), MarkovPrior(16, 4, alpha=0.1).fit(q)):
        b = generation_bound(m, prior, held)
        assert b["d"] == 64 and b["m"] == len(held) and 0 < b["diam"] <= 8.0
        assert b["risk_upper"] >= b["test_loss"] and b["kl_upper"] >= b["kl_mean"]
        assert b["kl_mean"] <= b["kl_max"] + 1e-9
        assert b["rec_term"] == pytest.approx(math.sqrt(64 * b["risk_upper"]))
        assert b["bound"] == pytest.approx(b["rec_term"] + b["gen_term"])
        assert b["bound_estimate"] <= b["bound"] + 1e-12


def test_bound_at_or_above_measured_w2_over_seeds(split):
    """Quick configurations over several seeds: the bound is at or above the measured W2."""
    x_train, x_a, x_b = split
    held, count, total = torch.cat([x_a, x_b]), 0, 0
    for seed in range(3):
        model = _model(x_train, K=16, L=4, seed=seed)
        for beta in (5.0, None):
            m = model if beta is None else tempered(model, beta)
            q = posteriors(m, x_train)
            for prior in (UniformPrior(16, 4), AggregatedPrior(16, 4).fit(q), MarkovPrior(16, 4, alpha=0.1).fit(q)):
                b = generation_bound(m, prior, held, seed=seed)
                w = measure_w2(m, prior, x_a, x_b, seed=seed)
                total += 1
                count += b["bound"] >= w["w2_gen"]
                assert w["w2_ref"] > 0 and w["w2_rec"] > 0
    assert count == total == 18


def test_bound_bad_input(model, split):
    with pytest.raises(ValueError, match="K=8"):
        generation_bound(model, UniformPrior(8, 4), split[1])
    with pytest.raises(ValueError, match="delta"):
        generation_bound(model, UniformPrior(16, 4), split[1], delta=1.5)
    with pytest.raises(ValueError, match="same size"):
        measure_w2(model, UniformPrior(16, 4), split[1], split[2][:10])
    with pytest.raises(ValueError, match="beta"):
        tempered(model, 0.0)


# ------------------------------------------------------------------ the KL-to-prior penalty in fit


def test_kl_penalty_pulls_posterior_to_prior(model, split):
    """Training with the KL-to-uniform penalty (at the model's β = 5) lowers that KL."""
    x_train = split[0]
    penalised = _model(x_train, kl_weight=0.1)
    kl = [UniformPrior(16, 4).kl_from_posteriors(posteriors(tempered(m, 5.0), x_train)).mean()
          for m in (model, penalised)]
    assert kl[1] < 0.5 * kl[0]


def test_kl_penalty_reproducible_and_bad_input(split):
    x_train = split[0][:100]
    a = _model(x_train, K=4, L=2, epochs=2, kl_weight=0.1, kl_prior=[0.1, 0.2, 0.3, 0.4])
    b = _model(x_train, K=4, L=2, epochs=2, kl_weight=0.1, kl_prior=[0.1, 0.2, 0.3, 0.4])
    assert torch.equal(a.encoder[0].weight, b.encoder[0].weight)
    m = vqlib.VQVAE((1, 8, 8), 4, 2, hidden=16, beta=5.0)
    for kwargs, match in [(dict(kl_weight=-1.0), "kl_weight"), (dict(kl_weight=float("nan")), "kl_weight"),
                          (dict(kl_weight=0.1, kl_prior=[0.5, 0.5]), "kl_prior"),
                          (dict(kl_weight=0.1, kl_prior=[0.0, 0.0, 0.5, 0.5]), "kl_prior")]:
        with pytest.raises(ValueError, match=match):
            vqlib.fit(m, x_train, epochs=1, **kwargs)


# ------------------------------------------------------------------ the chapter's sweeps


def test_sweeps_registered_and_rows(split):
    from vqlib import sweeps

    assert sweeps.get("ch07-priors") is ch07.PRIORS and sweeps.get("ch07-penalty") is ch07.PENALTY
    x = vqlib.load_dataset("digits", split="all")
    rows = ch07._penalty_job(x, kl_weight=1e-3, train_seed=1, split_seed=0, n_train=897, K=8, L=2, beta=5.0,
                             hidden=16, epochs=2, lr=3e-3, delta=0.05)
    assert [r["prior"] for r in rows] == ["uniform", "aggregated", "markov"]
    for r in rows:
        assert r["train_seed"] == 1 and r["split_seed"] == 0 and r["kl_weight"] == 1e-3
        assert len(r["samples"]) == ch07.N_SAMPLES and len(r["samples"][0]) == 64
        assert r["bound_holds"] == (r["bound"] >= r["w2_gen"])
    with pytest.raises(ValueError, match="n_train"):
        ch07.split_data(x, 1797, 0)


# ------------------------------------------------------------------ the decoder's diameter


def test_output_ranges_enumerated_and_interval(model):
    """Exact ranges (all K^L decodings) contain every decoded output; interval ranges contain the exact ones."""
    lo, hi = vqlib.studies.generation.output_ranges(model)
    lo_ibp, hi_ibp = vqlib.studies.generation.output_ranges(model, max_enumerate=0)
    assert torch.all(lo_ibp <= lo + 1e-6) and torch.all(hi <= hi_ibp + 1e-6)
    with torch.no_grad():
        out = model.decode_indices(UniformPrior(16, 4).sample(3000, seed=0)).reshape(3000, -1)
    assert torch.all(out >= lo - 1e-6) and torch.all(out <= hi + 1e-6)
    diam = vqlib.studies.generation.diameter_bound(model)
    assert torch.cdist(out[:1500], out[1500:]).max() <= diam + 1e-6
    assert diam <= vqlib.studies.generation.diameter_bound(model, max_enumerate=0) <= 8.0


def test_interval_ranges_deeper_decoder(split):
    m = vqlib.VQVAE((1, 8, 8), 4, 3, hidden=16, decoder_depth=3, seed=2)
    vqlib.fit(m, split[0][:200], epochs=1, train_seed=2)
    lo, hi = vqlib.studies.generation.output_ranges(m)  # 64 codes: exact
    lo_ibp, hi_ibp = vqlib.studies.generation.output_ranges(m, max_enumerate=0)
    assert torch.all(lo_ibp <= lo + 1e-6) and torch.all(hi <= hi_ibp + 1e-6)
