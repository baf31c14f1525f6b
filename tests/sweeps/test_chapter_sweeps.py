"""The registered sweeps (vqlib.sweeps) of every chapter: configurations, jobs, cache, rows."""
import dataclasses
import json

import numpy as np
import pytest

from vqlib import sweeps

#: Tiny overrides of chapters 1-5's sweeps: the same code path as the chapters, in a second or so.
TINY = {
    "ch01-model": dict(K=2, L=1, epochs=1),
    "ch01-latents": dict(K=[2], L=[1], epochs=1),
    "ch02-kmeans": dict(n=[4], K=[2], n_masks=2, n_supersamples=1),
    "ch02-coverage": dict(learner=["kmeans"], toy_experiments=[[4, 3]], truth_runs=8),
    "ch02-vqvae": dict(n=4, K=2, L=1, n_masks=2, n_supersamples=1, epochs=1),
    "ch03-memoriser": dict(n=4, K=4, L=2, supersample_seeds=[0], mask_seeds=[0, 1]),
    "ch03-parts": dict(n=4, K=[2], steps=2, supersample_seeds=[0], mask_seeds=[0, 1], rescue_K=2,
                       rescue_decoder_steps=2),
    "ch04-main": dict(n=4, K=4, L=1, supersample_seeds=[0], n_masks=2, reference_epochs=1, steps=2),
    "ch04-settings": dict(setting=[[4, 1, 4]], supersample_seeds=[0], n_masks=2, reference_epochs=1, steps=2),
    "ch05-exact": dict(n=[2], settings=[[1, 1]], supersample_seeds=[0]),
    "ch05-monte-carlo": dict(L=[1], Ks=[1], NS=[4], supersample_seeds=[0], mask_seeds=[0, 1]),
    "ch06-temperature": dict(beta=[1.0], K=4, L=1, n=4, hidden=8, reference_epochs=1, n_supersamples=1,
                             n_masks=2, steps=2, n_samples=2),
    "ch07-priors": dict(KL=[[4, 2]], train_seed=[0], betas=[5.0], epochs=1, hidden=16),
    "ch07-penalty": dict(kl_weight=[0.0, 0.01], train_seed=[0], K=4, L=2, epochs=1, hidden=16),
    "ch08-capacity": dict(setting=[dict(decoder_depth=1, decoder_width=8, encoder_depth=1, encoder_width=8, K=2, L=1)],
                          seeds=[0], n=10, n_test=10, epochs=1),
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VQLIB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_every_chapter_sweep_is_registered():
    names = set(sweeps.all_sweeps())
    assert set(TINY) <= names
    for name in TINY:
        sweep = sweeps.get(name)
        assert sweep.chapter[:2] == name[2:4]  # ch03-parts serves 03_decoder


@pytest.mark.parametrize("name", sorted(sweeps.all_sweeps()))
def test_every_sweep_resolves_both_profiles(name):
    sweep = sweeps.get(name)
    assert sweep.doc and sweep.chapter
    quick, full = sweep.config("quick"), sweep.config("full")
    assert set(quick) == set(full), "the two profiles must set the same entries"
    for config in (quick, full):
        config.pop("dataset", None)
        jobs = sweep.jobs(config)
        assert jobs and all(set(job) == set(config) for job in jobs)
        for key in sweep.grid:
            assert {json.dumps(job[key]) for job in jobs} == {json.dumps(v) for v in config[key]}
    json.dumps(quick), json.dumps(full)  # configurations are JSON (they key the cache)


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_run_is_cached_and_rows_are_json_with_seeds(name, cache):
    sweep = sweeps.get(name)
    rows = sweep.run("quick", **TINY[name])
    assert rows and all(isinstance(r, dict) for r in rows)
    json.loads(json.dumps(rows))  # JSON values only
    assert all(any("seed" in key for key in r) for r in rows), "every row names its seeds"
    assert sweep.columns and sweep.check_rows(rows) is None  # the schema the cache checks on every read
    config = sweep.config("quick", **TINY[name])
    config.pop("dataset", None)
    assert len(list(cache.rglob("*.json"))) == len(sweep.jobs(config))

    def boom(x, **job):
        raise AssertionError("a warm cache must not compute")

    again = dataclasses.replace(sweep, compute=boom).run("quick", **TINY[name])
    assert again == rows


def test_unknown_setting_is_an_error():
    with pytest.raises(ValueError, match="no setting"):
        sweeps.get("ch05-exact").config("quick", not_a_key=1)


def test_ch02_rows_equal_a_direct_run(cache):
    import vqlib

    row = sweeps.get("ch02-kmeans").run("quick", **TINY["ch02-kmeans"])[0]
    direct = vqlib.run_supersample(vqlib.load_dataset("digits", split="all"), n=4, K=2, L=1, n_masks=2,
                                   n_supersamples=1, learner="kmeans", train_seed=0)
    assert row["gap"] == direct.gap and row["bounds"] == direct.bounds
    assert row["supersample_seeds"] == [0] and row["mask_seeds"] == [0, 1] and row["train_seed"] == 0


def test_ch03_rows_rebuild_the_gap_results(cache):
    import vqlib.studies.decoder_gap as dg
    from vqlib.sweeps.ch03_decoder import results_of

    import vqlib

    results = results_of(sweeps.get("ch03-parts").run("quick", **TINY["ch03-parts"]))
    assert set(results) == {(2, "decoder"), (2, "encoder"), (2, "all")}  # K = rescue_K adds "encoder"
    reference = dg.reference_model(vqlib.load_dataset("digits", split="train"), K=2, L=4, decoder_steps=2, hidden=32)
    direct = dg.gaps_by_parts(vqlib.load_dataset("digits", split="test"), 4, ["decoder", "encoder", "all"],
                              reference=reference, supersample_seeds=[0], mask_seeds=[0, 1], steps=2, lr=3e-3)
    for part in ("decoder", "encoder", "all"):
        assert results[2, part].runs == direct[part].runs
        assert results[2, part].pairs == direct[part].pairs  # code tuples restored as tuples


def test_ch04_row_rebuilds_the_encoder_runs(cache):
    from vqlib.studies import prior_bounds as pb
    from vqlib.sweeps.ch04_prior import runs_of, split_reference_pool

    row = sweeps.get("ch04-main").run("quick", **TINY["ch04-main"])[0]
    runs = runs_of(row)
    x_ref, x_pool = split_reference_pool("digits", "all", 600, 0)
    reference = pb.train_reference(x_ref, 4, 1, epochs=1, lr=5e-3, hidden=64, train_seed=0)
    direct = pb.encoder_only_runs(x_pool, reference, 4, supersample_seeds=[0], n_masks=2, steps=2, lr=1e-2)
    for field in ("masks", "losses", "codes", "reference_losses", "reference_codes", "mask_seeds"):
        np.testing.assert_array_equal(getattr(runs, field), getattr(direct, field))
    summary = pb.lv_summary(direct)
    assert pb.lv_summary(runs).gap == summary.gap
    assert row["summary"]["gap"] == summary.gap and row["summary"]["bounds"] == summary.bounds
    assert row["summary"]["kl"] == summary.kl and "rows" not in row["summary"]


def test_ch01_row_rebuilds_the_trained_model(cache):
    import torch

    import vqlib
    from vqlib.sweeps.ch01_vqvae import model_of

    row = sweeps.get("ch01-model").run("quick", **TINY["ch01-model"])[0]
    model = model_of(row)
    x_train, x_test = vqlib.load_dataset("digits"), vqlib.load_dataset("digits", split="test")
    direct = vqlib.VQVAE(x_train.shape[1:], K=2, L=1)
    history = vqlib.fit(direct, x_train, epochs=1, train_seed=0, x_val=x_test)
    assert row["history"] == json.loads(json.dumps(history.rows()))
    assert torch.equal(vqlib.reconstruction_loss(model, x_test), vqlib.reconstruction_loss(direct, x_test))
    assert not model.training


def test_a_list_setting_stays_non_empty():
    with pytest.raises(ValueError, match="'supersample_seeds' must hold a non-empty list"):
        sweeps.get("ch05-exact").config("quick", supersample_seeds=[])
    with pytest.raises(ValueError, match="'n' must hold a non-empty list"):
        sweeps.get("ch05-exact").config("quick", n=[])
