"""Chapter 3's sweeps: the decoder's counterexamples and the rescue, trained by parts.

Every supersample comes from the ``pool`` split of ``data`` (the 297 test digits); the
parts that must never see a supersample (the reference model's encoder, codebook and
decoder) are built from the ``separate`` split (the 1500 training digits).

* ``ch03-memoriser``: counterexample (a), a fixed random encoder and codebook (K = 256,
  L = 8) with a memorising decoder (:func:`vqlib.studies.decoder_gap.memoriser_gap`).
* ``ch03-parts``: one job per codebook size K. It builds a reference model from the
  separate digits (its decoder trained for ``rescue_decoder_steps`` steps when K is
  ``rescue_K``, untrained otherwise) and trains the regimes "decoder" and "all" (and
  "encoder" at ``rescue_K``: the rescue) on every (supersample, mask) in one batch
  (:func:`vqlib.studies.decoder_gap.gaps_by_parts`).

Rows are the tidy tables of :class:`vqlib.studies.decoder_gap.GapResult`, tagged ``row="run"``
(one per supersample × mask, with the seeds and the losses) or ``row="pair"`` (one per
pair of each run, with the mask bit, both losses and both code tuples); ``part`` says
which regime (the name given to ``gaps_by_parts``). :func:`results_of` turns them back
into ``GapResult`` objects.

``quick`` is exactly what the chapter ran before its sweeps were cached (2 supersamples
× 12 masks, 150 full-batch steps); ``full`` is the paper's scale for a GPU (8 × 32,
300 steps, K up to 128). MNIST-size data needs its files on disk (no download offline);
set ``data=mnist`` where they are present.
"""
from __future__ import annotations

from ..models.fit import reconstruction_loss
from ..studies import decoder_gap as dg
from . import registry as r
from .registry import Sweep, register

__all__ = ["MEMORISER", "PARTS_SWEEP", "results_of"]


def _tagged(part: str, result, **extra) -> list[dict]:
    runs = [dict(r, row="run", part=part, **extra) for r in result.runs]
    pairs = [dict(p, row="pair", part=part, lv_0=list(p["lv_0"]), lv_1=list(p["lv_1"])) for p in result.pairs]
    return runs + pairs


def results_of(rows) -> dict:
    """``{(K, part): GapResult}`` from a chapter-3 sweep's rows (code tuples restored)."""
    out: dict = {}
    for r in rows:
        key = (r["K"], r["part"])
        res = out.setdefault(key, dg.GapResult([], []))
        fields = {k: v for k, v in r.items() if k not in ("row", "part", "reference_loss")}
        if r["row"] == "run":
            res.runs.append(fields)
        else:
            res.pairs.append(dict(fields, lv_0=tuple(r["lv_0"]), lv_1=tuple(r["lv_1"])))
    return out


def _data(job) -> dict:
    """Both sweeps read the ``separate`` split (the reference) and the ``pool`` split (the supersamples) of ``data``."""
    return {"x_separate": (job["data"], job["separate"]), "x_pool": (job["data"], job["pool"])}


def _check(job, arrays) -> None:
    """Every setting of one job of the chapter-3 sweeps, before anything is trained."""
    r.check_settings(job, n=r.half_of(arrays["x_pool"], "the pool split"), K=r.codebook(), L=r.count(),
                     hidden=r.count(), supersample_seeds=r.seeds, mask_seeds=r.seeds, lr=r.positive,
                     steps=r.count(), rescue_K=r.codebook(), rescue_decoder_steps=r.count(0))


def _memoriser(*, x_separate, x_pool, data, separate, pool, n, K, L, hidden, supersample_seeds, mask_seeds):
    fixed = dg.reference_model(x_separate, K=K, L=L, decoder_steps=0, hidden=hidden)  # no training at all
    memo = dg.memoriser_gap(fixed, x_pool, n, supersample_seeds=supersample_seeds, mask_seeds=mask_seeds)
    return _tagged("memoriser", memo)


def _parts(*, x_separate, x_pool, K, data, separate, pool, n, L, hidden, lr, steps, supersample_seeds, mask_seeds,
           rescue_K, rescue_decoder_steps):
    rescue = K == rescue_K
    reference = dg.reference_model(x_separate, K=K, L=L, decoder_steps=rescue_decoder_steps if rescue else 0,
                                   hidden=hidden)
    regimes = ["decoder", "encoder", "all"] if rescue else ["decoder", "all"]
    results = dg.gaps_by_parts(x_pool, n, regimes, reference=reference, supersample_seeds=supersample_seeds,
                               mask_seeds=mask_seeds, steps=steps, lr=lr)
    reference_loss = float(reconstruction_loss(reference, x_pool).mean())
    return [row for part in regimes for row in _tagged(part, results[part], reference_loss=reference_loss)]


_COMMON = dict(data="digits", separate="train", pool="test", n=20)

MEMORISER = register(Sweep(
    name="ch03-memoriser",
    chapter="03_decoder",
    doc="counterexample (a): fixed random encoder and codebook, memorising decoder; run and pair rows, seeds",
    quick=dict(_COMMON, K=256, L=8, hidden=32, supersample_seeds=list(range(6)), mask_seeds=list(range(12))),
    full=dict(_COMMON, K=256, L=8, hidden=32, supersample_seeds=list(range(40)), mask_seeds=list(range(32))),
    compute=_memoriser,
    columns=("K", "L", "row", "part"),
    data=_data,
    check=_check,
))

PARTS_SWEEP = register(Sweep(
    name="ch03-parts",
    chapter="03_decoder",
    doc="gap and pair statistics with only the decoder, only the encoder, or everything trained, per K; seeds",
    quick=dict(_COMMON, K=[1, 4, 16, 64], L=4, hidden=32, lr=3e-3, steps=150, supersample_seeds=[0, 1],
               mask_seeds=list(range(12)), rescue_K=16, rescue_decoder_steps=300),
    full=dict(_COMMON, K=[1, 2, 4, 8, 16, 32, 64, 128], L=4, hidden=32, lr=3e-3, steps=300,
              supersample_seeds=list(range(8)), mask_seeds=list(range(32)), rescue_K=16, rescue_decoder_steps=1000),
    compute=_parts,
    columns=("K", "L", "row", "part"),
    grid=("K",),
    data=_data,
    check=_check,
))
