"""Training and evaluating VQ-VAEs, seeded and reproducible on the CPU (chapter 1).

:func:`fit` trains in place and returns the history; :func:`reconstruction_loss` is
the per-input loss of the trained model in evaluation mode (EMA statistics frozen),
which is what every bound of the book is computed from.
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from .._checks import check_seed, nonnegative_float, real_array, renamed
from ..data import check_images
from ..device import resolve_device
from ..tables import rows_to_csv
from .engine import Adam, check_lr
from .metrics import _per_input_loss, _size, codebook_usage, normalised_mse
from .quantizers import check_beta, sphere_distances
from .vqvae import VQVAE

__all__ = ["fit", "History", "EpochRecord", "reconstruction_loss", "encode_indices", "evaluate_model", "model_summary",
           "train_reference"]


@dataclass
class EpochRecord:
    """One epoch of :func:`fit`: the model's state at the epoch's end, measured in evaluation mode (chapter 1).

    Attributes
    ----------
    epoch : int
        1, 2, …
    train_loss : float
        Mean per-input reconstruction loss on the training set, in evaluation mode.
    perplexity, used_fraction : float
        Codebook usage on the training set (:func:`vqlib.models.codebook_usage`).
    dead_codes_reset : int
        How many unused codes moved onto encoder outputs after the epoch.
    val_loss : float or None
        Mean loss on ``x_val`` when :func:`fit` is given one.
    beta : float or None
        The softmax quantizer's β at the end of the epoch (a learned one moves); None for the nearest.

    See also: :class:`History`, :func:`fit`; chapter 1.
    """
    epoch: int
    train_loss: float  # mean per-input reconstruction loss on the training set, eval mode
    perplexity: float
    used_fraction: float
    dead_codes_reset: int
    val_loss: float | None = None
    beta: float | None = None  # the softmax quantizer's β at the end of the epoch (a learned one moves)


@dataclass
class History:
    """Per-epoch records of one :func:`fit` call, with its ``train_seed`` and configuration (chapter 1).

    Attributes
    ----------
    train_seed : int
        The seed everything random in the call was drawn from.
    config : dict
        The model's configuration with ``epochs``, ``batch_size`` and ``lr``.
    epochs : list of EpochRecord
        One per epoch, in order.

    See also: :func:`fit`, :class:`EpochRecord`; chapter 1.
    """

    train_seed: int
    config: dict
    epochs: list[EpochRecord] = field(default_factory=list)

    @property
    def seed(self) -> int:
        """Deprecated name of :attr:`train_seed` (a ``DeprecationWarning``) (chapter 1)."""
        warnings.warn("History.seed is deprecated and will be removed in the next release; use History.train_seed",
                      DeprecationWarning, stacklevel=2)
        return self.train_seed

    @property
    def final(self) -> EpochRecord:
        """The last epoch's :class:`EpochRecord` (chapter 1)."""
        return self.epochs[-1]

    def rows(self) -> list[dict]:
        """One dict per epoch, with ``train_seed`` in every row (a tidy table) (chapter 1)."""
        return [{"train_seed": self.train_seed, **asdict(r)} for r in self.epochs]

    def to_csv(self, path=None) -> str:
        """The rows as CSV text (written to ``path`` when given) (chapter 1).

        Parameters
        ----------
        path : str or path-like, optional

        Returns
        -------
        str
            The CSV text, header first.

        See also: :meth:`rows`; chapter 1.
        """
        return rows_to_csv(self.rows(), path)


#: A codebook of at least this many codes, far more than the encoder outputs it is trained
#: on, draws a warning: most codes can never be used, and each costs time and memory.
LARGE_CODEBOOK = 1024


