"""Cost of each bound computation and of vqlib.w2 as the sample grows, with the fitted
scaling exponent (time ∝ size^b, least squares on log time against log size).

What is timed (one call each, best of several repeats, wall clock of this process):

* ``plugin_mi(a, U)``: plug-in mutual information of m labels with m mask bits;
* ``pair_terms(loss0, loss1, U)``: one pair's e-CMI and loss-difference terms from m runs
  (binning, two informations, two Donsker–Varadhan cosh bounds);
* ``latent_kl_terms(posteriors)``: one pair's KL terms from m runs, L = 4, K = 8;
* ``dv_cosh_bound(I, values)``: the cosh bound alone on m values;
* ``kl_inverse_upper(q, c)``: m kl inverses at once (vectorised bisection);
* ``test_set_bound(losses)``: the held-out bound on m test losses;
* ``certify``: chapter 2's certified bounds (the core of :func:`vqlib.bounds.certify`,
  without the "how many masks" advice) from m runs: 4 supersamples of m/4 masks, n = 16;
* ``vqlib.w2(x, y)``: exact 2-Wasserstein distance between two samples of m digits each
  (64 dimensions), POT's network simplex.

The bound inputs are random (the cost does not depend on the values beyond their
number); W2 runs on real digits. Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_bounds.py [--quick]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np
import torch

import vqlib
from vqlib.bounds import dv_cosh_bound, latent_kl_terms, pair_terms
from vqlib.bounds.certificates import _certify
from vqlib.bounds import kl_inverse_upper, plugin_mi, test_set_bound


def best_time(fn, min_total: float = 0.2, max_repeat: int = 50) -> float:
    """The shortest of several calls of ``fn`` (at least 3, until ``min_total`` s are spent)."""
    times, start = [], time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_total and len(times) < max_repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def exponent(sizes, times) -> float:
    """b in time ≈ a·size^b, least squares on the log–log points."""
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def w2_function():
    try:
        from vqlib.bounds import w2

        return w2, "vqlib.w2"
    except ImportError:  # before vqlib.w2 existed: POT's exact solver directly
        import ot

        def w2(x, y):
            a = x.reshape(len(x), -1).astype(np.float64)
            b = y.reshape(len(y), -1).astype(np.float64)
            return math.sqrt(ot.emd2([], [], ot.dist(a, b), numItermax=10_000_000))

        return w2, "ot.emd2 (local call)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    sizes = [32, 128, 512, 2048] if args.quick else [32, 128, 512, 2048, 8192, 32768]
    L, K = 4, 8

    def bound_cases(m):
        loss0, loss1 = rng.uniform(0, 0.2, m), rng.uniform(0, 0.2, m)
        U = rng.integers(0, 2, m)
        labels = rng.integers(0, 4, m)
        post = rng.dirichlet(np.ones(K), size=(m, 2, L))
        q, c = rng.uniform(0, 0.5, m), rng.uniform(0, 0.1, m)
        runs, runs_U = rng.uniform(0, 0.2, (4, m // 4, 16, 2)), rng.integers(0, 2, (4, m // 4, 16))
        options = dict(confidence=0.95, n_bins=2, fit_fraction=0.1, posteriors=None, reference=None,
                       decoder_information=math.log(2), eps=0.01, information=None, families=("ld", "e", "held_out"),
                       select=False)
        return {
            "plugin_mi": lambda: plugin_mi(labels, U),
            "pair_terms": lambda: pair_terms(loss0, loss1, U),
            "latent_kl_terms": lambda: latent_kl_terms(post),
            "dv_cosh_bound": lambda: dv_cosh_bound(0.05, loss1 - loss0),
            "kl_inverse_upper": lambda: kl_inverse_upper(q, c),
            "test_set_bound": lambda: test_set_bound(loss1),
            "certify": lambda: _certify(runs, runs_U, **options),
        }

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, torch {torch.__version__}, numpy {np.__version__}")
    table: dict[str, list[float]] = {}
    for m in sizes:
        for name, fn in bound_cases(m).items():
            table.setdefault(name, []).append(best_time(fn))
    width = max(map(len, table))
    print("\nbound terms, seconds per call, by sample size m (runs or losses)")
    print(f"{'':{width}}  " + "".join(f"{m:>10}" for m in sizes) + "   exponent  (largest 3 sizes)")
    for name, times in table.items():
        print(f"{name:{width}}  " + "".join(f"{t:10.2e}" for t in times)
              + f"   {exponent(sizes, times):6.2f}    {exponent(sizes[-3:], times[-3:]):6.2f}")

    w2, label = w2_function()
    digits = vqlib.load_dataset("digits", split="all").reshape(-1, 64).numpy().astype(np.float64)
    order = rng.permutation(len(digits))
    w_sizes = [50, 100, 200, 400] if args.quick else [50, 100, 200, 400, 800]
    w_times, values = [], []
    for m in w_sizes:
        x, y = digits[order[:m]], digits[order[m:2 * m]]
        w_times.append(best_time(lambda: values.append(w2(x, y)), min_total=0.5, max_repeat=5))
    print(f"\n{label}: two samples of m digits (64 dims), seconds per call")
    print("".join(f"{m:>10}" for m in w_sizes) + "   exponent  (largest 3 sizes)")
    print("".join(f"{t:10.2e}" for t in w_times) + f"   {exponent(w_sizes, w_times):6.2f}    "
          f"{exponent(w_sizes[-3:], w_times[-3:]):6.2f}")
    print(f"(last W2 value {values[-1]:.4f}; at m = {w_sizes[-1]} on this machine the largest cost)")
    slowest = max(table, key=lambda k: table[k][-1])
    print(f"\nslowest bound term at m = {sizes[-1]}: {slowest}, {table[slowest][-1]:.2e} s")


if __name__ == "__main__":
    main()
