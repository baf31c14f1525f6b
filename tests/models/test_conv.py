"""The convolutional VQ-VAE (chapters 1 and 8): a latent grid of L = h·w positions.

What is tested: the valid L are the grids that stride-2 halvings make, and anything else is
refused by name with the valid values listed; encode and decode lay position l = i·w + j
on the grid, and each position reads a patch around its place; the training engine
computes the module's own forward pass; ``fit_ensemble`` trains every conv model as
``vqlib.fit`` does, to float rounding (grouped and single convolutions round differently),
with the same codes; ``run_supersample``, ``generate``, the softmax quantizer with a learned
β and chapter 8's capacity runs take the conv model; the CLI runs ch02-vqvae with it.
"""
import math

import pytest
import torch

import vqlib
from vqlib.models import engine
from vqlib.models import fit_ensemble
from vqlib.models import latent_grids, receptive_fields

TOL = 1e-3  # float rounding of grouped against single convolutions, grown over a few epochs of Adam


@pytest.fixture(scope="module")
def digits():
    return vqlib.load_dataset("digits", split="all")


def _conv(K=8, L=16, **kw):
    return vqlib.VQVAE((1, 8, 8), K, L, architecture="conv", **{"hidden": 16, **kw})


def test_latent_grids_are_the_halvings_of_the_image():
    assert latent_grids((1, 8, 8)) == {16: (4, 4), 4: (2, 2)}
    assert latent_grids((1, 28, 28)) == {196: (14, 14), 49: (7, 7)}
    assert latent_grids((3, 32, 32)) == {256: (16, 16), 64: (8, 8), 16: (4, 4), 4: (2, 2)}
    assert latent_grids((1, 8, 12)) == {24: (4, 6), 6: (2, 3)}


@pytest.mark.parametrize("L", [1, 2, 8, 64])
def test_an_L_the_grid_cannot_make_is_refused_with_the_valid_values(L):
    with pytest.raises(ValueError, match=r"L=\d+ is not a latent grid.*valid L are 16 \(4 × 4\), 4 \(2 × 2\)"):
        _conv(L=L)


@pytest.mark.parametrize("shape", [(1, 3, 3), (1, 2, 2), (1, 5, 8), (1, 8, 7)])
def test_an_input_too_small_for_the_conv_stack_is_refused(shape):
    with pytest.raises(ValueError, match=r"in_shape=.*too small for architecture='conv'"):
        vqlib.VQVAE(shape, 4, 4, architecture="conv")


def test_a_bad_architecture_is_named():
    with pytest.raises(ValueError, match=r"architecture='cnn' is not one of \('mlp', 'conv'\)"):
        vqlib.VQVAE((1, 8, 8), 4, 4, architecture="cnn")


@pytest.mark.parametrize("L,shape", [(16, (1, 8, 8)), (4, (1, 8, 8)), (49, (1, 28, 28))])
def test_shapes_and_the_grid_order_of_positions(L, shape):
    torch.manual_seed(0)
    model = vqlib.VQVAE(shape, 8, L, architecture="conv", hidden=8).eval()  # eval: no EMA step
    x = torch.rand(3, *shape)
    out = model(x)
    assert out.x_hat.shape == x.shape and out.indices.shape == (3, L) and out.z_e.shape == (3, L, 8)
    assert torch.allclose(out.z_e.norm(dim=-1), torch.ones(3, L))
    h, w = model.grid
    raw = model.encoder(x)  # (N, D, h, w): position l = i·w + j
    i, j = 1, w - 1
    assert torch.allclose(out.z_e[:, i * w + j], torch.nn.functional.normalize(raw[:, :, i, j], dim=-1), atol=1e-6)
    assert torch.equal(model.decode_indices(out.indices), out.x_hat)


def test_each_position_reads_a_patch_around_its_place(digits):
    # without residual blocks a position sees one 4 × 4 stride-2 convolution and one 3 × 3 one: rows
    # 2i − 3 … 2i + 4 and columns 2j − 3 … 2j + 4 of the image, and nothing else
    model = _conv(L=16, encoder_depth=0)
    fields = receptive_fields(model, digits[:32])
    assert fields.shape == (16, 8, 8)
    assert torch.allclose(fields.sum((1, 2)), torch.ones(16))
    for l in range(16):
        i, j = divmod(l, 4)
        inside = torch.zeros(8, 8, dtype=torch.bool)
        inside[max(0, 2 * i - 3):2 * i + 5, max(0, 2 * j - 3):2 * j + 5] = True
        assert fields[l][~inside].abs().max() == 0, l
        assert fields[l][inside].sum() == pytest.approx(1.0, abs=1e-5)
    # the MLP's positions have no place: every position reads pixels all over the image
    mlp = vqlib.VQVAE((1, 8, 8), 8, 16, hidden=16)
    assert (receptive_fields(mlp, digits[:32]) > 0).float().mean() > 0.5


