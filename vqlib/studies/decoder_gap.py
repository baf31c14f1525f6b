"""Why the decoder appears in a supersample bound, computed (chapter 3).

The paper's first result: the supersample CMI bound applied to the whole VQ-VAE keeps a
decoder term, so it cannot isolate the latent variables (LVs). Chapter 3 shows it with
two counterexamples and one rescue, all computed here:

* :class:`MemorisingDecoder` and :func:`memoriser_gap` (counterexample (a)): a fixed
  encoder and codebook, and a decoder that is a lookup table from the training points'
  code tuples to their images and outputs a far image for every other tuple. Train loss
  0, test loss large, and the LVs of the supersample do not depend on the mask at all.
* :func:`gap_by_parts` / :func:`gaps_by_parts` train some parts of a VQ-VAE (encoder,
  codebook, decoder) on the training half of many (supersample, mask) draws, all in one
  batch, and freeze the others at the values of a :func:`reference_model` built from
  separate data: K = 1 gives counterexample (b); a frozen decoder gives the rescue,
  where only the LVs can carry the mask.
* :func:`mean_image_gap` and :func:`mean_image_expected_gap`: the best constant output
  (the K = 1 decoder's target) as a reference learner, and its exact mask-average gap;
  :func:`mean_image_gaps` and :func:`mean_image_gap_estimate` compute its gap for
  thousands of masks at once, for an estimate whose standard error is small and honest.
* :func:`pair_statistics` and :func:`pair_mask_information`: statistics of each pair's
  two code tuples that do not depend on how codes are labelled (do the two points share
  their tuple; the Hamming distance between the tuples), and their plug-in mutual
  information with the mask bit across masks. By data processing this estimates a
  *lower* bound on I(J̃_i; U_i | X̃): a diagnostic, not a bound.

Results are tidy tables (lists of dicts), one row per run or per pair, with the three
seeds ``supersample_seed``, ``mask_seed``, ``train_seed`` in every row.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .._checks import positive_float, positive_int
from ..bounds.information import plugin_mi, shuffled_null
from ..bounds.supersample import draw_mask, make_supersample, split
from ..data import check_images
from ..models.engine import PARTS as ENGINE_PARTS
from ..models.engine import (
    Stack,
    evaluate_models,
    init_codebooks,
    part_of,
    train_models,
)
from ..models.fit import encode_indices
from ..models.metrics import per_input_loss
from ..models.vqvae import VQVAE

__all__ = [
    "PARTS",
    "GapResult",
    "MemorisingDecoder",
    "parse_parts",
    "pair_statistics",
    "memoriser_gap",
    "mean_image_gap",
    "mean_image_expected_gap",
    "mean_image_gaps",
    "mean_image_gap_estimate",
    "reference_model",
    "batched_loss",
    "gap_by_parts",
    "gaps_by_parts",
    "pair_mask_information",
    "summarise_runs",
    "summarise_information",
]

#: The parts of a VQ-VAE that :func:`gap_by_parts` can train or freeze (the training engine's).
PARTS = ENGINE_PARTS
#: The pair statistics :func:`pair_mask_information` understands.
STATISTICS = ("share", "hamming", "joint", "loss_order")


@dataclass
class GapResult:
    """What the chapter-3 experiments return (chapter 3).

    Parameters
    ----------
    runs : list of dict
        One dict per (supersample_seed, mask_seed), supersample by supersample, with the seeds
        (``supersample_seed``, ``mask_seed``, ``train_seed``), which parts were trained
        (``trained``), K, L, n, train_loss, test_loss and gap (test − train); runs of
        :func:`gaps_by_parts` also hold ``steps``.
    pairs : list of dict
        One dict per pair i of every run (n per run, in the order of ``runs``) with the run's
        seeds and setting, the pair index ``pair``, the mask bit ``U``, the two losses
        ``loss_0``, ``loss_1`` (of X̃_{i,0}, X̃_{i,1}), ``share`` and ``hamming`` (see
        :func:`pair_statistics`) and the two code tuples ``lv_0``, ``lv_1``.
    models : list of VQVAE
        The trained models, in the order of ``runs`` (empty when there are none).

    See also
    --------
    memoriser_gap, mean_image_gap, gap_by_parts, gaps_by_parts, summarise_runs, pair_mask_information; chapter 3.
    """

    runs: list[dict]
    pairs: list[dict]
    models: list = field(default_factory=list)


# ----------------------------------------------------------------------- checks


def parse_parts(trained) -> tuple[str, ...]:
    """The parts named by ``trained``, in the order of :data:`PARTS` (chapter 3).

    Parameters
    ----------
    trained : str or iterable of str
        ``"all"``, one part name (``"encoder"``, ``"codebook"``, ``"decoder"``), a
        ``"+"``-joined string (``"encoder+codebook"``) or an iterable of names.

    Returns
    -------
    tuple of str
        The named parts, each once, in the order of :data:`PARTS`.

    Raises
    ------
    ValueError
        Naming ``trained`` when it names no part or a name that is not in :data:`PARTS`.

    See also
    --------
    gap_by_parts, gaps_by_parts; chapter 3.
    """
    if isinstance(trained, str):
        names = list(PARTS) if trained == "all" else trained.split("+")
    else:
        try:
            names = list(trained)
        except TypeError:
            raise ValueError(f"trained must be 'all', a part name or an iterable of {PARTS}, got {trained!r}") from None
    bad = [p for p in names if p not in PARTS]
    if bad or not names:
        raise ValueError(f"trained must name at least one of {PARTS} (or be 'all'), got {trained!r}")
    return tuple(p for p in PARTS if p in names)


def _seeds(values, name: str) -> list[int]:
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    try:
        seeds = [positive_int(v, f"{name} entry", minimum=0) for v in values]
    except TypeError:
        raise ValueError(f"{name} must be an iterable of integers ≥ 0, got {values!r}") from None
    if not seeds:
        raise ValueError(f"{name} must hold at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{name} has repeated seeds {seeds}")
    return seeds


def _codes(indices, name: str) -> Tensor:
    t = torch.as_tensor(indices)
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.dtype.is_complex:
        raise ValueError(f"{name} must hold integer code indices, got dtype {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (N, L), got {tuple(t.shape)}")
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} must hold code indices ≥ 0, found {int(t.min())}")
    return t.to(torch.int64).cpu()


# ------------------------------------------------------------ counterexample (a)


class MemorisingDecoder:
    """A decoder that memorises its training points (chapter 3, counterexample (a)).

    It stores a lookup table from the code tuples J = (J_1, …, J_L) of the training
    points to their images and returns the stored image for a seen tuple and
    ``far_image`` for every unseen one. Its interface is the decoding half of
    :class:`vqlib.VQVAE`: ``decode_indices(indices)`` maps (N, L) code indices to
    (N, C, H, W) images in [0, 1].

    If several training points share a tuple, the table stores their mean (the best
    single answer for them); when all training tuples are distinct the training loss is
    exactly 0. ``far_image`` defaults to ``1 − (mean training image)``, far from every
    digit.

    Parameters
    ----------
    train_indices : integer tensor or array (N, L)
        Code indices ≥ 0 of the N training points.
    train_images : tensor or array (N, C, H, W)
        Their images, in [0, 1].
    far_image : tensor or array (C, H, W), optional
        The output for unseen tuples, in [0, 1].

    Attributes
    ----------
    L : int
        Latent positions per tuple.
    in_shape : tuple of int
        The image shape (C, H, W).
    far_image : tensor (C, H, W)
        The output for an unseen tuple.
    table : dict
        Code tuple (tuple of L ints) → stored image, tensor (C, H, W).

    Raises
    ------
    ValueError
        When ``train_indices`` is not an (N, L) array of integer indices ≥ 0, when
        ``train_images`` is not a batch of images in [0, 1] or has another number of rows, or
        when ``far_image`` is not an image of shape (C, H, W) in [0, 1].

    See also
    --------
    memoriser_gap, vqlib.VQVAE; chapter 3.
    """

    def __init__(self, train_indices, train_images, far_image=None):
        codes = _codes(train_indices, "train_indices")
        images = check_images(train_images, name="train_images")
        if codes.shape[0] != images.shape[0]:
            raise ValueError(f"train_indices has {codes.shape[0]} rows but train_images has {images.shape[0]}")
        self.L = codes.shape[1]
        self.in_shape = tuple(images.shape[1:])
        if far_image is None:
            far = 1.0 - images.mean(0)
        else:
            far = check_images(torch.as_tensor(far_image)[None], name="far_image", in_shape=self.in_shape)[0]
        self.far_image = far
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for row, key in enumerate(map(tuple, codes.tolist())):
            groups[key].append(row)
        self.table = {key: images[rows].mean(0) for key, rows in groups.items()}

    def __repr__(self) -> str:
        return f"MemorisingDecoder(L={self.L}, in_shape={self.in_shape}, tuples stored={len(self.table)})"

    def seen(self, indices) -> Tensor:
        """Whether each code tuple of ``indices`` is in the table (chapter 3).

        Parameters
        ----------
        indices : integer tensor or array (N, L)
            Code indices ≥ 0.

        Returns
        -------
        tensor (N,), bool
            True where the tuple is one of the training points' tuples.

        Raises
        ------
        ValueError
            When ``indices`` is not an (N, L) array of integer indices ≥ 0 with this decoder's L.

        See also
        --------
        decode_indices; chapter 3.
        """
        codes = self._check(indices)
        return torch.tensor([tuple(r) in self.table for r in codes.tolist()], dtype=torch.bool)

    def decode_indices(self, indices) -> Tensor:
        """x̂ for code indices: the stored image of a seen tuple, else ``far_image`` (chapter 3).

        Parameters
        ----------
        indices : integer tensor or array (N, L)
            Code indices ≥ 0.

        Returns
        -------
        tensor (N, C, H, W)
            One image per tuple, in [0, 1]; shape (0, C, H, W) for N = 0.

        Raises
        ------
        ValueError
            When ``indices`` is not an (N, L) array of integer indices ≥ 0 with this decoder's L.

        See also
        --------
        seen, vqlib.VQVAE.decode_indices; chapter 3.
        """
        codes = self._check(indices)
        out = [self.table.get(tuple(r), self.far_image) for r in codes.tolist()]
        if not out:
            return self.far_image.new_zeros((0, *self.in_shape))
        return torch.stack(out)

    def _check(self, indices) -> Tensor:
        codes = _codes(indices, "indices")
        if codes.shape[1] != self.L:
            raise ValueError(f"indices must have shape (N, L={self.L}), got {tuple(codes.shape)}")
        return codes


def pair_statistics(codes) -> tuple[np.ndarray, np.ndarray]:
    """Labelling-free statistics of each pair's two code tuples (chapter 3).

    ``share[i] = 1`` when the two tuples are equal, ``hamming[i]`` the number of positions
    where they differ (0..L). Renaming the codes of a codebook by any permutation leaves both
    unchanged, so they can be compared across independently trained runs.

    Parameters
    ----------
    codes : integer tensor or array (n, 2, L)
        The LVs of the supersample: ``codes[i, b]`` is the tuple of X̃_{i,b}.

    Returns
    -------
    share : ndarray (n,), int64
        1 where the pair's two tuples are equal, else 0.
    hamming : ndarray (n,), int64
        Positions where they differ, in 0..L.

    Raises
    ------
    ValueError
        When ``codes`` does not hold integers or does not have shape (n, 2, L).

    See also
    --------
    pair_mask_information, GapResult; chapter 3.
    """
    t = torch.as_tensor(codes)
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.dtype.is_complex:
        raise ValueError(f"codes must hold integer code indices, got dtype {t.dtype}")
    if t.dim() != 3 or t.shape[1] != 2:
        raise ValueError(f"codes must have shape (n, 2, L), got {tuple(t.shape)}")
    differ = (t[:, 0] != t[:, 1]).sum(1).cpu().numpy().astype(np.int64)
    return (differ == 0).astype(np.int64), differ


def _check_setting(x, n) -> tuple[Tensor, int]:
    x = check_images(x, name="x")
    n = positive_int(n, "n")
    if 2 * n > len(x):
        raise ValueError(f"n={n} is larger than half the data ({len(x)} inputs allow n ≤ {len(x) // 2})")
    return x, n


def _rows(ss, U, losses: Tensor, codes: Tensor, common: dict, mask_seed: int) -> tuple[dict, list[dict]]:
    """The run row and the n pair rows of one (supersample, mask)."""
    losses = losses.reshape(ss.n, 2).double()
    rows = torch.arange(ss.n)
    Ut = torch.as_tensor(U)
    train = float(losses[rows, Ut].mean())
    test = float(losses[rows, 1 - Ut].mean())
    base = dict(supersample_seed=ss.supersample_seed, mask_seed=mask_seed, **common)
    run = dict(base, train_loss=train, test_loss=test, gap=test - train)
    codes = torch.as_tensor(codes).reshape(ss.n, 2, -1)
    share, hamming = pair_statistics(codes)
    lv = codes.tolist()
    pairs = [
        dict(base, pair=i, U=int(U[i]), loss_0=float(losses[i, 0]), loss_1=float(losses[i, 1]),
             share=int(share[i]), hamming=int(hamming[i]), lv_0=tuple(lv[i][0]), lv_1=tuple(lv[i][1]))
        for i in range(ss.n)
    ]
    return run, pairs


def memoriser_gap(model: VQVAE, x, n: int, *, supersample_seeds, mask_seeds, far_image=None) -> GapResult:
    """The gap of counterexample (a): fixed encoder and codebook, memorising decoder (chapter 3).

    For every supersample X̃ (n pairs drawn from ``x``) the LVs of its 2n points are
    computed once with ``model``'s encoder and codebook, which do not depend on the mask.
    For every mask U a :class:`MemorisingDecoder` is built from the training half's LVs
    and images, and every point is scored with ℓ(x, decode(J(x))) = ‖x − x̂‖²/d; the gap is
    the mean loss of the ghosts X̃_{i,1−U_i} minus that of the training points X̃_{i,U_i}.

    Parameters
    ----------
    model : VQVAE
        Gives the (fixed) encoder and codebook.
    x : tensor or array (N, C, H, W)
        Images in [0, 1] the supersamples are drawn from.
    n : int
        Pairs per supersample, 1 ≤ n ≤ N/2.
    supersample_seeds : int or iterable of int
        Seeds of the supersamples (:func:`vqlib.bounds.make_supersample`): distinct integers ≥ 0.
    mask_seeds : int or iterable of int
        Seeds of the masks (:func:`vqlib.bounds.draw_mask`): distinct integers ≥ 0.
    far_image : tensor or array (C, H, W), optional
        The decoder's output for unseen tuples (see :class:`MemorisingDecoder`).

    Returns
    -------
    GapResult
        Rows with ``trained = "memoriser"`` and ``train_seed`` = None (nothing is trained);
        no models.

    Raises
    ------
    ValueError
        When ``n`` is not an integer ≥ 1 or 2n exceeds the inputs of ``x``, ``x`` is not a batch of
        images in [0, 1], or a seed list is empty, repeated or holds a value that is not an
        integer ≥ 0; when ``model`` is not a :class:`vqlib.VQVAE` or ``x``'s image shape is not
        the model's.

    See also
    --------
    MemorisingDecoder, gap_by_parts, pair_mask_information; chapter 3.
    """
    if not isinstance(model, VQVAE):
        raise ValueError(f"model must be a vqlib.VQVAE, got {type(model).__name__}")
    x, n = _check_setting(x, n)
    if tuple(x.shape[1:]) != model.in_shape:
        raise ValueError(f"x has image shape {tuple(x.shape[1:])}, model expects {model.in_shape}")
    ss_seeds = _seeds(supersample_seeds, "supersample_seeds")
    m_seeds = _seeds(mask_seeds, "mask_seeds")
    common = dict(train_seed=None, trained="memoriser", K=model.K, L=model.L, n=n)
    runs, pairs = [], []
    for s in ss_seeds:
        ss = make_supersample(x, n, supersample_seed=s)
        flat = ss.flat()
        codes = encode_indices(model, flat).reshape(n, 2, model.L)  # the LVs J̃: no mask involved
        for m in m_seeds:
            U = draw_mask(n, mask_seed=m)
            x_tr, _ = split(ss, U)
            decoder = MemorisingDecoder(codes[torch.arange(n), torch.as_tensor(U)], x_tr, far_image)
            losses = per_input_loss(flat, decoder.decode_indices(codes.reshape(2 * n, -1)))
            run, rows = _rows(ss, U, losses, codes, common, m)
            runs.append(run)
            pairs.extend(rows)
    return GapResult(runs, pairs)


def mean_image_gap(x, n: int, *, supersample_seeds, mask_seeds) -> GapResult:
    """The best constant output, the training mean image, as a learner (chapter 3).

    A K = 1 VQ-VAE can only output one image, and the one that minimises its training
    loss is the mean of the training half. Its expected gap over i.i.d. data is
    2σ̄²/n, σ̄² the mean per-pixel variance (the chapter proves it). For thousands of masks
    use :func:`mean_image_gaps` (the same gaps, vectorised, no rows) or
    :func:`mean_image_gap_estimate`.

    Parameters
    ----------
    x : tensor or array (N, C, H, W)
        Images in [0, 1] the supersamples are drawn from.
    n : int
        Pairs per supersample, 1 ≤ n ≤ N/2.
    supersample_seeds : int or iterable of int
        Seeds of the supersamples (:func:`vqlib.bounds.make_supersample`): distinct integers ≥ 0.
    mask_seeds : int or iterable of int
        Seeds of the masks (:func:`vqlib.bounds.draw_mask`): distinct integers ≥ 0.

    Returns
    -------
    GapResult
        Rows as in :func:`memoriser_gap` with ``trained = "mean image"``, K = 1 and L = None;
        the pair statistics are 0 (one tuple for all points); no models.

    Raises
    ------
    ValueError
        When ``n`` is not an integer ≥ 1 or 2n exceeds the inputs of ``x``, ``x`` is not a batch of
        images in [0, 1], or a seed list is empty, repeated or holds a value that is not an
        integer ≥ 0.

    See also
    --------
    mean_image_expected_gap, mean_image_gaps, mean_image_gap_estimate; chapter 3.
    """
    x, n = _check_setting(x, n)
    ss_seeds = _seeds(supersample_seeds, "supersample_seeds")
    m_seeds = _seeds(mask_seeds, "mask_seeds")
    common = dict(train_seed=None, trained="mean image", K=1, L=None, n=n)
    runs, pairs = [], []
    for s in ss_seeds:
        ss = make_supersample(x, n, supersample_seed=s)
        flat = ss.flat()
        for m in m_seeds:
            U = draw_mask(n, mask_seed=m)
            x_tr, _ = split(ss, U)
            centre = x_tr.double().mean(0, keepdim=True)
            losses = per_input_loss(flat.double(), centre.expand_as(flat))
            run, rows = _rows(ss, U, losses, torch.zeros(2 * n, 1, dtype=torch.int64), common, m)
            runs.append(run)
            pairs.extend(rows)
    return GapResult(runs, pairs)


def mean_image_expected_gap(ss) -> float:
    """E_U[gap | X̃] of the mean-image learner, exactly: Σ_i ‖X̃_{i,0} − X̃_{i,1}‖² / (n² d) (chapter 3).

    The average over all 2^n masks of the gap of the learner that outputs the mean of
    the training half, for the supersample ``ss``; the chapter proves the formula. Over
    i.i.d. pairs its expectation is 2σ̄²/n.

    Parameters
    ----------
    ss : Supersample
        A :class:`vqlib.bounds.Supersample`, points of shape (n, 2, C, H, W).

    Returns
    -------
    float
        The exact mask-average gap.

    Raises
    ------
    ValueError
        When ``ss`` is not a Supersample (points of shape (n, 2, ...)).

    See also
    --------
    mean_image_gap, mean_image_gap_estimate; chapter 3.
    """
    points = getattr(ss, "points", None)
    if not isinstance(points, Tensor) or points.dim() < 3 or points.shape[1] != 2:
        raise ValueError("ss must be a Supersample (points of shape (n, 2, ...))")
    n = points.shape[0]
    diff = (points[:, 0] - points[:, 1]).double().reshape(n, -1)
    return float(diff.pow(2).sum() / (n * n * diff.shape[1]))


def mean_image_gaps(x, n: int, *, supersample_seeds, mask_seeds, chunk: int = 512) -> np.ndarray:
    """The mean-image learner's gap for every (supersample, mask), shape (S, M) (chapter 3).

    Entry (s, m) is the gap of :func:`mean_image_gap`'s run with ``supersample_seeds[s]``
    and ``mask_seeds[m]`` (the same number up to rounding, in float64), computed for
    ``chunk`` masks of a supersample at once and without per-pair rows: thousands of
    masks take a fraction of a second.

    Parameters
    ----------
    x : tensor or array (N, C, H, W)
        Images in [0, 1] the supersamples are drawn from.
    n : int
        Pairs per supersample, 1 ≤ n ≤ N/2.
    supersample_seeds : int or iterable of int
        Seeds of the supersamples (:func:`vqlib.bounds.make_supersample`): distinct integers ≥ 0.
    mask_seeds : int or iterable of int
        Seeds of the masks (:func:`vqlib.bounds.draw_mask`): distinct integers ≥ 0.
    chunk : int, default 512
        Masks computed at once (memory, not the result).

    Returns
    -------
    ndarray (S, M), float64
        S = number of supersample seeds, M = number of mask seeds.

    Raises
    ------
    ValueError
        When ``n`` is not an integer ≥ 1 or 2n exceeds the inputs of ``x``, ``x`` is not a batch of
        images in [0, 1], or a seed list is empty, repeated or holds a value that is not an
        integer ≥ 0; when ``chunk`` is not an integer ≥ 1.

    See also
    --------
    mean_image_gap, mean_image_gap_estimate; chapter 3.
    """
    x, n = _check_setting(x, n)
    ss_seeds = _seeds(supersample_seeds, "supersample_seeds")
    m_seeds = _seeds(mask_seeds, "mask_seeds")
    chunk = positive_int(chunk, "chunk")
    masks = torch.as_tensor(np.stack([draw_mask(n, mask_seed=m) for m in m_seeds]))  # (M, n)
    rows = torch.arange(n)
    out = np.empty((len(ss_seeds), len(m_seeds)))
    for s, seed in enumerate(ss_seeds):
        points = make_supersample(x, n, supersample_seed=seed).points.double().reshape(n, 2, -1)  # (n, 2, d)
        for start in range(0, len(m_seeds), chunk):
            U = masks[start:start + chunk]                      # (m, n)
            train, ghost = points[rows, U], points[rows, 1 - U]  # (m, n, d)
            centre = train.mean(1, keepdim=True)                 # the training mean of each mask
            gap = (ghost - centre).pow(2).mean((1, 2)) - (train - centre).pow(2).mean((1, 2))
            out[s, start:start + len(U)] = gap.numpy()
    return out


def mean_image_gap_estimate(x, n: int, *, supersample_seeds, mask_seeds) -> dict:
    """The mean-image learner's gap from many masks, next to its exact value (chapter 3).

    The target is the average over the supersamples of E_U[gap | X̃_s], whose exact value
    is the mean of :func:`mean_image_expected_gap` over them (``exact``). The estimate
    (``gap``) averages the M = ``len(mask_seeds)`` masks' gaps of :func:`mean_image_gaps`.
    Every supersample uses the same mask seeds, so the supersamples' averages are not
    independent; the masks are. Hence the standard error is computed over masks:
    ``sd`` is the standard deviation over masks of ḡ_m, the gap of mask m averaged over
    the supersamples, ``gap_se = sd / sqrt(M)``, and an average over k of these masks has
    standard error about ``sd / sqrt(k)``.

    Parameters
    ----------
    x : tensor or array (N, C, H, W)
        Images in [0, 1] the supersamples are drawn from.
    n : int
        Pairs per supersample, 1 ≤ n ≤ N/2.
    supersample_seeds : int or iterable of int
        Seeds of the supersamples (:func:`vqlib.bounds.make_supersample`): distinct integers ≥ 0.
    mask_seeds : int or iterable of int
        Seeds of the masks (:func:`vqlib.bounds.draw_mask`): distinct integers ≥ 0.

    Returns
    -------
    dict
        ``gap``, ``gap_se``, ``exact``, ``sd``, ``z = (gap − exact) / gap_se``, ``masks`` (M),
        ``supersamples`` (S) and ``gaps`` (the (S, M) array of :func:`mean_image_gaps`).

    Raises
    ------
    ValueError
        When ``n`` is not an integer ≥ 1 or 2n exceeds the inputs of ``x``, ``x`` is not a batch of
        images in [0, 1], or a seed list is empty, repeated or holds a value that is not an
        integer ≥ 0; when ``mask_seeds`` holds fewer than two seeds.

    See also
    --------
    mean_image_gaps, mean_image_expected_gap; chapter 3.
    """
    gaps = mean_image_gaps(x, n, supersample_seeds=supersample_seeds, mask_seeds=mask_seeds)
    if gaps.shape[1] < 2:
        raise ValueError("mask_seeds must hold at least two seeds for a standard error")
    x, n = _check_setting(x, n)
    exact = float(np.mean([mean_image_expected_gap(make_supersample(x, n, supersample_seed=s))
                           for s in _seeds(supersample_seeds, "supersample_seeds")]))
    per_mask = gaps.mean(0)  # ḡ_m: independent across masks given the supersamples
    sd = float(per_mask.std(ddof=1))
    gap, se = float(per_mask.mean()), float(sd / np.sqrt(per_mask.size))
    return dict(gap=gap, gap_se=se, exact=exact, sd=sd, z=(gap - exact) / se,
                masks=gaps.shape[1], supersamples=gaps.shape[0], gaps=gaps)


# ------------------------------------------------- training some parts, in batches


def batched_loss(template: VQVAE, params: dict[str, Tensor], x: Tensor) -> Tensor:
    """The training loss of ``VQVAE.forward`` for R models at once, shape (R,) (chapter 3).

    The training engine's loss (:class:`vqlib.models.engine.Stack`) for a nearest-quantizer
    model whose codebook learns by the loss (``codebook="loss"``): reconstruction + codebook
    loss + commitment weight × commitment loss, with straight-through gradients; tests check
    it equals ``template.forward(x_r).loss`` model by model.

    Parameters
    ----------
    template : VQVAE
        Gives the architecture (nearest quantizer, ``codebook="loss"``).
    params : dict of str to tensor
        ``params[name]`` stacks the R models' parameters (R, …) or holds one shared by all.
    x : tensor (R, N, C, H, W)
        One training set per model.

    Returns
    -------
    tensor (R,)
        The loss of each model on its training set (differentiable).

    See also
    --------
    gap_by_parts, vqlib.models.engine.train_models; chapter 3.
    """
    R, N = x.shape[:2]
    stack = Stack(template, params, R, (), {})
    xb = x.reshape(R, N, -1)
    return stack.loss(xb, stack.forward(xb))


def _parameters_of(template: VQVAE, parts) -> list[str]:
    """The names of ``template``'s parameters that belong to ``parts``."""
    return [name for name, _ in template.named_parameters() if part_of(name) in parts]