def check_model(model, name: str = "model", *, finite: bool = False) -> VQVAE:
    """``model`` if it is a :class:`vqlib.VQVAE`, else ``ValueError`` naming ``name`` (chapter 1).

    With ``finite``, a model with a NaN or an infinite weight or EMA statistic (one that diverged) is
    refused too, naming the tensor: it would only give NaN losses. One pass over the weights.
    """
    if not isinstance(model, VQVAE):
        raise ValueError(f"{name} must be a vqlib.VQVAE, got {type(model).__name__}")
    if finite:
        bad = nonfinite_tensor(model)
        if bad is not None:
            raise ValueError(f"{name} has non-finite weights ({bad} holds NaN or inf): it diverged in training; "
                             "train it again with a smaller lr")
    return model


def nonfinite_tensor(model) -> str | None:
    """The name of the first floating tensor of ``model``'s state (weights, EMA statistics) holding a NaN or
    an inf, or None when every one is finite (chapter 1). One pass, one synchronisation."""
    state = [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]
    if not state:
        return None
    flags = torch.stack([torch.isfinite(v).all() for _, v in state])
    if bool(flags.all()):
        return None
    return state[int((~flags).nonzero()[0, 0])][0]


def check_training_set(model: VQVAE, n: int, name: str = "x") -> None:
    """What :func:`fit` and :func:`vqlib.models.fit_ensemble` ask of ``n`` training inputs (chapters 1–4).

    A codebook not yet initialised starts from the data (:meth:`VQVAE.init_codebook`),
    which needs at least 2 inputs: one input has no spread, and its start would be NaN.
    A codebook of ``LARGE_CODEBOOK`` codes or more that exceeds 4 × the n·L encoder
    outputs gives a warning: at most n·L codes can ever be chosen on the training data.
    """
    if n < 2 and not bool(model.codebook_initialised):
        raise ValueError(f"{name} must hold at least 2 inputs to initialise the codebook from data, got {n}")
    outputs = n * model.L
    if model.K >= LARGE_CODEBOOK and model.K > 4 * outputs:
        warnings.warn(f"K={model.K} codes far exceed the {outputs} encoder outputs of {n} training inputs "
                      f"(L={model.L}): at most {outputs} codes can be used, and every code costs time and memory",
                      UserWarning, stacklevel=3)


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm  # only when a progress bar is asked for

    return tqdm(iterable, desc=desc, leave=False)


