"""Training many independent VQ-VAEs at once, each exactly as :func:`vqlib.fit` would (chapters 2–4, 8).

:func:`fit_ensemble` trains R models of the same architecture, each on its own training
set of the same size and with its own ``train_seed``, through the training engine
(:mod:`vqlib.models.engine`): the R models' weights are stacked into tensors of shape (R, …),
every linear layer becomes one ``torch.baddbmm``, and one elementwise Adam
(:class:`vqlib.models.engine.Adam`) over the stacked tensors with loss Σ_r loss_r gives each model
exactly its own Adam update.

Everything else that :func:`vqlib.fit` does is done per model with that model's own
random generator, in the same order: the data-dependent start (encoder rescaling and
k-means codebook, for all models at once by :func:`vqlib.models.engine.init_codebooks`), the batch
order of every epoch, the EMA codebook step after each batch, the dead-code reset after
each epoch and, for the softmax quantizer, the latent draws (from a generator seeded like
``fit``'s global one). So a model trained here ends with the weights it would have after
``fit`` with the same construction, data and seed, up to float rounding (batched and
single matrix products may round differently); ``tests/models/test_ensemble.py`` checks how
close. ``fit``'s per-epoch evaluation is skipped: it never changes the weights (it runs in
evaluation mode with its own generator); the final one is batched too.

Models are trained in chunks of at most ``chunk_size`` so that the stacked tensors fit
the device's memory; the chunking does not change any model's result.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .._checks import check_seed, positive_int, renamed
from ..data import check_images
from ..device import resolve_device
from .engine import Stack, chunk_size_for, evaluate_stack, init_codebooks, train
from .fit import check_lr, check_training_set
from .vqvae import VQVAE

__all__ = ["fit_ensemble", "EnsembleHistory"]


@dataclass
class EnsembleHistory:
    """What :func:`fit_ensemble` returns (chapters 2–4, 8).

    The ``train_seeds``, the shared configuration and, when asked for, each model's final mean
    training loss (evaluation mode, as ``History.final.train_loss``).

    Attributes
    ----------
    train_seeds : list of R int
    config : dict
        The models' configuration (without their construction seed) with ``epochs``, ``batch_size``, ``lr``.
    train_loss : list of R float or None
        None unless ``evaluate=True``.
    chunks : list of int
        The chunk sizes used, in order (they sum to R).

    See also: :func:`fit_ensemble`, :class:`vqlib.models.History`; chapter 2.
    """

    train_seeds: list[int]
    config: dict
    train_loss: list[float] | None = None
    chunks: list[int] = field(default_factory=list)  # the chunk sizes used, in order

    @property
    def seeds(self) -> list[int]:
        """Deprecated name of :attr:`train_seeds` (a ``DeprecationWarning``) (chapters 2–4, 8)."""

        warnings.warn("EnsembleHistory.seeds is deprecated and will be removed in the next release; "
                      "use EnsembleHistory.train_seeds", DeprecationWarning, stacklevel=2)
        return self.train_seeds


def _signature(model: VQVAE) -> tuple:
    config = {k: v for k, v in model.config.items() if k != "seed"}
    trainable = tuple(name for name, p in model.named_parameters() if p.requires_grad)
    return (tuple(sorted(config.items(), key=lambda kv: kv[0])), model.quantizer.update,
            model.dead_code_reset, trainable)


def fit_ensemble(
    models: list[VQVAE],
    xs,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    train_seeds=0,
    *,
    device=None,
    chunk_size: int | None = None,
    evaluate: bool = True,
    kl_weight: float = 0.0,
    progress: bool = False,
    seeds=None,
) -> EnsembleHistory:
    """Train ``models`` (R VQ-VAEs of one architecture) in place, model r on ``xs[r]`` (chapters 2–4, 8).

    Model r ends as ``vqlib.fit(models[r], xs[r], epochs, batch_size, lr,
    train_seed=train_seeds[r])`` would leave it (up to float rounding), in evaluation mode on
    ``device``. Used by :func:`vqlib.run_supersample` (chapters 2–4) and chapter 8's
    :func:`vqlib.studies.capacity.capacity_runs`.

    Parameters
    ----------
    models : list of R VQVAE
        Distinct models of one architecture and training configuration (only the seed may differ).
    xs : Tensor (R, N, C, H, W) or list of R tensors (N, C, H, W), values in [0, 1]
        Model r's training set; every N the same.
    epochs, batch_size, lr
        As in :func:`vqlib.fit`.
    train_seeds : int or list of R int
        One seed for all or one per model (``seeds=`` is its deprecated name).
    device : str or torch.device, optional
        Default :func:`vqlib.default_device`.
    chunk_size : int, optional
        Caps how many models train together (default: what fits in about 512 MB on the CPU, a
        quarter of the free memory on a GPU); no effect on any model's result.
    evaluate : bool
        Compute each model's final mean training loss as ``fit`` reports it.
    kl_weight : float
        Must be 0: the prior penalty of chapter 7 is trained by ``fit`` only.
    progress : bool
        A progress bar over the chunks (needs tqdm).

    Returns
    -------
    EnsembleHistory

    Raises
    ------
    ValueError
        Naming the argument: ``models`` empty, holding a non-VQVAE or one model twice, or mixing
        architectures; ``xs`` not one training set per model or of different sizes; ``train_seeds``
        of the wrong length; ``kl_weight`` ≠ 0; and as :func:`vqlib.fit` for the rest.
    FloatingPointError
        When, with ``evaluate``, some model's loss is not finite (training diverged).

    Warns
    -----
    UserWarning
        As :func:`vqlib.fit`, for a codebook far larger than the encoder outputs.

    See also: :func:`vqlib.fit`, :func:`vqlib.models.engine.train`, :func:`vqlib.run_supersample`; chapters 2–4, 8.
    """
    if not isinstance(models, (list, tuple)) or not models:
        raise ValueError("models must be a non-empty list of vqlib.VQVAE")
    for r, m in enumerate(models):
        if not isinstance(m, VQVAE):
            raise ValueError(f"models must hold vqlib.VQVAE instances, got {type(m).__name__}")
        first = next(i for i, other in enumerate(models) if other is m)
        if first != r:  # each model trains in place: one object twice would be trained twice over
            raise ValueError(f"models[{r}] is models[{first}]: every entry must be a distinct model")
    if kl_weight != 0:
        raise ValueError(f"fit_ensemble trains without a prior penalty; got kl_weight={kl_weight!r} "
                         "(use vqlib.fit for kl_weight > 0)")
    R = len(models)
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    lr = check_lr(lr)
    seeds = renamed(train_seeds, seeds, "train_seeds", "seeds", "fit_ensemble", default=0)
    if isinstance(seeds, Tensor):
        seeds = seeds.tolist()  # Python ints (or floats, refused below) instead of 0-d tensors
    if isinstance(seeds, (list, tuple)):
        seeds = [check_seed(s, "train_seeds entry") for s in seeds]
        if len(seeds) != R:
            raise ValueError(f"train_seeds has {len(seeds)} entries for {R} models")
    else:
        seeds = [check_seed(seeds, "train_seeds")] * R
    if isinstance(xs, Tensor) and xs.dim() == 5:
        xs = list(xs)
    if not isinstance(xs, (list, tuple)) or len(xs) != R:
        raise ValueError(f"xs must hold one training set per model ({R}), got "
                         f"{len(xs) if isinstance(xs, (list, tuple)) else type(xs).__name__}")
    xs = [check_images(x, name=f"xs[{r}]", in_shape=models[0].in_shape) for r, x in enumerate(xs)]
    sizes = {len(x) for x in xs}
    if len(sizes) != 1:
        raise ValueError(f"every training set must have the same size, got sizes {sorted(sizes)}")
    sig = _signature(models[0])
    for r, m in enumerate(models):
        if _signature(m) != sig:
            raise ValueError(f"models[{r}] differs from models[0] in architecture or in what it trains; "
                             "an ensemble needs one architecture (only the seed may differ)")
    dev = resolve_device(device)
    n = sizes.pop()
    # one architecture and one n: one check does for all (a model that starts from data, if any)
    fresh = [r for r, m in enumerate(models) if not bool(m.codebook_initialised)]
    check_training_set(models[fresh[0] if fresh else 0], n, name=f"xs[{fresh[0] if fresh else 0}]")
    if chunk_size is None:
        chunk_size = chunk_size_for(models[0], batch_size, n, dev)
    chunk_size = positive_int(chunk_size, "chunk_size")
    history = EnsembleHistory(train_seeds=list(seeds), config=dict(
        {k: v for k, v in models[0].config.items() if k != "seed"}, epochs=epochs, batch_size=batch_size, lr=lr))
    starts = range(0, R, chunk_size)
    if progress:
        from tqdm.auto import tqdm  # only when a progress bar is asked for

        starts = tqdm(starts, desc="model chunks", leave=False)
    losses = []
    # what every model holds before: put back if training diverges, so no model is left half trained or NaN
    before = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in models]
    try:
        for a in starts:
            b = min(R, a + chunk_size)
            chunk = models[a:b]
            X = torch.stack(xs[a:b]).to(dev)
            gens = [torch.Generator().manual_seed(s) for s in seeds[a:b]]
            for m in chunk:
                m.to(dev)
            # the data-dependent start of every fresh model, from its own generator, as fit draws it
            fresh = [r for r, m in enumerate(chunk) if not bool(m.codebook_initialised)]
            if fresh:
                samples = torch.stack([X[r, torch.randperm(n, generator=gens[r])[:4096].to(dev)] for r in fresh])
                init_codebooks([chunk[r] for r in fresh], samples, [gens[r] for r in fresh])
            for m in chunk:
                m.quantizer.recent_count.zero_()
            stack = Stack.of(chunk, dev)
            # fit draws the softmax latents from the global generator seeded with its seed
            sampler = None
            if models[0].quantizer.quantizer == "softmax":
                sampler = [torch.Generator(device=dev).manual_seed(s) for s in seeds[a:b]]
            train(stack, X, epochs=epochs, lr=lr, batch_size=batch_size, generators=gens, sampler=sampler)
            stack.copy_to(chunk)
            for m in chunk:
                m.eval()
            if evaluate:
                samplers = None
                if sampler is not None:
                    samplers = [torch.Generator(device=dev).manual_seed(s) for s in seeds[a:b]]
                losses.append(evaluate_stack(stack, X, samplers=samplers)[0].mean(1))
            history.chunks.append(b - a)
    except FloatingPointError:
        for m, state in zip(models, before):
            m.load_state_dict(state)
            m.eval()
        raise
    if evaluate:
        history.train_loss = torch.cat(losses).tolist()
        if not all(map(math.isfinite, history.train_loss)):  # never a silent NaN (train checks every epoch too)
            for m, state in zip(models, before):
                m.load_state_dict(state)
            raise FloatingPointError(f"training diverged: some models' losses are not finite (lr={lr!r}); "
                                     "try a smaller lr")
    return history