def reference_model(
    x_separate,
    K: int,
    L: int,
    *,
    decoder_steps: int = 300,
    lr: float = 3e-3,
    seed: int = 0,
    **model_kwargs,
) -> VQVAE:
    """A VQ-VAE built from separate data only, to copy frozen parts from (chapter 3).

    Its encoder is the untrained network of ``seed``, standardised on ``x_separate``;
    its codebook is k-means on those encodings (both as :func:`vqlib.fit` starts);
    its decoder is then trained for ``decoder_steps`` full-batch Adam steps on
    ``x_separate`` with encoder and codebook fixed (``decoder_steps=0`` leaves it
    untrained). A random encoder is a fixed random projection: nothing in it depends on
    any supersample or mask.

    Parameters
    ----------
    x_separate : tensor or array (N, C, H, W)
        Images in [0, 1], disjoint from every supersample.
    K : int
        Codebook size.
    L : int
        Latent positions.
    decoder_steps : int, default 300
        Full-batch Adam steps on the decoder, ≥ 0.
    lr : float, default 3e-3
        Adam's learning rate, > 0.
    seed : int, default 0
        Seeds the initial weights and the k-means start, ≥ 0.
    **model_kwargs
        Further arguments of :class:`vqlib.VQVAE`; ``codebook``, ``dead_code_reset`` and
        ``seed`` are set here.

    Returns
    -------
    VQVAE
        The model (codebook learned by the loss, nearest quantizer) in eval mode.

    Raises
    ------
    ValueError
        When ``x_separate`` is not a batch of images in [0, 1], ``seed`` or ``decoder_steps`` is
        not an integer ≥ 0, ``lr`` is not a number > 0, or the quantizer is not ``"nearest"``
        (and for model arguments :class:`vqlib.VQVAE` refuses).

    See also
    --------
    gap_by_parts, gaps_by_parts; chapter 3.
    """
    x = check_images(x_separate, name="x_separate")
    seed = positive_int(seed, "seed", minimum=0)
    decoder_steps = positive_int(decoder_steps, "decoder_steps", minimum=0)
    lr = positive_float(lr, "lr")
    model_kwargs.update(codebook="loss", dead_code_reset=False, seed=seed)
    model = VQVAE(x.shape[1:], K, L, **model_kwargs)
    if model.config["quantizer"] != "nearest":
        raise ValueError("reference_model builds nearest-quantizer models only")
    model.init_codebook(x, generator=torch.Generator().manual_seed(seed))
    if decoder_steps:  # full-batch Adam on the decoder, through the training engine
        train_models([model], x[None], epochs=decoder_steps, lr=lr, trained=_parameters_of(model, ("decoder",)))
    return model.eval()


