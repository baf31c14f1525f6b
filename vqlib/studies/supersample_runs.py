"""The supersample experiment: train one model per (supersample, mask), measure the gap and
compute every bound on the same runs (chapters 2–4).

:func:`run_supersample` draws the supersamples and masks of :mod:`vqlib.bounds.supersample`,
trains the models with :func:`vqlib.models.fit_ensemble` (or chapter 2's k-means toy,
:func:`vqlib.models.kmeans_learners`), and reports plug-in estimates of the bounds of
:mod:`vqlib.bounds.cmi` and their certified values (:func:`vqlib.bounds.certify`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .._checks import check_seed, positive_int, renamed, unit_float
from ..bounds.certificates import CertificateWarning, certify
from ..bounds.cmi import latent_kl_terms, pair_terms
from ..bounds.information import kl_inverse_upper
from ..bounds.supersample import draw_mask, make_supersample, split
from ..data import check_images
from ..models.engine import evaluate_models
from ..models.ensemble import fit_ensemble
from ..models.kmeans import kmeans_learners
from ..models.vqvae import VQVAE
from ..tables import rows_to_csv

__all__ = ["SupersampleResult", "BOUND_NAMES", "run_supersample"]


@dataclass
class SupersampleResult:
    """What :func:`run_supersample` measured: the gap, the bounds and the tidy rows.

    Two kinds of numbers for each bound (chapter 2, "Certified numbers"):

    * ``bounds``: plug-in **estimates** of proved bounds, from all runs (binned statistics
      fitted and evaluated on the same runs, plug-in information, leave-one-out priors).
      They may fall below the bound they estimate, and below the gap; ``per_supersample``
      holds them per X̃.
    * ``certified``: upper bounds on the average over the run's supersamples of
      E[gap | X̃_s] that hold, all at once, with probability ≥ ``confidence`` over the
      masks and training (:func:`vqlib.bounds.certify`); ``certified_kinds`` says which
      are "certified" and which "exact" (data-free); ``certificate`` keeps the terms, the
      δ allocation and the notes. Empty when ``confidence=None``.
    """

    gap: float  # mean measured test-minus-train loss over all runs
    gap_sem: float  # its standard error (over supersamples, or over runs for one supersample)
    bounds: dict[str, float]  # plug-in estimates of every proved bound on the expected gap, by name
    diagnostics: dict[str, float]  # estimated informations, KL terms, nulls: not bounds
    rows: list[dict]  # one row per (supersample, mask, pair), seeds in every row
    per_supersample: list[dict]  # the gap and every bound estimate conditional on each X̃
    config: dict
    certified: dict[str, float] = field(default_factory=dict)  # name -> certified upper bound
    certified_kinds: dict[str, str] = field(default_factory=dict)  # name -> "certified" | "exact"
    confidence: float | None = None  # 1 − δ of every certified value, jointly
    certificate: object | None = None  # the vqlib.bounds.Certificate behind .certified

    def to_csv(self, path=None) -> str:
        """The rows as CSV text (written to ``path`` when given)."""

        return rows_to_csv(self.rows, path)

    def pairs(self, supersample_seed: int) -> dict[str, np.ndarray]:
        """One supersample's runs as arrays: ``loss`` (masks, n, 2) and ``U`` (masks, n).

        What the per-pair information estimates are computed from (chapter 2).
        """
        rows = [r for r in self.rows if r["supersample_seed"] == supersample_seed]
        if not rows:
            raise ValueError(f"supersample_seed={supersample_seed!r} is not in this result")
        n = self.config["n"]
        m = len(rows) // n
        loss = np.array([[r["loss0"], r["loss1"]] for r in rows]).reshape(m, n, 2)
        U = np.array([r["U"] for r in rows]).reshape(m, n)
        return {"loss": loss, "U": U}

    def to_json(self) -> dict:
        return {"gap": self.gap, "gap_sem": self.gap_sem, "bounds": self.bounds,
                "diagnostics": self.diagnostics, "per_supersample": self.per_supersample,
                "config": self.config, "rows": self.rows, "certified": self.certified,
                "certified_kinds": self.certified_kinds, "confidence": self.confidence,
                "certificate": None if self.certificate is None else self.certificate.to_json()}


#: Every bound :func:`run_supersample` estimates (``.bounds``) and certifies (``.certified``).
BOUND_NAMES = {
    "e_cmi": "e-CMI: pair of losses, range 1",
    "e_cmi_cosh": "e-CMI: pair of losses, cosh form",
    "ld_cmi": "loss-difference CMI, range 1",
    "ld_cmi_cosh": "loss-difference CMI, cosh form",
    "lv_uniform": "latent variables, uniform prior",
    "lv_marginal": "latent variables, mask-marginal prior",
    "lv_reference": "latent variables, prior: posterior of a model trained off the supersample",
    "lv_aggregated": "latent variables, prior: that model's posterior aggregated over X̃",
    "held_out": "held-out ghosts",
}


def run_supersample(
    x,
    n: int,
    K: int,
    L: int,
    n_masks: int = 10,
    n_supersamples: int | None = None,
    epochs: int = 100,
    seed: int | None = None,
    *,
    supersample_seeds=None,
    train_seed: int = 0,
    learner: str = "vqvae",
    train: str = "all",
    n_bins: int = 2,
    delta: float = 0.05,
    confidence: float | None = 0.95,
    batch_size: int = 64,
    lr: float = 2e-3,
    device=None,
    progress: bool = False,
    **model_kwargs,
) -> SupersampleResult:
    """Train one VQ-VAE per (supersample, mask), evaluate all 2n points, bound the gap.

    Chapters 2–4. Supersample s is drawn (n pairs from ``x``) with ``supersample_seeds[s]``
    (default ``0, 1, …, n_supersamples − 1``; ``n_supersamples`` defaults to 5, or to the
    number of seeds given); mask m of supersample seed a uses ``mask_seed = 1000·a + m``;
    every run trains with ``train_seed``, so runs differ only by their mask. (The deprecated
    ``seed=k`` means ``supersample_seeds = k, k + 1, …`` and ``train_seed = k``.) All
    n_supersamples × n_masks models train at once (:func:`vqlib.models.fit_ensemble`,
    through the training engine, chunked to fit memory), each exactly as :func:`vqlib.fit`
    would train it alone, and are evaluated at once.

    ``train="all"`` trains the whole model on each training half. ``train="encoder"``
    first trains a VQ-VAE on the data outside the supersample, then, for every mask,
    retrains only the encoder on the training half with that codebook and decoder
    frozen: the setting in which the latent variables carry all the mask information
    that reaches the loss (chapter 3), so the latent-variable bounds hold without a
    decoder term. With ``train="all"`` those bounds pay the decoder's and codebook's
    information with its largest possible value, log 2 per pair.

    ``learner="kmeans"`` replaces the VQ-VAE by chapter 2's toy learner, a decoder-free
    quantizer (:func:`kmeans_learner`) with K codes and L = 1: thousands of runs a minute.

    ``.bounds`` are plug-in estimates; ``.certified`` (unless ``confidence=None``) holds
    :func:`vqlib.bounds.certify`'s values at ``confidence``: every one is an upper bound
    on the average over the supersamples of E[gap | X̃_s] with probability ≥ confidence,
    all at once. The first tenth of each supersample's masks fit the bins and priors, the rest
    estimate (the held-out value bets on every run); hundreds of masks per supersample make them
    tight (the
    ensemble trainer makes masks cheap). A value that is vacuous only for lack of masks
    gives one :class:`vqlib.bounds.CertificateWarning` saying how many would do.
    """

    x = check_images(x, name="x")
    n = positive_int(n, "n")
    if 2 * n > len(x):
        raise ValueError(f"n={n} is larger than half the data ({len(x)} inputs allow n ≤ {len(x) // 2})")
    n_masks = positive_int(n_masks, "n_masks", minimum=2)
    if seed is not None:  # the deprecated name: supersamples seed, seed + 1, … and train_seed = seed
        seed = check_seed(seed)
        count = 5 if n_supersamples is None else positive_int(n_supersamples, "n_supersamples")
        supersample_seeds = renamed(supersample_seeds, [seed + s for s in range(count)], "supersample_seeds and "
                                    "train_seed", "seed", "run_supersample")
        train_seed = seed
    if supersample_seeds is None:
        supersample_seeds = list(range(5 if n_supersamples is None else positive_int(n_supersamples,
                                                                                     "n_supersamples")))
    if isinstance(supersample_seeds, (int, np.integer)) and not isinstance(supersample_seeds, bool):
        supersample_seeds = [supersample_seeds]
    try:
        supersample_seeds = [check_seed(s, "supersample_seeds entry") for s in supersample_seeds]
    except TypeError:
        raise ValueError(f"supersample_seeds must be a list of seeds, got {supersample_seeds!r}") from None
    if not supersample_seeds or len(set(supersample_seeds)) != len(supersample_seeds):
        raise ValueError(f"supersample_seeds must be distinct and non-empty, got {supersample_seeds!r}")
    if n_supersamples is not None and positive_int(n_supersamples, "n_supersamples") != len(supersample_seeds):
        raise ValueError(f"n_supersamples={n_supersamples!r} but supersample_seeds has {len(supersample_seeds)} "
                         "seeds; give one of them")
    n_supersamples = len(supersample_seeds)
    train_seed = check_seed(train_seed, "train_seed")
    if train not in ("all", "encoder"):
        raise ValueError(f"train={train!r} is not one of ('all', 'encoder')")
    if learner == "vqvae" and train == "all" and n < 2:  # each model starts its codebook from its n inputs
        raise ValueError(f"n={n}: a VQ-VAE trained on the n points of a training half needs n ≥ 2")
    if learner == "vqvae" and train == "encoder" and len(x) - 2 * n < 2:
        raise ValueError(f"n={n}: train='encoder' first trains on the data outside the supersample, and "
                         f"{len(x)} inputs leave {len(x) - 2 * n} outside it; it needs n ≤ {(len(x) - 2) // 2}")
    if learner not in ("vqvae", "kmeans"):
        raise ValueError(f"learner={learner!r} is not one of ('vqvae', 'kmeans')")
    if learner == "kmeans" and (L != 1 or train != "all"):
        raise ValueError(f"learner='kmeans' quantizes whole inputs: it needs L=1 and train='all', got L={L!r}, train={train!r}")
    delta = unit_float(delta, "delta", open_left=True, open_right=True)
    if confidence is not None:
        unit_float(confidence, "confidence", open_left=True, open_right=True)
    config = dict(n=n, K=K, L=L, n_masks=n_masks, n_supersamples=n_supersamples, epochs=epochs,
                  supersample_seeds=supersample_seeds, train_seed=train_seed, learner=learner, train=train,
                  n_bins=n_bins, delta=delta, confidence=confidence,
                  batch_size=batch_size, lr=lr,
                  **model_kwargs)
    K, L = positive_int(K, "K"), positive_int(L, "L")
    build = lambda: VQVAE(x.shape[1:], K, L, seed=train_seed, **model_kwargs)  # noqa: E731
    S, M = n_supersamples, n_masks
    sss = [make_supersample(x, n, supersample_seed=a) for a in supersample_seeds]
    mask_seeds = [[1000 * a + m for m in range(M)] for a in supersample_seeds]
    masks = np.array([[draw_mask(n, mask_seed=ms) for ms in row] for row in mask_seeds])
    halves = [split(sss[s], masks[s, m])[0] for s in range(S) for m in range(M)]
    losses = np.zeros((S, M, n, 2))
    posts = np.zeros((S, M, n, 2, L, K), dtype=np.float32)
    references: list = [None] * S
    if learner == "kmeans":  # every (supersample, mask) at once, each as kmeans_learner would train it
        point_losses, post = kmeans_learners(torch.stack(halves), torch.stack([sss[s].flat() for s in range(S)
                                                                               for _ in range(M)]), K, seed=train_seed)
        losses[:] = point_losses.numpy().reshape(S, M, n, 2)
        posts[:] = post.reshape(S, M, n, 2, L, K)
    else:
        frozen = []
        if train == "encoder":  # one model per supersample on the data outside it, all at once
            outside = [x[torch.as_tensor(np.setdiff1d(np.arange(len(x)), ss.source_index.reshape(-1)))]
                       for ss in sss]
            frozen = [build() for _ in range(S)]
            fit_ensemble(frozen, outside, epochs=epochs, batch_size=batch_size, lr=lr, train_seeds=train_seed,
                         device=device, evaluate=False)
            for s in range(S):
                with torch.no_grad():  # priors from a model that never saw the supersample
                    references[s] = frozen[s].posterior(sss[s].flat().to(frozen[s].device)).cpu().numpy().reshape(
                        n, 2, L, K)
        models = []
        for s in range(S):
            for _ in range(M):
                model = build()
                if frozen:
                    model.load_state_dict(frozen[s].state_dict())
                    model.freeze_codebook_and_decoder()
                models.append(model)
        # every (supersample, mask) model at once, each as vqlib.fit would train it
        fit_ensemble(models, halves, epochs=epochs, batch_size=batch_size, lr=lr, train_seeds=train_seed,
                     device=device, evaluate=False, progress=progress)
        points = torch.stack([sss[s].flat() for s in range(S) for _ in range(M)])
        point_losses, _, post = evaluate_models(models, points, train_seeds=[train_seed] * len(models),
                                                posteriors=True)
        losses[:] = point_losses.double().numpy().reshape(S, M, n, 2)
        posts[:] = post.numpy().reshape(S, M, n, 2, L, K)
        if not np.isfinite(losses).all():  # never a silent NaN in a bound
            raise FloatingPointError(f"training diverged: some losses are not finite (lr={lr!r}); try a smaller lr")
    rows, per_pair, run_gaps = [], [], []
    rows_idx = np.arange(n)
    # every run's held-out estimate at once: the kl inverse of its ghosts' mean loss, minus its training loss
    train_all = np.take_along_axis(losses, masks[..., None], -1)[..., 0]  # (S, M, n)
    test_all = np.take_along_axis(losses, 1 - masks[..., None], -1)[..., 0]
    ghost = np.clip(test_all, 0, 1).mean(-1)
    held = kl_inverse_upper(ghost.reshape(-1), math.log(1 / delta) / n).reshape(S, M)
    held_out = list((held - train_all.mean(-1) + delta).reshape(-1))
    for s in range(S):
        ss_seed = supersample_seeds[s]
        for m in range(M):
            U = masks[s, m]
            train_l, test_l = losses[s, m][rows_idx, U], losses[s, m][rows_idx, 1 - U]
            run_gaps.append((s, float(test_l.mean() - train_l.mean())))
            for i in range(n):
                rows.append(dict(supersample_seed=ss_seed, mask_seed=mask_seeds[s][m], train_seed=train_seed, i=i,
                                 U=int(U[i]), loss0=float(losses[s, m][i, 0]), loss1=float(losses[s, m][i, 1])))
        per_pair.append(_pair_bounds(losses[s], masks[s], posts[s], n_bins, references[s]))
    result = _summarise(per_pair, run_gaps, held_out, rows, config, train)
    if confidence is not None:
        _attach_certificate(result, losses, masks, posts, references, confidence, n_bins, train)
    return result


def _attach_certificate(result, losses, masks, posts, references, confidence, n_bins, train) -> None:
    """Certify every bound of ``result`` from the same runs (chapter 2, "Certified numbers").

    With the whole model trained, the latent-variable bounds pay log 2 per pair for the decoder
    and are 1 whatever the data (kind "exact", no δ): the families certified are fixed in
    advance (the loss difference, the pair of losses, the held-out value), and the held-out
    value estimates on every run. With only the encoder trained, the fit runs also choose which
    latent-variable priors are worth their share of δ (``certify(select=True)``).
    """
    reference = None if references[0] is None else np.stack(references)
    cert = certify(losses, masks, confidence=confidence, n_bins=n_bins, posteriors=posts, reference=reference,
                   decoder_information=0.0 if train == "encoder" else math.log(2), select=train == "encoder",
                   warn=False)
    result.certified, result.certified_kinds = dict(cert.values), dict(cert.kinds)
    result.confidence, result.certificate = confidence, cert
    advice = [note for note in cert.notes if "masks per supersample" in note and "vacuous (reported" in note]
    if advice:
        warnings.warn("run_supersample: " + " ".join(advice), CertificateWarning, stacklevel=3)


def _pair_bounds(losses, masks, posts, n_bins, reference=None) -> list[dict]:
    aggregated = None if reference is None else reference.mean((0, 1))
    out = []
    for i in range(losses.shape[1]):
        terms = pair_terms(losses[:, i, 0], losses[:, i, 1], masks[:, i], n_bins=n_bins)
        ref = None if reference is None else reference[i]
        terms.update(latent_kl_terms(posts[:, i], reference=ref, aggregated=aggregated))
        out.append(terms)
    return out


def _bounds_of(pairs: list[dict], slack: float) -> dict[str, float]:
    """Average each bound's per-pair term over the pairs of one supersample."""

    terms = {
        "e_cmi": lambda t: t["e_sqrt"],
        "e_cmi_cosh": lambda t: t["e_cosh"],
        "ld_cmi": lambda t: t["ld_sqrt"],
        "ld_cmi_cosh": lambda t: t["ld_cosh"],
        "lv_uniform": lambda t: math.sqrt(2 * (t["kl_uniform"] + slack)),
        "lv_marginal": lambda t: math.sqrt(2 * (t["kl_marginal"] + slack)),
    }
    for prior in ("reference", "aggregated"):
        if f"kl_{prior}" in pairs[0]:
            terms[f"lv_{prior}"] = lambda t, key=f"kl_{prior}": math.sqrt(2 * (t[key] + slack))
    out = {name: float(np.mean([f(t) for t in pairs])) for name, f in terms.items()}
    for key in ("ld_mi", "e_mi", "ld_err", "e_err", *(k for k in pairs[0] if k.startswith("kl_"))):
        out[key] = float(np.mean([t[key] for t in pairs]))
    return out


