"""Chapter 9: the configurations, checks and claim verdicts of vqlib.book.scorecard, on synthetic rows."""
import math

import numpy as np
import pytest

import vqlib
from vqlib.book import scorecard as sc
from vqlib.bounds.certificates import STAKE, betting_ucb
from vqlib.studies.capacity import AXES, capacity_settings

BASE = dict(decoder_depth=2, decoder_width=64, encoder_depth=2, encoder_width=64, K=16, L=4)
AXES_VALUES = dict(decoder_depth=[1, 2, 4], decoder_width=[16, 64, 256], encoder_depth=[1, 2, 4],
                   encoder_width=[16, 64, 256], K=[2, 4, 8, 16, 32, 64], L=[1, 2, 4, 8])


def _chapter2_row(**over):
    per = [dict(gap=0.05 + 0.01 * s, gap_sem=0.001, ld_cmi_cosh=0.07 + 0.01 * s, supersample_seed=s) for s in range(3)]
    row = dict(gap=0.06, gap_sem=0.005, bounds={"ld_cmi_cosh": 0.08, "lv_uniform": 3.0}, per_supersample=per,
               certified={"ld_cmi_cosh": 0.09, "held_out": 0.07, "lv_uniform": 1.0},
               certified_kinds={"ld_cmi_cosh": "certified", "held_out": "certified", "lv_uniform": "exact"},
               confidence=0.95, n=20, K=16, L=1, learner="kmeans", n_supersamples=3, n_masks=128,
               certificate=dict(n_estimate=96))
    row.update(over)
    return row


# ---------------------------------------------------------------- configurations


def test_supersample_configuration_keeps_every_field_the_tables_read():
    c = sc.supersample_configuration(_chapter2_row())
    assert c["source"] == "ch02-kmeans" and c["trained"] == "all" and c["beta"] is None
    assert c["gap"] == 0.06 and c["gap_sem"] == 0.005 and c["n_estimate"] == 96
    assert c["certified_kinds"]["lv_uniform"] == "exact" and len(c["per_supersample"]) == 3
    table = vqlib.book.bounds_table(c, sc.NAMES)  # the chapter's table reads it as it is
    assert "estimate ± s.e." in table and "certified (δ = 0.05, jointly)" in table and "| exact |" in table


def test_supersample_configuration_counts_estimation_runs_without_a_certificate():
    c = sc.supersample_configuration(_chapter2_row(certificate=None, learner="vqvae"))
    assert c["source"] == "ch02-vqvae" and c["n_estimate"] == 115  # 128 masks, a tenth (13) fit


def test_supersample_configuration_names_what_is_missing():
    row = _chapter2_row()
    del row["certified"]
    with pytest.raises(ValueError, match="certified"):
        sc.supersample_configuration(row)


def test_encoder_only_configuration_keeps_the_valid_mask_marginal_estimate():
    per = [dict(gap=0.004, gap_sem=0.001, lv_marginal=3.0, lv_marginal_loo=3.5, lv_uniform=8.0, supersample_seed=s)
           for s in range(2)]
    summary = dict(gap=0.004, gap_sem=0.0005, bounds=dict(lv_marginal=3.0, lv_marginal_loo=3.5, lv_uniform=8.0),
                   per_supersample=per, certified=dict(lv_marginal=1.0, held_out=0.03),
                   certified_kinds=dict(lv_marginal="certified", held_out="certified"), confidence=0.95,
                   certificate=dict(n_estimate=96))
    row = dict(summary=summary, K=64, L=4, n=16, supersample_seeds=[0, 1],
               mask_seeds=[list(range(128)), list(range(1000, 1128))])  # (supersamples, masks), as stored
    c = sc.encoder_only_configuration(row)
    assert c["bounds"] == dict(lv_marginal=3.5, lv_uniform=8.0)  # leave-one-out, under the certificate's name
    assert all(p["lv_marginal"] == 3.5 and "lv_marginal_loo" not in p for p in c["per_supersample"])
    assert c["n_masks"] == 128 and c["n_supersamples"] == 2 and c["trained"] == "encoder"