def gap_by_parts(
    x,
    n: int,
    trained="all",
    *,
    supersample_seeds,
    mask_seeds,
    train_seed: int = 0,
    reference: VQVAE | None = None,
    K: int | None = None,
    L: int | None = None,
    steps: int = 300,
    lr: float = 2e-3,
    **model_kwargs,
) -> GapResult:
    """Train some parts of a VQ-VAE on each training half; freeze the rest (chapter 3).

    For every supersample (``supersample_seeds``, n pairs from ``x``) and mask
    (``mask_seeds``) one model is trained on X̃_{i,U_i}. The parts named in ``trained``
    (see :func:`parse_parts`) start fresh from ``train_seed`` (the encoder and codebook
    initialised on the training half as :func:`vqlib.fit` does) and are trained; the
    other parts are copies of ``reference``, a model built without the supersample (for
    instance by :func:`reference_model` from separate data), and stay bit-identical.
    Training: ``steps`` full-batch Adam steps on the loss of ``VQVAE.forward`` (codebook
    learned by the loss, no dead-code reset), all runs at once through the training engine
    (:func:`vqlib.models.engine.train_models`; the frozen parts are held once, shared by all runs).
    Losses and LVs are then computed as :func:`vqlib.reconstruction_loss` and
    :func:`vqlib.encode_indices` compute them, in eval mode, all runs at once.
    K = 1 gives counterexample (b); a frozen decoder gives the rescue, where only the LVs can
    carry the mask.

    Parameters
    ----------
    x : tensor or array (N, C, H, W)
        Images in [0, 1] the supersamples are drawn from.
    n : int
        Pairs per supersample, 1 ≤ n ≤ N/2.
    trained : str or iterable of str, default "all"
        The trained parts (see :func:`parse_parts`).
    supersample_seeds : int or iterable of int
        Seeds of the supersamples (:func:`vqlib.bounds.make_supersample`): distinct integers ≥ 0.
    mask_seeds : int or iterable of int
        Seeds of the masks (:func:`vqlib.bounds.draw_mask`): distinct integers ≥ 0.
    train_seed : int, default 0
        Seeds the trained parts' start, ≥ 0.
    reference : VQVAE, optional
        Gives the architecture and the frozen parts; required when a part is frozen.
    K, L : int, optional
        Codebook size and latent positions when ``reference`` is not given (then required).
    steps : int, default 300
        Full-batch Adam steps, ≥ 1.
    lr : float, default 2e-3
        Adam's learning rate, > 0.
    **model_kwargs
        Further arguments of :class:`vqlib.VQVAE`, only without ``reference``.

    Returns
    -------
    GapResult
        Rows with ``trained`` the "+"-joined trained parts and ``steps``, and the trained models.
        :func:`gaps_by_parts` does the same for several choices of ``trained`` at once.

    Raises
    ------
    ValueError
        As :func:`gaps_by_parts`.

    See also
    --------
    gaps_by_parts, reference_model, parse_parts, pair_mask_information; chapter 3.
    """
    regimes = gaps_by_parts(x, n, ["+".join(parse_parts(trained))], supersample_seeds=supersample_seeds, mask_seeds=mask_seeds,
                            train_seed=train_seed, reference=reference, K=K, L=L, steps=steps, lr=lr,
                            **model_kwargs)
    return next(iter(regimes.values()))


