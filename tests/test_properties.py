"""Property-based tests (Hypothesis): random shapes, values, dtypes and NaNs either give a
clear ValueError naming the argument or a result that satisfies the function's invariants.

Bounds (vqlib.bounds) are ≥ 0 and monotone where proved; information measures
(vqlib.bounds.information) are ≥ 0 and at most the log of the alphabet; W2 (vqlib.w2) is symmetric,
≥ 0 and 0 on identical samples; priors (vqlib.models.priors) are normalised laws whose KLs are ≥ 0;
the shared argument checks (vqlib._checks) return valid values or refuse. The examples
are deterministic (the "ci" profile of tests/conftest.py).
"""
import math
import warnings
from fractions import Fraction

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import vqlib
from vqlib.bounds import held_out
from vqlib.bounds import information as info
from vqlib import _checks
from vqlib.bounds import dv_cosh_bound, latent_kl_terms, pair_terms
from vqlib.models import AggregatedPrior, MarkovPrior, UniformPrior

LOG2 = math.log(2)
TOL = 1e-9

# --------------------------------------------------------------------------- strategies

#: Any dtype a user might hand over: integers, floats, complex, booleans, strings, objects.
any_dtype = st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(),
                      hnp.complex_number_dtypes(), hnp.boolean_dtypes(), hnp.unicode_string_dtypes(max_len=3),
                      st.just(np.dtype(object)))


def arrays(dtype=any_dtype, shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5), **kwargs):
    """Arrays of any dtype and small shape, with NaN, inf and extreme values where the dtype has them."""
    return hnp.arrays(dtype, shape, **kwargs)


#: Scalars of every kind: ints of any size, floats with NaN and inf, fractions, numpy
#: scalars, None, strings, lists, complex numbers, booleans.
any_scalar = st.one_of(st.integers(), st.floats(), st.fractions(), st.integers(-2**70, 2**70).map(Fraction),
                       st.integers(-2**31, 2**31).map(np.int64), st.floats(width=32).map(np.float32), st.none(),
                       st.text(max_size=3), st.lists(st.integers(), max_size=2), st.complex_numbers(),
                       st.booleans(), st.decimals(allow_nan=True))


