"""Certified bounds (chapter 2, "Certified numbers"): each piece against exact values and
brute force, the whole certificate against a learner whose law is known exactly, and
bad input."""
import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import binom, norm

import vqlib
from vqlib.bounds import CertificateWarning, certify
from vqlib.bounds.certificates import (_vertices, betting_ucb, choose_stake, clopper_pearson, conditional_boxes, cosh_bound_over_box, max_cosh_moment, max_information)


# --------------------------------------------------------------------------- betting


def test_betting_ucb_covers_the_mean_at_its_level():
    # Beta(2, 30) variables (mean 1/16) on [0, 1], 40 per experiment, δ = 0.2: the bound
    # may miss the mean in at most 20% of experiments; a plain sample mean misses in ~50%.
    rng = np.random.default_rng(0)
    delta, trials = 0.2, 1000
    misses, mean_misses = 0, 0
    for _ in range(trials):
        x = rng.beta(2, 30, size=40)
        stake = choose_stake(rng.beta(2, 30, size=10), low=0, high=1, delta=delta, n=40)
        misses += betting_ucb(x, low=0, high=1, delta=delta, stake=stake) < 2 / 32
        mean_misses += x.mean() < 2 / 32
    assert misses / trials <= delta + 3 * math.sqrt(delta * (1 - delta) / trials)
    assert mean_misses / trials > 0.4  # the check has the power to see an uncertified number


def test_betting_ucb_covers_the_average_of_different_means():
    # independent, not identically distributed: Bernoulli(p_j) with p_j spread out; the
    # target is the average of the means (lemma lem-betting, by AM–GM)
    rng = np.random.default_rng(1)
    p = np.repeat([0.02, 0.3, 0.6, 0.9], 15)
    delta, trials, misses = 0.25, 1000, 0
    for _ in range(trials):
        x = (rng.random(p.size) < p).astype(float)
        misses += betting_ucb(x, low=0, high=1, delta=delta, stake=0.5) < p.mean()
    assert misses / trials <= delta + 3 * math.sqrt(delta * (1 - delta) / trials)


def test_betting_ucb_is_never_below_the_sample_mean_and_vacuous_when_too_few():
    x = np.array([0.1, 0.2, 0.15])
    assert betting_ucb(x, low=0, high=1, delta=0.05, stake=0.9) >= x.mean()
    # with 3 values, capital can grow at most (1 + λ)^3 < 1/δ: nothing is certified
    assert betting_ucb(x, low=0, high=1, delta=0.05, stake=1.0) == 1.0
    many = np.full(400, 0.1)
    tight = betting_ucb(many, low=0, high=1, delta=0.05, stake=choose_stake(many[:50], low=0, high=1,
                                                                         delta=0.05, n=400))
    assert 0.1 <= tight < 0.12
    # a smaller δ never gives a smaller bound
    assert betting_ucb(many, low=0, high=1, delta=0.01, stake=0.5) >= betting_ucb(many, low=0, high=1, delta=0.1,
                                                                                  stake=0.5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(values=[0.5, 2.0]), "values must lie"), (dict(values=[np.nan]), "finite"),
    (dict(values=[]), "empty"), (dict(delta=0.0), "delta"), (dict(delta=1.5), "delta"),
    (dict(stake=3.0), "stake"), (dict(stake=0.0), "stake"), (dict(low=1.0), "low"),
])
def test_betting_ucb_rejects_bad_input(kwargs, match):
    args = dict(values=[0.1, 0.2], low=0.0, high=1.0, delta=0.05, stake=0.5) | kwargs
    with pytest.raises(ValueError, match=match):
        betting_ucb(args.pop("values"), **args)


# --------------------------------------------------------------------------- boxes


def test_clopper_pearson_known_values_and_exact_coverage():
    lo, hi = clopper_pearson(0, 10, 0.05)
    assert lo == 0 and hi == pytest.approx(1 - 0.025 ** (1 / 10))
    lo, hi = clopper_pearson(10, 10, 0.05)
    assert hi == 1 and lo == pytest.approx(0.025 ** (1 / 10))
    assert clopper_pearson(0, 0, 0.05) == (0.0, 1.0)
    # exact coverage ≥ 1 − δ for every p on a grid (sum over the binomial law)
    N, delta = 25, 0.1
    k = np.arange(N + 1)
    lo, hi = clopper_pearson(k, N, delta)
    for p in np.linspace(0.01, 0.99, 41):
        covered = binom.pmf(k, N, p)[(lo <= p) & (p <= hi)].sum()
        assert covered >= 1 - delta - 1e-9


def _simplex_grid(k, steps=20):
    for c in itertools.product(range(steps + 1), repeat=k - 1):
        if sum(c) <= steps:
            yield np.array([*c, steps - sum(c)]) / steps