def gaps_by_parts(
    x,
    n: int,
    regimes: Sequence,
    *,
    supersample_seeds,
    mask_seeds,
    train_seed: int = 0,
    reference: VQVAE | None = None,
    K: int | None = None,
    L: int | None = None,
    steps: int = 300,
    lr: float = 2e-3,
    **model_kwargs,
) -> dict:
    """:func:`gap_by_parts` for several regimes, trained in one batch (chapter 3).

    Every regime sees the same supersamples, masks and ``train_seed``; each regime is one
    batch of the engine, its frozen parts shared by all its runs.

    Parameters
    ----------
    x : tensor or array (N, C, H, W)
        Images in [0, 1] the supersamples are drawn from.
    n : int
        Pairs per supersample, 1 ≤ n ≤ N/2.
    regimes : sequence
        Choices of ``trained`` (``["decoder", "encoder", "all"]``): non-empty, hashable,
        distinct, and naming distinct sets of parts.
    supersample_seeds : int or iterable of int
        Seeds of the supersamples (:func:`vqlib.bounds.make_supersample`): distinct integers ≥ 0.
    mask_seeds : int or iterable of int
        Seeds of the masks (:func:`vqlib.bounds.draw_mask`): distinct integers ≥ 0.
    train_seed, reference, K, L, steps, lr, **model_kwargs
        As in :func:`gap_by_parts`.

    Returns
    -------
    dict
        Each regime, as given, → its :class:`GapResult` (with models).

    Raises
    ------
    ValueError
        When ``regimes`` is a string, empty, or has repeated entries or sets of parts; when an
        entry is not a choice of parts (:func:`parse_parts`); when ``reference`` is not a
        :class:`vqlib.VQVAE`, or is given together with ``K``, ``L`` or ``model_kwargs``; when a
        part is frozen without ``reference``, or ``K`` or ``L`` is missing without it; when the
        quantizer is not ``"nearest"``; when ``x``'s image shape is not the model's; when
        ``train_seed`` is not an integer ≥ 0, ``steps`` not an integer ≥ 1 or ``lr`` not a
        number > 0.
        When ``n`` is not an integer ≥ 1 or 2n exceeds the inputs of ``x``, ``x`` is not a batch of
        images in [0, 1], or a seed list is empty, repeated or holds a value that is not an
        integer ≥ 0.

    See also
    --------
    gap_by_parts, reference_model, summarise_runs; chapter 3.
    """
    x, n = _check_setting(x, n)
    if isinstance(regimes, str) or not isinstance(regimes, Sequence) or not regimes:
        raise ValueError(f"regimes must be a non-empty list of choices of trained parts, got {regimes!r}")
    parts_of = [parse_parts(r) for r in regimes]
    try:
        if len(set(regimes)) != len(regimes):
            raise ValueError(f"regimes has repeated entries {regimes!r}")
    except TypeError:
        raise ValueError(f"regimes must hold hashable entries such as 'decoder', got {regimes!r}") from None
    if len(set(parts_of)) != len(parts_of):
        raise ValueError(f"regimes names the same set of trained parts twice: {regimes!r}")
    ss_seeds = _seeds(supersample_seeds, "supersample_seeds")
    m_seeds = _seeds(mask_seeds, "mask_seeds")
    train_seed = positive_int(train_seed, "train_seed", minimum=0)
    steps = positive_int(steps, "steps")
    lr = positive_float(lr, "lr")
    if reference is not None:
        if not isinstance(reference, VQVAE):
            raise ValueError(f"reference must be a vqlib.VQVAE, got {type(reference).__name__}")
        if K is not None or L is not None or model_kwargs:
            raise ValueError("pass either reference (its architecture is used) or K, L and model_kwargs, not both")
        config = dict(reference.config)
    else:
        frozen = sorted({p for parts in parts_of for p in PARTS if p not in parts}, key=PARTS.index)
        if frozen:
            raise ValueError(f"reference is required to freeze {frozen}: frozen parts are copied from it")
        if K is None or L is None:
            raise ValueError("K and L are required when reference is not given")
        config = dict(VQVAE(x.shape[1:], K, L, **model_kwargs).config)
    if config.get("quantizer") != "nearest":
        raise ValueError("gap_by_parts needs the deterministic nearest quantizer (the model's quantizer)")
    if tuple(x.shape[1:]) != tuple(config["in_shape"]):
        raise ValueError(f"x has image shape {tuple(x.shape[1:])}, the model expects {tuple(config['in_shape'])}")
    config.update(codebook="loss", seed=train_seed, dead_code_reset=False)

    supersamples = {s: make_supersample(x, n, supersample_seed=s) for s in ss_seeds}
    settings = [(s, m) for s in ss_seeds for m in m_seeds]
    masks = [draw_mask(n, mask_seed=m) for _, m in settings]
    halves = torch.stack([split(supersamples[s], U)[0] for (s, _), U in zip(settings, masks)])
    points = torch.stack([supersamples[s].flat() for s, _ in settings])
    source = {k: v.detach().cpu() for k, v in reference.state_dict().items()} if reference is not None else {}
    out = {}
    for regime, parts in zip(regimes, parts_of):  # one engine call per regime: its frozen parts are shared
        models = [VQVAE(**config) for _ in settings]
        if "encoder" in parts or "codebook" in parts:  # the data-dependent start, as vqlib.fit starts
            init_codebooks(models, halves, [torch.Generator().manual_seed(train_seed) for _ in settings],
                           codebook="codebook" in parts)
        for model in models:
            own = model.state_dict()
            for key, value in source.items():
                part = "codebook" if key.startswith("quantizer.") else key.split(".")[0]
                if part in PARTS and part not in parts:
                    own[key] = value.clone()
            own["codebook_initialised"] = torch.tensor(True)
            model.load_state_dict(own)
        train_models(models, halves, epochs=steps, lr=lr, trained=_parameters_of(models[0], parts))
        losses, codes = evaluate_models(models, points)
        result = out[regime] = GapResult([], [], [])
        common = dict(train_seed=train_seed, trained="+".join(parts), K=config["K"], L=config["L"], n=n, steps=steps)
        for r, ((s, m), model, U) in enumerate(zip(settings, models, masks)):
            run, rows = _rows(supersamples[s], U, losses[r], codes[r], common, m)
            result.runs.append(run)
            result.pairs.extend(rows)
            result.models.append(model)
    return out