def refuses_clearly(call, *names):
    """Run ``call``; a ValueError must name one of ``names``. Returns (ok, result)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy or torch warning (a silent cast, an overflow) fails the test
        try:
            return True, call()
        except ValueError as err:
            assert any(name in str(err) for name in names), f"{err!r} names none of {names}"
            return False, None


# --------------------------------------------------------------------------- argument checks


@given(any_scalar)
def test_scalar_checks_return_valid_values_or_refuse(value):
    checks = [
        (lambda v: _checks.positive_int(v, "arg"), lambda r: type(r) is int and r >= 1),
        (lambda v: _checks.positive_int(v, "arg", minimum=0), lambda r: type(r) is int and r >= 0),
        (lambda v: _checks.check_seed(v, "arg"), lambda r: type(r) is int and 0 <= r <= 2**63 - 1),
        (lambda v: _checks.positive_float(v, "arg"), lambda r: type(r) is float and 0 < r < math.inf),
        (lambda v: _checks.nonnegative_float(v, "arg"), lambda r: type(r) is float and 0 <= r < math.inf),
        (lambda v: _checks.unit_float(v, "arg"), lambda r: type(r) is float and 0 <= r <= 1),
        (lambda v: _checks.unit_float(v, "arg", open_left=True, open_right=True), lambda r: 0 < r < 1),
        (lambda v: _checks.choice(v, "arg", {"a", "b"}), lambda r: r in ("a", "b")),
        (lambda v: _checks.choice(v, "arg", ("a", 1)), lambda r: r in ("a", 1)),
    ]
    for check, valid in checks:
        ok, result = refuses_clearly(lambda: check(value), "arg")
        assert not ok or valid(result), (value, result)


@given(arrays())
def test_array_checks_return_valid_arrays_or_refuse(a):
    ok, r = refuses_clearly(lambda: _checks.real_array(a, "arg"), "arg")
    if ok:
        assert r.dtype == np.float64 and r.shape == a.shape and r.size and np.isfinite(r).all()
    ok, r = refuses_clearly(lambda: _checks.unit_array(a, "arg"), "arg")
    if ok:
        assert ((r >= 0) & (r <= 1)).all()
    ok, r = refuses_clearly(lambda: _checks.binary_array(a, "arg"), "arg")
    if ok:
        assert r.dtype == np.int64 and np.isin(r, (0, 1)).all()
    ok, r = refuses_clearly(lambda: _checks.distributions(a, "arg"), "arg")
    if ok:
        assert (r >= 0).all() and np.allclose(r.sum(-1), 1, atol=1e-4)


# --------------------------------------------------------------------------- bounds


@given(information=st.one_of(st.floats(), st.integers(-5, 10**6), st.none()), values=arrays())
def test_cosh_bound_is_nonnegative_and_below_the_closed_form(information, values):
    ok, b = refuses_clearly(lambda: dv_cosh_bound(information, values), "information", "values")
    if ok:
        top = float(np.abs(values.astype(float)).max())
        assert math.isfinite(b) and b >= 0
        assert b <= math.sqrt(2 * information) * top * (1 + 1e-9) or b <= top  # sub-Gaussian, or E[g] ≤ max|v|


@given(st.floats(0, 50), st.floats(0, 50),
       hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(-1, 1)))
def test_cosh_bound_grows_with_the_information(i1, i2, values):
    low, high = sorted((i1, i2))
    assert dv_cosh_bound(low, values) <= dv_cosh_bound(high, values) * (1 + 1e-7) + 1e-12


def _pair_inputs(draw_losses):
    m = st.integers(0, 12)
    return m.flatmap(lambda n: st.tuples(
        hnp.arrays(np.float64, n, elements=draw_losses), hnp.arrays(np.float64, n, elements=draw_losses),
        hnp.arrays(np.int64, n, elements=st.integers(0, 1) | st.integers(-2, 3)),
        st.sampled_from([np.int64, np.bool_, np.float64, np.int8]), st.integers(-1, 5)))


@given(_pair_inputs(st.floats(0, 1) | st.floats(-2, 3) | st.just(math.nan)))
def test_pair_terms_are_bounded_by_log_2_and_nonnegative(args):
    loss0, loss1, U, dtype, n_bins = args
    U = U.astype(dtype)
    ok, t = refuses_clearly(lambda: pair_terms(loss0, loss1, U, n_bins=n_bins), "loss0", "loss1", "U", "n_bins",
                            "runs")
    if ok:
        for kind in ("ld", "e"):
            assert 0 <= t[f"{kind}_mi"] <= LOG2 + TOL  # information with a fair coin: at most H(U) ≤ log 2
            assert t[f"{kind}_err"] >= 0
            assert t[f"{kind}_sqrt"] == pytest.approx(math.sqrt(2 * t[f"{kind}_mi"]) + t[f"{kind}_err"])
            assert 0 <= t[f"{kind}_cosh"] <= t[f"{kind}_sqrt"] + TOL  # cosh form never above the range-1 form


def _posteriors(draw, m, L, K):
    raw = draw(hnp.arrays(np.float64, (m, 2, L, K), elements=st.floats(0, 1)))
    raw[..., 0] += raw.sum(-1) == 0  # no all-zero vector
    return raw / raw.sum(-1, keepdims=True)


@st.composite
def latent_inputs(draw):
    m, L, K = draw(st.integers(2, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 5))
    p = _posteriors(draw, m, L, K)
    spoil = draw(st.sampled_from(["none", "nan", "negative", "unnormalised", "shape"]))
    if spoil == "nan":
        p[0, 0, 0, 0] = math.nan
    elif spoil == "negative":
        p[0, 0, 0, 0] = -0.5
    elif spoil == "unnormalised":
        p = p * 2
    elif spoil == "shape":
        p = p[:1]
    reference = _posteriors(draw, 1, L, K)[0]
    return p, reference, reference.mean(0), draw(st.floats(-0.5, 1.5))


@given(latent_inputs())
def test_latent_kl_terms_are_nonnegative_and_below_their_ranges(args):
    p, reference, aggregated, eps = args
    ok, t = refuses_clearly(lambda: latent_kl_terms(p, reference=reference, aggregated=aggregated, eps=eps),
                            "posteriors", "eps")
    if ok:
        L, K = p.shape[2:]
        assert all(v >= 0 and math.isfinite(v) for v in t.values())
        assert t["kl_uniform"] <= 2 * L * math.log(K) + TOL  # 2L positions, each at most log K
        for key in ("kl_marginal", "kl_reference", "kl_aggregated"):  # smoothed priors: ≥ ε/K per code
            assert t[key] <= 2 * L * math.log(K / eps) + TOL


# --------------------------------------------------------------------------- information measures


def labels():
    return arrays(shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=8))


@given(labels(), labels())
def test_entropy_and_mi_lie_between_0_and_the_log_of_the_alphabet(a, b):
    ok, h = refuses_clearly(lambda: info.entropy(a), "a")
    if ok:
        assert -TOL <= h <= math.log(len(np.unique(a))) + TOL
    ok, mi = refuses_clearly(lambda: info.plugin_mi(a, b), "a", "b")
    if ok:
        alphabet = min(len(np.unique(a)), len(np.unique(b)))
        assert 0 <= mi <= math.log(alphabet) + TOL
        assert mi == pytest.approx(info.plugin_mi(b, a), abs=1e-12)  # symmetric
        assert 0 <= info.plugin_mi_corrected(a, b) <= mi + TOL


def categorical():
    shapes = hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4)
    floats = hnp.arrays(st.sampled_from([np.float64, np.float32]), shapes,
                        elements=st.floats(0, 1, width=32) | st.just(math.nan) | st.just(-0.25))
    return st.one_of(floats, hnp.arrays(np.int64, shapes, elements=st.integers(-1, 2)),
                     floats.map(lambda a: a.astype(np.complex128)))


def _normalised(a):
    if a.dtype.kind != "f" or not np.isfinite(a).all() or (a < 0).any():
        return a
    a = a.astype(np.float64)
    a[..., 0] += a.sum(-1) == 0
    return a / a.sum(-1, keepdims=True)


@given(categorical(), categorical(), st.booleans())
def test_categorical_divergences_are_nonnegative(p, q, normalise):
    if normalise:
        p, q = _normalised(p), _normalised(q)
    ok, h = refuses_clearly(lambda: info.categorical_entropy(p), "p")
    if ok:
        assert np.all((np.asarray(h) >= -TOL) & (np.asarray(h) <= math.log(p.shape[-1]) + TOL))
    ok, kl = refuses_clearly(lambda: info.kl_to_uniform(p), "p")
    if ok:
        assert np.all((np.asarray(kl) >= 0) & (np.asarray(kl) <= math.log(p.shape[-1]) + TOL))
    ok, kl = refuses_clearly(lambda: info.kl_categorical(p, q), "p", "q")
    if ok:
        assert np.all(np.asarray(kl) >= 0)  # Gibbs' inequality (inf where q misses p's support)
        assert np.allclose(info.kl_categorical(p, p), 0, atol=1e-12)


@given(arrays(shape=hnp.array_shapes(min_dims=0, max_dims=1, max_side=3)),
       arrays(shape=hnp.array_shapes(min_dims=0, max_dims=1, max_side=3)))
def test_binary_kl_and_its_inverses(q, c):
    ok, kl = refuses_clearly(lambda: info.kl_bernoulli(q, q), "q", "p")
    if ok:
        assert np.allclose(kl, 0)
    ok, up = refuses_clearly(lambda: info.kl_inverse_upper(q, c), "q", "c")
    if ok:
        lo = info.kl_inverse_lower(q, c)
        qf = np.asarray(q, dtype=float)
        assert np.all((0 <= lo) & (lo <= qf + TOL) & (qf - TOL <= up) & (up <= 1))


@given(hnp.arrays(np.float64, st.integers(1, 30), elements=st.floats(0, 1)), st.floats(0.001, 0.5),
       st.floats(0.001, 0.5))
def test_test_set_bound_is_monotone_and_below_hoeffding(losses, d1, d2):
    small, large = sorted((d1, d2))
    tight, loose = held_out.test_set_bound(losses, delta=large), held_out.test_set_bound(losses, delta=small)
    for b in (tight, loose):
        assert b["mean"] - TOL <= b["kl_inverse"] <= min(1.0, b["hoeffding"]) + 1e-9  # Pinsker: kl below Hoeffding
    assert tight["kl_inverse"] <= loose["kl_inverse"] + 1e-9  # smaller δ, larger bound


@given(arrays(), st.integers(-1, 6))
def test_quantile_bins_are_labels_below_n_bins(values, n_bins):
    ok, lab = refuses_clearly(lambda: info.quantile_bins(values, n_bins), "values", "n_bins")
    if ok:
        assert lab.shape == values.shape and lab.min() == 0 and lab.max() < n_bins


# --------------------------------------------------------------------------- W2


def points(elements):
    return st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 3)).flatmap(lambda s: st.tuples(
        hnp.arrays(np.float64, (s[0], s[2]), elements=elements),
        hnp.arrays(np.float64, (s[1], s[2]), elements=elements)))


@given(points(st.floats(-1e6, 1e6) | st.floats(-1e300, 1e300) | st.floats(-1e-300, 1e-300)))
def test_w2_is_symmetric_nonnegative_and_zero_on_identical_samples(xy):
    x, y = xy
    d = vqlib.w2(x, y)
    assert math.isfinite(d) and d >= 0
    # the exact solver rounds relative to the largest squared distance: W2 to about 1e-7 of the diameter
    diameter = float(np.abs(np.concatenate([x, y])).max()) * 2 * math.sqrt(x.shape[1])
    assert d == pytest.approx(vqlib.w2(y, x), rel=1e-9, abs=1e-7 * diameter + 1e-300)
    assert vqlib.w2(x, x) == 0 and vqlib.w2(y, y) == 0
    assert vqlib.w2(x, x[::-1]) == 0  # the order of the points does not matter


@given(arrays(), arrays())
def test_w2_refuses_what_is_not_two_samples(x, y):
    ok, d = refuses_clearly(lambda: vqlib.w2(x, y), "x", "y")
    if ok:
        assert math.isfinite(d) and d >= 0


# --------------------------------------------------------------------------- priors


@st.composite
def fitted_prior(draw):
    K, L, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 6))
    codes = draw(hnp.arrays(st.sampled_from([np.int64, np.int32, np.uint8]), (n, L), elements=st.integers(0, K - 1)))
    kind = draw(st.sampled_from([UniformPrior, AggregatedPrior, MarkovPrior]))
    prior = kind(K, L) if kind is UniformPrior else kind(K, L, alpha=draw(st.floats(1e-3, 1e3)))
    return prior.fit(codes), codes


@given(fitted_prior(), st.integers(1, 5), st.integers(0, 2**63 - 1))
def test_priors_are_normalised_laws_with_nonnegative_kls(fitted, n, seed):
    prior, codes = fitted
    K, L = prior.K, prior.L
    every = np.array(np.meshgrid(*[np.arange(K)] * L, indexing="ij")).reshape(L, -1).T
    logp = prior.log_prob(every)
    assert np.all(logp <= TOL) and math.fsum(np.exp(logp)) == pytest.approx(1.0, abs=1e-9)
    assert prior.max_neg_log_prob() == pytest.approx(float(-logp.min()), rel=1e-9)
    onehot = np.eye(K)[codes]  # the posterior that is sure of each training code: its KL is −log π(code)
    np.testing.assert_allclose(prior.kl_from_posteriors(onehot), -prior.log_prob(codes), rtol=1e-9, atol=1e-12)
    soft = np.full((2, L, K), 1.0 / K)
    assert np.all(prior.kl_from_posteriors(soft) >= 0) and np.all(prior.cross_entropy(soft) >= 0)
    drawn = prior.sample(n, seed=seed)
    assert tuple(drawn.shape) == (n, L) and int(drawn.min()) >= 0 and int(drawn.max()) < K


@given(arrays(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3)),
       st.sampled_from([UniformPrior, AggregatedPrior, MarkovPrior]))
def test_priors_refuse_what_is_not_codes_or_posteriors(data, kind):
    prior = kind(2, 3)
    ok, fitted = refuses_clearly(lambda: prior.fit(data), "codes", "posteriors", "fit")
    if ok:
        assert fitted.fitted and np.all(fitted.log_prob(np.zeros((1, 3), dtype=int)) <= 0)
        ok, kl = refuses_clearly(lambda: fitted.kl_from_posteriors(data), "posteriors")
        assert not ok or np.all(kl >= 0)
