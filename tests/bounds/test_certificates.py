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
from vqlib.bounds.certificates import (_vertices, betting_ucb, check_cells, clopper_pearson, conditional_boxes,
                                       cosh_bound_over_box, cosh_bound_two_cells, max_cosh_moment, max_information)


# --------------------------------------------------------------------------- betting


def test_betting_ucb_covers_the_mean_at_its_level():
    # Beta(2, 30) variables (mean 1/16) on [0, 1], 40 per experiment, δ = 0.2: the bound
    # may miss the mean in at most 20% of experiments; a plain sample mean misses in ~50%.
    rng = np.random.default_rng(0)
    delta, trials = 0.2, 1000
    misses, mean_misses = 0, 0
    for _ in range(trials):
        x = rng.beta(2, 30, size=40)
        misses += betting_ucb(x, low=0, high=1, delta=delta) < 2 / 32
        mean_misses += x.mean() < 2 / 32
    assert misses / trials <= delta + 3 * math.sqrt(delta * (1 - delta) / trials)
    assert mean_misses / trials > 0.4  # the check has the power to see an uncertified number


@pytest.mark.parametrize("stake", [0.3, 0.99, 1.0])
def test_betting_ucb_covers_the_average_of_different_means(stake):
    # independent, not identically distributed: Bernoulli(p_j) with p_j spread out; the
    # target is the average of the means (lemma lem-betting, by AM–GM), whatever the stake
    rng = np.random.default_rng(1)
    p = np.repeat([0.02, 0.3, 0.6, 0.9], 15)
    delta, trials, misses = 0.25, 1000, 0
    for _ in range(trials):
        x = (rng.random(p.size) < p).astype(float)
        misses += betting_ucb(x, low=0, high=1, delta=delta, stake=stake) < p.mean()
    assert misses / trials <= delta + 3 * math.sqrt(delta * (1 - delta) / trials)


def test_betting_ucb_covers_a_mean_near_the_top_of_its_range():
    # the stake 1/(high − μ) grows as μ nears the top; a Bernoulli(0.96) single value misses
    # (when it is 0) with probability 0.04 ≤ δ = 0.05: the lemma is tight there, never wrong
    rng = np.random.default_rng(2)
    for p, J, delta in ((0.96, 1, 0.05), (0.9, 5, 0.1), (0.5, 3, 0.2)):
        x = (rng.random((4000, J)) < p).astype(float)
        misses = np.mean([betting_ucb(row, low=0, high=1, delta=delta) < p for row in x])
        assert misses <= delta + 3 * math.sqrt(delta * (1 - delta) / len(x)), (p, J)


def test_betting_ucb_on_equal_values_is_the_closed_form_and_pays_the_distance_to_the_top():
    # every X_j = x: K(μ) = (1 + c(μ − x)/(high − μ))^J = 1/δ at u = (c·x + r·high)/(c + r), r = δ^(−1/J) − 1
    for x, J, delta, c in ((0.01, 400, 0.05, 0.99), (0.3, 50, 0.01, 0.5), (-0.2, 1000, 0.02, 1.0)):
        r = delta ** (-1 / J) - 1
        u = betting_ucb(np.full(J, x), low=-1.0, high=1.0, delta=delta, stake=c)
        assert u == pytest.approx((c * x + r * 1.0) / (c + r), rel=1e-9, abs=1e-12)
        # the floor is (high − x)·r/c to first order: it does not depend on the bottom of the range
        assert u == pytest.approx(betting_ucb(np.full(J, x), low=x - 5.0, high=1.0, delta=delta, stake=c), abs=1e-12)
    # a fixed stake 1/(high − low) paid about (high − low)·r: twice as much on [−1, 1] at x ≈ 0
    r = 0.05 ** (-1 / 400) - 1
    assert betting_ucb(np.zeros(400), low=-1, high=1, delta=0.05) < 0.6 * 2 * r


def test_betting_ucb_is_never_below_the_sample_mean_and_vacuous_only_at_the_top():
    x = np.array([0.1, 0.2, 0.15])
    assert x.mean() <= betting_ucb(x, low=0, high=1, delta=0.05) < 1.0  # three values say something
    assert betting_ucb(np.ones(10), low=0, high=1, delta=0.05) == 1.0  # every value at the top: nothing
    assert betting_ucb(np.ones(10), low=0, high=1, delta=0.05, stake=1.0) == 1.0
    many = np.full(400, 0.1)
    assert 0.1 <= betting_ucb(many, low=0, high=1, delta=0.05) < 0.11
    # a smaller δ never gives a smaller bound, nor does a larger range
    assert betting_ucb(many, low=0, high=1, delta=0.01) >= betting_ucb(many, low=0, high=1, delta=0.1)
    assert betting_ucb(many, low=0, high=2, delta=0.05) >= betting_ucb(many, low=0, high=1, delta=0.05)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(0, 1), min_size=1, max_size=60), delta=st.floats(0.001, 0.5),
       stake=st.floats(0.01, 1.0))
