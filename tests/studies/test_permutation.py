"""Tests for vqlib.studies.permutation (chapter 5) against closed forms and exhaustive enumeration."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import vqlib.studies.permutation as perm
from vqlib.bounds import Supersample, draw_permutation, make_supersample


def _images(values) -> torch.Tensor:
    """Rows of pixel values → images (N, 1, 1, d)."""
    v = torch.as_tensor(np.asarray(values, dtype=np.float32))
    if v.ndim == 1:
        v = v[:, None]
    return v[:, None, None, :]


def _supersample(values, seed: int = 0) -> Supersample:
    """A supersample whose flat order is the order of ``values`` (2n rows)."""
    x = _images(values)
    n = len(x) // 2
    return Supersample(points=x.reshape(n, 2, *x.shape[1:]), source_index=np.arange(2 * n).reshape(n, 2),
                       supersample_seed=seed)


@pytest.fixture(scope="module")
def digits_like() -> torch.Tensor:
    rng = np.random.default_rng(0)
    return _images(rng.random((40, 6)))


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("n, value", [(1, 2), (2, 6), (3, 20), (4, 70), (10, 184756)])
def test_log_binomial_cap_matches_central_binomial(n, value):
    assert perm.log_binomial_cap(n) == pytest.approx(math.log(value), rel=1e-12)


def test_log_binomial_cap_stirling_and_vacuity():
    for n in (50, 200, 1000):
        stirling = 2 * n * math.log(2) - 0.5 * math.log(math.pi * n)
        assert abs(perm.log_binomial_cap(n) - stirling) < 1 / (8 * n)
    # C(2n, n) ≥ 2^n, so the cap bound is at least sqrt(2 log 2) > 1 = Δ: always vacuous.
    for n in range(1, 300):
        assert perm.permutation_bound(perm.log_binomial_cap(n), n) >= math.sqrt(2 * math.log(2)) > 1


def test_log_binomial_small_values():
    assert perm.log_binomial(5, 0) == 0.0
    assert perm.log_binomial(5, 2) == pytest.approx(math.log(10))
    assert perm.log_binomial(12, 6) == pytest.approx(math.log(924))


def test_permutation_bound_closed_form():
    assert perm.permutation_bound(0.0, 5) == 0.0
    assert perm.permutation_bound(2.0, 4) == pytest.approx(1.0)
    assert perm.permutation_bound(2.0, 4, Delta=3.0) == pytest.approx(3.0)
    assert perm.permutation_bound(-1e-12, 4) == 0.0  # rounding is clipped


def test_counting_information_closed_form_and_simple_bound():
    assert perm.counting_information(2, 1, 1) == pytest.approx(math.log(4))
    assert perm.counting_information(4, 2, 3) == pytest.approx(3 * math.log(28))
    for n, K, L in [(8, 2, 1), (64, 4, 4), (300, 8, 2)]:
        assert perm.counting_information(n, K, L) <= L * K * math.log(2 * n)
        assert perm.counting_bound(n, K, L) <= math.sqrt(2 * L * K * math.log(2 * n) / n)
    bounds = [perm.counting_bound(n, 2, 2) for n in (16, 64, 256, 1024, 4096)]
    assert all(a > b for a, b in zip(bounds, bounds[1:]))  # it shrinks with n


# --------------------------------------------------------------------------- the lemma


def _with_replacement_mgf(c, n, s):
    """E exp(s · sum of n draws with replacement from c), by enumerating all N^n sequences."""
    return np.mean([math.exp(s * sum(seq)) for seq in itertools.product(c, repeat=n)])


def _without_replacement_mgf(c, n, s):
    return np.mean([math.exp(s * sum(c[i] for i in sub)) for sub in itertools.combinations(range(len(c)), n)])


@pytest.mark.parametrize("seed", range(4))
def test_hoeffding_theorem_4_by_enumeration(seed):
    rng = np.random.default_rng(seed)
    c = rng.random(6).tolist()
    for n in (2, 3):
        for s in np.linspace(-8, 8, 17):
            assert _without_replacement_mgf(c, n, s) <= _with_replacement_mgf(c, n, s) * (1 + 1e-12)


def test_difference_mgf_n1_is_cosh():
    lam = np.linspace(-5, 5, 11)
    assert perm.difference_mgf([0.2, 0.9], lam) == pytest.approx(np.cosh(lam * 0.7), rel=1e-12)


@pytest.mark.parametrize(
    "values",
    [
        [0.0, 1.0],
        [0.0, 0.0, 1.0, 1.0],
        [0.0, 0.0, 0.0, 1.0, 1.0, 1.0],
        [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
        [0.3, 0.3, 0.3, 0.3],
        [0.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        np.random.default_rng(1).random(8).tolist(),
        np.random.default_rng(2).random(10).tolist(),
    ],
)
def test_difference_is_sub_gaussian_with_constant_delta_over_sqrt_n(values):
    n = len(values) // 2
    lam = np.linspace(-30, 30, 121)
    mgf = perm.difference_mgf(values, lam)
    assert np.all(mgf <= perm.hoeffding_mgf_bound(lam, n, Delta=1.0) * (1 + 1e-12))
    # centred: the derivative of the mgf at 0 is the mean difference, which is 0
    eps = 1e-5
    slope = (perm.difference_mgf(values, [eps]) - perm.difference_mgf(values, [-eps]))[0] / (2 * eps)
    assert abs(slope) < 1e-6


def test_sub_gaussian_constant_is_tight_at_n1():
    # For n = 1 and values {0, 1} the mgf is cosh(λ); the envelope exp(λ²/2) has the same
    # second derivative at 0, so no smaller variance proxy works for n = 1.
    lam = np.array([1e-3])
    mgf = perm.difference_mgf([0.0, 1.0], lam)[0]
    assert (mgf - 1) / (lam[0] ** 2 / 2) == pytest.approx(1.0, rel=1e-5)


# --------------------------------------------------------------------------- the learner


def test_one_medoid_is_the_brute_force_minimiser():
    rng = np.random.default_rng(3)
    X = rng.random((9, 5))
    q = perm.fit_medoid_quantizer(_images(X), K=1, L=1)
    costs = [((X - X[j]) ** 2).sum() for j in range(len(X))]
    assert q.medoids[0, 0] == int(np.argmin(costs))


def test_k_equals_n_memorises_and_losses_lie_in_unit_interval(digits_like):
    x = digits_like[:7]
    q = perm.fit_medoid_quantizer(x, K=7, L=2)
    assert np.allclose(perm.medoid_loss(q, x), 0.0)
    q = perm.fit_medoid_quantizer(x, K=2, L=3)
    losses = perm.medoid_loss(q, digits_like)
    assert np.all((losses >= 0) & (losses <= 1))
    x_hat = q.reconstruct(digits_like)
    assert x_hat.shape == tuple(digits_like.shape)
    manual = ((digits_like.numpy().reshape(len(x_hat), -1) - x_hat.reshape(len(x_hat), -1)) ** 2).mean(1)
    assert np.allclose(manual, losses)


def test_blocks_partition_the_pixels():
    blocks = perm.block_partition(64, 5)
    assert len(blocks) == 5
    assert sorted(np.concatenate(blocks).tolist()) == list(range(64))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_fit_is_deterministic_and_sees_a_set(digits_like):
    ss = make_supersample(digits_like, 6, supersample_seed=4)
    T = draw_permutation(6, mask_seed=1)
    reordered = np.concatenate([T[:6][::-1], T[6:]])
    a = perm.permutation_gap(ss, T, K=2, L=2)
    b = perm.permutation_gap(ss, reordered, K=2, L=2)
    assert a == b


# --------------------------------------------------------------------------- exact enumeration


def test_hand_made_four_point_example():
    # d = 1, points 0, 0.2, 0.6, 1.0; K = L = 1. With two training points the 1-medoid
    # cost is a tie, broken towards the lower index, so W = min(S) over the 6 subsets:
    # min = 0 (3 subsets), 1 (2), 2 (1). Gaps (test − train) worked by hand:
    # {0,1}: .68 − .02, {0,2}: .52 − .18, {0,3}: .20 − .50, {1,2}: .34 − .08,
    # {1,3}: .10 − .32, {2,3}: .26 − .08.
    ss = _supersample([0.0, 0.2, 0.6, 1.0])
    r = perm.exact_enumeration(ss, K=1, L=1)
    gaps = [0.66, 0.34, -0.30, 0.26, -0.22, 0.18]
    entropy = -(0.5 * math.log(0.5) + (1 / 3) * math.log(1 / 3) + (1 / 6) * math.log(1 / 6))
    assert r["exact_gap"] == pytest.approx(np.mean(gaps), abs=1e-6)
    assert r["exact_information"] == pytest.approx(entropy, rel=1e-12)
    assert r["distinct_outputs"] == 3
    assert r["exact_bound"] == pytest.approx(math.sqrt(2 * entropy / 2), rel=1e-12)
    assert r["log_binomial_cap"] == pytest.approx(math.log(6))
    assert r["counting_information"] == pytest.approx(math.log(4))
    assert r["exact_bound"] >= abs(r["exact_gap"])
    assert {"n", "supersample_seed", "exact_gap", "exact_information", "exact_bound", "log_binomial_cap",
            "counting_bound"} <= set(r)


def test_memorising_learner_has_full_information():
    # K = n: every training point is a medoid, so W is the training set itself:
    # I = log C(2n, n) exactly (distinct points).
    ss = _supersample([0.0, 0.1, 0.35, 0.5, 0.8, 0.95])
    r = perm.exact_enumeration(ss, K=3, L=1)
    assert r["exact_information"] == pytest.approx(math.log(20))
    assert r["distinct_outputs"] == 20
    assert r["train_loss"] == pytest.approx(0.0)


@pytest.mark.parametrize("n, K, L, seed", [(2, 1, 1, 0), (2, 2, 2, 1), (3, 1, 2, 2), (3, 2, 1, 3), (4, 2, 2, 4),
                                           (4, 1, 3, 5)])
def test_bound_dominates_exact_gap_and_counting_dominates_information(digits_like, n, K, L, seed):
    ss = make_supersample(digits_like, n, supersample_seed=seed)
    r = perm.exact_enumeration(ss, K=K, L=L)
    assert r["exact_bound"] >= abs(r["exact_gap"])
    assert r["counting_information"] >= r["exact_information"] - 1e-12
    assert r["log_binomial_cap"] >= r["exact_information"] - 1e-12
    assert r["counting_bound"] >= r["exact_bound"] - 1e-12
    assert r["best_bound"] >= r["exact_bound"] - 1e-12
    assert r["exact_information"] <= math.log(r["distinct_outputs"]) + 1e-12
    assert r["exact_gap"] == pytest.approx(r["test_loss"] - r["train_loss"], abs=1e-12)


def test_exact_gap_is_the_mean_over_all_training_sets(digits_like):
    ss = make_supersample(digits_like, 3, supersample_seed=7)
    r = perm.exact_enumeration(ss, K=2, L=2)
    gaps = []
    for subset in itertools.combinations(range(6), 3):
        T = np.array(list(subset) + [i for i in range(6) if i not in subset])
        gaps.append(perm.permutation_gap(ss, T, K=2, L=2)["gap"])
    assert r["exact_gap"] == pytest.approx(np.mean(gaps), abs=1e-12)
    mc = perm.monte_carlo_gap(ss, K=2, L=2, mask_seeds=range(400))
    assert abs(mc["gap"] - r["exact_gap"]) < 4 * mc["gap_se"]


def test_gap_versus_n_rows(digits_like):
    rows = perm.gap_versus_n(digits_like, [4, 8], 2, 2, supersample_seeds=[0, 1], mask_seeds=range(3))
    assert [(r["n"], r["supersample_seed"]) for r in rows] == [(4, 0), (4, 1), (8, 0), (8, 1)]
    assert all(r["n_permutations"] == 3 and r["counting_bound"] == perm.counting_bound(r["n"], 2, 2) for r in rows)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: perm.permutation_bound(-0.1, 3), "information"),
        (lambda: perm.permutation_bound(float("nan"), 3), "information"),
        (lambda: perm.permutation_bound("1", 3), "information"),
        (lambda: perm.permutation_bound(1.0, 0), "n"),
        (lambda: perm.permutation_bound(1.0, 2.5), "n"),
        (lambda: perm.permutation_bound(1.0, 3, Delta=0.0), "Delta"),
        (lambda: perm.permutation_bound(1.0, 3, Delta=-1.0), "Delta"),
        (lambda: perm.log_binomial_cap(0), "n"),
        (lambda: perm.log_binomial(3, 4), "b"),
        (lambda: perm.counting_information(4, 5, 1), "K"),
        (lambda: perm.counting_information(4, 0, 1), "K"),
        (lambda: perm.counting_information(4, 2, 0), "L"),
        (lambda: perm.block_partition(4, 5), "L"),
        (lambda: perm.difference_mgf([0.1, 0.2, 0.3], [1.0]), "values"),
        (lambda: perm.difference_mgf(np.zeros(40), [1.0]), "values"),
        (lambda: perm.hoeffding_mgf_bound([1.0], 2, Delta=0), "Delta"),
    ],
)
def test_bad_inputs_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_bad_learner_inputs(digits_like):
    with pytest.raises(ValueError, match="K"):
        perm.fit_medoid_quantizer(digits_like[:3], K=4, L=1)
    with pytest.raises(ValueError, match="L"):
        perm.fit_medoid_quantizer(digits_like, K=2, L=7)
    with pytest.raises(ValueError, match="swap_rounds"):
        perm.fit_medoid_quantizer(digits_like, K=2, L=1, swap_rounds=-1)
    with pytest.raises(ValueError, match="x_train"):
        perm.fit_medoid_quantizer(digits_like * 2, K=2, L=1)
    with pytest.raises(ValueError, match="n"):
        perm.exact_enumeration(make_supersample(digits_like, 12, supersample_seed=0), K=1, L=1)
    with pytest.raises(ValueError, match="T"):
        perm.permutation_gap(make_supersample(digits_like, 3, supersample_seed=0), [0, 1, 2, 3, 4, 4], K=1, L=1)
    with pytest.raises(ValueError, match="mask_seeds"):
        perm.monte_carlo_gap(make_supersample(digits_like, 3, supersample_seed=0), K=1, L=1, mask_seeds=[])
    with pytest.raises(ValueError, match="quantizer"):
        perm.medoid_loss("not a quantizer", digits_like)


def test_supersample_path_matches_a_direct_fit(digits_like):
    # The gap functions reuse one distance matrix per supersample; a direct fit on the
    # training points (in supersample order) must give the same medoids and losses.
    ss = make_supersample(digits_like, 9, supersample_seed=2)
    T = draw_permutation(9, mask_seed=5)
    train = np.sort(T[:9])
    r = perm.permutation_gap(ss, T, K=3, L=2)
    flat = ss.flat()
    q = perm.fit_medoid_quantizer(flat[torch.as_tensor(train)], K=3, L=2)
    assert r["output"] == q.output(train)
    losses = q.loss(flat)
    mask = np.isin(np.arange(18), train)
    assert r["train_loss"] == pytest.approx(losses[mask].mean(), abs=1e-12)
    assert r["test_loss"] == pytest.approx(losses[~mask].mean(), abs=1e-12)


def test_gap_versus_n_with_several_K_matches_single_calls(digits_like):
    many = perm.gap_versus_n(digits_like, [5], [1, 3], 2, supersample_seeds=[1], mask_seeds=range(4))
    for K in (1, 3):
        one = perm.gap_versus_n(digits_like, [5], K, 2, supersample_seeds=[1], mask_seeds=range(4))
        assert [r for r in many if r["K"] == K] == one
    direct = perm.monte_carlo_gap(make_supersample(digits_like, 5, supersample_seed=1), 3, 2, mask_seeds=range(4))
    assert direct == [r for r in many if r["K"] == 3][0]
    with pytest.raises(ValueError, match="K"):
        perm.gap_versus_n(digits_like, [2], [1, 3], 2, supersample_seeds=[0], mask_seeds=[0])
