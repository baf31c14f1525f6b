"""Whole-book execution time per chapter, with a cold and then a warm sweep cache.

Executes every ``chapters/*.ipynb`` (or those named) with nbclient in a fresh kernel,
first with an empty result cache (``VQLIB_CACHE`` pointing at a new folder: every sweep
is computed), then again with that cache filled (every sweep is read back). Prints the
wall-clock seconds and the kernel's CPU seconds of each chapter and the totals, and how
many cache entries each chapter wrote (in the warm pass that should be 0: an entry
written there means a sweep missed the cache, e.g. because vqlib's source changed
between the passes, which changes every key). The notebooks on disk are not modified. Run it on a quiet machine: other work inflates
every figure (the CPU seconds less than the wall clock).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_book.py [01_vqvae 02_supersample ...]
        [--cache DIR] [--warm-only] [--timeout 1800]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_chapter(path: Path, timeout: int) -> tuple[float, float]:
    """(wall seconds, kernel CPU seconds) to execute the notebook at ``path``."""
    import nbformat
    import psutil
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    with client.setup_kernel():
        kernel = psutil.Process(client.km.provisioner.process.pid)
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        times = kernel.cpu_times()
        cpu = times.user + times.system
    return time.perf_counter() - start, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapters", nargs="*", help="chapter names such as 02_supersample (default: all)")
    ap.add_argument("--cache", default=None, help="cache folder (default: a new temporary one, cold)")
    ap.add_argument("--warm-only", action="store_true", help="skip the cold pass (use with --cache)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = ap.parse_args()
    paths = sorted((ROOT / "chapters").glob("*.ipynb"))
    if args.chapters:
        wanted = {c.removesuffix(".ipynb") for c in args.chapters}
        paths = [p for p in paths if p.stem in wanted]
        missing = wanted - {p.stem for p in paths}
        if missing:
            raise SystemExit(f"no such chapter(s): {sorted(missing)}")
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="vqlib-bench-cache-"))
    os.environ["VQLIB_CACHE"] = str(cache)  # the kernels inherit it
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
          f"torch {torch.__version__}, profile {os.environ.get('VQLIB_PROFILE', 'auto')}; cache {cache}")
    passes = ["warm"] if args.warm_only else ["cold", "warm"]
    results = {}
    entries = lambda: len(list(cache.rglob("*.json")))  # noqa: E731
    for which in passes:
        for path in paths:
            before = entries()
            wall, cpu = run_chapter(path, args.timeout)
            results[(which, path.stem)] = (wall, cpu)
            print(f"  {which:4}  {path.stem:24} {wall:8.1f} s wall {cpu:8.1f} s CPU  "
                  f"{entries() - before:4d} cache entries written", flush=True)
    print(f"\n{'chapter':24}" + "".join(f"{p + ' wall':>12}{p + ' CPU':>11}" for p in passes))
    for path in paths:
        print(f"{path.stem:24}" + "".join(f"{results[(p, path.stem)][0]:12.1f}{results[(p, path.stem)][1]:11.1f}"
                                          for p in passes))
    print(f"{'total':24}" + "".join(
        f"{sum(results[(p, q.stem)][0] for q in paths):12.1f}{sum(results[(p, q.stem)][1] for q in paths):11.1f}"
        for p in passes))


if __name__ == "__main__":
    main()