def fit(
    model: VQVAE,
    x,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    train_seed: int = 0,
    progress: bool = False,
    *,
    x_val=None,
    device=None,
    kl_weight: float = 0.0,
    kl_prior=None,
    seed: int | None = None,
) -> History:
    """Train ``model`` on images ``x`` in place and return its history (chapter 1; the KL penalty: chapter 7).

    Everything random (codebook initialisation, batch order, softmax sampling) is drawn
    from ``train_seed``; the global random state is left as it was. This is the single-model
    path: the training engine (:mod:`vqlib.models.engine`, :func:`vqlib.models.fit_ensemble`)
    trains many models at once, each as this function would, and shares its optimiser and
    codebook start. The same model construction, data and seed give the same numbers on the CPU.
    The model ends in evaluation mode, on ``device``.

    ``kl_weight`` > 0 adds the KL-to-prior penalty of chapter 7 to every batch loss:
    ``kl_weight`` × the batch mean of Σ_l KL(q_β,l(·|x) ‖ π_l), with π_l the rows of
    ``kl_prior`` and q_β(k|x) ∝ exp(−β‖f(x)_l − e_k‖²) at the model's β: the softmax
    quantizer's own posterior, and for the nearest quantizer its tempered version (the one-hot
    nearest-code posterior passes no gradient).

    Parameters
    ----------
    model : VQVAE
        Trained in place; a codebook not yet initialised starts from the data
        (:meth:`VQVAE.init_codebook`).
    x : Tensor or array (N, C, H, W), values in [0, 1], of the model's ``in_shape``
        The training set; N ≥ 2 unless the codebook is already initialised.
    epochs, batch_size : int
        Passes over ``x`` and inputs per Adam step.
    lr : float > 0
        Adam's learning rate.
    train_seed : int in [0, 2⁶³ − 1]
        Seeds everything random. (``seed=`` is its deprecated name.)
    progress : bool
        A progress bar over the epochs (needs tqdm).
    x_val : Tensor or array (M, C, H, W), optional
        Evaluated after every epoch (``EpochRecord.val_loss``).
    device : str or torch.device, optional
        Default: :func:`vqlib.default_device`.
    kl_weight : float ≥ 0
        Weight of the KL penalty (0: none).
    kl_prior : array (K,) or (L, K), positive probabilities, optional
        π_l, summing to 1 over the codes (default uniform).

    Returns
    -------
    History
        One :class:`EpochRecord` per epoch.

    Raises
    ------
    ValueError
        Naming the argument and the bad value (``x`` with fewer than 2 inputs for a fresh codebook
        included).
    FloatingPointError
        When the loss is not finite after an epoch (training diverged; try a smaller lr).

    Warns
    -----
    UserWarning
        When K ≥ ``LARGE_CODEBOOK`` codes exceed 4 × the N·L encoder outputs: most can never be used.

    See also: :func:`vqlib.models.fit_ensemble`, :func:`reconstruction_loss`, :func:`train_reference`; chapter 1.
    """

    model = check_model(model, finite=True)
    epochs = _size(epochs, "epochs")
    batch_size = _size(batch_size, "batch_size")
    lr = check_lr(lr)
    seed = check_seed(renamed(train_seed, seed, "train_seed", "seed", "fit", default=0), "train_seed")
    x = check_images(x, name="x", in_shape=model.in_shape).detach()
    if x_val is not None:
        x_val = check_images(x_val, name="x_val", in_shape=model.in_shape).detach()
    dev = resolve_device(device)
    log_prior = _kl_log_prior(model, kl_weight, kl_prior)
    kl_weight = float(kl_weight)
    check_training_set(model, len(x))
    # what the model holds before training: put back if training diverges, so no NaN weight is left behind
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.to(dev)
    x = x.to(dev)
    history = History(train_seed=seed, config=dict(model.config, epochs=epochs, batch_size=batch_size, lr=lr))
    gen = torch.Generator().manual_seed(seed)
    fork = [dev.index or 0] if dev.type == "cuda" else []
    epoch = 0
    try:
        with torch.random.fork_rng(devices=fork):
            if fork:
                torch.manual_seed(seed)
            else:  # on the CPU only the CPU generator draws (softmax latents)
                torch.default_generator.manual_seed(seed)
            if not bool(model.codebook_initialised):
                sample = x[torch.randperm(len(x), generator=gen)[:4096].to(dev)]
                model.init_codebook(sample, generator=gen)
            opt = Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
            model.quantizer.recent_count.zero_()
            for epoch in _progress(range(1, epochs + 1), progress, "epochs"):
                model.train()
                order = torch.randperm(len(x), generator=gen).to(dev)
                finite = torch.ones((), dtype=torch.bool, device=dev)  # every step's loss, checked once per epoch
                for start in range(0, len(x), batch_size):
                    out = model._forward(x[order[start : start + batch_size]])  # x was checked above
                    loss = out.loss
                    if log_prior is not None:  # chapter 7: KL(q_β(·|x) ‖ π) summed over positions
                        d2 = sphere_distances(out.z_e.reshape(-1, model.code_dim), model.quantizer.codes)
                        log_q = torch.log_softmax(-model.beta * d2, dim=-1).reshape(out.probs.shape)
                        kl = (log_q.exp() * (log_q - log_prior.to(dev))).sum((-1, -2)).mean()
                        loss = loss + kl_weight * kl
                    finite &= torch.isfinite(loss.detach())
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                reset = 0
                if model.dead_code_reset:
                    pool = x[order[: min(len(x), 1024)]]
                    with torch.no_grad():
                        z = model._encode(pool).reshape(-1, model.code_dim)
                    reset = model.quantizer._reset_dead_codes(z, generator=gen)
                model.eval()
                bad = nonfinite_tensor(model)
                if bad is not None or not bool(finite):  # never a silent NaN: stop at the first epoch that has one
                    what = f"non-finite weights ({bad})" if bad is not None else "a non-finite loss"
                    raise FloatingPointError(f"training diverged: {what} in epoch {epoch} (lr={lr!r}); "
                                             "try a smaller lr")
                losses, indices = _evaluate(model, x, seed=seed)
                if not torch.isfinite(losses).all():
                    raise FloatingPointError(f"training diverged: the loss is not finite after epoch {epoch} "
                                             f"(lr={lr!r}); try a smaller lr")
                usage = codebook_usage(indices, model.K)
                val = float(_evaluate(model, x_val, seed=seed)[0].mean()) if x_val is not None else None
                history.epochs.append(EpochRecord(
                    epoch=epoch, train_loss=float(losses.mean()), perplexity=usage.perplexity,
                    used_fraction=usage.used_fraction, dead_codes_reset=reset, val_loss=val,
                    beta=model.beta if model.quantizer.quantizer == "softmax" else None,
                ))
    except FloatingPointError as e:  # diverged: the model goes back to what it was, and the error says where
        model.load_state_dict(before)
        model.quantizer.recent_count.zero_()
        model.eval()
        if str(e).startswith("training diverged"):
            raise
        raise FloatingPointError(f"training diverged in epoch {epoch} (lr={lr!r}): {e}; try a smaller lr") from None
    model.eval()
    return history