def _temperature_rows(beta=1.0, gaps=(0.002, 0.004), certified=None):
    cert = certified or {"stability": 1.0, "ld_cmi_cosh": 0.06}
    rows = []
    for s, g in enumerate(gaps):
        rows.append(dict({k: 0.01 * (s + 1) for k in sc.TEMPERATURE_ESTIMATES}, beta=beta, gap=g, gap_sem=0.0003,
                         supersample_seed=s, certified=dict(cert),
                         certified_kinds={"stability": "exact", "ld_cmi_cosh": "certified"}, confidence=0.95,
                         mask_seeds=list(range(64)), K=64, L=4, n=16, train_loss=0.05))
    return rows


def test_temperature_configuration_averages_supersamples_like_chapter_6():
    rows = _temperature_rows() + _temperature_rows(beta=3.0, gaps=(0.1, 0.2))
    c = sc.temperature_configuration(rows, 1.0)
    assert c["gap"] == pytest.approx(0.003)
    assert c["gap_sem"] == pytest.approx(np.std([0.002, 0.004], ddof=1) / math.sqrt(2))
    assert c["bounds"]["ld_cmi_cosh"] == pytest.approx(0.015) and "stability" not in c["bounds"]
    assert c["certified"]["stability"] == 1.0 and c["certified_kinds"]["stability"] == "exact"
    assert c["n_estimate"] == 57 and c["beta"] == 1.0 and len(c["per_supersample"]) == 2  # 64 masks, 7 fit


def _two_target_configuration():
    """Chapter 6's two certificates: ld_cmi_cosh bounds the shared-uniform gap, stability_cosh and
    lv_uniform the single-draw gap, which is within noise of 0 here."""
    rows = _temperature_rows(certified={"stability": 0.6, "ld_cmi_cosh": 0.06, "stability_cosh": 0.04,
                                        "lv_uniform": 0.3, "held_out": 0.05})
    targets = dict(stability="single", stability_cosh="single", lv_uniform="single", lv_reference="single",
                   ld_cmi_cosh="shared", held_out="shared")
    for r, single in zip(rows, (-0.001, 0.0012)):
        r.update(certified_targets=targets, gap_single=single, gap_single_sem=0.001,
                 certified_kinds=dict(stability="exact", ld_cmi_cosh="certified", stability_cosh="certified",
                                      lv_uniform="certified", held_out="certified"))
    return sc.temperature_configuration(rows, 1.0)


def test_each_value_is_compared_with_the_gap_it_bounds():
    c = _two_target_configuration()
    assert sc.target_gap(c, "ld_cmi_cosh") == (pytest.approx(0.003), c["gap_sem"])
    assert sc.target_gap(c, "lv_uniform") == (pytest.approx(0.0001), c["gap_single_sem"])
    # the tightest value of each gap, never across the two
    assert sc.tightest(c) == ("held_out", 0.05)
    assert sc.tightest(c, target="single") == ("stability_cosh", 0.04)
    # estimates too: every estimate of _temperature_rows is 0.015 on average; those of the shared gap
    assert sc.tightest(c, kinds=("estimate",))[0] not in ("stability_cosh", "lv_uniform", "lv_reference")
    assert sc.tightest(c, kinds=("estimate",), target="single")[0] in ("stability_cosh", "lv_uniform",
                                                                         "lv_reference")
    table = sc.configuration_table(c)
    cells = [line.split(" | ") for line in table.splitlines()[2:]]
    lines = {f"{c[0].strip('| ')} / {c[1]}": " | ".join(c) for c in cells}
    assert "| shared uniforms | 16.7 |" in lines["held-out ghosts / certified (δ = 0.05, jointly)"]  # 0.05 / 0.003
    # the single-draw gap (0.0001 ± 0.0011) is within noise of 0: the ratio is to its upper end
    upper = c["gap_single"] + 2 * c["gap_single_sem"]
    assert f"÷ (gap + 2 s.e.) = {0.3 / upper:.0f}" in lines["LV, uniform prior / certified (δ = 0.05, jointly)"]
    assert "| single draw |" in lines["stability √(2 I_β), data-free / exact"]


def test_configuration_table_without_targets_has_no_target_column():
    c = sc.supersample_configuration(_chapter2_row())
    table = sc.configuration_table(c)
    assert table.splitlines()[0] == "| bound | kind | value | ÷ that gap |"
    assert "| LV, uniform prior | exact | 1.0000 | vacuous |" in table
    assert "| held-out ghosts | certified (δ = 0.05, jointly) | 0.0700 | 1.2 |" in table
    # the estimates' standard errors are over supersamples, as in vqlib.book.bounds_table
    assert f"0.0800 ± {np.std([0.07, 0.08, 0.09], ddof=1) / math.sqrt(3):.4f}" in table