# ------------------------------------------------------------- the LV diagnostic


def pair_mask_information(
    pairs: Sequence[dict],
    statistic: str = "hamming",
    *,
    n_shuffles: int = 100,
    seed: int = 0,
) -> list[dict]:
    """Plug-in MI between a pair statistic and the pair's mask bit, across masks (chapter 3).

    Groups the pair rows of a :class:`GapResult` by (trained, K, L, n,
    supersample_seed, train_seed, pair); within a group the rows differ only in the
    mask, so the plug-in MI of ``statistic`` against ``U`` estimates the conditional
    information I(s(J̃_i); U_i | X̃ = x̃) of that pair. For ``"share"`` and ``"hamming"``,
    s is a function of the pair's LVs J̃_i, so by data processing this is at most
    I(J̃_i; U_i | X̃ = x̃): an estimate of a *lower* bound, a diagnostic and not a bound.
    ``"joint"`` uses the pair's two code tuples themselves: an estimate of
    I(J̃_i; U_i | X̃ = x̃) itself (biased upward, by about (k − 1)/(2m) for k observed
    values), meaningful only when code labels mean the same in every run, as with a
    frozen codebook. ``"loss_order"`` (the sign of loss_1 − loss_0) is a function of the
    pair's losses, so it estimates a lower bound on the e-CMI term I(V_i; U_i | X̃ = x̃).

    Parameters
    ----------
    pairs : sequence of dict
        The pair rows of one or more :class:`GapResult` (``GapResult.pairs``).
    statistic : str, default "hamming"
        ``"share"``, ``"hamming"``, ``"joint"`` or ``"loss_order"``.
    n_shuffles : int, default 100
        Shuffles of the mask for the null, ≥ 1.
    seed : int, default 0
        Seeds the shuffles, ≥ 0.

    Returns
    -------
    list of dict
        One row per group with the group's keys, ``statistic``, ``m`` (number of masks),
        ``mi`` (plug-in, nats), ``null_mean`` and ``null_q95`` (mean and 95% quantile of the
        shuffled-mask null, see :func:`vqlib.bounds.information.shuffled_null`), ``values`` (how
        many different values the statistic took across the masks) and ``constant`` (whether
        it took one value in every mask: then the plug-in MI is exactly 0).

    Raises
    ------
    ValueError
        When ``statistic`` is not one of the four, ``n_shuffles`` is not an integer ≥ 1,
        ``seed`` not an integer ≥ 0, ``pairs`` is empty or a row is not a pair row of a
        :class:`GapResult`.

    See also
    --------
    pair_statistics, summarise_information, vqlib.bounds.information.plugin_mi; chapter 3.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic={statistic!r} is not one of {STATISTICS}")
    n_shuffles = positive_int(n_shuffles, "n_shuffles")
    seed = positive_int(seed, "seed", minimum=0)
    keys = ("trained", "K", "L", "n", "supersample_seed", "train_seed", "pair")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in pairs:
        try:
            groups[tuple(row[k] for k in keys)].append(row)
        except (KeyError, TypeError):
            raise ValueError(f"pairs must be the pair rows of a GapResult, got {row!r}") from None
    if not groups:
        raise ValueError("pairs must not be empty")
    out = []
    for key, rows in groups.items():
        U = np.array([r["U"] for r in rows])
        if statistic == "loss_order":
            s = np.sign(np.array([r["loss_1"] - r["loss_0"] for r in rows]))
        elif statistic == "joint":
            s = np.unique([repr((r["lv_0"], r["lv_1"])) for r in rows], return_inverse=True)[1].ravel()
        else:
            s = np.array([r[statistic] for r in rows])
        null = shuffled_null(s, U, n_shuffles=n_shuffles, seed=seed)
        out.append(dict(zip(keys, key), statistic=statistic, m=len(rows), mi=plugin_mi(s, U),
                        null_mean=float(null.mean()), null_q95=float(np.quantile(null, 0.95)),
                        values=int(np.unique(s).size), constant=bool(np.all(s == s[0]))))
    return out


# ------------------------------------------------------------------ summaries


def summarise_runs(runs: Sequence[dict]) -> dict:
    """Mean train loss, test loss and gap of run rows, with the gap's standard error (chapter 3).

    The standard error is ``std / sqrt(number of runs)`` (std with ddof = 1), treating runs as
    independent (they share supersamples and mask seeds, so it is a rough guide, not a test).

    Parameters
    ----------
    runs : sequence of dict
        Run rows of a :class:`GapResult`, each with ``train_loss`` and ``test_loss``.

    Returns
    -------
    dict
        ``runs`` (their number), ``train_loss``, ``test_loss``, ``gap`` (means) and ``gap_se``
        (NaN for a single run).

    Raises
    ------
    ValueError
        When ``runs`` is empty or a row lacks ``train_loss`` or ``test_loss``.

    See also
    --------
    summarise_information, gap_by_parts; chapter 3.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("runs must not be empty")
    try:
        train = np.array([r["train_loss"] for r in runs], dtype=float)
        test = np.array([r["test_loss"] for r in runs], dtype=float)
    except (KeyError, TypeError):
        raise ValueError("runs must be the run rows of a GapResult") from None
    gap = test - train
    se = float(gap.std(ddof=1) / np.sqrt(gap.size)) if gap.size > 1 else float("nan")
    return dict(runs=len(runs), train_loss=float(train.mean()), test_loss=float(test.mean()),
                gap=float(gap.mean()), gap_se=se)


