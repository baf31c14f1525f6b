"""Ensemble training against one-by-one training, 32 models of the book's quick setting.

The setting is chapter 2's VQ-VAE run (``chapters/02_supersample.ipynb``): digits,
n = 16 training points per model, K = 8, L = 4, hidden = 32, 30 epochs, batch 64,
learning rate 2e-3. The 32 training sets are the training halves of 4 supersamples
× 8 masks, as ``vqlib.run_supersample`` draws them. "One by one" is ``vqlib.fit`` per
model (what the runner did before); "ensemble" is ``vqlib.ensemble.fit_ensemble`` on
all 32. Both are timed after a warm-up (the first ``torch.optim.Adam`` imports torch's
compiler stack), best of ``--repeat`` runs, wall clock and CPU time of this process.
The last line is ``speedup: X.XX`` (wall clock, best against best).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ensemble.py [--device cpu] [--models 32]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

import vqlib
from vqlib.ensemble import fit_ensemble
from vqlib.supersample import draw_mask, make_supersample, split

SETTING = dict(n=16, K=8, L=4, hidden=32, epochs=30, batch_size=64, lr=2e-3, seed=0)


def training_sets(x, R: int, n: int, masks_per_supersample: int = 8):
    out = []
    for r in range(R):
        s, m = divmod(r, masks_per_supersample)
        ss = make_supersample(x, n, supersample_seed=s)
        out.append(split(ss, draw_mask(n, mask_seed=1000 * s + m))[0])
    return out


def build(R: int, cfg: dict):
    return [vqlib.VQVAE((1, 8, 8), cfg["K"], cfg["L"], hidden=cfg["hidden"], seed=cfg["seed"]) for _ in range(R)]


def one_by_one(xs, cfg, device):
    models = build(len(xs), cfg)
    for m, x in zip(models, xs):
        vqlib.fit(m, x, epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"], seed=cfg["seed"],
                  device=device)
    return models


def ensemble(xs, cfg, device, chunk_size=None):
    models = build(len(xs), cfg)
    fit_ensemble(models, xs, epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"], seeds=cfg["seed"],
                 device=device, chunk_size=chunk_size)
    return models


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default=None, help="default: vqlib.default_device()")
    ap.add_argument("--chunk-size", type=int, default=None)
    args = ap.parse_args()
    device = vqlib.resolve_device(args.device) if args.device else vqlib.default_device()
    cfg = SETTING
    x = vqlib.load_dataset("digits")
    xs = training_sets(x, args.models, cfg["n"])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), device {device}")
    print(f"setting: {args.models} models, " + ", ".join(f"{k}={v}" for k, v in cfg.items()))
    # warm-up: Adam's first construction, the kernels, the data on the device
    one_by_one(xs[:2], dict(cfg, epochs=2), device)
    ensemble(xs[:2], dict(cfg, epochs=2), device)
    w1, c1, alone = timed(lambda: one_by_one(xs, cfg, device), args.repeat, device)
    w2, c2, together = timed(lambda: ensemble(xs, cfg, device, args.chunk_size), args.repeat, device)
    diff = max((pa.double() - pb.double()).abs().max().item()
               for a, b in zip(alone, together)
               for pa, pb in zip(a.state_dict().values(), b.state_dict().values()) if pa.is_floating_point())
    print(f"one by one (vqlib.fit):      {w1:7.3f} s wall, {c1:7.3f} s CPU  ({1000 * w1 / args.models:.1f} ms/model)")
    print(f"ensemble (fit_ensemble):     {w2:7.3f} s wall, {c2:7.3f} s CPU  ({1000 * w2 / args.models:.1f} ms/model)")
    print(f"largest weight difference between the two: {diff:.3g}")
    print(f"speedup (CPU time): {c1 / c2:.2f}")
    print(f"speedup: {w1 / w2:.2f}")


if __name__ == "__main__":
    main()