def test_temperature_configuration_rejects_an_absent_beta_and_disagreeing_certificates():
    with pytest.raises(ValueError, match="no row"):
        sc.temperature_configuration(_temperature_rows(), 2.0)
    rows = _temperature_rows()
    rows[1]["certified"]["ld_cmi_cosh"] = 0.5
    with pytest.raises(ValueError, match="disagree"):
        sc.temperature_configuration(rows, 1.0)


# ---------------------------------------------------------------- checks and floors


def test_tightest_by_kind_and_for_estimates():
    c = sc.supersample_configuration(_chapter2_row())
    assert sc.tightest(c) == ("held_out", 0.07)
    assert sc.tightest(c, kinds=("exact",)) == ("lv_uniform", 1.0)
    assert sc.tightest(c, kinds=("estimate",)) == ("ld_cmi_cosh", 0.08)
    with pytest.raises(ValueError, match="no value"):
        sc.tightest(c, kinds=("nonsense",))


def test_certified_checks_count_values_below_the_gap_minus_two_standard_errors():
    good = dict(gap=0.05, gap_sem=0.01, certified=dict(a=0.031, b=1.0))
    bad = dict(gap=0.05, gap_sem=0.01, certified=dict(a=0.029))
    out = sc.certified_checks({"good": good, "bad": bad})
    assert out["passed"] == 2 and out["total"] == 3
    assert out["failures"] == [("bad", "a", 0.029, 0.05, 0.01)]


@pytest.mark.parametrize("M", [4, 12, 64, 128])
def test_estimation_runs_matches_the_certificate(M):
    rng = np.random.default_rng(M)
    S, n = 2, 3
    losses = rng.uniform(0, 1, (S, M, n, 2))
    masks = rng.integers(0, 2, (S, M, n))
    cert = vqlib.certify(losses, masks, warn=False)
    assert sc.estimation_runs(M) == cert.n_estimate


def test_certification_floor_is_what_betting_pays_on_constant_values():
    J, delta = 384, 0.05
    floor = sc.certification_floor(J, delta)
    assert floor == pytest.approx(math.log(1 / delta) / (STAKE * J), rel=0.02)
    # equal values reach the floor exactly: the top of [−1, 1] is 1 above their mean 0
    assert betting_ucb(np.zeros(J), low=-1.0, high=1.0, delta=delta) == pytest.approx(floor, rel=1e-9)
    assert betting_ucb(np.full(J, 0.5), low=-1.0, high=1.0, delta=delta) == pytest.approx(
        0.5 + sc.certification_floor(J, delta, headroom=0.5), rel=1e-9)
    with pytest.raises(ValueError, match="runs"):
        sc.certification_floor(0)
    with pytest.raises(ValueError, match="headroom"):
        sc.certification_floor(10, headroom=0.0)


def test_certification_floor_is_paid_over_the_mean_whatever_the_spread():
    rng = np.random.default_rng(3)
    J, delta = 200, 0.05
    for _ in range(20):
        values = rng.uniform(-1, 1, J) * rng.uniform(0, 1)
        floor = sc.certification_floor(J, delta, headroom=1.0 - values.mean())
        for stake in (0.2, 0.6, STAKE, 1.0):
            bound = betting_ucb(values, low=-1.0, high=1.0, delta=delta, stake=stake)
            assert bound >= values.mean() + sc.certification_floor(J, delta, 1.0 - values.mean(), stake) - 1e-9
        assert betting_ucb(values, low=-1.0, high=1.0, delta=delta) >= values.mean() + floor - 1e-9


# ---------------------------------------------------------------- claims


def _capacity_rows(effects, seeds=range(4), noise=0.0005):
    """Synthetic chapter-8 rows: gap = 0.02 + Σ effect[axis]·log(value / base) + seed level + noise."""
    rng = np.random.default_rng(0)
    rows = []
    for setting in capacity_settings(BASE, AXES_VALUES):
        for s in seeds:
            gap = 0.02 + 0.002 * s + rng.normal(0, noise)
            gap += sum(effects.get(a, 0.0) * math.log(setting[a] / BASE[a]) for a in AXES)
            rows.append(dict(setting, data_seed=s, gap=gap, lv_rate=3.0 * math.log(setting["K"]) + rng.normal(0, 0.1),
                             lv_joint=min(math.log(100), 2 * math.log(setting["K"])), train_seed=s))
    return rows


