"""The training engine (vqlib.models.engine) that chapters 2–4, 6 and 8 train through.

Every claim is checked against the single-model path, vqlib.fit (or torch's own Adam and
torch.multinomial): encoder-only runs (chapter 4) and decoder-only runs (chapter 3) end as
fit leaves each model, to float rounding; the batched k-means start draws what one
torch.multinomial per round draws; the optimiser is torch.optim.Adam to the bit; sweeps read
each declared dataset once and key the cache by what they read; training never imports
torch's compiler stack.
"""
import subprocess
import sys

import numpy as np
import pytest
import torch

import vqlib
import vqlib.studies.decoder_gap as dg
from vqlib.models import engine
from vqlib import sweeps
from vqlib.studies import prior_bounds as pb
from vqlib.models import kmeans, kmeans_batched
from vqlib.bounds import draw_mask, make_supersample, split


@pytest.fixture(scope="module")
def digits():
    return vqlib.load_dataset("digits", split="all")


@pytest.fixture(scope="module")
def reference(digits):
    return pb.train_reference(digits[:300], 8, 2, epochs=3, lr=5e-3, hidden=32, train_seed=0)


def _copy(model):
    twin = vqlib.VQVAE(**{k: v for k, v in model.config.items()})
    twin.load_state_dict(model.state_dict())
    for name, p in model.named_parameters():
        dict(twin.named_parameters())[name].requires_grad_(p.requires_grad)
    twin.quantizer.update, twin.dead_code_reset = model.quantizer.update, model.dead_code_reset
    return twin


# ------------------------------------------------------------------ each run as fit trains it


def test_encoder_only_runs_train_each_encoder_as_fit_would(digits, reference):
    """Chapter 4: every run of the batch ends as vqlib.fit leaves a copy of the reference
    trained on its training half in one batch per step (fit visits the rows in another order,
    so the means round differently: float rounding)."""
    pool, n, steps = digits[300:], 8, 12
    runs = pb.encoder_only_runs(pool, reference, n, supersample_seeds=[0, 1], n_masks=3, steps=steps, lr=1e-2)
    for s, seed in enumerate([0, 1]):
        ss = make_supersample(pool, n, supersample_seed=seed)
        for m in range(3):
            alone = _copy(reference)
            vqlib.fit(alone, split(ss, draw_mask(n, mask_seed=1000 * seed + m))[0], epochs=steps, batch_size=n,
                      lr=1e-2, device="cpu")
            losses = vqlib.reconstruction_loss(alone, ss.flat()).numpy().reshape(n, 2)
            assert np.abs(losses - runs.losses[s, m]).max() < 1e-5
            assert np.array_equal(vqlib.encode_indices(alone, ss.flat()).numpy().reshape(n, 2, -1), runs.codes[s, m])


def test_decoder_only_runs_train_each_decoder_as_fit_would(digits):
    """Chapter 3's rescue side: frozen encoder and codebook (shared in the engine), decoder trained."""
    ref = dg.reference_model(digits[:200], K=8, L=2, decoder_steps=0, hidden=16)
    res = dg.gap_by_parts(digits[200:400], 6, "decoder", supersample_seeds=[0], mask_seeds=[0, 1],
                          reference=ref, steps=10, lr=3e-3)
    ss = make_supersample(digits[200:400], 6, supersample_seed=0)
    for model, m in zip(res.models, [0, 1]):
        alone = vqlib.VQVAE(**dict(ref.config, seed=0))
        own = alone.state_dict()
        own.update({k: v for k, v in ref.state_dict().items() if not k.startswith("decoder.")})
        alone.load_state_dict(own)
        for p in [*alone.encoder.parameters(), *alone.quantizer.parameters()]:
            p.requires_grad_(False)
        vqlib.fit(alone, split(ss, draw_mask(6, mask_seed=m))[0], epochs=10, batch_size=6, lr=3e-3, device="cpu")
        for (name, a), b in zip(alone.state_dict().items(), model.state_dict().values()):
            if a.is_floating_point():
                assert (a - b).abs().max() < 1e-5, name


def test_frozen_parts_are_held_once_and_written_back_unchanged(digits, reference):
    stack = engine.Stack.of([reference] * 4)
    assert all(stack.stacked(n) == n.startswith("encoder.") for n in stack.params)
    assert stack.params["decoder.0.weight"].data_ptr() != reference.decoder[0].weight.data_ptr()  # a copy
    part = stack.select(1, 3)
    assert part.R == 2 and part.params["encoder.0.weight"].shape[0] == 2
    models = [_copy(reference) for _ in range(4)]
    x = torch.stack([digits[300 + 10 * r:310 + 10 * r] for r in range(4)])
    engine.train_models(models, x, epochs=3, lr=1e-2)
    for m in models:
        assert torch.equal(m.decoder[0].weight, reference.decoder[0].weight)
        assert torch.equal(m.quantizer.codebook, reference.quantizer.codebook)
        assert not torch.equal(m.encoder[0].weight, reference.encoder[0].weight)


# ------------------------------------------------------------------ optimiser and k-means