@pytest.mark.parametrize("k", [2, 3])
def test_max_information_is_the_largest_js_over_the_boxes(k):
    rng = np.random.default_rng(k)
    for _ in range(4):
        centre = rng.dirichlet(np.ones(k), size=2)
        lo, hi = np.clip(centre - 0.15, 0, 1), np.clip(centre + 0.15, 0, 1)
        lo[:, -1], hi[:, -1] = 0.0, 1.0  # one free cell, as conditional_boxes leaves it
        best = max_information(lo[None], hi[None])[0]
        steps = 400 if k == 2 else 80
        grid = [p for p in _simplex_grid(k, steps) if np.all(p >= lo[0] - 1e-12) and np.all(p <= hi[0] + 1e-12)]
        grid1 = [p for p in _simplex_grid(k, steps) if np.all(p >= lo[1] - 1e-12) and np.all(p <= hi[1] + 1e-12)]
        p0, p1 = np.array(grid)[:, None], np.array(grid1)[None]
        m = (p0 + p1) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = lambda a, b: np.where(a > 0, a * np.log(np.where(a > 0, a, 1) / b), 0).sum(-1)  # noqa: E731
            brute = float((0.5 * kl(p0, m) + 0.5 * kl(p1, m)).max())
        assert brute <= best + 1e-9  # never below any law in the boxes
        assert best <= brute + (0.01 if k == 2 else 0.03)  # and reached, up to the grid's resolution
        # reached exactly by a feasible pair of vertices
        V0, ok0 = _vertices(lo[0], hi[0])
        V1, ok1 = _vertices(lo[1], hi[1])
        for v, ok, box in ((V0, ok0, 0), (V1, ok1, 1)):
            feasible = v[ok]
            assert np.allclose(feasible.sum(-1), 1) and np.all(feasible >= lo[box] - 1e-9)
            assert np.all(feasible <= hi[box] + 1e-9)


def test_max_cosh_moment_dominates_every_law_in_the_boxes():
    rng = np.random.default_rng(3)
    values = np.array([[-0.3, 0.05, 0.2]])
    lo = np.array([[[0.1, 0.2, 0.0], [0.0, 0.3, 0.1]]])
    hi = np.array([[[0.5, 0.7, 1.0], [0.4, 0.6, 1.0]]])
    law = max_cosh_moment(lo, hi, values)[0]
    assert law.sum() == pytest.approx(1)
    for lam in (0.5, 3.0, 20.0):
        top = law @ np.cosh(lam * values[0])
        for _ in range(300):
            ps = []
            for u in (0, 1):
                p = rng.uniform(lo[0, u], hi[0, u])
                p[2] = 1 - p[:2].sum()
                ps.append(p)
            if all(np.all(p >= lo[0, u] - 1e-12) and np.all(p <= hi[0, u] + 1e-12) for u, p in enumerate(ps)):
                assert 0.5 * (ps[0] + ps[1]) @ np.cosh(lam * values[0]) <= top + 1e-12


def test_cosh_bound_over_box_matches_the_closed_forms():
    # a memoriser: b = ±c with I = log 2 gives exactly c (chapter 2's exercise)
    c = 0.3
    value = cosh_bound_over_box(np.array([math.log(2)]), np.array([[0.5, 0.5]]), np.array([[-c, c]]))[0]
    assert value == pytest.approx(c, abs=2e-3) and value >= c - 1e-12
    # no information: 0; and never above the sub-Gaussian form
    assert cosh_bound_over_box(np.array([0.0]), np.array([[0.5, 0.5]]), np.array([[-c, c]]))[0] == pytest.approx(0)
    info = np.array([0.1])
    assert cosh_bound_over_box(info, np.array([[0.5, 0.5]]), np.array([[-c, c]]))[0] <= math.sqrt(0.2) * c + 1e-12


def test_conditional_boxes_cover_the_true_laws():
    rng = np.random.default_rng(4)
    k, pairs, runs, delta = 3, 5, 60, 0.3
    p = rng.dirichlet(np.ones(k), size=(pairs, 2))
    misses, trials = 0, 300
    for _ in range(trials):
        U = rng.integers(0, 2, size=(runs, pairs))
        labels = np.array([[rng.choice(k, p=p[i, U[m, i]]) for i in range(pairs)] for m in range(runs)])
        lo, hi = conditional_boxes(labels, U, k, np.zeros(pairs, int), delta)
        misses += not np.all((lo <= p + 1e-12) & (p <= hi + 1e-12))
    assert misses / trials <= delta + 3 * math.sqrt(delta * (1 - delta) / trials)


# --------------------------------------------------------------------------- the whole certificate