@pytest.mark.parametrize("effects, noise, verdict", [
    ({"decoder_width": 0.01, "K": 0.01}, 0.0005, "refuted"),
    ({"K": 0.01}, 0.0005, "confirmed"),
    ({}, 0.0, "not testable here"),  # every seed's gap the same at every setting: no slope, no difference
])
def test_decoder_claim(effects, noise, verdict):
    out = sc.decoder_claim(_capacity_rows(effects, noise=noise), BASE)
    assert out["verdict"] == verdict
    assert set(out["axes"]) == set(AXES) and out["axes"]["K"]["seeds"] == 4


def test_axis_evidence_reports_slopes_per_doubling():
    out = sc.axis_evidence(_capacity_rows({"K": 0.01}, noise=0.0), "K", BASE)
    assert out["slope"] == pytest.approx(0.01 * math.log(2)) and out["verdict"] == "moves the gap"
    assert (out["low"], out["high"]) == (2, 64)


def _kl_points(slope):
    return [dict(K=K, kl=1.0 + slope * math.log(K) + 0.05 * s, supersample_seed=s) for K in (4, 16, 256)
            for s in range(3)] + [dict(K=64, kl=1.0 + slope * math.log(64) + 0.01 * s * s, supersample_seed=s)
                                 for s in range(3)]


def test_log_k_claim():
    rows = _capacity_rows({"K": 0.01})
    out = sc.log_k_claim(rows, BASE, _kl_points(1.5))
    assert out["verdict"] == "confirmed" and out["rate"]["b"] == pytest.approx(3.0, abs=0.1)
    assert out["ceiling"] == 4 and out["kl_Ks"] == [4, 16, 64, 256]
    assert sc.log_k_claim(rows, BASE, _kl_points(-1.5))["verdict"] == "refuted"


def _config(lv_certified):
    return dict(gap=0.01, gap_sem=0.001, bounds={"lv_uniform": 2.0, "ld_cmi_cosh": 0.05},
                certified={"lv_uniform": lv_certified, "ld_cmi_cosh": 0.06},
                certified_kinds={"lv_uniform": "certified", "ld_cmi_cosh": "certified"})


def test_prior_gap_claim():
    out = sc.prior_gap_claim({"x": _config(1.0), "y": _config(1.0)})
    assert out["verdict"] == "not testable here" and out["certified_vacuous"] == 2 and out["certified_count"] == 2
    out = sc.prior_gap_claim({"x": _config(1.0), "y": _config(0.4)})
    assert out["verdict"] == "confirmed" and out["certified_below_1"] == 1
    assert out["below_1"] == [(0.4, "y", "lv_uniform")]
    assert out["best_certified_gap"] == 0.01 and out["best_certified_ratio"] == pytest.approx(40)
    assert out["best_certified_gap_upper"] == pytest.approx(0.012) and not out["best_certified_gap_within_noise"]


def test_prior_gap_claim_against_the_single_draw_gap_within_noise():
    c = _two_target_configuration()  # lv_uniform: 0.3, certified, bounds the single-draw gap 0.0001 ± 0.0011
    out = sc.prior_gap_claim({"softmax": c})
    assert out["verdict"] == "confirmed" and out["best_certified"] == 0.3
    assert out["best_certified_gap"] == pytest.approx(c["gap_single"]) and out["best_certified_gap_within_noise"]
    assert out["best_certified_gap_upper"] == pytest.approx(c["gap_single"] + 2 * c["gap_single_sem"])


def _priors_rows(w2_gain, seeds=range(3)):
    rng = np.random.default_rng(1)
    rows = []
    for K, L in ((16, 4), (32, 8)):
        for s in seeds:
            for prior, kl, w2 in (("uniform", 8.0, 2.0 + w2_gain), ("markov", 3.0, 2.0)):
                rows.append(dict(K=K, L=L, train_seed=s, beta=5.0, prior=prior, kl_mean=kl + rng.normal(0, 0.1),
                                 w2_gen=w2 + rng.normal(0, 0.01)))
    return rows