def test_the_engine_computes_the_modules_forward_pass(digits):
    models = [_conv(L=4, seed=s, encoder_depth=1) for s in range(2)]
    x = digits[:10]
    stack = engine.Stack.of(models, share=False)
    with torch.no_grad():
        z = stack.encode(x.reshape(1, 10, -1).expand(2, -1, -1))
        for r, m in enumerate(models):
            torch.testing.assert_close(z[r].reshape(10, 4, 8), m.encode(x), atol=1e-5, rtol=0)
            codes = m.quantizer.codes[torch.arange(40) % 8].reshape(10, 4, 8)
            batch = torch.stack([codes, codes]).reshape(2, 40, 8)
            torch.testing.assert_close(stack.decode(batch)[r].reshape(10, 1, 8, 8), m.decode(codes),
                                       atol=1e-5, rtol=0)


@pytest.mark.parametrize("kw", [dict(L=16), dict(L=4, quantizer="softmax", beta="learned"),
                                dict(L=4, codebook="loss", encoder_depth=0, decoder_depth=1)])
def test_fit_ensemble_trains_each_conv_model_as_fit_does(digits, kw):
    xs = [digits[40 * r:40 * (r + 1)] for r in range(3)]
    alone = [_conv(seed=s, **kw) for s in range(3)]
    batch = [_conv(seed=s, **kw) for s in range(3)]
    for m, x, s in zip(alone, xs, range(3)):
        vqlib.fit(m, x, epochs=4, batch_size=16, train_seed=s, device="cpu")
    ens = fit_ensemble(batch, xs, epochs=4, batch_size=16, train_seeds=[0, 1, 2], device="cpu")
    for a, b, loss, s in zip(alone, batch, ens.train_loss, range(3)):
        for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert (va.double() - vb.double()).abs().max().item() <= TOL, name
        assert torch.equal(vqlib.encode_indices(a, digits[:300], seed=s), vqlib.encode_indices(b, digits[:300], seed=s))
        assert loss == pytest.approx(float(vqlib.reconstruction_loss(a, xs[s], seed=s).mean()), abs=TOL)


def test_run_supersample_and_generate_take_the_conv_model(digits):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vqlib.CertificateWarning)
        result = vqlib.run_supersample(digits, n=8, K=8, L=16, n_masks=4, n_supersamples=2, epochs=2, hidden=8,
                                       architecture="conv")
    assert result.config["L"] == 16 and math.isfinite(result.gap)
    assert all(math.isfinite(v) for v in result.bounds.values())
    model = _conv(L=4)
    vqlib.fit(model, digits[:64], epochs=1)
    images = vqlib.generate(model, 5, seed=1)
    assert images.shape == (5, 1, 8, 8) and (images >= 0).all() and (images <= 1).all()
    assert torch.equal(images, vqlib.generate(model, 5, seed=1))


def test_capacity_runs_take_the_conv_model_and_axis_rows_keep_architectures_apart(digits):
    from vqlib.studies.capacity import axis_rows, capacity_runs

    setting = dict(decoder_depth=1, decoder_width=8, encoder_depth=1, encoder_width=8, K=4, L=16,
                   architecture="conv")
    rows = capacity_runs(digits, setting, data_seeds=[0, 1], train_seeds=[0, 1], n=20, n_test=20, epochs=2)
    assert [r["architecture"] for r in rows] == ["conv", "conv"] and all(math.isfinite(r["gap"]) for r in rows)
    mlp = [dict(r, architecture="mlp") for r in rows]
    assert len(axis_rows(rows + mlp, "K", setting)) == 2
    assert len(axis_rows(rows + mlp, "K", dict(setting, architecture="mlp"))) == 2


def test_the_cli_runs_chapter_2s_vqvae_sweep_with_the_conv_model(tmp_path, monkeypatch, capsys):
    from vqlib.book.cli import main

    monkeypatch.setenv("VQLIB_CACHE", "off")
    settings = ["--set", "architecture=conv", "--set", "L=16", "--set", "n_masks=4", "--set", "n_supersamples=1",
                "--set", "epochs=2", "--set", "hidden=8", "--set", "n=8"]
    code = main(["run", "ch02-vqvae", *settings, "--no-cache", "--out", str(tmp_path / "conv.json")])
    assert code == 0, capsys.readouterr().err
    import json

    rows = json.loads((tmp_path / "conv.json").read_text())
    assert rows[0]["architecture"] == "conv" and rows[0]["L"] == 16
    with pytest.raises(SystemExit) as stop:
        main(["run", "ch02-vqvae", "--set", "architecture=conv", "--set", "L=8", "--no-cache"])
    code, err = stop.value.code, capsys.readouterr().err
    assert code == 2 and "valid L are 16 (4 × 4), 4 (2 × 2)" in err and len(err.strip().splitlines()) == 1
