"""The bound terms of chapters 2–4 against closed forms."""
import math

import numpy as np
import pytest
from scipy.optimize import brentq

from vqlib.bounds import dv_cosh_bound, latent_kl_terms, pair_terms


def _kl_to_fair_coin(x: float) -> float:
    """KL(Bern((1+x)/2) ‖ Bern(1/2))."""
    p = (1 + x) / 2
    return sum(t * math.log(2 * t) for t in (p, 1 - p) if t > 0)


@pytest.mark.parametrize("information", [1e-4, 0.01, 0.1, 0.5, 0.69])
def test_cosh_bound_for_signs_is_the_binary_kl_inverse(information):
    # With h(V) = ±a, inf_λ (I + log cosh(λa))/λ = a·x where KL(Bern((1+x)/2) ‖ Bern(1/2)) = I.
    x = brentq(lambda t: _kl_to_fair_coin(t) - information, 0, 1 - 1e-15)
    for a in (1.0, 0.03):
        assert dv_cosh_bound(information, [a, -a, a]) == pytest.approx(a * x, rel=1e-5)


def test_cosh_bound_is_below_the_sub_gaussian_bound_and_scales():
    rng = np.random.default_rng(0)
    v = rng.uniform(-0.05, 0.05, 200)
    for info in (0.001, 0.05, 0.3):
        b = dv_cosh_bound(info, v)
        assert 0 < b <= math.sqrt(2 * info) * np.abs(v).max() + 1e-15
        # scaling the values scales the bound
        assert dv_cosh_bound(info, 10 * v) == pytest.approx(10 * b, rel=1e-5)
    assert dv_cosh_bound(0.0, v) == 0.0
    assert dv_cosh_bound(0.01, v) < dv_cosh_bound(0.02, v)


def test_cosh_bound_holds_for_a_known_joint_law():
    # V = (−1)^U·a·S with S a fair sign independent of U except through a leak: exact E[g] known.
    # P(V = a | U = 0) = p, P(V = −a | U = 0) = 1 − p, mirrored for U = 1; E[(−1)^U V] = a(2p − 1).
    a, p = 0.02, 0.7
    e_g = a * (2 * p - 1)
    info = math.log(2) - (-(p * math.log(p) + (1 - p) * math.log(1 - p)))  # I(V;U)
    assert dv_cosh_bound(info, [a, -a]) >= e_g - 1e-12


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_cosh_bound_rejects_bad_information(bad):
    with pytest.raises(ValueError, match="information"):
        dv_cosh_bound(bad, [0.1])


def test_pair_terms_see_a_leak_and_no_leak():
    rng = np.random.default_rng(1)
    m = 400
    U = rng.integers(0, 2, m)
    noise0, noise1 = 0.03 + 0.003 * rng.standard_normal((2, m))  # losses in [0, 1] even after the leak
    # no leak: losses independent of U
    t = pair_terms(noise0, noise1, U, n_bins=2)
    assert t["ld_mi"] < 0.01 and t["ld_cosh"] < 0.003
    # leak: the trained point has a lower loss
    l0 = np.where(U == 0, noise0 - 0.01, noise0)
    l1 = np.where(U == 1, noise1 - 0.01, noise1)
    t = pair_terms(l0, l1, U, n_bins=2)
    gap = np.mean(np.where(U == 0, l1 - l0, l0 - l1))
    assert t["ld_mi"] > 0.3
    for key in ("ld_sqrt", "ld_cosh", "e_sqrt", "e_cosh"):
        assert t[key] >= gap
    assert t["ld_cosh"] < t["ld_sqrt"]


def test_pair_terms_reject_bad_input():
    with pytest.raises(ValueError, match="one length"):
        pair_terms([0.1, 0.2], [0.1], [0, 1])
    with pytest.raises(ValueError, match="at least 2 runs"):
        pair_terms([0.1], [0.2], [0])
    with pytest.raises(ValueError, match="n_bins"):
        pair_terms([0.1, 0.2], [0.2, 0.1], [0, 1], n_bins=0)


def test_latent_kl_terms_closed_forms():
    K, L = 4, 3
    onehot = np.zeros((2, 2, L, K))
    onehot[:, :, :, 1] = 1  # the same code in both runs
    eps = 0.01
    t = latent_kl_terms(onehot, eps=eps)
    # the other run agrees everywhere: each of the 2L factors costs −log(1 − ε + ε/K)
    assert t["kl_marginal"] == pytest.approx(-2 * L * math.log(1 - eps + eps / K))
    assert t["kl_uniform"] == pytest.approx(2 * L * math.log(K))
    # two runs that disagree at one (b, l): there each run's leave-one-out prior puts ε/K on its code
    onehot[1, 0, 0] = 0
    onehot[1, 0, 0, 2] = 1
    expected = -(2 * L - 1) * math.log(1 - eps + eps / K) - math.log(eps / K)
    assert latent_kl_terms(onehot, eps=eps)["kl_marginal"] == pytest.approx(expected)
    # uniform posteriors: no KL to the uniform prior
    assert latent_kl_terms(np.full((3, 2, L, K), 1 / K))["kl_uniform"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="posteriors"):
        latent_kl_terms(np.zeros((1, 2, L, K)))
