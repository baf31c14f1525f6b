"""Ensemble training against one-by-one training, with its arithmetic rate next to torch.bmm's.

Two settings (R models, n training points each, K codes, L positions, hidden width, epochs;
batch 64, learning rate 2e-3, digits):

* ``quick``: 32, 16, 8, 4, 32, 30: chapter 2's quick VQ-VAE runs (``chapters/02_supersample.ipynb``);
* ``paper``: 16, 512, 128, 16, 128, 3: a paper-shaped setting (larger n, K, L and width);
* ``conv``: 32, 64, 64, 16, 32, 10: the convolutional VQ-VAE on a 4 × 4 latent grid (hidden = 32
  channels, two residual blocks in encoder and decoder), chapter 2's full ``ch02-vqvae`` model.
  The ensemble runs the R models' convolutions as one grouped convolution, which rounds
  differently from R single ones: most models end within 1e-5 of ``fit``'s, but a rounding
  difference can tip a discrete step (which code is nearest, a k-means++ draw, a dead-code
  reset), after which a model follows another, equally valid, trajectory. The script prints
  how many models agree within 1e-3.

The R training sets are training halves of supersamples (8 masks per supersample) or, when
2n exceeds the data, R random subsets of n digits, drawn as :func:`vqlib.run_supersample`
draws them. "One by one" is ``vqlib.fit`` per model; "ensemble" is
``vqlib.models.fit_ensemble`` on all R (the training engine, :mod:`vqlib.models.engine`). Both are
timed after a warm-up that pays the one-time imports, best of ``--repeat`` runs, wall clock
and CPU time of this process, and the weights of the two are compared.

FLOP count (analytic, per model; multiply-adds count 2): one forward pass of one input
costs F = 2·Σ in·out over the encoder's and the decoder's linear layers plus 2·L·K·D for
its L distances to the K codes (D = code_dim). Training costs, per input and epoch,
3·(the linear layers' part of F) (forward, and a backward that costs about twice the
forward) plus the distances once (no gradient flows through the nearest code's choice);
the final evaluation on the n training points costs F per input. The codebook start
(encoder rescaling, k-means) is not counted: its time counts against the rate.
GFLOP/s = that count × R / the ensemble's wall clock. Next to it the script measures
``torch.bmm`` on the setting's own hidden-layer product, (R, 64, hidden) × (R, hidden,
hidden), and on a large one, (16, 512, 512) × (16, 512, 512), in the same run, so the
efficiency (rate / bmm rate) does not depend on how busy the machine is.

The last line is ``speedup: X.XX`` (wall clock, best against best, of the last setting run).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ensemble.py [--setting quick|paper|both]
        [--device cpu] [--models R] [--repeat 3]      (--setting all: quick, paper and conv)
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import time

import torch

import vqlib
from vqlib.models import fit_ensemble
from vqlib.bounds import draw_mask, make_supersample, split

SETTINGS = {
    "quick": dict(R=32, n=16, K=8, L=4, hidden=32, epochs=30, batch_size=64, lr=2e-3, seed=0),
    "paper": dict(R=16, n=512, K=128, L=16, hidden=128, epochs=3, batch_size=64, lr=2e-3, seed=0),
    "conv": dict(R=32, n=64, K=64, L=16, hidden=32, epochs=10, batch_size=64, lr=2e-3, seed=0, architecture="conv"),
}


def training_sets(x, R: int, n: int, masks_per_supersample: int = 8):
    """R training sets of n digits: training halves of supersamples when 2n ≤ the data, else subsets."""
    out = []
    for r in range(R):
        s, m = divmod(r, masks_per_supersample)
        if 2 * n <= len(x):
            ss = make_supersample(x, n, supersample_seed=s)
            out.append(split(ss, draw_mask(n, mask_seed=1000 * s + m))[0])
        else:
            out.append(x[torch.randperm(len(x), generator=torch.Generator().manual_seed(r))[:n]])
    return out


def build(R: int, cfg: dict):
    return [vqlib.VQVAE((1, 8, 8), cfg["K"], cfg["L"], hidden=cfg["hidden"], seed=cfg["seed"],
                        architecture=cfg.get("architecture", "mlp")) for _ in range(R)]


def one_by_one(xs, cfg, device):
    models = build(len(xs), cfg)
    for m, x in zip(models, xs):
        vqlib.fit(m, x, epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"], train_seed=cfg["seed"],
                  device=device)
    return models


def ensemble(xs, cfg, device, chunk_size=None):
    models = build(len(xs), cfg)
    fit_ensemble(models, xs, epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                 train_seeds=cfg["seed"], device=device, chunk_size=chunk_size)
    return models


def flops(model: vqlib.VQVAE, n: int, epochs: int) -> float:
    """The analytic FLOP count of training ``model`` on n inputs for ``epochs`` epochs and evaluating it (see above).

    Linear layers: 2·in·out per input; convolutions: 2·C_in·C_out·k_h·k_w per output place
    (per input place for a transposed one), the places read off one forward pass."""
    layers = {}

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Linear):
            layers[module] = 2 * module.in_features * module.out_features
        elif isinstance(module, torch.nn.Conv2d):
            layers[module] = 2 * module.weight[0].numel() * module.out_channels * output[0, 0].numel()
        elif isinstance(module, torch.nn.ConvTranspose2d):
            layers[module] = 2 * module.weight.numel() * inputs[0][0, 0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *model.in_shape, device=model.device))
    model.train(was_training)
    for h in handles:
        h.remove()
    linear = sum(layers.values())
    distances = 2 * model.L * model.K * model.code_dim
    return n * epochs * (3 * linear + distances) + n * (linear + distances)


def timed(fn, repeat: int, device):
    best_wall, best_cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best_wall, best_cpu, out


def bmm_rate(R: int, rows: int, inner: int, cols: int, device, seconds: float = 0.5) -> float:
    """GFLOP/s of torch.bmm on (R, rows, inner) × (R, inner, cols), best of repeated runs for ``seconds``."""
    a = torch.randn(R, rows, inner, device=device)
    b = torch.randn(R, inner, cols, device=device)
    out = torch.empty(R, rows, cols, device=device)
    torch.bmm(a, b, out=out)
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(5):
            torch.bmm(a, b, out=out)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t) / 5)
    return 2 * R * rows * inner * cols / best / 1e9


def run(name: str, args, x, device) -> float:
    cfg = dict(SETTINGS[name])
    if args.models:
        cfg["R"] = args.models
    R = cfg["R"]
    xs = training_sets(x, R, cfg["n"])
    print(f"\nsetting {name}: " + ", ".join(f"{k}={v}" for k, v in cfg.items()))
    w1, c1, alone = timed(lambda: one_by_one(xs, cfg, device), args.repeat, device)
    w2, c2, together = timed(lambda: ensemble(xs, cfg, device, args.chunk_size), args.repeat, device)
    diffs = [max((pa.double() - pb.double()).abs().max().item()
                 for pa, pb in zip(a.state_dict().values(), b.state_dict().values()) if pa.is_floating_point())
             for a, b in zip(alone, together)]
    diff = max(diffs)
    total = R * flops(together[0], cfg["n"], cfg["epochs"])
    own = bmm_rate(R, cfg["batch_size"], cfg["hidden"], cfg["hidden"], device)
    large = bmm_rate(16, 512, 512, 512, device)
    rate = total / w2 / 1e9
    print(f"one by one (vqlib.fit):      {w1:7.3f} s wall, {c1:7.3f} s CPU  ({1000 * w1 / R:.1f} ms/model)")
    print(f"ensemble (fit_ensemble):     {w2:7.3f} s wall, {c2:7.3f} s CPU  ({1000 * w2 / R:.1f} ms/model)")
    print(f"largest weight difference between the two: {diff:.3g}; models within 1e-3 of fit's: "
          f"{sum(d <= 1e-3 for d in diffs)} of {R}")
    if diff > 1e-3:  # grouped and single convolutions round differently (see the module's docstring)
        print("  (a model beyond 1e-3 took another discrete step after a rounding difference: a nearest code, "
              "a k-means++ draw or a dead-code reset)")
    print(f"FLOP count: {total / 1e9:.3f} GFLOP; ensemble rate {rate:.2f} GFLOP/s")
    print(f"torch.bmm rate: {own:.1f} GFLOP/s on ({R}, {cfg['batch_size']}, {cfg['hidden']}) x "
          f"({R}, {cfg['hidden']}, {cfg['hidden']}), {large:.1f} GFLOP/s on (16, 512, 512) x (16, 512, 512)")
    print(f"efficiency: {100 * rate / own:.1f}% of the setting's bmm rate, {100 * rate / large:.1f}% of the large one")
    print(f"speedup (CPU time): {c1 / c2:.2f}")
    print(f"speedup: {w1 / w2:.2f}")
    return w1 / w2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", choices=[*SETTINGS, "both", "all"], default="both",
                    help="both: quick and paper; all: every setting")
    ap.add_argument("--models", type=int, default=None, help="R (default: the setting's)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default=None, help="default: vqlib.default_device()")
    ap.add_argument("--chunk-size", type=int, default=None)
    args = ap.parse_args()
    device = vqlib.resolve_device(args.device) if args.device else vqlib.default_device()
    x = vqlib.load_dataset("digits")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), device {device}; load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}; {time.strftime('%Y-%m-%d %H:%M %Z')}")
    # warm-up: the one-time imports, the kernels, the data on the device
    cfg = dict(SETTINGS["quick"], epochs=2)
    warm = training_sets(x, 2, cfg["n"])
    one_by_one(warm, cfg, device)
    ensemble(warm, cfg, device)
    names = (["quick", "paper"] if args.setting == "both" else list(SETTINGS) if args.setting == "all"
             else [args.setting])
    for name in names:
        run(name, args, x, device)


if __name__ == "__main__":
    main()
