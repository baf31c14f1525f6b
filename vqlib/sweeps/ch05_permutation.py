"""Chapter 5's sweeps: the permutation bound, exactly on tiny supersamples and by Monte Carlo.

``ch05-exact`` enumerates all C(2n, n) training sets of each tiny supersample
(:func:`vqlib.studies.permutation.exact_enumeration`): one job per n, one row per (K, L, supersample
seed). ``ch05-monte-carlo`` estimates the gap of the product-medoid quantizer against n
(:func:`vqlib.studies.permutation.gap_versus_n`): one job per L, one row per (n, supersample
seed, K), averaged over the permutations of ``mask_seeds``.

Both run on the digits' training split (1500 images, so n ≤ 750). The ``quick``
configurations are exactly what the chapter ran before the sweeps were cached; ``full``
is the paper's scale on a GPU machine (more seeds, 30 permutations, n up to 512). A
larger dataset such as MNIST needs its files on disk (``load_dataset("mnist")`` does not
download by default); set ``dataset`` to use it.
"""
from __future__ import annotations

from ..bounds.supersample import make_supersample
from ..studies.permutation import exact_enumeration, gap_versus_n
from ..studies.permutation import MAX_SUBSETS
from . import registry as r
from .registry import Sweep, register

__all__ = ["EXACT", "MONTE_CARLO"]


def _data(job) -> dict:
    """Both sweeps read the training split of ``dataset``."""
    return {"x": (job.get("dataset", "digits"), "train")}


def _check(job, arrays) -> None:
    """Every setting of one job of the chapter-5 sweeps, before anything is computed."""
    x = arrays["x"]
    if "settings" in job:  # ch05-exact: every training set of each tiny supersample
        r.check_settings(job, n=r.few_subsets(MAX_SUBSETS))
    r.check_settings(job, n=r.half_of(x), settings=r.each(r.each(r.count(), length=2)), L=r.count(),
                     Ks=r.each(r.codebook()), NS=r.each(r.half_of(x)), supersample_seeds=r.seeds,
                     mask_seeds=r.seeds, swap_rounds=r.count(0))


def _exact(x, *, n, settings, supersample_seeds, swap_rounds):
    rows = []
    for K, L in settings:
        for s in supersample_seeds:
            row = exact_enumeration(make_supersample(x, n, supersample_seed=s), K, L, swap_rounds=swap_rounds)
            rows.append(dict(row, all_permutations=True, train_seed=None))
    return rows


def _monte_carlo(x, *, L, Ks, NS, supersample_seeds, mask_seeds, swap_rounds):
    rows = gap_versus_n(x, NS, Ks, L, supersample_seeds=supersample_seeds, mask_seeds=mask_seeds,
                        swap_rounds=swap_rounds)
    return [dict(r, mask_seeds=list(mask_seeds), train_seed=None) for r in rows]


EXACT = register(Sweep(
    name="ch05-exact",
    chapter="05_permutation",
    doc="exact gap and I(W;T) by enumerating every training set of tiny supersamples (n ≤ 5); seeds",
    quick=dict(dataset="digits", n=[2, 3, 4], settings=[[1, 1], [1, 2], [2, 1], [2, 2]],
               supersample_seeds=list(range(10)), swap_rounds=3),
    full=dict(dataset="digits", n=[2, 3, 4, 5], settings=[[1, 1], [1, 2], [2, 1], [2, 2]],
              supersample_seeds=list(range(20)), swap_rounds=3),
    compute=_exact,
    columns=("n", "K", "L", "exact_gap", "exact_information"),
    grid=("n",),
    data=_data,
    check=_check,
))

MONTE_CARLO = register(Sweep(
    name="ch05-monte-carlo",
    chapter="05_permutation",
    doc="Monte Carlo gap of the product-medoid quantizer vs n, K, L, with the counting bound; seeds",
    quick=dict(dataset="digits", L=[1, 4], Ks=[1, 2, 4, 8], NS=[8, 16, 32, 64, 128, 256],
               supersample_seeds=[0, 1, 2, 3], mask_seeds=list(range(8)), swap_rounds=3),
    full=dict(dataset="digits", L=[1, 4], Ks=[1, 2, 4, 8], NS=[8, 16, 32, 64, 128, 256, 512],
              supersample_seeds=list(range(6)), mask_seeds=list(range(30)), swap_rounds=3),
    compute=_monte_carlo,
    columns=("n", "K", "L", "gap"),
    grid=("L",),
    data=_data,
    check=_check,
))
