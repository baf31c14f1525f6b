"""Generation priors (chapter 7): fit, sample and score consistently; bad input raises."""
import itertools
import math

import numpy as np
import pytest
import torch

import vqlib
from vqlib.models import AggregatedPrior, MarkovPrior, UniformPrior, make_prior

K, L = 3, 3


@pytest.fixture(scope="module")
def codes():
    # dependent positions: position l+1 copies position l with probability 0.8
    rng = np.random.default_rng(0)
    out = np.empty((400, L), dtype=np.int64)
    out[:, 0] = rng.choice(K, size=400, p=[0.6, 0.3, 0.1])
    for l in range(1, L):
        copy = rng.uniform(size=400) < 0.8
        out[:, l] = np.where(copy, out[:, l - 1], rng.integers(K, size=400))
    return out


def _fitted(codes):
    return [UniformPrior(K, L), AggregatedPrior(K, L).fit(codes), MarkovPrior(K, L, alpha=0.5).fit(codes)]


ALL_CODES = np.array(list(itertools.product(range(K), repeat=L)))


def test_log_prob_sums_to_one(codes):
    for prior in _fitted(codes):
        assert np.exp(prior.log_prob(ALL_CODES)).sum() == pytest.approx(1.0, abs=1e-12), prior.name


def test_sample_frequencies_match_probabilities(codes):
    for prior in _fitted(codes):
        s = prior.sample(60_000, seed=1).numpy()
        assert s.dtype == np.int64 and s.shape == (60_000, L)
        index = (s * K ** np.arange(L - 1, -1, -1)).sum(1)
        freq = np.bincount(index, minlength=K ** L) / len(s)
        p = np.exp(prior.log_prob(ALL_CODES))
        # 5 standard errors of a binomial frequency
        assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / len(s)) + 1e-4), prior.name


def test_samples_reproducible(codes):
    for prior in _fitted(codes):
        assert torch.equal(prior.sample(50, seed=3), prior.sample(50, seed=3))
        assert not torch.equal(prior.sample(50, seed=3), prior.sample(50, seed=4))


def test_closed_forms(codes):
    assert UniformPrior(K, L).log_prob(ALL_CODES) == pytest.approx(np.full(len(ALL_CODES), -L * math.log(K)))
    agg = AggregatedPrior(K, L, alpha=1.0).fit(codes)
    counts = np.stack([np.bincount(codes[:, l], minlength=K) for l in range(L)])
    assert agg.probs == pytest.approx((counts + 1) / (len(codes) + K))
    mk = MarkovPrior(K, L, alpha=1.0).fit(codes)
    pair = np.zeros((K, K))
    np.add.at(pair, (codes[:, 0], codes[:, 1]), 1)
    assert mk.transitions[0] == pytest.approx((pair + 1) / (pair + 1).sum(1, keepdims=True))


def test_markov_models_dependence_better(codes):
    """On dependent data the chain prior is a better code model than the product of marginals."""
    train, test = codes[:300], codes[300:]
    agg, mk = AggregatedPrior(K, L).fit(train), MarkovPrior(K, L).fit(train)
    assert mk.log_prob(test).mean() > agg.log_prob(test).mean() + 0.3


def test_fit_from_posteriors_matches_codes_when_one_hot(codes):
    onehot = np.eye(K)[codes]
    for cls in (AggregatedPrior, MarkovPrior):
        a, b = cls(K, L).fit(codes), cls(K, L).fit(onehot)
        assert np.allclose(a.log_prob(ALL_CODES), b.log_prob(ALL_CODES))


def test_kl_from_posteriors_brute_force(codes):
    rng = np.random.default_rng(5)
    q = rng.dirichlet(np.ones(K), size=(4, L))  # (4, L, K) product posteriors
    joint = np.prod(q[:, np.arange(L)[None, :], ALL_CODES], axis=-1)  # (4, K^L)
    for prior in _fitted(codes):
        logp = prior.log_prob(ALL_CODES)
        expected = (joint * (np.log(joint) - logp[None])).sum(1)
        assert prior.kl_from_posteriors(q) == pytest.approx(expected, rel=1e-9), prior.name
        # one-hot posteriors: KL = −log π(j)
        onehot = np.eye(K)[codes[:5]]
        assert prior.kl_from_posteriors(onehot) == pytest.approx(-prior.log_prob(codes[:5]))
        assert prior.max_neg_log_prob() == pytest.approx(-logp.min())
        assert prior.cross_entropy(q) == pytest.approx(-(joint * logp[None]).sum(1))


def test_make_prior_and_repr():
    assert isinstance(make_prior("markov", 4, 2), MarkovPrior)
    assert "K=4" in repr(make_prior("uniform", 4, 2))
    with pytest.raises(ValueError, match="prior='gauss'"):
        make_prior("gauss", 4, 2)


@pytest.mark.parametrize("bad, match", [
    (np.array([[0, 1]]), r"shape \(n, L=3\)"),
    (np.array([[0, 1, 3]]), r"\[0, K=3\)"),
    (np.array([[0, -1, 2]]), r"\[0, K=3\)"),
    (np.array([[0.0, 1.0, 2.0]]), "integers"),
    (np.zeros((0, 3), dtype=np.int64), "empty"),
    (np.full((2, 3, 3), 0.5), "sum to 1"),
    (np.full((2, 3, 3), np.nan), "finite"),
    (np.zeros((2, 3, 3, 1)), "codes"),
])
def test_bad_fit_input(bad, match):
    with pytest.raises(ValueError, match=match):
        AggregatedPrior(K, L).fit(bad)


def test_bad_construction_and_use(codes):
    for kwargs, match in [(dict(K=0, L=2), "K"), (dict(K=2, L=0), "L")]:
        with pytest.raises(ValueError, match=match):
            MarkovPrior(**kwargs)
    with pytest.raises(ValueError, match="alpha"):
        AggregatedPrior(3, 3, alpha=0.0)
    with pytest.raises(ValueError, match="not fitted"):
        MarkovPrior(3, 3).sample(4)
    prior = AggregatedPrior(K, L).fit(codes)
    with pytest.raises(ValueError, match="n must be at least 1"):
        prior.sample(0)
    with pytest.raises(ValueError, match="seed"):
        prior.sample(3, seed=-1)
    with pytest.raises(ValueError, match=r"\[0, K=3\)"):
        prior.log_prob(np.array([[5, 0, 0]]))


def test_exported():
    assert vqlib.UniformPrior is UniformPrior and vqlib.MarkovPrior is MarkovPrior
