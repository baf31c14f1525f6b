"""How well the quantizers and architectures of chapters 1, 6 and 8 reconstruct (issue 13's targets).

Every figure is a test loss on the digits divided by the mean-image predictor's (the training
images' mean, scored on the test images), after training on the digits' training split with
``vqlib.fit`` (batch 64, learning rate 2e-3), for a few training seeds (mean ± std):

* ``softmax``: K = 64, L = 4, 40 epochs. The softmax quantizer trained from scratch at β, against
  the nearest-code model trained alike and then given the softmax quantizer at β
  (``vqlib.studies.temperature.with_temperature``), and the nearest-code model itself; β = "learned"
  too, with its final β and used fraction. Test losses of a softmax model draw its codes
  (evaluation seed 0), as the chapters do.
* ``conv``: the convolutional VQ-VAE at L = 16 (4 × 4 grid) against the MLP at L = 16, K = 64:
  the first epoch at which each reaches half the mean image's test loss, within 40 epochs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_quantizers.py [--part softmax|conv|all] [--seeds 3]
"""
from __future__ import annotations

import argparse

import numpy as np

import vqlib
from vqlib.studies.temperature import with_temperature


def data():
    x_train = vqlib.load_dataset("digits", split="train")
    x_test = vqlib.load_dataset("digits", split="test")
    mean_image = float(((x_test - x_train.mean(0)) ** 2).mean())
    return x_train, x_test, mean_image


def relative(model, x_test, mean_image) -> float:
    return vqlib.model_summary(model, x_test, seed=0)["loss"] / mean_image


def softmax_part(seeds, epochs=40, K=64, L=4, betas=(3.0, 30.0, 200.0)) -> None:
    x_train, x_test, mean_image = data()
    nearest, scratch, tempered = [], {b: [] for b in betas}, {b: [] for b in betas}
    learned, learned_beta, learned_used = [], [], []
    for s in seeds:
        ref = vqlib.VQVAE(x_train.shape[1:], K, L, seed=s)
        vqlib.fit(ref, x_train, epochs=epochs, train_seed=s)
        nearest.append(relative(ref, x_test, mean_image))
        for b in betas:
            tempered[b].append(relative(with_temperature(ref, b), x_test, mean_image))
            m = vqlib.VQVAE(x_train.shape[1:], K, L, quantizer="softmax", beta=b, seed=s)
            vqlib.fit(m, x_train, epochs=epochs, train_seed=s)
            scratch[b].append(relative(m, x_test, mean_image))
        m = vqlib.VQVAE(x_train.shape[1:], K, L, quantizer="softmax", beta="learned", seed=s)
        vqlib.fit(m, x_train, epochs=epochs, train_seed=s)
        learned.append(relative(m, x_test, mean_image))
        learned_beta.append(m.beta)
        learned_used.append(vqlib.model_summary(m, x_test, seed=0)["used_fraction"])

    def ms(v):
        return f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}"

    print(f"softmax: K = {K}, L = {L}, {epochs} epochs, train_seeds {list(seeds)}; test loss ÷ mean image's")
    print(f"  nearest-code model: {ms(nearest)}")
    for b in betas:
        ratio = np.mean(scratch[b]) / np.mean(tempered[b])
        print(f"  β = {b:g}: from scratch {ms(scratch[b])}, tempered {ms(tempered[b])}, "
              f"scratch / tempered {ratio:.3f} ({(ratio - 1) * 100:+.1f}%)")
    ratio = np.mean(learned) / np.mean(nearest)
    print(f"  β learned: {ms(learned)}, final β {ms(learned_beta)}, used fraction min {min(learned_used):.2f}, "
          f"learned / nearest {ratio:.3f} ({(ratio - 1) * 100:+.1f}%)")


def first_epoch_below(history, mean_image, level=0.5):
    for row in history.rows():
        if row.get("val_loss") is not None and row["val_loss"] / mean_image <= level:
            return row["epoch"]
    return None


def conv_part(seeds, epochs=40, K=64, L=16) -> None:
    x_train, x_test, mean_image = data()
    print(f"conv vs MLP: K = {K}, L = {L}, up to {epochs} epochs; first epoch with test loss ≤ 0.5 × mean image's")
    for arch in ("conv", "mlp"):
        firsts, finals = [], []
        for s in seeds:
            m = vqlib.VQVAE(x_train.shape[1:], K, L, architecture=arch, seed=s)
            h = vqlib.fit(m, x_train, epochs=epochs, train_seed=s, x_val=x_test)
            firsts.append(first_epoch_below(h, mean_image))
            finals.append(relative(m, x_test, mean_image))
        print(f"  {arch}: first epoch {firsts}, final test loss ÷ mean image's {np.mean(finals):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["softmax", "conv", "all"], default="all")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    seeds = range(args.seeds)
    if args.part in ("softmax", "all"):
        softmax_part(seeds)
    if args.part in ("conv", "all"):
        conv_part(seeds)


if __name__ == "__main__":
    main()