def _gaussian_learner(rng, mu, sigma, M):
    """Runs of a learner whose loss difference given the mask is N(±μ_i, σ²): exact law known.

    Δ = ℓ₁ − ℓ₀ ~ N(μ_i, σ²) when the pair's training point is 0, N(−μ_i, σ²) when it is 1, so
    G_i = (−1)^U Δ ~ N(μ_i, σ²) and E[gap] = mean μ (the clipping to [−1, 1] is negligible).
    """
    S, n = mu.shape
    U = rng.integers(0, 2, size=(S, M, n))
    delta = np.clip(np.where(U == 0, 1, -1) * mu[:, None] + sigma * rng.standard_normal((S, M, n)), -0.99, 0.99)
    base = rng.uniform(0.3, 0.6, size=(S, 1, n))
    losses = np.stack([base - delta / 2, base + delta / 2], axis=-1)
    return losses, U


def _true_ld_bound(cert_losses, cert_masks, mu, sigma, n_bins, m_fit):
    """The loss-difference cosh bound with the experiment's own bins, from the exact law."""
    S, M, n, _ = cert_losses.shape
    fit_delta = (cert_losses[:, :m_fit, :, 1] - cert_losses[:, :m_fit, :, 0])
    total, err_total = 0.0, 0.0
    z = np.linspace(-8, 8, 4001)
    w = norm.pdf(z) * (z[1] - z[0])
    for s in range(S):
        for i in range(n):
            d = fit_delta[s, :, i]
            edges = np.quantile(d, np.arange(1, n_bins) / n_bins)
            lab = (d[:, None] >= edges[None]).sum(-1)
            reps = np.array([d[lab == j].mean() if np.any(lab == j) else (edges[j - 1] if j else edges[0])
                             for j in range(n_bins)])
            laws, err = [], 0.0
            for sign in (1, -1):
                x = sign * mu[s, i] + sigma * z
                b = (x[:, None] >= edges[None]).sum(-1)
                laws.append(np.array([w[b == j].sum() for j in range(n_bins)]) / w.sum())
                err += 0.5 * (w * np.abs(x - reps[b])).sum() / w.sum()
            p0, p1 = laws
            m = (p0 + p1) / 2
            kl = lambda a, c: np.sum(np.where(a > 0, a * np.log(np.where(a > 0, a, 1) / c), 0))  # noqa: E731
            info = 0.5 * kl(p0, m) + 0.5 * kl(p1, m)
            total += cosh_bound_over_box(np.array([info]), m[None], reps[None])[0]
            err_total += err
    return (total + err_total) / (S * n)


def test_certificate_covers_a_learner_of_known_law():
    # 40 experiments at δ = 0.2; the certified loss-difference bound must stay above the
    # true value of the bound it certifies (which is above the true gap) in ≥ 80% of them,
    # while the plug-in estimate falls below it often: the test can tell them apart.
    rng = np.random.default_rng(5)
    S, n, M, sigma = 2, 6, 96, 0.03
    mu = rng.uniform(0.0, 0.03, size=(S, n))
    delta, trials = 0.2, 40
    below, plug_below, below_gap = 0, 0, 0
    for _ in range(trials):
        losses, U = _gaussian_learner(rng, mu, sigma, M)
        cert = certify(losses, U, confidence=1 - delta, warn=False)
        truth = _true_ld_bound(losses, U, mu, sigma, 2, cert.n_fit)
        assert truth >= mu.mean() - 1e-9  # the bound holds for the exact law
        below += cert.values["ld_cmi_cosh"] < truth
        plug_below += cert.plug_in["ld_cmi_cosh"] < truth
        below_gap += min(cert.values.values()) < mu.mean()
    assert below / trials <= delta
    assert below_gap == 0
    assert plug_below / trials > 0.2


def test_certificate_on_real_runs_is_above_the_measured_gap():
    x = vqlib.load_dataset("digits", split="all")
    r = vqlib.run_supersample(x, n=10, K=4, L=1, n_masks=64, n_supersamples=2, learner="kmeans", train_seed=0)
    assert r.confidence == 0.95 and set(r.certified) >= {"ld_cmi_cosh", "ld_cmi", "e_cmi_cosh", "e_cmi", "held_out"}
    for name, value in r.certified.items():
        assert value >= r.gap - 2 * r.gap_sem, name
        assert value <= 1.0
    assert r.certified["ld_cmi_cosh"] < 1.0
    assert r.to_json()["certificate"]["allocation"]
    # the same arrays through the researchers' path give the same numbers
    loss = np.stack([r.pairs(s)["loss"] for s in (0, 1)])
    U = np.stack([r.pairs(s)["U"] for s in (0, 1)])
    assert vqlib.certified_bounds(loss, U)["ld_cmi_cosh"] == pytest.approx(r.certified["ld_cmi_cosh"])
    # reproducible
    again = vqlib.run_supersample(x, n=10, K=4, L=1, n_masks=64, n_supersamples=2, learner="kmeans", train_seed=0)
    assert again.certified == r.certified