def _kl_log_prior(model: VQVAE, kl_weight, kl_prior) -> Tensor | None:
    """log π as an (L, K) tensor for the KL penalty of :func:`fit`, or None without one."""
    kl_weight = nonnegative_float(kl_weight, "kl_weight")
    if kl_weight == 0:
        return None
    if not (model.beta > 0 and model.beta < float("inf")):
        raise ValueError(f"kl_weight > 0 needs the model's beta to be a finite number > 0, got {model.beta!r}")
    if kl_prior is None:
        return torch.full((model.L, model.K), -float(torch.log(torch.tensor(float(model.K)))))
    prior = torch.as_tensor(real_array(kl_prior, "kl_prior", finite=False), dtype=torch.float32)
    if prior.dim() == 1:
        prior = prior.expand(model.L, -1)
    if tuple(prior.shape) != (model.L, model.K):
        raise ValueError(f"kl_prior must have shape (K={model.K},) or (L={model.L}, K={model.K}), "
                         f"got {tuple(prior.shape)}")
    if not torch.isfinite(prior).all() or (prior <= 0).any() or not torch.allclose(prior.sum(-1), torch.ones(1)):
        raise ValueError("kl_prior must hold positive probabilities summing to 1 over the K codes")
    return prior.log()


@torch.no_grad()
def _evaluate(model: VQVAE, x: Tensor, *, seed: int, batch_size: int = 1024) -> tuple[Tensor, Tensor]:
    """Per-input losses and latent variables in evaluation mode (CPU tensors)."""
    was_training = model.training
    model.eval()
    dev = model.device
    gen = torch.Generator(device=dev).manual_seed(seed) if model.quantizer.quantizer == "softmax" else None
    losses, indices = [], []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(dev)
            out = model._forward(xb, generator=gen)  # x was checked by the caller
            losses.append(_per_input_loss(xb, out.x_hat).cpu())
            indices.append(out.indices.cpu())
    finally:
        model.train(was_training)
    return torch.cat(losses), torch.cat(indices)