def test_betting_ucb_lies_between_the_mean_and_the_top(values, delta, stake):
    u = betting_ucb(values, low=0.0, high=1.0, delta=delta, stake=stake)
    assert np.mean(values) - 1e-12 <= u <= 1.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(values=[0.5, 2.0]), "values must lie"), (dict(values=[np.nan]), "finite"),
    (dict(values=[]), "empty"), (dict(delta=0.0), "delta"), (dict(delta=1.5), "delta"),
    (dict(stake=3.0), "stake"), (dict(stake=0.0), "stake"), (dict(stake=True), "stake"), (dict(low=1.0), "low"),
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


def _js2(q0, q1):
    m = (q0 + q1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = lambda a, b: np.nan_to_num(a * np.log(a / b)) + np.nan_to_num((1 - a) * np.log((1 - a) / (1 - b)))  # noqa: E731
        return 0.5 * kl(q0, m) + 0.5 * kl(q1, m)


@pytest.mark.parametrize("seed", range(6))
def test_cosh_bound_two_cells_bounds_the_joint_sup_and_beats_the_separate_one(seed):
    rng = np.random.default_rng(seed)
    LAMBDAS = np.exp(np.linspace(math.log(1e-2), math.log(1e5), 721))  # finer than any grid of the library
    q = np.sort(rng.uniform(0, 1, size=(2, 2)), axis=1)  # per U: the interval of P(cell 1 | U)
    lo = np.zeros((1, 2, 2))
    hi = np.ones((1, 2, 2))
    lo[0, :, 1], hi[0, :, 1] = q[:, 0], q[:, 1]  # cell 0 free, as conditional_boxes may leave it
    values = np.array([[rng.uniform(-0.3, 0.1), rng.uniform(0.0, 0.4)]])
    info, cosh = cosh_bound_two_cells(lo, hi, values)
    # brute force on a fine grid of the box, for every λ of the grid, then the infimum over λ
    g0, g1 = np.meshgrid(np.linspace(*q[0], 121), np.linspace(*q[1], 121), indexing="ij")
    js = _js2(g0, g1)
    qbar = (g0 + g1) / 2
    moment = (1 - qbar)[None] * np.cosh(LAMBDAS[:, None, None] * values[0, 0]) \
        + qbar[None] * np.cosh(LAMBDAS[:, None, None] * values[0, 1])
    # every law in the box has its own bound inf_λ (JS + log moment)/λ: the box's value is at least their largest
    per_law = ((js[None] + np.log(moment)) / LAMBDAS[:, None, None]).min(0)
    per_law = np.minimum(per_law, np.sqrt(2 * js) * np.abs(values).max())
    assert cosh[0] >= per_law.max() - 1e-12
    # and the joint supremum, inf_λ sup_box, is what it computes, up to the grids
    joint = ((js[None] + np.log(moment)).reshape(len(LAMBDAS), -1).max(-1) / LAMBDAS).min()
    assert cosh[0] <= min(joint, math.sqrt(2 * js.max()) * np.abs(values).max()) * 1.02 + 1e-6
    assert info[0] == pytest.approx(js.max(), abs=1e-9)  # the largest information: at a corner
    # never above putting the largest information and the largest moment together
    separate = cosh_bound_over_box(info, max_cosh_moment(lo, hi, values), values)[0]
    assert cosh[0] <= separate + 1e-12
    # a proved information bound below the box's caps both
    capped_info, capped = cosh_bound_two_cells(lo, hi, values, information=info[0] / 4)
    assert capped_info[0] == pytest.approx(info[0] / 4) and capped[0] <= cosh[0] + 1e-12


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


def _true_ld_bound(cert_losses, cert_masks, truth_losses, truth_masks, m_fit):
    """The loss-difference bound the experiment certified (its own bins and values, fitted on its
    fit runs) at the learner's law, read off a truth pool of independent runs: the cosh form at
    the law of the binned statistic plus the mean signed residual (−1)^U (Δ − b)."""
    from vqlib.bounds.certificates import _loss_difference, _plug_in_pairs

    S, M, n, _ = cert_losses.shape
    pool = lambda a: np.moveaxis(a, 0, 1).reshape(a.shape[1], S * n, *a.shape[3:])  # noqa: E731
    fit_l, fit_u = pool(cert_losses[:, :m_fit]), pool(cert_masks[:, :m_fit])
    t_l, t_u = pool(truth_losses), pool(truth_masks)
    stat = _loss_difference(fit_l[..., 1] - fit_l[..., 0], t_l[..., 1] - t_l[..., 0], 2, fit_u)
    _, cosh = _plug_in_pairs(stat, t_u)
    return float(cosh.mean() + ((1 - 2 * t_u) * stat.signed_error).mean())


def test_certificate_covers_a_learner_of_known_law():
    # 40 experiments at δ = 0.2; the certified loss-difference bound must stay above the
    # true value of the bound it certifies (which is above the true gap) in ≥ 80% of them,
    # while the plug-in estimate falls below it often: the test can tell them apart.
    rng = np.random.default_rng(5)
    S, n, M, sigma = 2, 6, 96, 0.03
    mu = rng.uniform(0.0, 0.03, size=(S, n))
    truth_losses, truth_masks = _gaussian_learner(rng, mu, sigma, 20000)
    delta, trials = 0.2, 40
    below, plug_below, below_gap = 0, 0, 0
    for _ in range(trials):
        losses, U = _gaussian_learner(rng, mu, sigma, M)
        cert = certify(losses, U, confidence=1 - delta, warn=False)
        truth = _true_ld_bound(losses, U, truth_losses, truth_masks, cert.n_fit)
        assert truth >= mu.mean() - 3 * sigma / math.sqrt(20000)  # the bound holds for the law
        below += cert.values["ld_cmi_cosh"] < truth
        plug_below += cert.plug_in["ld_cmi_cosh"] < truth
        below_gap += min(cert.values.values()) < mu.mean()
    assert below / trials <= delta
    assert below_gap <= delta * trials
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
    with pytest.warns(CertificateWarning, match=r"ld_cmi: vacuous .* about \d+ masks per supersample"):
        cert = certify(losses, U)
    assert cert.values["ld_cmi"] == 1.0 and cert.values["e_cmi"] == 1.0
    # with the stake 1/(high − μ) a mean is certified below 1 from a few runs, but loosely: 4 masks
    # give a held-out value 50 times the gap of 0.01
    assert 0.5 < cert.values["held_out"] < 1.0 and cert.values["ld_cmi_cosh"] > 0.5
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


# --------------------------------------------------------------------------- families, δ and ranges


def test_delta_is_spent_only_on_the_families_certified():
    rng = np.random.default_rng(8)
    losses, U = _gaussian_learner(rng, np.full((2, 6), 0.02), 0.02, 64)
    every = certify(losses, U, warn=False, select=False)
    assert set(every.values) == {"ld_cmi_cosh", "ld_cmi", "e_cmi_cosh", "e_cmi", "held_out"}
    assert sum(every.allocation.values()) == pytest.approx(0.05)
    alone = certify(losses, U, families=["held_out"], select=False, warn=False)
    assert set(alone.values) == {"held_out"} and alone.allocation == {"held_out": pytest.approx(0.05)}
    assert alone.values["held_out"] < every.values["held_out"]  # the whole δ buys a tighter value
    with pytest.raises(ValueError, match=r"families \['lv_uniform'\] are not among"):
        certify(losses, U, families=["lv_uniform"])  # no posteriors given


def test_families_that_fit_nothing_estimate_on_every_run_unless_something_was_selected():
    rng = np.random.default_rng(9)
    losses, U = _gaussian_learner(rng, np.full((1, 5), 0.02), 0.02, 40)
    fixed = certify(losses, U, families=["held_out", "ld"], select=False, warn=False)
    chosen = certify(losses, U, families=["held_out", "ld"], select=True, warn=False)
    assert fixed.terms["held_out_runs"] == 40 and chosen.terms["held_out_runs"] == 40 - chosen.n_fit
    assert fixed.terms["ld_runs"] == chosen.terms["ld_runs"] == 40 - fixed.n_fit  # the bins came from the fit runs
    gaps = ((1 - 2 * U) * (losses[..., 1] - losses[..., 0])).mean(-1).reshape(-1)
    assert fixed.values["held_out"] == pytest.approx(betting_ucb(gaps, low=-1, high=1, delta=0.025))


def test_select_drops_families_the_fit_runs_show_cannot_be_below_1_and_pays_them_nothing():
    rng = np.random.default_rng(10)
    S, M, n, L, K = 1, 128, 4, 2, 8
    losses, U = _gaussian_learner(rng, np.full((S, n), 0.01), 0.01, M)
    sharp = np.full((S, M, n, 2, L, K), 1e-6)
    sharp[..., 0] = 1 - 1e-6 * (K - 1)  # nearly one-hot on code 0: KL to uniform ≈ 2L log K per pair
    cert = certify(losses, U, posteriors=sharp, decoder_information=0.0, select=True, warn=False)
    assert cert.values["lv_uniform"] == 1.0 and cert.kinds["lv_uniform"] == "exact"
    assert "lv_uniform" not in cert.allocation and any("lv_uniform: not certified" in n for n in cert.notes)
    assert sum(cert.allocation.values()) == pytest.approx(0.05)
    kept = certify(losses, U, posteriors=sharp, decoder_information=0.0, select=False, warn=False)
    assert kept.kinds["lv_uniform"] == "certified" and "lv_uniform" in kept.allocation


def test_one_hot_posteriors_make_the_uniform_prior_exact_and_free():
    rng = np.random.default_rng(11)
    S, M, n, L, K = 1, 32, 3, 2, 4
    losses, U = _gaussian_learner(rng, np.full((S, n), 0.01), 0.01, M)
    codes = rng.integers(0, K, size=(S, M, n, 2, L))
    one_hot = np.eye(K)[codes]
    cert = certify(losses, U, posteriors=one_hot, decoder_information=0.0, select=False, warn=False)
    assert cert.values["lv_uniform"] == 1.0 and cert.kinds["lv_uniform"] == "exact"
    assert "lv_uniform" not in cert.allocation


def test_a_proved_kl_range_is_used_and_a_run_above_it_is_refused():
    rng = np.random.default_rng(12)
    S, M, n, L, K = 1, 200, 4, 2, 8
    losses, U = _gaussian_learner(rng, np.full((S, n), 0.01), 0.01, M)
    posts = rng.dirichlet(np.ones(K) * 200, size=(S, M, n, 2, L))  # very near uniform: KL ≈ 0.02 per pair
    kl = (posts * np.log(posts * K)).sum((-1, -2, -3))
    proved = float(kl.max()) * 1.5
    wide = certify(losses, U, posteriors=posts, decoder_information=0.0, families=["lv_uniform"], select=False,
                   warn=False)
    narrow = certify(losses, U, posteriors=posts, decoder_information=0.0, families=["lv_uniform"], select=False,
                     kl_ranges={"uniform": proved}, warn=False)
    assert narrow.terms["kl_uniform_range"] == proved and wide.terms["kl_uniform_range"] == pytest.approx(2 * L * math.log(K))
    assert kl.mean() <= narrow.terms["kl_uniform"] < wide.terms["kl_uniform"]
    assert narrow.values["lv_uniform"] < wide.values["lv_uniform"] < 1
    with pytest.raises(ValueError, match=r"kl_ranges\['uniform'\] = .* is not a range .* per-pair KL of"):
        certify(losses, U, posteriors=posts, decoder_information=0.0, kl_ranges={"uniform": float(kl.max()) / 2})
    for bad, match in (({"uniform": -1.0}, "finite number > 0"), ({"uniform": float("nan")}, "finite number > 0"),
                       ({"softmax": 1.0}, "unknown prior 'softmax'")):
        with pytest.raises(ValueError, match=match):
            certify(losses, U, posteriors=posts, decoder_information=0.0, kl_ranges=bad)


def test_too_many_cells_are_refused_before_allocating():
    losses, U = _good(M=16)
    with pytest.raises(ValueError, match=r"the pair of losses \(n_bins=4\) has k=16 cells"):
        certify(losses, U, n_bins=4)
    with pytest.raises(ValueError, match=r"the loss difference \(n_bins=10\) has k=10 cells"):
        certify(losses, U, n_bins=10, families=["ld"])
    check_cells(9)  # 2304 vertices per law: computed, in blocks
    cert = certify(losses, U, n_bins=3, families=["e"], warn=False)  # 9 cells: the exact maximum, in bounded memory
    assert 0 <= cert.terms["e_information"] <= math.log(2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(select="yes"), "select must be True or False"), (dict(families=["gap"]), r"families \['gap'\]"),
    (dict(information=-0.1), "information must be"), (dict(information=float("nan")), "information must be"),
    (dict(decoder_information=True), "decoder_information"), (dict(eps=0.0), "eps"),
])
def test_bad_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        certify(*_good(), **kwargs)
