"""k-means: the codebook's data-dependent start and chapter 2's toy learner (chapters 1, 2).

:func:`kmeans_batched` runs k-means++ seeding and Lloyd steps for R point sets at once (every
VQ-VAE's codebook starts from it, :func:`vqlib.models.engine.init_codebooks`); :func:`kmeans`
is one run of it. :func:`kmeans_learners` is chapter 2's toy learner: k-means on the training
inputs, no decoder, each point reconstructed by its nearest centre.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._checks import fits_in_memory, positive_int, short

__all__ = ["kmeans", "kmeans_batched", "kmeans_learner", "kmeans_learners"]


def kmeans(z: Tensor, K: int, *, iters: int = 25, generator: torch.Generator | None = None) -> Tensor:
    """K centres of the rows of ``z`` by Lloyd's algorithm with k-means++ seeding (chapter 1).

    Used to initialise a codebook on the first encodings. With fewer distinct rows than K the
    remaining centres are copies of data rows, so every centre is finite. One run of
    :func:`kmeans_batched`, which the training engine uses for many models at once.

    Parameters
    ----------
    z : Tensor (m, D), m ≥ 1
        The rows to cluster.
    K : int
        Number of centres.
    iters : int
        Lloyd steps at most (they stop early at a fixed point).
    generator : torch.Generator, optional
        Draws the seeding (None: the global generator).

    Returns
    -------
    Tensor (K, D)
        The centres.

    Raises
    ------
    ValueError
        Naming ``K`` when it is not an integer ≥ 1; naming ``z`` when it is not 2-D with at least one row.

    See also: :func:`kmeans_batched`, :meth:`vqlib.VQVAE.init_codebook`; chapter 1.
    """
    K = positive_int(K, "K")
    if not isinstance(z, Tensor):
        raise ValueError(f"z must be a torch tensor of shape (m, D), got {type(z).__name__}")
    iters = positive_int(iters, "iters", minimum=0)
    if z.dim() != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"z must hold at least one row of at least one coordinate to initialise a codebook, "
                         f"got shape {tuple(z.shape)}")
    return kmeans_batched(z[None], K, iters=iters, generators=[generator])[0]


def kmeans_batched(z: Tensor, K: int, *, iters: int = 25, generators=None, uniforms: Tensor | None = None) -> Tensor:
    """R k-means problems at once: k-means++ seeding, then up to ``iters`` Lloyd steps (chapters 1–4, 8).

    The seeding picks each run's next centre with probability proportional to its squared
    distance to the closest centre so far, drawn in one of two ways:

    * ``generators`` (one ``torch.Generator`` per run, or None for the global one): run r
      draws from its own generator exactly as ``torch.multinomial`` does (one exponential
      variate per row, the row of largest weight / variate): every run starts as it would
      alone. The codebook start of every VQ-VAE (:meth:`vqlib.VQVAE.init_codebook`).
    * ``uniforms`` (K,): the same numbers for every run, each picking a row by inverting
      the cumulative weights, so a run's centres depend only on its rows (chapter 2's toy
      learner, :func:`vqlib.models.kmeans_learners`).

    A run whose rows all lie on centres already takes a uniformly drawn row. The Lloyd
    steps assign every row to its nearest centre and move each centre to the mean of its
    rows (a centre without rows stays); they stop early once no assignment changes, which
    leaves every later step a no-op, so the result is that of ``iters`` steps.

    Parameters
    ----------
    z : Tensor (R, m, D), m ≥ 1
        Each run's rows.
    K : int
        Centres per run.
    iters : int
        Lloyd steps at most.
    generators : list of R torch.Generator or None, optional
        One per run; exactly one of ``generators`` and ``uniforms`` is given.
    uniforms : Tensor (K,), values in [0, 1), optional
        Shared seeding numbers.

    Returns
    -------
    Tensor (R, K, D)
        The centres of every run.

    Raises
    ------
    ValueError
        Naming ``K`` when it is not an integer ≥ 1, ``z`` when it holds no rows, and ``generators``
        when both or neither of ``generators`` and ``uniforms`` are given or it has not R entries.

    See also: :func:`kmeans`, :func:`kmeans_learners`, :func:`vqlib.models.engine.init_codebooks`; chapters 1, 2.
    """
    K = positive_int(K, "K")
    if not isinstance(z, Tensor) or z.dim() != 3:
        raise ValueError(f"z must be a torch tensor of shape (R, m, D), got {type(z).__name__}")
    if z.is_complex() or not z.is_floating_point():
        raise ValueError(f"z must hold real numbers (a floating tensor), got dtype {z.dtype}")
    R, m, _ = z.shape
    fits_in_memory(z.element_size() * R * K * max(z.shape[-1], 1), f"K (= {short(K)} centres of kmeans_batched)",
                   need="for its centres")
    if z.numel() and not bool(torch.isfinite(z).all()):
        raise ValueError("z must be finite, found NaN or infinite values")
    if m == 0:
        raise ValueError("z must hold at least one row to initialise a codebook")
    if (generators is None) == (uniforms is None):
        raise ValueError("kmeans_batched needs either generators (one per run) or uniforms (K,), not both")
    if generators is not None and len(generators) != R:
        raise ValueError(f"generators has {len(generators)} entries for {R} runs")
    z = z.detach()
    runs = torch.arange(R, device=z.device)
    if uniforms is not None:
        c = _seed_centres(z, K, lambda k, closest: _inverse_cdf_pick(uniforms, k, closest, m))
    else:
        states = [_rng_state(g) for g in generators]
        picks = _MultinomialPicks(generators, m, K)
        c = _seed_centres(z, K, picks)
        for r in picks.fallback:  # its rows all met centres before round K: seeded again, round by round
            _set_rng_state(generators[r], states[r])
            c[r] = _seed_centres(z[r:r + 1], K, _MultinomialPicks([generators[r]], m, K, block=1))[0]
    zz = (z * z).sum(-1, keepdim=True)
    rows = max(16, 2 ** 17 // max(1, R * K))  # the (R, rows, K) distances of a block stay in the cache
    previous = None
    for _ in range(iters):
        cT, cc = c.transpose(1, 2), (c * c).sum(-1).unsqueeze(1)
        assign = torch.cat([torch.baddbmm(zz[:, a:a + rows] + cc, z[:, a:a + rows], cT, alpha=-2).argmin(-1)
                            for a in range(0, m, rows)], 1)  # every row's nearest centre, (R, m)
        if previous is not None and torch.equal(assign, previous):
            break  # a fixed point: every further step recomputes the same centres
        slot = (assign + runs[:, None] * K).reshape(-1)
        counts = torch.zeros(R * K, dtype=z.dtype, device=z.device).index_add_(
            0, slot, torch.ones_like(slot, dtype=z.dtype)).reshape(R, K, 1)
        sums = torch.zeros(R * K, z.shape[-1], dtype=z.dtype, device=z.device).index_add_(
            0, slot, z.reshape(-1, z.shape[-1])).reshape(R, K, -1)
        c = torch.where(counts > 0, sums / counts.clamp_min(1), c)
        previous = assign
    return c


def _seed_centres(z: Tensor, K: int, pick) -> Tensor:
    """k-means++ seeding of R runs at once: ``pick(k, closest)`` gives every run's k-th row
    (``closest`` (R, m): squared distance of each row to its closest centre so far; None for k = 0)."""
    runs = torch.arange(z.shape[0], device=z.device)
    centres = [z[runs, pick(0, None).to(z.device)]]
    closest = (z - centres[0][:, None]).pow(2).sum(-1)  # (R, m), exact: a row on a centre has 0
    for k in range(1, K):
        centres.append(z[runs, pick(k, closest).to(z.device)])
        closest = torch.minimum(closest, (z - centres[-1][:, None]).pow(2).sum(-1))
    return torch.stack(centres, 1)  # (R, K, D)


def _inverse_cdf_pick(uniforms: Tensor, k: int, closest: Tensor | None, m: int) -> Tensor:
    """Chapter 2's toy learner: the row where the cumulative weights pass ``uniforms[k]`` × their total."""
    R = 1 if closest is None else closest.shape[0]
    device = uniforms.device if closest is None else closest.device
    uniform = torch.full((R,), min(int(uniforms[k] * m), m - 1), device=device)
    if closest is None:
        return uniform
    total = closest.sum(-1)
    weighted = torch.searchsorted(closest.cumsum(-1), (uniforms[k] * total)[:, None], right=True)[:, 0]
    return torch.where(total > 0, weighted.clamp_max(m - 1), uniform)  # every row on a centre: any row will do