def reconstruction_loss(model: VQVAE, x, *, seed: int = 0, batch_size: int = 1024) -> Tensor:
    """Per-input losses ℓ(x, x̂) = ‖x − x̂‖²/d in [0, 1] (chapter 1 onwards).

    Computed in evaluation mode (the EMA codebook is not touched); the first part of
    :func:`evaluate_model`. For the softmax quantizer the latent variables are sampled with a
    generator seeded by ``seed``.

    Parameters
    ----------
    model : VQVAE
    x : Tensor or array (N, C, H, W), values in [0, 1]
    seed : int
        The softmax quantizer's draws (ignored by the nearest one).
    batch_size : int
        Inputs per forward pass (no effect on the result).

    Returns
    -------
    Tensor (N,), on the CPU

    Raises
    ------
    ValueError
        Naming the argument, as :func:`evaluate_model`.

    See also: :func:`evaluate_model`, :func:`encode_indices`; chapter 1.
    """
    return evaluate_model(model, x, seed=seed, batch_size=batch_size)[0]


def encode_indices(model: VQVAE, x, *, seed: int = 0, batch_size: int = 1024) -> Tensor:
    """The latent variables J of each input in evaluation mode (chapters 1, 3, 7).

    The second part of :func:`evaluate_model`; for the softmax quantizer J is drawn with a
    generator seeded by ``seed``.

    Parameters
    ----------
    model : VQVAE
    x : Tensor or array (N, C, H, W), values in [0, 1]
    seed : int
        The softmax quantizer's draws (ignored by the nearest one).
    batch_size : int
        Inputs per forward pass (no effect on the result).

    Returns
    -------
    Tensor (N, L), int64 in [0, K), on the CPU

    Raises
    ------
    ValueError
        Naming the argument, as :func:`evaluate_model`.

    See also: :func:`evaluate_model`, :func:`vqlib.models.codebook_usage`, :class:`vqlib.models.AggregatedPrior`;
    chapter 1.
    """
    return evaluate_model(model, x, seed=seed, batch_size=batch_size)[1]


def evaluate_model(model: VQVAE, x, *, seed: int = 0, batch_size: int = 1024) -> tuple[Tensor, Tensor]:
    """Per-input losses and latent variables of one model in evaluation mode, in one pass (chapter 1 onwards).

    The contract of every ``evaluate*`` function of :mod:`vqlib.models`: per-point losses
    ℓ(x, x̂) = ‖x − x̂‖²/d in [0, 1] and latent variables J, on the CPU, with the EMA codebook
    untouched; for the softmax quantizer J is drawn with a generator seeded by ``seed``. The
    batched forms are :func:`vqlib.models.engine.evaluate_models` (R models, (R, N) and
    (R, N, L)) and :func:`vqlib.models.engine.evaluate_stack` (the engine's stacked weights).

    Parameters
    ----------
    model : VQVAE
    x : Tensor or array (N, C, H, W), values in [0, 1], of the model's ``in_shape``
    seed : int
        The softmax quantizer's draws (ignored by the nearest one).
    batch_size : int
        Inputs per forward pass (no effect on the result).

    Returns
    -------
    losses : Tensor (N,)
    indices : Tensor (N, L), int64

    Raises
    ------
    ValueError
        Naming ``model`` when it is not a :class:`VQVAE`, or ``x``, ``seed``, ``batch_size``.

    See also: :func:`reconstruction_loss`, :func:`encode_indices`, :func:`model_summary`; chapter 1.
    """
    x = check_images(x, name="x", in_shape=check_model(model, finite=True).in_shape).detach()
    return _evaluate(model, x, seed=check_seed(seed), batch_size=_size(batch_size, "batch_size"))


def model_summary(model: VQVAE, x, *, seed: int = 0) -> dict:
    """Mean loss, normalised MSE, perplexity and used fraction of ``model`` on ``x`` (chapters 1, 4).

    Formerly ``vqlib.evaluate`` (that name is forwarded with a ``DeprecationWarning``).

    Parameters
    ----------
    model : VQVAE
    x : Tensor or array (N, C, H, W), values in [0, 1]
    seed : int
        The softmax quantizer's draws (ignored by the nearest one).

    Returns
    -------
    dict
        ``{"loss", "nmse", "perplexity", "used_fraction"}``, floats (:func:`vqlib.models.normalised_mse`,
        :func:`vqlib.models.codebook_usage`).

    Raises
    ------
    ValueError
        Naming the argument; also for ``x`` of zero variance (no normalised MSE).

    See also: :func:`evaluate_model`; chapter 1.
    """
    x = check_images(x, name="x", in_shape=check_model(model, finite=True).in_shape).detach()
    losses, indices = _evaluate(model, x, seed=check_seed(seed))
    usage = codebook_usage(indices, model.K)
    return {
        "loss": float(losses.mean()),
        "nmse": normalised_mse(losses, x),
        "perplexity": usage.perplexity,
        "used_fraction": usage.used_fraction,
    }