@pytest.mark.parametrize("gain, verdict", [(0.2, "confirmed"), (-0.2, "refuted"), (0.0, "not testable here")])
def test_prior_generation_claim(gain, verdict):
    out = sc.prior_generation_claim(_priors_rows(gain))
    assert out["verdict"] == verdict and out["models"] == 6
    # the same differences within each (K, L), over its three seeds alone
    assert set(out["by_setting"]) == {(16, 4), (32, 8)}
    assert all(e["w2"]["count"] == 3 and e["w2"]["df"] == 2 for e in out["by_setting"].values())
    pooled = np.mean([d for e in out["by_setting"].values() for d in e["w2"]["differences"]])
    assert out["w2"]["mean"] == pytest.approx(pooled)


def _penalty_rows(w2_change):
    rows = []
    for s in range(3):
        for w in (0.0, 0.01):
            rows.append(dict(prior="uniform", kl_weight=w, train_seed=s, kl_mean=6.0 - 500 * w + 0.01 * s,
                             w2_gen=2.0 + (w2_change if w else 0.0) + 0.001 * s * (w > 0)))
    return rows


@pytest.mark.parametrize("change, verdict", [(-0.2, "confirmed"), (0.2, "refuted")])
def test_penalty_claim(change, verdict):
    out = sc.penalty_claim(_penalty_rows(change), 0.01)
    assert out["verdict"] == verdict and out["seeds"] == 3


def test_penalty_claim_within_noise():
    rows = _penalty_rows(0.0)
    for r, e in zip([r for r in rows if r["kl_weight"]], (0.1, -0.1, 0.05)):
        r["w2_gen"] += e
    assert sc.penalty_claim(rows, 0.01)["verdict"] == "not testable here"


def _kmeans_rows(exponent):
    rows = []
    for K in (4, 16):
        for n in (10, 20, 40, 80):
            per = [dict(ld_cmi_cosh=0.5 * n ** exponent * (1 + 0.02 * s), gap=0.3 * n ** -0.8 * (1 + 0.03 * s),
                        supersample_seed=s) for s in range(4)]
            rows.append(dict(K=K, n=n, per_supersample=per, gap=float(np.mean([p["gap"] for p in per])),
                             certified={"ld_cmi_cosh": 0.01 + 0.6 * n ** exponent}))
    return rows


def test_n_claim():
    out = sc.n_claim(_kmeans_rows(-0.6))
    assert out["verdict"] == "confirmed" and out["by_K"][4]["bound"]["b"] == pytest.approx(-0.6, abs=1e-6)
    assert out["by_K"][16]["gap"]["b"] == pytest.approx(-0.8, abs=1e-6) and out["by_K"][4]["ns"] == [10, 20, 40, 80]
    assert sc.n_claim(_kmeans_rows(0.3))["verdict"] == "refuted"
    rows = _kmeans_rows(-0.6)
    rows[-1]["per_supersample"][0]["gap"] = -0.001  # a gap within noise of 0 at the largest n
    out = sc.n_claim(rows)
    assert out["verdict"] == "confirmed" and out["by_K"][16]["gap"] is None and out["by_K"][4]["gap"] is not None


def test_temperature_claim():
    rows = []
    for beta, train, gap in ((0.03, 0.10, 0.0001), (1.0, 0.08, 0.002), (100.0, 0.04, 0.0035)):
        for s in range(4):
            rows.append(dict(beta=beta, supersample_seed=s, train_loss=train + 0.001 * s, gap=gap + 0.0002 * (s % 2)))
    out = sc.temperature_claim(rows)
    assert out["verdict"] == "confirmed" and (out["beta_lo"], out["beta_hi"]) == (0.03, 100.0)
    assert out["references"] == {0.03: [], 100.0: []}  # rows without train_seed: no reference named
    assert sc.temperature_claim([dict(r, train_seed=0) for r in rows])["references"] == {0.03: [0], 100.0: [0]}
    assert out["train"]["mean"] == pytest.approx(0.06) and out["gap"]["mean"] == pytest.approx(0.0034)
    for r in rows:
        r["gap"] = -r["gap"]
    assert sc.temperature_claim(rows)["verdict"] == "refuted"
