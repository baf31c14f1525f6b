"""Tests for vqlib.bounds.information against closed forms and by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import vqlib.bounds.information as info
from vqlib.bounds import cmi, held_out


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------
# Entropy and plug-in MI
# ---------------------------------------------------------------------------


def test_entropy_of_balanced_uniform_sample_is_log_k() -> None:
    for k in (1, 2, 3, 7, 16):
        a = np.repeat(np.arange(k), 50)
        assert info.entropy(a) == pytest.approx(math.log(k), abs=1e-12)


def test_mi_with_itself_is_entropy() -> None:
    a = _rng(1).integers(0, 5, size=1000)
    assert info.plugin_mi(a, a) == pytest.approx(info.entropy(a), abs=1e-12)


def test_mi_of_deterministic_binary_relation_is_log2() -> None:
    a = np.tile([0, 1], 500)
    assert info.plugin_mi(a, a.copy()) == pytest.approx(math.log(2), abs=1e-12)
    assert info.plugin_mi(a, 1 - a) == pytest.approx(math.log(2), abs=1e-12)


def test_mi_is_invariant_to_relabelling() -> None:
    rng = _rng(2)
    a = rng.integers(0, 4, size=500)
    b = (a + rng.integers(0, 2, size=500)) % 4
    mi = info.plugin_mi(a, b)
    relabel_a = np.array([10, -3, 7, 1000])[a]
    relabel_b = np.array([5, 2, 9, 0])[b]
    assert info.plugin_mi(relabel_a, relabel_b) == pytest.approx(mi, abs=1e-12)
    assert info.plugin_mi(b, a) == pytest.approx(mi, abs=1e-12)
    assert info.entropy(relabel_a) == pytest.approx(info.entropy(a), abs=1e-12)


def test_mi_accepts_bool_and_integral_floats() -> None:
    a = np.array([True, False, True, False])
    b = np.array([1.0, 0.0, 1.0, 0.0])
    assert info.plugin_mi(a, b) == pytest.approx(math.log(2))


def test_mi_exactly_zero_for_constant_or_product_table() -> None:
    assert info.plugin_mi(np.zeros(10, int), np.arange(10)) == 0.0
    a = np.array([0, 0, 1, 1])
    b = np.array([0, 1, 0, 1])
    assert info.plugin_mi(a, b) == 0.0


def test_mi_of_independent_variables_vanishes_with_sample_size() -> None:
    rng = _rng(3)
    big = info.plugin_mi(rng.integers(0, 2, 10**5), rng.integers(0, 4, 10**5))
    assert 0.0 <= big < 1e-3

    def mean_mi(m: int) -> float:
        return float(
            np.mean(
                [info.plugin_mi(rng.integers(0, 2, m), rng.integers(0, 4, m)) for _ in range(50)]
            )
        )

    assert mean_mi(10**4) < mean_mi(100)


def test_plugin_bias_matches_first_order_formula() -> None:
    rng = _rng(4)
    k, m, draws = 5, 500, 1000
    values = [info.plugin_mi(rng.integers(0, 2, m), rng.integers(0, k, m)) for _ in range(draws)]
    predicted = info.mi_bias(2, k, m)
    assert predicted == pytest.approx((k - 1) / (2 * m))
    assert np.mean(values) == pytest.approx(predicted, rel=0.2)


def test_corrected_mi_removes_bias() -> None:
    rng = _rng(5)
    k, m = 5, 500
    pairs = [(rng.integers(0, 2, m), rng.integers(0, k, m)) for _ in range(300)]
    raw = np.mean([info.plugin_mi(a, b) for a, b in pairs])
    corrected = [info.plugin_mi_corrected(a, b) for a, b in pairs]
    assert min(corrected) >= 0.0
    assert np.mean(corrected) < 0.5 * raw
    a = np.tile([0, 1], 200)
    assert info.plugin_mi_corrected(a, a) == pytest.approx(math.log(2) - 1 / 800)


# ---------------------------------------------------------------------------
# Quantile bins
# ---------------------------------------------------------------------------


def test_quantile_bins_are_balanced_and_ordered() -> None:
    x = _rng(6).normal(size=1000)
    labels = info.quantile_bins(x, 4)
    assert set(labels.tolist()) == {0, 1, 2, 3}
    assert np.all(np.bincount(labels) == 250)
    order = np.argsort(x)
    assert np.all(np.diff(labels[order]) >= 0)


def test_quantile_bins_are_robust_to_ties() -> None:
    assert np.all(info.quantile_bins(np.zeros(20), 5) == 0)
    x = np.array([0.0] * 80 + [1.0, 2.0, 3.0, 4.0] * 5)
    labels = info.quantile_bins(x, 5)
    assert len(set(labels[:80].tolist())) == 1
    assert labels.max() + 1 == len(set(labels.tolist())) <= 5
    assert np.all(info.quantile_bins(x, 1) == 0)


# ---------------------------------------------------------------------------
# Shuffled null and bootstrap
# ---------------------------------------------------------------------------


def test_shuffled_null_separates_dependent_from_independent() -> None:
    rng = _rng(7)
    m = 500
    mask = rng.integers(0, 2, m)
    independent = rng.integers(0, 4, m)
    null = info.shuffled_null(independent, mask, n_shuffles=300, seed=1)
    assert null.shape == (300,) and np.all(null >= 0.0)
    rank = np.mean(null < info.plugin_mi(independent, mask))
    assert 0.01 < rank < 0.99

    dependent = np.where(rng.random(m) < 0.3, 1 - mask, mask)
    null = info.shuffled_null(dependent, mask, n_shuffles=300, seed=1)
    assert info.plugin_mi(dependent, mask) > np.quantile(null, 0.99)


def test_shuffled_null_is_reproducible() -> None:
    a = _rng(8).integers(0, 3, 100)
    b = _rng(9).integers(0, 2, 100)
    first = info.shuffled_null(a, b, 20, seed=4)
    np.testing.assert_array_equal(first, info.shuffled_null(a, b, 20, seed=4))


def test_bootstrap_interval_brackets_strong_dependence() -> None:
    rng = _rng(10)
    mask = rng.integers(0, 2, 1000)
    v = np.where(rng.random(1000) < 0.1, 1 - mask, mask)
    low, high = info.bootstrap_mi(v, mask, n_boot=300, seed=2)
    assert 0.0 <= low <= info.plugin_mi(v, mask) <= high
    true_mi = math.log(2) + 0.1 * math.log(0.1) + 0.9 * math.log(0.9)
    assert low <= true_mi <= high
    assert (low, high) == info.bootstrap_mi(v, mask, n_boot=300, seed=2)
    narrow = info.bootstrap_mi(v, mask, n_boot=300, seed=2, level=0.5)
    assert low <= narrow[0] <= narrow[1] <= high


# ---------------------------------------------------------------------------
# Categorical divergences
# ---------------------------------------------------------------------------


def test_kl_to_uniform_is_log_k_minus_entropy() -> None:
    p = _rng(11).dirichlet(np.ones(6), size=10)
    expected = math.log(6) - info.categorical_entropy(p)
    np.testing.assert_allclose(info.kl_to_uniform(p), expected, atol=1e-12)
    np.testing.assert_allclose(info.kl_categorical(p, np.full(6, 1 / 6)), expected, atol=1e-12)
    assert info.kl_to_uniform(np.full(4, 0.25)) == pytest.approx(0.0, abs=1e-15)
    assert info.kl_to_uniform([1.0, 0.0, 0.0, 0.0]) == pytest.approx(math.log(4))


def test_kl_of_a_distribution_with_itself_is_zero() -> None:
    p = _rng(12).dirichlet(np.ones(5), size=7)
    np.testing.assert_allclose(info.kl_categorical(p, p), 0.0, atol=1e-15)


def test_kl_categorical_matches_binary_kl_and_broadcasts() -> None:
    q, p = 0.2, 0.6
    kl = info.kl_categorical([q, 1 - q], [p, 1 - p])
    assert isinstance(kl, float)
    assert kl == pytest.approx(info.kl_bernoulli(q, p), abs=1e-14)
    assert kl == pytest.approx(q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p)))
    rows = np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    out = info.kl_categorical(rows, [0.6, 0.4])
    assert out.shape == (3,)
    np.testing.assert_allclose(out, info.kl_bernoulli(rows[:, 0], 0.6))


def test_kl_categorical_infinite_and_zero_mass_cases() -> None:
    assert info.kl_categorical([0.5, 0.5], [1.0, 0.0]) == math.inf
    assert info.kl_categorical([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2))


# ---------------------------------------------------------------------------
# Binary kl and its inverses
# ---------------------------------------------------------------------------


def test_kl_bernoulli_edge_values() -> None:
    assert info.kl_bernoulli(0.0, 0.5) == pytest.approx(math.log(2))
    assert info.kl_bernoulli(1.0, 0.25) == pytest.approx(math.log(4))
    assert info.kl_bernoulli(0.0, 0.0) == 0.0
    assert info.kl_bernoulli(1.0, 1.0) == 0.0
    assert info.kl_bernoulli(0.3, 0.0) == math.inf
    assert info.kl_bernoulli(0.3, 1.0) == math.inf
    assert info.kl_bernoulli(0.3, 0.3) == 0.0


def test_kl_inverse_upper_inverts_kl() -> None:
    q = np.linspace(0.0, 0.95, 20)[:, None]
    c = np.array([1e-4, 1e-2, 0.1, 0.5, 1.0])[None, :]
    p = info.kl_inverse_upper(q, c)
    assert p.shape == (20, 5)
    assert np.all(p >= q)
    # p is the outer end of a bracket of width 1e-12 around the exact inverse.
    assert np.all(info.kl_bernoulli(q, p) >= c * (1 - 1e-9))
    assert np.all(info.kl_bernoulli(q, p - 1e-12) <= c * (1 + 1e-9))
    inner = info.kl_bernoulli(q[:-1], p[:-1])  # away from p near 1
    np.testing.assert_allclose(inner, np.broadcast_to(c, inner.shape), rtol=1e-6)
    assert np.all(np.diff(p, axis=1) > 0)


def test_kl_inverse_lower_inverts_kl() -> None:
    q = np.linspace(0.05, 1.0, 20)[:, None]
    c = np.array([1e-4, 1e-2, 0.1, 0.5, 1.0])[None, :]
    p = info.kl_inverse_lower(q, c)
    assert np.all(p <= q)
    assert np.all(info.kl_bernoulli(q, p) >= c * (1 - 1e-9))
    assert np.all(info.kl_bernoulli(q, p + 1e-12) <= c * (1 + 1e-9))
    inner = info.kl_bernoulli(q[1:], p[1:])  # away from p near 0
    np.testing.assert_allclose(inner, np.broadcast_to(c, inner.shape), rtol=1e-6)
    assert np.all(np.diff(p, axis=1) < 0)


def test_kl_inverse_limits() -> None:
    for q in (0.0, 0.3, 0.9, 1.0):
        assert info.kl_inverse_upper(q, 0.0) == q
        assert info.kl_inverse_lower(q, 0.0) == q
        assert info.kl_inverse_upper(q, 1e3) == 1.0
        assert info.kl_inverse_lower(q, 1e3) == 0.0
        assert info.kl_inverse_upper(q, math.inf) == 1.0
    # kl(0 || p) = -log(1 - p) has a closed-form inverse.
    assert info.kl_inverse_upper(0.0, 0.5) == pytest.approx(1 - math.exp(-0.5), abs=1e-11)
    assert isinstance(info.kl_inverse_upper(0.2, 0.1), float)


# ---------------------------------------------------------------------------
# Test-set bound
# ---------------------------------------------------------------------------


def test_test_set_bound_kl_is_tighter_than_hoeffding() -> None:
    rng = _rng(13)
    for mean in (0.01, 0.1, 0.3, 0.5, 0.9):
        losses = np.clip(rng.normal(mean, 0.05, 300), 0, 1)
        out = held_out.test_set_bound(losses, delta=0.05)
        assert out["m"] == 300 and out["mean"] == pytest.approx(losses.mean())
        assert out["mean"] <= out["kl_inverse"] <= out["hoeffding"]
        assert out["hoeffding"] == pytest.approx(losses.mean() + math.sqrt(math.log(20) / 600))


def test_test_set_bound_covers_the_risk() -> None:
    rng = _rng(14)
    risk, m, trials, delta = 0.3, 200, 2000, 0.05
    means = rng.binomial(m, risk, size=trials) / m
    bounds = info.kl_inverse_upper(means, math.log(1 / delta) / m)
    assert np.mean(bounds >= risk) >= 1 - delta
    # The dict interface gives the same number as the vectorised call.
    losses = (rng.random(m) < risk).astype(float)
    out = held_out.test_set_bound(losses, delta)
    direct = info.kl_inverse_upper(losses.mean(), math.log(20) / m)
    assert out["kl_inverse"] == pytest.approx(direct)


def test_test_set_bound_covers_the_risk_for_continuous_losses() -> None:
    rng = _rng(15)
    m, trials, delta = 100, 2000, 0.05
    losses = rng.beta(2.0, 5.0, size=(trials, m))  # risk 2/7
    bounds = info.kl_inverse_upper(losses.mean(axis=1), math.log(1 / delta) / m)
    assert np.mean(bounds >= 2 / 7) >= 1 - delta


# ---------------------------------------------------------------------------
# MI to bounds
# ---------------------------------------------------------------------------


def test_cmi_bound_and_sqrt_bound() -> None:
    mi = np.array([0.0, 0.02, 0.08, -1e-12])
    np.testing.assert_allclose(cmi.sqrt_bound(mi, 2.0), 2.0 * np.sqrt(2 * np.maximum(mi, 0)))
    expected = np.mean(np.sqrt(2 * np.maximum(mi, 0)))
    assert cmi.cmi_bound(mi) == pytest.approx(expected)
    assert cmi.cmi_bound(mi, Delta=3.0) == pytest.approx(3 * expected)
    assert cmi.sqrt_bound(0.5) == pytest.approx(1.0)
    assert cmi.sample_cmi_bound(math.log(6), 2) == pytest.approx(math.sqrt(math.log(6)))


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "pattern"),
    [
        ([0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1], "a and b have different lengths 5 and 6"),
        ([], [], r"^a must not be empty"),
        ([0, 1], [], r"^b must not be empty"),
        ([[0, 1]], [0, 1], r"^a must be 1-D"),
        ([0, 1], [[0], [1]], r"^b must be 1-D"),
        ([0.5, 1.0], [0, 1], r"^a must hold integer labels"),
        ([0, 1], [0.0, np.nan], r"^b must hold integer labels"),
        ([0, 1], ["x", "y"], r"^b must hold integer labels"),
        ([0, 1], [0, np.inf], r"^b must hold integer labels"),
    ],
)
def test_mi_rejects_bad_labels(a: object, b: object, pattern: str) -> None:
    for fn in (info.plugin_mi, info.plugin_mi_corrected, info.shuffled_null, info.bootstrap_mi):
        with pytest.raises(ValueError, match=pattern):
            fn(a, b)


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: info.entropy([0.5]), r"^a must hold integer labels"),
        (lambda: info.mi_bias(0, 2, 10), r"^k_a must be"),
        (lambda: info.mi_bias(2, 2.5, 10), r"^k_b must be"),
        (lambda: info.mi_bias(2, 2, 0), r"^m must be"),
        (lambda: info.quantile_bins([1.0, 2.0], 0), r"^n_bins must be"),
        (lambda: info.quantile_bins([1.0, np.nan], 2), r"^values must be finite"),
        (lambda: info.quantile_bins([], 2), r"^values must be"),
        (lambda: info.shuffled_null([0, 1], [0, 1], n_shuffles=0), r"^n_shuffles must be"),
        (lambda: info.bootstrap_mi([0, 1], [0, 1], n_boot=0), r"^n_boot must be"),
        (lambda: info.bootstrap_mi([0, 1], [0, 1], level=1.0), r"^level must"),
        (lambda: info.kl_categorical([0.5, 0.6], [0.5, 0.5]), r"^p must sum to 1"),
        (lambda: info.kl_categorical([0.5, 0.5], [1.2, -0.2]), r"^q must be non-negative"),
        (lambda: info.kl_categorical([0.5, 0.5], [np.nan, 0.5]), r"^q must be finite"),
        (lambda: info.kl_categorical([0.5, 0.5], [0.2, 0.3, 0.5]), "p and q have different"),
        (lambda: info.kl_to_uniform([0.3, 0.3]), r"^p must sum to 1"),
        (lambda: info.kl_bernoulli(1.5, 0.5), r"^q must lie in \[0, 1\]"),
        (lambda: info.kl_bernoulli(0.5, -0.1), r"^p must lie in \[0, 1\]"),
        (lambda: info.kl_inverse_upper(0.5, -0.1), r"^c must be >= 0"),
        (lambda: info.kl_inverse_upper(np.nan, 0.1), r"^q must lie in \[0, 1\]"),
        (lambda: info.kl_inverse_lower(1.1, 0.1), r"^q must lie in \[0, 1\]"),
        (lambda: info.kl_inverse_lower(0.5, np.nan), r"^c must be >= 0"),
        (lambda: held_out.test_set_bound([0.2, 1.2]), r"^test_losses must lie in \[0, 1\]"),
        (lambda: held_out.test_set_bound([]), r"^test_losses must not be empty"),
        (lambda: held_out.test_set_bound([0.2], delta=0.0), r"^delta must lie in \(0, 1\)"),
        (lambda: held_out.test_set_bound([0.2], delta=1.0), r"^delta must lie in \(0, 1\)"),
        (lambda: cmi.cmi_bound([0.1, -0.01]), r"^mi_values must be non-negative"),
        (lambda: cmi.cmi_bound([0.1, np.inf]), r"^mi_values must be finite"),
        (lambda: cmi.cmi_bound([]), r"^mi_values must not be empty"),
        (lambda: cmi.cmi_bound([0.1], Delta=0.0), r"^Delta must be"),
        (lambda: cmi.sqrt_bound([0.1], Delta=np.nan), r"^Delta must be"),
        (lambda: cmi.sample_cmi_bound(0.1, 0), r"^n must be"),
        (lambda: cmi.sample_cmi_bound(-1.0, 5), r"^cmi must be non-negative"),
    ],
)
def test_bad_input_names_the_argument(call, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        call()