class _MultinomialPicks:
    """Each run's picks as ``torch.multinomial(weights, 1, generator)`` makes them (VQ-VAE codebook starts).

    torch.multinomial draws one sample as the row of largest weight / Exp(1) variate, with m
    variates from the generator per call, and a generator gives its variates in the same
    order whether they are drawn in one call or in many: so each run's next ``block`` rounds
    are drawn at once. A run whose rows all lie on centres must draw a uniform row instead
    (``randint``) at that round, which the block has run ahead of: it is listed in
    ``fallback``, and :func:`kmeans_batched` seeds it again from its generator's starting
    state one round at a time (``block=1``), exactly as one ``torch.multinomial`` per round.
    """

    def __init__(self, generators, m: int, K: int, block: int = 32):
        self.generators, self.m, self.K, self.block = list(generators), m, K, block
        self.q: Tensor | None = None
        self.start = 0
        self.fallback: list[int] = []

    def __call__(self, k: int, closest: Tensor | None) -> Tensor:
        gens, m = self.generators, self.m
        if closest is None:
            return torch.tensor([torch.randint(m, (1,), generator=g, device="cpu").item() for g in gens])
        total = closest.sum(-1, keepdim=True)
        weights = (closest / total).cpu()
        if self.block == 1:  # one run, one round at a time: torch.multinomial's own draws
            if float(total[0, 0]) <= 0:  # every row already coincides with a centre
                pick = torch.randint(m, (1,), generator=gens[0], device="cpu").item()
            else:
                pick = (weights[0] / torch.empty(m).exponential_(1, generator=gens[0])).argmax().item()
            return torch.tensor([pick])
        if self.q is None or k - self.start >= self.q.shape[1]:
            self.start, rounds = k, min(self.block, self.K - k)
            self.q = torch.empty(len(gens), rounds, m)
            for r, g in enumerate(gens):
                self.q[r].exponential_(1, generator=g)
        for r in (total[:, 0] <= 0).nonzero().squeeze(1).tolist():
            if r not in self.fallback:
                self.fallback.append(r)
        return (weights / self.q[:, k - self.start]).argmax(-1)