def test_too_few_masks_give_the_vacuous_value_and_say_how_many_would_do():
    rng = np.random.default_rng(6)
    losses, U = _gaussian_learner(rng, np.full((1, 8), 0.01), 0.02, 4)
    with pytest.warns(CertificateWarning, match=r"about \d+ masks per supersample"):
        cert = certify(losses, U)
    assert cert.values["held_out"] == 1.0 and cert.values["ld_cmi_cosh"] == 1.0
    assert any("masks per supersample" in note for note in cert.notes)


def test_encoder_only_lv_bounds_are_certified_and_decoder_slack_is_exact():
    rng = np.random.default_rng(7)
    S, M, n, L, K = 1, 256, 4, 2, 4
    losses, U = _gaussian_learner(rng, np.full((S, n), 0.01), 0.01, M)
    posts = rng.dirichlet(np.ones(K) * 20, size=(S, M, n, 2, L))  # near-uniform posteriors: small KL
    cert = certify(losses, U, posteriors=posts, decoder_information=0.0, warn=False)
    assert cert.kinds["lv_uniform"] == "certified" and cert.values["lv_uniform"] < 1.0
    assert cert.terms["kl_uniform"] >= cert.terms["kl_uniform_plug_in"]
    trained = certify(losses, U, posteriors=posts, warn=False)  # decoder information log 2: vacuous, no δ spent
    assert trained.values["lv_uniform"] == 1.0 and trained.kinds["lv_uniform"] == "exact"
    assert "lv_uniform" not in trained.allocation
    assert sum(cert.allocation.values()) == pytest.approx(0.05)
    assert sum(trained.allocation.values()) == pytest.approx(0.05)


# --------------------------------------------------------------------------- bad input


def _good(S=1, M=8, n=3):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, size=(S, M, n, 2)), rng.integers(0, 2, size=(S, M, n))


@pytest.mark.parametrize("change, match", [
    (lambda l, u: (l[..., 0], u), "losses must have shape"),
    (lambda l, u: (l + 1, u), "losses must lie in"),
    (lambda l, u: (np.where(l > 0.5, np.nan, l), u), "losses must be finite"),
    (lambda l, u: (l, u[:, :, :2]), "masks must have shape"),
    (lambda l, u: (l, u * 2), "masks must hold only 0 and 1"),
    (lambda l, u: (l[:, :1], u[:, :1]), "masks must hold at least 2 runs"),
    (lambda l, u: (l, np.where(u == 1, np.nan, u)), "masks must be finite"),
])
def test_bad_arrays_are_named(change, match):
    losses, U = change(*_good())
    with pytest.raises(ValueError, match=match):
        vqlib.certified_bounds(losses, U)


@pytest.mark.parametrize("confidence", [0, 1, 1.5, -0.1, float("nan"), "high"])
def test_confidence_outside_the_open_unit_interval_is_named(confidence):
    with pytest.raises(ValueError, match="confidence"):
        vqlib.certified_bounds(*_good(), confidence=confidence)


def test_bad_posteriors_are_named():
    losses, U = _good()
    with pytest.raises(ValueError, match="posteriors"):
        certify(losses, U, posteriors=np.ones((1, 8, 3, 2, 1, 4)))  # rows sum to 4
    with pytest.raises(ValueError, match="posteriors must have shape"):
        certify(losses, U, posteriors=np.ones((1, 8, 3, 1, 4)) / 4)


@settings(max_examples=40, deadline=None)
@given(S=st.integers(1, 3), M=st.integers(2, 24), n=st.integers(1, 5), seed=st.integers(0, 2**32 - 1),
       ties=st.booleans(), confidence=st.floats(0.5, 0.999))
def test_any_valid_runs_give_values_in_range(S, M, n, seed, ties, confidence):
    """Whatever the runs (ties, constant losses, one pair, lopsided masks), the values are
    numbers in [−1, 1], the cosh form never exceeds the range-1 form, and held-out is at
    least the estimation runs' mean gap."""
    rng = np.random.default_rng(seed)
    losses = rng.uniform(0, 1, size=(S, M, n, 2))
    if ties:
        losses = np.round(losses * 2) / 2
    U = rng.integers(0, 2, size=(S, M, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CertificateWarning)
        cert = certify(losses, U, confidence=confidence)
    for name, v in cert.values.items():
        assert np.isfinite(v) and -1 <= v <= 1, name
    assert cert.values["ld_cmi_cosh"] <= cert.values["ld_cmi"] + 1e-12
    assert cert.values["e_cmi_cosh"] <= cert.values["e_cmi"] + 1e-12
    est = slice(cert.n_fit, M)
    gap = np.where(U[:, est] == 0, 1, -1) * (losses[:, est, :, 1] - losses[:, est, :, 0])
    assert cert.values["held_out"] >= min(gap.mean(), 1.0) - 1e-9