def _summarise(per_pair, run_gaps, held_out, rows, config, train) -> SupersampleResult:
    slack = 0.0 if train == "encoder" else math.log(2)  # the decoder/codebook term, at most H(U_i)
    seeds = sorted({s for s, _ in run_gaps})
    per_ss = []
    for s, pairs in zip(seeds, per_pair):
        g = np.array([v for t, v in run_gaps if t == s])
        h = np.array([v for (t, _), v in zip(run_gaps, held_out) if t == s])
        per_ss.append(dict(supersample_seed=config["supersample_seeds"][s], gap=float(g.mean()),
                           gap_sem=float(g.std(ddof=1) / math.sqrt(len(g))), held_out=float(h.mean()),
                           **_bounds_of(pairs, slack)))
    gaps = np.array([v for _, v in run_gaps])
    means = np.array([r["gap"] for r in per_ss])
    if len(means) >= 2:
        sem = float(means.std(ddof=1) / math.sqrt(len(means)))
    else:
        sem = float(gaps.std(ddof=1) / math.sqrt(len(gaps)))
    mean = lambda key: float(np.mean([r[key] for r in per_ss]))  # noqa: E731
    bounds = {name: mean(name) for name in BOUND_NAMES if name in per_ss[0]}
    diagnostics = {key: mean(key) for key in per_ss[0]
                   if key in ("ld_mi", "e_mi", "ld_err", "e_err") or key.startswith("kl_")}
    diagnostics["decoder_slack"] = slack
    return SupersampleResult(gap=float(gaps.mean()), gap_sem=sem, bounds=bounds, diagnostics=diagnostics,
                             rows=rows, per_supersample=per_ss, config=config)