def _rng_state(generator):
    return torch.random.get_rng_state() if generator is None else generator.get_state()


def _set_rng_state(generator, state) -> None:
    if generator is None:
        torch.random.set_rng_state(state)
    else:
        generator.set_state(state)



def kmeans_learner(x_train: Tensor, points: Tensor, K: int, *, seed: int = 0) -> tuple[Tensor, np.ndarray]:
    """Chapter 2's toy learner: k-means on the training inputs, no decoder (chapter 2).

    Each point is reconstructed by its nearest centre c, so its loss ‖x − c‖²/d lies in
    [0, 1] (centres are means of inputs in [0, 1]); its latent variable is the centre's
    index. One run of :func:`kmeans_learners`, which trains many at once with the same result.

    Parameters
    ----------
    x_train : Tensor (m, C, H, W) or (m, d), values in [0, 1], m ≥ 1
        The training inputs.
    points : Tensor (N, C, H, W) or (N, d)
        The points evaluated.
    K : int
        Number of centres.
    seed : int
        Seeds the k-means++ seeding.

    Returns
    -------
    losses : Tensor (N,), values in [0, 1]
    posteriors : ndarray (N, 1, K)
        One-hot on each point's nearest centre.

    See also: :func:`kmeans_learners`, :func:`vqlib.run_supersample`; chapter 2.
    """
    losses, post = kmeans_learners(x_train[None], points[None], K, seed=seed)
    return losses[0], post[0]


def kmeans_learners(x_trains: Tensor, points: Tensor, K: int, *, seed: int = 0, iters: int = 25,
                    chunk: int = 256) -> tuple[Tensor, np.ndarray]:
    """R toy learners at once: k-means++ seeding, then ``iters`` Lloyd steps (chapter 2).

    Every run draws the same uniform numbers from ``seed`` (the seeding picks a row by
    inverting the cumulative k-means++ weights), so a run's result depends only on its training
    inputs, as if trained alone. The k-means is the one the VQ-VAEs' codebooks start from
    (:func:`vqlib.models.kmeans_batched`), in float64. Each point's loss is min_k ‖x − c_k‖²/d.

    Parameters
    ----------
    x_trains : Tensor (R, m, ...), values in [0, 1], m ≥ 1
        Each run's training inputs.
    points : Tensor (R, N, ...)
        The points each run is evaluated on.
    K : int
        Centres per run.
    seed : int
        Seeds the shared uniform numbers.
    iters : int
        Lloyd steps at most.
    chunk : int
        Runs computed together (no effect on the result).

    Returns
    -------
    losses : Tensor (R, N), float32, values in [0, 1]
    posteriors : ndarray (R, N, 1, K), float32, one-hot

    Raises
    ------
    ValueError
        Naming ``K`` when it is not an integer ≥ 1, ``x_trains`` when a run has no training input.

    See also: :func:`kmeans_learner`, :func:`kmeans_batched`; chapter 2.
    """
    K = positive_int(K, "K")
    R, m = x_trains.shape[:2]
    if m == 0:
        raise ValueError("x_trains must hold at least one training input per run")
    u = torch.rand(K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out_losses, out_posts = [], []
    for start in range(0, R, chunk):
        z = x_trains[start : start + chunk].reshape(-1, m, int(np.prod(x_trains.shape[2:]))).double()
        flat = points[start : start + chunk].reshape(len(z), points.shape[1], -1).double()
        c = kmeans_batched(z, K, iters=iters, uniforms=u)  # the engine's k-means, with shared uniforms
        d = _batched_sq_dist(flat, c)  # (r, N, K)
        out_losses.append((d.min(-1).values / flat.shape[-1]).clamp(0, 1).float())
        post = np.zeros((*d.shape[:2], 1, K), dtype=np.float32)
        np.put_along_axis(post[:, :, 0], d.argmin(-1).numpy()[..., None], 1.0, axis=-1)
        out_posts.append(post)
    return torch.cat(out_losses), np.concatenate(out_posts)


def _batched_sq_dist(z: Tensor, c: Tensor) -> Tensor:
    """‖z_i − c_k‖² for every run: z (r, m, d), c (r, K, d) → (r, m, K), clamped at 0."""
    d = (z * z).sum(-1, keepdim=True) - 2 * z @ c.transpose(1, 2) + (c * c).sum(-1)[:, None, :]
    return d.clamp_min(0.0)