def test_adam_is_torch_adam_to_the_bit_with_missing_gradients_and_subnormals():
    g = torch.Generator().manual_seed(1)
    p = [torch.randn(6, 4, generator=g).requires_grad_(), torch.randn(3, generator=g).requires_grad_()]
    q = [t.detach().clone().requires_grad_() for t in p]
    ours, theirs = engine.Adam(p, 3e-3), torch.optim.Adam(q, lr=3e-3)
    for step in range(25):
        for group in (p, q):
            for t in group:
                t.grad = None
            loss = (group[0].tanh() * 1e-21).sum()  # gradients whose squares are subnormal
            if step % 3:
                loss = loss + group[1].pow(2).sum()  # the second tensor skips every third step
            loss.backward()
        ours.step()
        theirs.step()
        for a, b in zip(p, q):
            assert torch.equal(a, b), step


def _kmeans_pp_reference(z, K, generator):
    """k-means++ seeding written with one torch.multinomial per round (the documented draws)."""
    m = z.shape[0]
    centres = [z[torch.randint(m, (1,), generator=generator).item()]]
    closest = (z - centres[0]).pow(2).sum(-1)
    for _ in range(1, K):
        total = closest.sum()
        if total <= 0:
            pick = torch.randint(m, (1,), generator=generator).item()
        else:
            pick = torch.multinomial(closest / total, 1, generator=generator).item()
        centres.append(z[pick])
        closest = torch.minimum(closest, (z - z[pick]).pow(2).sum(-1))
    return torch.stack(centres)


@pytest.mark.parametrize("m, K, distinct", [(300, 16, None), (40, 64, None), (30, 8, 3), (50, 40, 45)])
def test_batched_kmeans_draws_what_multinomial_draws_and_each_run_as_alone(m, K, distinct):
    g = torch.Generator().manual_seed(m + K)
    z = torch.randn(4, m, 5, generator=g)
    if distinct:  # fewer distinct rows than K in runs 1 and 3: the uniform fallback, round by round
        for r in (1, 3):
            z[r] = z[r, torch.randint(distinct, (m,), generator=g)]
    gens = [torch.Generator().manual_seed(10 + r) for r in range(4)]
    seeded = kmeans_batched(z, K, iters=0, generators=gens)
    trained = kmeans_batched(z, K, generators=[torch.Generator().manual_seed(10 + r) for r in range(4)])
    after = [torch.rand(1, generator=gg).item() for gg in gens]
    for r in range(4):
        g1 = torch.Generator().manual_seed(10 + r)
        assert torch.equal(seeded[r], _kmeans_pp_reference(z[r], K, g1))
        assert torch.rand(1, generator=g1).item() == after[r]  # the generator ends where it would alone
        assert torch.equal(trained[r], kmeans(z[r], K, generator=torch.Generator().manual_seed(10 + r)))


# ------------------------------------------------------------------ sweeps declare their data


def test_every_sweep_declares_its_data_and_reads_each_split_once(monkeypatch):
    loads = []
    real = vqlib.load_dataset

    def counting(name, split="train", **kw):
        loads.append((name, split))
        return real(name, split=split, **kw)

    monkeypatch.setattr(vqlib.sweeps.registry, "load_dataset", counting)  # where the runner reads it
    for name, sweep in sweeps.all_sweeps().items():
        if not sweep.compute.__module__.startswith("vqlib.sweeps"):
            continue  # a sweep another test registered
        assert sweep.data is not None, f"{name} does not declare its data"
        loads.clear()
        config = sweep.config("quick")
        dataset = config.pop("dataset", None)
        jobs = sweep.jobs(config)
        wanted = {pair for job in jobs for pair in
                  sweep.inputs(dict(job, dataset=dataset) if dataset else job).values()}
        _, keys, arrays = sweep._plan("quick", {})
        assert sorted(loads) == sorted(wanted), name  # every (dataset, split) once, whatever the number of jobs
        assert len(arrays) == len(jobs) and all(set(a) == set(sweep.inputs(k)) for a, k in zip(arrays, keys))


def test_the_cache_key_follows_the_data_a_job_reads(monkeypatch, tmp_path):
    from vqlib.sweeps.cache import key_of

    sweep = sweeps.get("ch01-latents")
    _, keys, arrays = sweep._plan("quick", {})
    base = key_of(sweep.name, keys[0], arrays[0])
    changed = dict(arrays[0], x_test=arrays[0]["x_test"].flip(0))
    assert key_of(sweep.name, keys[0], changed) != base
    assert key_of(sweep.name, keys[0], dict(arrays[0])) == base
    # a split no job reads plays no part: ch04 reads "all" only
    ch04 = sweeps.get("ch04-main")
    _, k4, a4 = ch04._plan("quick", {})
    assert set(a4[0]) == {"x"} and ch04.inputs(k4[0]) == {"x": ("digits", "all")}


# ------------------------------------------------------------------ no compiler on the training path


def test_training_does_not_import_torchs_compiler_stack():
    code = (
        "import sys, torch, vqlib\n"
        "from vqlib.models.ensemble import fit_ensemble\n"
        "x = vqlib.load_dataset('digits')[:40]\n"
        "vqlib.fit(vqlib.VQVAE((1, 8, 8), 4, 2, hidden=8), x, epochs=1)\n"
        "fit_ensemble([vqlib.VQVAE((1, 8, 8), 4, 2, hidden=8) for _ in range(2)], [x, x], epochs=1)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": "", "VQLIB_CACHE": "off"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