def summarise_information(rows: Sequence[dict]) -> dict:
    """Averages over the per-pair rows of :func:`pair_mask_information` (chapter 3).

    For LV statistics all of these estimate *lower* bounds on the LV terms (data
    processing): diagnostics, not bounds.

    Parameters
    ----------
    rows : sequence of dict
        Rows of :func:`pair_mask_information`.

    Returns
    -------
    dict
        ``pairs`` (number of rows); ``mi`` and ``null``, the mean plug-in MI and the mean of
        the shuffled-mask null; ``excess``, the mean of max(0, mi − null_mean), a rough bias
        correction; ``sqrt_term``, the mean of sqrt(2 · max(0, mi − null_mean)), the per-pair
        term of a CMI bound evaluated at that corrected estimate; ``values``, the mean number
        of different values the statistic took across the masks; ``constant``, the fraction
        of pairs whose statistic never changed with the mask.

    Raises
    ------
    ValueError
        When ``rows`` is empty or a row lacks ``mi``, ``null_mean``, ``constant`` or ``values``.

    See also
    --------
    pair_mask_information, summarise_runs; chapter 3.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("rows must not be empty")
    try:
        mi = np.array([r["mi"] for r in rows], dtype=float)
        null = np.array([r["null_mean"] for r in rows], dtype=float)
        constant = np.array([r["constant"] for r in rows], dtype=bool)
        values = np.array([r["values"] for r in rows], dtype=float)
    except (KeyError, TypeError):
        raise ValueError("rows must be the rows of pair_mask_information") from None
    excess = np.maximum(mi - null, 0.0)
    return dict(pairs=len(rows), mi=float(mi.mean()), null=float(null.mean()), excess=float(excess.mean()),
                sqrt_term=float(np.sqrt(2.0 * excess).mean()), values=float(values.mean()),
                constant=float(constant.mean()))