def train_reference(x, K: int, L: int, *, beta=None, epochs: int = 30, train_seed: int = 0, batch_size: int = 64,
                    lr: float = 2e-3, device=None, **model_kwargs) -> VQVAE:
    """A VQ-VAE trained on ``x`` by :func:`fit`, codebook and decoder then frozen, in evaluation mode (chapters 4, 6).

    The reference whose encoder chapters 4 and 6 retrain on every mask
    (:meth:`VQVAE.freeze_codebook_and_decoder`). ``x`` must be disjoint from every supersample
    the reference is later used with: its codebook and decoder then depend on no mask, the
    assumption of chapter 4's theorem.

    Parameters
    ----------
    x : Tensor or array (N, C, H, W), values in [0, 1]
        The reference's own data.
    K, L : int
        Codes and latent positions.
    beta : None, float > 0 or "learned"
        None: the nearest (deterministic) quantizer, β = ∞ (chapter 4;
        :func:`vqlib.studies.temperature.with_temperature` can give it any β afterwards). A number:
        the softmax quantizer at that β, trained from scratch (chapter 6's stability bound is
        about this model). ``"learned"``: the softmax quantizer with a learned β, fixed at its
        final value once trained.
    epochs, train_seed, batch_size, lr, device
        As in :func:`fit`; ``train_seed`` also seeds the model's construction.
    **model_kwargs
        Passed to :class:`VQVAE` (``hidden``, …).

    Returns
    -------
    VQVAE
        Frozen, in evaluation mode.

    Raises
    ------
    ValueError
        Naming ``quantizer`` when it contradicts ``beta``; otherwise naming the argument, as
        :func:`fit` and :class:`VQVAE`.

    See also: :meth:`VQVAE.freeze_codebook_and_decoder`, :func:`fit`; chapters 4, 6.
    """
    x = check_images(x, name="x")
    train_seed = check_seed(train_seed, "train_seed")
    known = set(inspect.signature(VQVAE.__init__).parameters) - {"self", "in_shape", "K", "L", "beta", "seed"}
    unknown = sorted(set(model_kwargs) - known)
    if unknown:
        raise ValueError(f"train_reference got unknown model argument(s) {unknown}; VQVAE takes {sorted(known)}")
    if beta is None:
        quantizer = model_kwargs.pop("quantizer", "nearest")
        if quantizer != "nearest":
            raise ValueError(f"quantizer={quantizer!r} with beta=None: a reference without a beta uses the nearest "
                             "quantizer (chapter 4's runs need it); pass a beta for the softmax one")
        model = VQVAE(x.shape[1:], K, L, seed=train_seed, **model_kwargs)
    else:
        beta = check_beta(beta, "softmax")
        if model_kwargs.pop("quantizer", "softmax") != "softmax":
            raise ValueError("a reference with a beta uses the softmax quantizer; pass beta=None for the nearest one")
        model = VQVAE(x.shape[1:], K, L, quantizer="softmax", beta=beta, seed=train_seed, **model_kwargs)
    fit(model, x, epochs=epochs, batch_size=batch_size, lr=lr, train_seed=train_seed, device=device)
    if beta == "learned":
        model.quantizer.beta = model.beta  # fixed from now on
        model.config = dict(model.config, beta=model.beta)
    return model.freeze_codebook_and_decoder().eval()
