"""The one training engine: R VQ-VAEs of one architecture trained at once (chapters 2–4, 6, 8).

Every place in the book that trains many models goes through this module:

* :func:`vqlib.models.fit_ensemble` (whole models, minibatches, each model exactly as
  :func:`vqlib.fit` trains it): :func:`vqlib.run_supersample` (chapters 2–4) and chapter 8's
  :func:`vqlib.studies.capacity.capacity_runs`;
* chapter 3's :func:`vqlib.studies.decoder_gap.gaps_by_parts` and :func:`vqlib.studies.decoder_gap.reference_model`
  (some parts trained, the others frozen; full batch);
* chapter 4's :func:`vqlib.studies.prior_bounds.encoder_only_runs` and chapter 6's
  :func:`vqlib.studies.temperature.softmax_encoder_runs` (only the encoder trained, the reference's
  codebook and decoder frozen and shared; full batch; nearest or softmax quantizer).

:func:`vqlib.fit`, the single-model path the engine is tested against, shares its optimiser
(:class:`Adam`) and its data-dependent start (:func:`init_codebooks`, through
:meth:`vqlib.VQVAE.init_codebook`) with it.

How. A :class:`Stack` holds the R models' weights. Each parameter is either stacked along a
new first axis (R, …), for the parts that train and for frozen parts that differ between
models, or held once and shared, for frozen parts that every model holds equal (a
reference's codebook and decoder). A linear layer is one ``torch.baddbmm`` over stacked
weights and one matrix product over shared ones. The loss is Σ_r loss_r, whose gradient
with respect to model r's weights is the gradient of loss_r, and :class:`Adam` acts
elementwise, so every model gets its own update. The random draws (batch order, dead-code
resets, k-means seeding, sampled latent variables) come from each model's own generator in
the order :func:`vqlib.fit` draws them. So a model trained here ends as it would alone, up
to float rounding (batched and single products may round differently);
``tests/models/test_ensemble.py`` checks how close.

Two ways to order the data: with ``generators`` (one per model) every epoch visits the
model's rows in the order ``torch.randperm`` draws from its generator, in minibatches of
``batch_size`` (:func:`vqlib.fit`'s order); without, every epoch is one step on all rows
in their given order (full-batch training: chapters 3, 4 and 6, where ``epochs`` counts
the steps). Architectures: both of :class:`vqlib.VQVAE`, the MLP (a linear layer is one
``torch.baddbmm`` over stacked weights) and the convolutional one (a convolution over stacked
weights is one grouped convolution, ``groups=R``, over the R models' channels side by side).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import positive_float
from .kmeans import kmeans_batched
from .layers import Residual
from .quantizers import (
    VectorQuantizer,
    _nearest,
    learned_beta,
    precision_loss,
    sphere_distances,
    training_indices,
)

__all__ = ["PARTS", "Adam", "Pass", "Stack", "part_of", "network", "init_codebooks", "train",
           "evaluate_stack", "train_models", "evaluate_models", "chunk_size_for", "check_lr"]


def check_lr(lr) -> float:
    """The learning rate as a float > 0 that float32 weights can take, else ``ValueError`` (chapter 1)."""
    lr = positive_float(lr, "lr")
    if lr > torch.finfo(torch.float32).max:
        raise ValueError(f"lr must be at most {torch.finfo(torch.float32).max:.3g} (float32 weights), got {lr!r}")
    return lr


def _is_model(m) -> bool:
    """Whether ``m`` is a :class:`vqlib.VQVAE` (told by what the engine reads from it: ``vqvae`` imports this
    module, so the class itself cannot be imported here)."""
    return isinstance(m, nn.Module) and isinstance(getattr(m, "quantizer", None), VectorQuantizer) and isinstance(
        getattr(m, "config", None), dict) and hasattr(m, "in_shape") and hasattr(m, "codebook_initialised")


def _alike(m) -> tuple:
    """What models trained or evaluated together must share: the configuration without the seed, the codebook
    update (``"frozen"`` included) and the dead-code reset."""
    return (tuple(sorted((k, repr(v)) for k, v in m.config.items() if k != "seed")), m.quantizer.update,
            bool(m.dead_code_reset))


def _check_models(models, name: str = "models") -> list:
    """``models`` as a list of VQVAEs of one architecture (one object may repeat), or ``ValueError`` naming
    ``name``."""
    if not isinstance(models, (list, tuple)) or not models:
        raise ValueError(f"{name} must be a non-empty list of vqlib.VQVAE, got "
                         f"{'an empty list' if isinstance(models, (list, tuple)) else type(models).__name__}")
    for r, m in enumerate(models):
        if not _is_model(m):
            raise ValueError(f"{name} must hold vqlib.VQVAE instances, got {type(m).__name__} at {name}[{r}]")
    first = _alike(models[0])
    for r, m in enumerate(models[1:], 1):
        if m is not models[0] and _alike(m) != first:
            raise ValueError(f"{name}[{r}] differs from {name}[0] in architecture or training configuration; "
                             "models trained or evaluated together need one (only the seed may differ)")
    return list(models)


def _check_rows(xs, name: str, template, R: int | None, *, shared: bool = False) -> Tensor:
    """``xs`` as rows the engine takes, (R, N, *in_shape) or (R, N, d) (with ``shared`` also (N, *in_shape)),
    a real floating tensor with N ≥ 1 and every value finite in [0, 1] (one pass), or ``ValueError`` naming it."""
    if not isinstance(xs, Tensor):
        raise ValueError(f"{name} must be a torch tensor, got {type(xs).__name__}")
    if not xs.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {xs.dtype}")
    in_shape = tuple(template.in_shape)
    d = math.prod(in_shape)
    forms = [(R, "N", *in_shape), (R, "N", d)] + ([("N", *in_shape)] if shared else [])
    ok = any(xs.dim() == len(f) and all(a == "N" or a is None or a == b for a, b in zip(f, xs.shape)) for f in forms)
    if not ok:
        want = " or ".join("(" + ", ".join("R" if a is None else str(a) for a in f) + ")" for f in forms)
        want = want.replace("R", f"R={R}") if R is not None else want
        raise ValueError(f"{name} must have shape {want}, got {tuple(xs.shape)}")
    n = xs.shape[0] if (shared and xs.dim() == len(in_shape) + 1) else xs.shape[1]
    if n == 0:
        raise ValueError(f"{name} holds no rows: shape {tuple(xs.shape)}")
    lo, hi = (float(v) for v in torch.aminmax(xs.detach()))  # one pass; NaN propagates to both
    if not (lo >= 0 and hi <= 1):
        if math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"{name} contains NaN")
        if math.isinf(lo) or math.isinf(hi):
            raise ValueError(f"{name} contains infinite values")
        raise ValueError(f"{name} must lie in [0, 1] (the loss is bounded), found values in [{lo:.6g}, {hi:.6g}]")
    return xs.detach()


def _check_generators(generators, name: str, R: int, *, optional: bool = True):
    """``generators`` as a list of R ``torch.Generator`` (or None where ``optional``), or ``ValueError``."""
    if generators is None and optional:
        return None
    if not isinstance(generators, (list, tuple)) or len(generators) != R or not all(
            isinstance(g, torch.Generator) for g in generators):
        got = f"{len(generators)} entries" if isinstance(generators, (list, tuple)) else type(generators).__name__
        raise ValueError(f"{name} must be a list of {R} torch.Generator (one per model), got {got}")
    return list(generators)


def _diverged(what: str, models, epoch: int, lr: float) -> FloatingPointError:
    """The engine's divergence error; ``models`` (the stack's rows that diverged) rides along as ``.models``."""
    shown = ", ".join(map(str, models[:8])) + (", …" if len(models) > 8 else "")
    err = FloatingPointError(f"training diverged: {what} after epoch {epoch} (lr={lr!r}) in model(s) {shown} "
                             "of the stack; try a smaller lr")
    err.models = list(models)
    return err

#: The parts of a VQ-VAE that train or stay frozen.
PARTS = ("encoder", "codebook", "decoder")

_BUFFERS = ("ema_count", "ema_sum", "recent_count")


def part_of(name: str) -> str:
    """The part ("encoder", "codebook", "decoder") a parameter of :class:`vqlib.VQVAE` belongs to (chapter 3).

    A learned β (``quantizer.beta_param``) belongs to the codebook, with ``quantizer.codebook``.

    Parameters
    ----------
    name : str
        A name from ``model.named_parameters()``.

    Returns
    -------
    str, one of :data:`PARTS`

    Raises
    ------
    ValueError
        Naming the parameter when it belongs to no part.

    See also: :func:`train_models`, :func:`vqlib.studies.decoder_gap.gaps_by_parts`; chapter 3.
    """
    if name.startswith("encoder."):
        return "encoder"
    if name.startswith("decoder."):
        return "decoder"
    if name in ("quantizer.codebook", "quantizer.beta_param"):  # a learned β belongs to the quantizer
        return "codebook"
    raise ValueError(f"unexpected parameter {name!r}")


class Adam:
    """Adam over a list of tensors, with ``torch.optim.Adam``'s defaults and update (every chapter).

    betas (0.9, 0.999), eps 1e-8, no weight decay; each tensor counts its own steps, and a
    tensor without a gradient is skipped, as ``torch.optim.Adam`` does. On the CPU the
    arithmetic is ``torch.optim.Adam``'s own, operation by operation (a test checks the two
    agree); on a GPU it is that of its multi-tensor form. Over stacked weights (R, …) it is
    R independent Adams, because every operation is elementwise. Written here, once, because
    the first ``torch.optim.Adam`` of a process imports torch's compiler stack (about 3 s of
    every cold chapter) and because its per-tensor loop costs more than the ``_foreach``
    operations used here.

    Parameters
    ----------
    params : iterable of Tensor
        The tensors to update, any shapes.
    lr : float
        Learning rate.
    betas : tuple (β₁, β₂)
        Decay rates of the first and second moments.
    eps : float
        Added to the denominator.

    See also: :func:`vqlib.fit`, :func:`train`; every chapter.
    """

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.is_floating_point():
                raise ValueError(f"params must hold floating tensors, got {type(p).__name__} at params[{i}]")
        lr, eps = check_lr(lr), positive_float(eps, "eps")
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        for b in betas:
            if not 0 <= positive_float(b, "betas entry") < 1 if b else False:
                raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
        self.lr, self.betas, self.eps = float(lr), betas, float(eps)
        self.steps = [0] * len(self.params)
        self.m = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.v = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    def zero_grad(self) -> None:
        """Drop every tensor's gradient (set it to None, as ``torch.optim.Adam.zero_grad`` does) (every chapter)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every tensor that has a gradient, in place (every chapter).

        m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², p ← p − lr·(m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + eps),
        t the tensor's own step count.
        """
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        b1, b2 = self.betas
        for i in live:
            self.steps[i] += 1
        params = [self.params[i] for i in live]
        grads = [p.grad for p in params]
        m, v = [self.m[i] for i in live], [self.v[i] for i in live]
        torch._foreach_lerp_(m, grads, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        # sqrt(max(v, smallest normal float)): a subnormal v costs a CPU thirty times more to take the
        # root of, and for every v below it the denominator rounds to eps exactly (with eps = 1e-8),
        # as it does from v itself, so the update is torch's to the bit
        denom = torch._foreach_maximum(v, torch.finfo(v[0].dtype).tiny)
        torch._foreach_sqrt_(denom)
        torch._foreach_div_(denom, [(1 - b2 ** self.steps[i]) ** 0.5 for i in live])
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, m, denom, [-(self.lr / (1 - b1 ** self.steps[i])) for i in live])


# ------------------------------------------------------------------ the stacked models


def _linear(h: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """h (R, N, in) through one linear layer per model (W (R, out, in)) or one for all (W (out, in))."""
    if W.dim() == 3:
        return torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))
    return F.linear(h, W, b)


def _conv(h: Tensor, W: Tensor, b: Tensor, module: nn.Module) -> Tensor:
    """h (R, N, C, H, W) through one convolution per model (W (R, …), a grouped convolution over
    the R models) or one for all (W as the module holds it, one convolution over R·N inputs)."""
    transposed = isinstance(module, nn.ConvTranspose2d)
    op = F.conv_transpose2d if transposed else F.conv2d
    kw = dict(stride=module.stride, padding=module.padding)
    R, N = h.shape[:2]
    if W.dim() == module.weight.dim():
        y = op(h.reshape(R * N, *h.shape[2:]), W, b, **kw)
        return y.reshape(R, N, *y.shape[1:])
    x = h.transpose(0, 1).reshape(N, R * h.shape[2], *h.shape[3:])
    y = op(x, W.reshape(R * W.shape[1], *W.shape[2:]), b.reshape(-1), groups=R, **kw)
    return y.reshape(N, R, -1, *y.shape[2:]).transpose(0, 1)


def network(seq: nn.Sequential, prefix: str, h: Tensor, params: dict[str, Tensor]) -> Tensor:
    """The network ``seq`` applied model by model, with stacked or shared weights (chapters 2–4, 6, 8).

    Layers: Linear, ReLU, Conv2d, ConvTranspose2d and :class:`vqlib.models.Residual` blocks
    (``x + block(x)``). A linear layer over stacked weights is one ``torch.baddbmm``; a
    convolution over stacked weights one grouped convolution (``groups=R``).

    Parameters
    ----------
    seq : nn.Sequential
        The template model's network (its layers give the structure, not the weights).
    prefix : str
        The network's name in ``params`` (``"encoder"``, ``"decoder"``).
    h : Tensor (R, N, in), or (R, N, C, H, W) for a convolutional network
    params : dict of str to Tensor
        ``params[f"{prefix}.{i}.weight"]`` and ``.bias``: stacked (R, …) or shared (…).

    Returns
    -------
    Tensor (R, N, out), or (R, N, C', H', W')

    Raises
    ------
    ValueError
        When ``seq`` holds a layer of another kind, naming it.

    See also: :class:`Stack`; chapter 2.
    """

    for i, module in enumerate(seq):
        name = f"{prefix}.{i}"
        if isinstance(module, nn.Linear):
            h = _linear(h, params[f"{name}.weight"], params[f"{name}.bias"])
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            h = _conv(h, params[f"{name}.weight"], params[f"{name}.bias"], module)
        elif isinstance(module, nn.ReLU):
            h = torch.relu(h)
        elif isinstance(module, Residual):
            h = h + network(module.block, f"{name}.block", h, params)
        else:
            raise ValueError(f"the engine trains Linear, convolution, residual and ReLU networks; {name} is a "
                             f"{type(module).__name__}")
    return h


class Stack:
    """R VQ-VAEs of one architecture as tensors: the engine's state (chapters 2–4, 6, 8).

    Usually built by :meth:`Stack.of`.

    Parameters
    ----------
    template : VQVAE
        Gives the architecture and the quantization rule.
    params : dict of str to Tensor
        ``params[name]`` holds parameter ``name`` of :class:`vqlib.VQVAE` stacked (R, …) or shared (…).
    R : int
        Number of models.
    trained : tuple of str
        The parameters that train (always stacked).
    buffers : dict of str to Tensor (R, …)
        The EMA statistics and usage counts when the codebook learns by EMA or resets dead codes
        (empty otherwise).

    See also: :func:`train`, :func:`evaluate_stack`, :func:`init_codebooks`; chapter 2.
    """

    def __init__(self, template, params: dict[str, Tensor], R: int, trained: tuple[str, ...],
                 buffers: dict[str, Tensor]):
        self.template, self.params, self.R, self.trained, self.buffers = template, params, R, trained, buffers

    @classmethod
    def of(cls, models, device=None, *, trained=None, share: bool = True) -> "Stack":
        """The stack of ``models`` (copies of their weights) on ``device`` (chapters 2–4, 6, 8).

        ``trained`` (default: the parameters that require a gradient) are stacked, and so is
        a codebook that moves by EMA or dead-code resets; a frozen parameter equal in every
        model is held once when ``share`` is true. A list that repeats one model R times gives
        R copies of it.

        Parameters
        ----------
        models : list of R VQVAE of one architecture
        device : torch.device, optional
            Default: the first model's.
        trained : tuple of str, optional
            Parameter names that train.
        share : bool
            Hold equal frozen parameters once; ``False`` stacks everything, buffers included.

        Returns
        -------
        Stack

        See also: :meth:`copy_to`; chapter 2.
        """
        template = models[0]
        device = template.device if device is None else device
        names = [name for name, _ in template.named_parameters()]
        if trained is None:
            trained = tuple(name for name, p in template.named_parameters() if p.requires_grad)
        q = template.quantizer
        moving = set(trained)
        if q.update == "ema" or template.dead_code_reset:  # the codebook moves without a gradient
            moving.add("quantizer.codebook")
        own = [dict(m.named_parameters()) for m in models]
        params = {}
        for name in names:
            values = [o[name].detach() for o in own]
            first = values[0]
            if share and name not in moving and all(v is first or torch.equal(v, first) for v in values[1:]):
                params[name] = first.to(device).clone()
            else:
                params[name] = torch.stack(values).to(device)
        buffers = {}
        if q.update == "ema" or template.dead_code_reset or not share:
            buffers = {name: torch.stack([getattr(m.quantizer, name) for m in models]).to(device)
                       for name in _BUFFERS}
        return cls(template, params, len(models), tuple(trained), buffers)

    @torch.no_grad()
    def copy_to(self, models) -> None:
        """Write every model's weights (and EMA statistics) back into ``models`` (chapters 2–4, 6, 8).

        Parameters
        ----------
        models : list of R VQVAE
            Model r receives entry r of every stacked tensor, and every shared one.
        """
        for r, model in enumerate(models):
            own = dict(model.named_parameters())
            for name, value in self.params.items():
                own[name].copy_(value[r] if value.dim() > own[name].dim() else value)
            for name, value in self.buffers.items():
                getattr(model.quantizer, name).copy_(value[r])

    @property
    def device(self) -> torch.device:
        """The device the stack's tensors are on (that of the codebook) (chapters 2–4, 6, 8)."""
        return self.params["quantizer.codebook"].device

    def stacked(self, name: str) -> bool:
        """Whether parameter ``name`` is held per model (R, …) rather than once for all (chapters 2–4, 6, 8)."""
        return self.params[name].dim() > dict(self.template.named_parameters())[name].dim()

    def select(self, a: int, b: int) -> "Stack":
        """Models a to b − 1 of the stack (views, no copies), to evaluate per supersample (chapters 4, 6).

        Returns
        -------
        Stack of b − a models, sharing this one's tensors.
        """
        params = {name: value[a:b] if self.stacked(name) else value for name, value in self.params.items()}
        return Stack(self.template, params, b - a, self.trained, {k: v[a:b] for k, v in self.buffers.items()})

    def encode(self, x: Tensor) -> Tensor:
        """Encoder outputs on the unit sphere, every model on its rows (chapters 2–4, 6, 8).

        Position l = i·w + j on a convolutional model's h × w grid, as ``VQVAE.encode``.

        Parameters
        ----------
        x : Tensor (R, N, …)
            Each model's inputs, N·d values per model.

        Returns
        -------
        Tensor (R, N·L, D)
        """
        t = self.template
        if t.architecture == "conv":
            z = network(t.encoder, "encoder", x.reshape(self.R, x.shape[1], *t.in_shape), self.params)
            z = z.permute(0, 1, 3, 4, 2)  # (R, N, h, w, D)
        else:
            z = network(t.encoder, "encoder", x.reshape(self.R, x.shape[1], -1), self.params)
        return F.normalize(z.reshape(self.R, -1, t.L, t.code_dim), dim=-1).reshape(self.R, -1, t.code_dim)

    def codes(self) -> Tensor:
        """The codes on the unit sphere: (R, K, D) stacked, or (K, D) shared (chapters 2–4, 6, 8).

        With a gradient only when the codebook learns by the loss.
        """
        codes = F.normalize(self.params["quantizer.codebook"], dim=-1)
        return codes if self.template.quantizer.update == "loss" else codes.detach()

    def distances(self, flat: Tensor, codes: Tensor) -> Tensor:
        """‖f_l − e_k‖² in [0, 4] for every model's encoder outputs and codes (chapter 6).

        Parameters
        ----------
        flat : Tensor (R, M, D)
            Encoder outputs.
        codes : Tensor (R, K, D) or (K, D)
            As :meth:`codes` gives them.

        Returns
        -------
        Tensor (R, M, K)
        """
        if codes.dim() == 2:
            return sphere_distances(flat.reshape(-1, flat.shape[-1]), codes).reshape(self.R, -1, codes.shape[0])
        d = ((flat * flat).sum(-1, keepdim=True) - 2 * torch.bmm(flat, codes.transpose(1, 2))
             + (codes * codes).sum(-1).unsqueeze(1))
        return d.clamp_min(0.0).clamp_max(4.0)

    def betas(self):
        """β of every model (chapter 6).

        Returns
        -------
        Tensor (R, 1, 1) or 0-d, or float
            A learned β as a tensor with its gradient, (R, 1, 1) stacked or 0-d held once; a fixed
            one as the template's float.
        """
        q = self.template.quantizer
        if not q.learned_beta:
            return q.beta
        p = self.params["quantizer.beta_param"]
        beta = learned_beta(p)
        return beta.reshape(-1, 1, 1) if p.dim() else beta

    def quantize(self, flat: Tensor, codes: Tensor, sampler) -> tuple[Tensor, Tensor | None]:
        """The latent variables of encoder outputs, every model at once (chapters 2–4, 6, 8).

        Nearest: :func:`vqlib.models.quantizers.nearest`. Softmax: draws from q ∝ exp(−β d) with
        ``sampler``.

        Parameters
        ----------
        flat : Tensor (R, M, D)
        codes : Tensor (R, K, D) or (K, D)
        sampler : torch.Generator, list of R torch.Generator, or None
            One generator for all models (drawn in one call over all rows), one per model, or None
            (the global generator).

        Returns
        -------
        idx : Tensor (R, M), int64
        d : Tensor (R, M, K) or None
            The distances, for the softmax quantizer (None for the nearest one).
        """
        q = self.template.quantizer
        if q.quantizer == "nearest":
            return _nearest(flat, codes), None
        with torch.no_grad():
            d = self.distances(flat, codes)
            probs = torch.softmax(-self.betas() * d, dim=-1)
        if not bool(torch.isfinite(probs).all()):  # a diverged model: never torch's "probability tensor" error
            raise FloatingPointError("the softmax quantizer's probabilities are not finite (NaN or inf distances)")
        if sampler is None or isinstance(sampler, torch.Generator):
            idx = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=sampler).reshape(self.R, -1)
        else:
            idx = torch.stack([torch.multinomial(probs[r], 1, generator=sampler[r]).squeeze(1) for r in range(self.R)])
        return idx, d

    def decode(self, z_q: Tensor) -> Tensor:
        """Decoder outputs in [0, 1], every model on its codes (chapters 2–4, 6, 8).

        Parameters
        ----------
        z_q : Tensor (R, N·L, D)

        Returns
        -------
        Tensor (R, N, d)
        """
        t = self.template
        if t.architecture == "conv":
            h, w = t.grid
            grid = z_q.reshape(self.R, -1, h, w, t.code_dim).permute(0, 1, 4, 2, 3)
            out = network(t.decoder, "decoder", grid, self.params)
            return torch.sigmoid(out.reshape(self.R, out.shape[1], -1))
        return torch.sigmoid(network(t.decoder, "decoder", z_q.reshape(self.R, -1, t.L * t.code_dim), self.params))

    def forward(self, xb: Tensor, sampler=None) -> "Pass":
        """One pass of ``VQVAE.forward`` for every model on its rows (chapters 2–4, 6, 8).

        Encode, quantize (:meth:`quantize`), pick the codes training follows
        (:func:`vqlib.models.quantizers.training_indices`), straight-through codes, decode.

        Parameters
        ----------
        xb : Tensor (R, B, …)
        sampler : torch.Generator, list of R torch.Generator, or None
            As in :meth:`quantize`.

        Returns
        -------
        Pass
        """
        flat = self.encode(xb)
        codes = self.codes()
        idx, d = self.quantize(flat, codes, sampler)
        target = training_indices(flat.detach(), codes.detach(), idx, self.template.quantizer.quantizer)
        chosen = _gather(codes, idx)
        nearest_code = chosen if target is idx else _gather(codes, target)
        z_q = chosen + (flat - flat.detach())  # straight-through, as in VectorQuantizer.forward
        return Pass(flat, d, idx, target, chosen, nearest_code, self.decode(z_q))

    def loss(self, xb: Tensor, p: "Pass") -> Tensor:
        """Every model's training loss, as ``VQVAE.forward`` computes it (chapters 2–4, 6, 8).

        Reconstruction + codebook loss (when the codebook learns by the loss) + commitment weight ×
        commitment, both to the nearest code (:func:`vqlib.models.quantizers.training_indices`),
        + a learned β's :func:`vqlib.models.quantizers.precision_loss`.

        Parameters
        ----------
        xb : Tensor (R, B, …)
            The rows the pass ``p`` was made on.
        p : Pass

        Returns
        -------
        Tensor (R,)
        """
        t = self.template
        q = t.quantizer
        loss = (p.x_hat - xb.reshape(xb.shape[0], xb.shape[1], -1)).pow(2).mean((1, 2))
        if q.update == "loss":
            loss = loss + (p.nearest_code - p.flat.detach()).pow(2).mean((1, 2))
        loss = loss + t.commitment * (p.flat - p.nearest_code.detach()).pow(2).mean((1, 2))
        if q.learned_beta and p.d is not None and "quantizer.beta_param" in self.trained:
            d_chosen = p.d.gather(-1, p.idx.unsqueeze(-1)).squeeze(-1).mean(-1)  # (R,), no gradient
            loss = loss + precision_loss(self.betas().reshape(-1), d_chosen, t.code_dim)
        return loss


class Pass(NamedTuple):
    """One forward pass of a :class:`Stack` (chapters 2–4, 6, 8).

    Attributes
    ----------
    flat : Tensor (R, M, D)
        Encoder outputs, M = B·L.
    d : Tensor (R, M, K) or None
        Distances (softmax quantizer; None for nearest).
    idx : Tensor (R, M)
        The latent variables.
    target : Tensor (R, M)
        The codes training follows (:func:`vqlib.models.quantizers.training_indices`).
    chosen, nearest_code : Tensor (R, M, D)
        The chosen codes e_J and the nearest ones.
    x_hat : Tensor (R, B, d)
        The reconstructions.
    """

    flat: Tensor
    d: Tensor | None
    idx: Tensor
    target: Tensor
    chosen: Tensor
    nearest_code: Tensor
    x_hat: Tensor


def _gather(codes: Tensor, idx: Tensor) -> Tensor:
    """e_idx for codes (K, D), shared, or (R, K, D), one codebook per model; idx (R, M) → (R, M, D)."""
    if codes.dim() == 2:
        return codes[idx]
    return torch.gather(codes, 1, idx.unsqueeze(-1).expand(-1, -1, codes.shape[-1]))


# ------------------------------------------------------------------ the data-dependent start


@torch.no_grad()
def init_codebooks(models, samples: Tensor, generators, *, codebook: bool = True) -> None:
    """:meth:`vqlib.VQVAE.init_codebook` for R models at once, model r on ``samples[r]`` (chapters 1–4, 8).

    Each encoder's last layer is rescaled so that its outputs have mean 0 and variance 1 over
    the model's sample; then (with ``codebook``) the codebook starts from k-means on the
    encodings (:func:`vqlib.models.kmeans_batched`, each model drawing from its own
    generator; at most 4096 encodings, drawn at random), random encodings (``init="data"``) or
    stays (``init="random"``), and the models are marked initialised. ``codebook=False``
    rescales only (chapter 3, where the codebook is a frozen copy).

    Parameters
    ----------
    models : list of R VQVAE of one architecture
        Changed in place.
    samples : Tensor (R, m, C, H, W), m ≥ 2
    generators : list of R torch.Generator or None
        One per model (None: the global one).
    codebook : bool
        Also start the codebook.

    Raises
    ------
    ValueError
        When the samples hold fewer than 2 inputs.

    See also: :func:`vqlib.models.kmeans_batched`, :func:`vqlib.models.fit_ensemble`; chapter 1.
    """
    if samples.shape[1] < 2:
        raise ValueError(f"init_codebook needs at least 2 inputs to standardise the encoder outputs, "
                         f"got {samples.shape[1]}")
    stack = Stack.of(models, share=False)
    t, R = stack.template, stack.R
    x = samples.to(stack.device).reshape(R, samples.shape[1], -1)
    last = len(t.encoder) - 1
    W, b = stack.params[f"encoder.{last}.weight"], stack.params[f"encoder.{last}.bias"]
    if t.architecture == "conv":  # per output channel, over the sample and the grid's places
        raw = network(t.encoder, "encoder", x.reshape(R, x.shape[1], *t.in_shape), stack.params)  # (R, m, D, h, w)
        raw = raw.transpose(1, 2).reshape(R, t.code_dim, -1).transpose(1, 2)  # (R, m·h·w, D)
    else:
        raw = network(t.encoder, "encoder", x, stack.params)  # (R, m, L·D)
    mean, std = raw.mean(1), raw.std(1).clamp_min(1e-6)
    W.div_(std.reshape(*std.shape, *[1] * (W.dim() - 2)))
    b.sub_(mean).div_(std)
    if codebook:
        z = stack.encode(x)  # (R, m·L, D)
        if z.shape[1] > 4096:  # k-means on a random subset: the cost stays flat in N·L
            z = torch.stack([z[r, torch.randperm(z.shape[1], generator=g)[:4096].to(z.device)]
                             for r, g in enumerate(generators)])
        if t.init == "kmeans":
            codes = kmeans_batched(z, t.K, generators=list(generators))
        elif t.init == "data":
            codes = torch.stack([z[r, torch.randint(z.shape[1], (t.K,), generator=g).to(z.device)]
                                 for r, g in enumerate(generators)])
        else:
            codes = stack.params["quantizer.codebook"].clone()
        codes = F.normalize(codes, dim=-1)
        stack.params["quantizer.codebook"].copy_(codes)
        stack.buffers["ema_sum"].copy_(codes)
        stack.buffers["ema_count"].fill_(1.0)
        stack.buffers["recent_count"].zero_()
    stack.copy_to(models)
    if codebook:
        for m in models:
            m.codebook_initialised.fill_(True)


# ------------------------------------------------------------------ training and evaluation


def train(stack: Stack, xs: Tensor, *, epochs: int, lr: float, batch_size: int | None = None, generators=None,
          sampler=None) -> None:
    """Train ``stack.trained`` of every model in place, model r on ``xs[r]`` (chapters 2–4, 6, 8).

    With ``generators`` (one per model) each of the ``epochs`` epochs visits every model's
    rows in the order ``torch.randperm`` draws from its generator, ``batch_size`` at a time,
    and dead codes are reset after each epoch when the template asks for it, as
    :func:`vqlib.fit` does. Without, each epoch is one step on all rows in their given
    order (full batch). After every batch the EMA codebook (if any) takes its step and the
    usage counts grow. The loss minimised is Σ_r loss_r (:meth:`Stack.loss`), so each model
    gets its own :class:`Adam` update.

    Parameters
    ----------
    stack : Stack
    xs : Tensor (R, N, …)
        Model r's training rows.
    epochs : int
        Epochs (full batch: steps).
    lr : float
        Adam's learning rate.
    batch_size : int, optional
        Rows per step with ``generators``; ignored without (full batch).
    generators : list of R torch.Generator, optional
        Each model's batch order and dead-code draws.
    sampler : torch.Generator, list of R torch.Generator, or None
        Draws the softmax quantizer's latent variables: one generator for all models (one draw
        over all rows, chapter 6) or one per model (:func:`vqlib.fit`'s draws); None uses the
        global generator.

    Raises
    ------
    ValueError
        When the template resets dead codes but no ``generators`` are given.

    See also: :func:`vqlib.models.fit_ensemble`, :func:`train_models`, :func:`evaluate_stack`; chapter 2.
    """
    t = stack.template
    q = t.quantizer
    R, N = xs.shape[:2]
    dev = stack.device
    X = xs.to(dev).reshape(R, N, -1)
    batch_size = N if batch_size is None or generators is None else batch_size
    if t.dead_code_reset and generators is None:
        raise ValueError("resetting dead codes draws from each model's generator: pass generators")
    trained = [stack.params[name].requires_grad_(True) for name in stack.trained]
    opt = Adam(trained, lr)
    rows = torch.arange(R, device=dev)[:, None]
    offsets = rows * t.K
    ema, counting = q.update == "ema", bool(stack.buffers)
    for epoch in range(1, epochs + 1):
        order = None
        if generators is not None:
            order = torch.stack([torch.randperm(N, generator=g) for g in generators]).to(dev)
        finite = torch.ones(R, dtype=torch.bool, device=dev)  # every step's loss, checked once per epoch
        for start in range(0, N, batch_size):
            xb = X if order is None and batch_size >= N else (
                X[:, start:start + batch_size] if order is None else X[rows, order[:, start:start + batch_size]])
            try:
                p = stack.forward(xb, sampler)
            except FloatingPointError as err:  # the softmax probabilities of a diverged model
                raise _diverged(str(err), list(range(R)), epoch, lr) from None
            loss = stack.loss(xb, p)
            finite &= torch.isfinite(loss.detach())
            if counting:
                _count_and_average(stack, p.flat.detach(), p.target, offsets, ema)
            if trained:
                opt.zero_grad()
                loss.sum().backward()
                opt.step()
        if t.dead_code_reset:
            _reset_dead_codes(stack, X, rows, order[:, :min(N, 1024)], generators)
        bad = ~finite  # never a silent NaN: a model whose loss, weights or EMA statistics are not finite
        for name, v in [*stack.params.items(), *stack.buffers.items()]:
            if v.is_floating_point() and (name in stack.buffers or stack.stacked(name)):
                bad |= ~torch.isfinite(v.detach().reshape(R, -1)).all(1)
        if bool(bad.any()):
            for p in trained:
                p.requires_grad_(False)
            raise _diverged("a non-finite loss or weight", bad.nonzero().flatten().tolist(), epoch, lr)
    for p in trained:
        p.requires_grad_(False)


@torch.no_grad()
def _count_and_average(stack: Stack, flat: Tensor, idx: Tensor, offsets: Tensor, ema: bool) -> None:
    """The usage counts and, for an EMA codebook, its step (``VectorQuantizer._ema_step`` per model),
    both following ``idx``, the codes training follows (the nearest ones)."""
    q = stack.template.quantizer
    K, D = q.K, flat.shape[-1]
    recent, ema_count, ema_sum = stack.buffers["recent_count"], stack.buffers["ema_count"], stack.buffers["ema_sum"]
    slot = (idx + offsets).reshape(-1)
    counts = torch.bincount(slot, minlength=stack.R * K).reshape(stack.R, K).to(recent.dtype)
    recent += counts
    if ema:
        sums = torch.zeros(stack.R * K, D, dtype=flat.dtype, device=flat.device).index_add_(
            0, slot, flat.reshape(-1, D)).reshape(stack.R, K, D)
        ema_count.mul_(q.decay).add_(counts.to(flat.dtype), alpha=1 - q.decay)
        ema_sum.mul_(q.decay).add_(sums, alpha=1 - q.decay)
        total = ema_count.sum(1, keepdim=True)
        smoothed = (ema_count + q.eps) / (total + K * q.eps) * total
        stack.params["quantizer.codebook"].copy_(ema_sum / smoothed.unsqueeze(-1))


@torch.no_grad()
def _reset_dead_codes(stack: Stack, X: Tensor, rows: Tensor, pool: Tensor, generators) -> None:
    """``VectorQuantizer.reset_dead_codes`` per model: unused codes move onto random encodings of the
    rows ``pool`` (R, P) of the training sets ``X`` (the epoch's first ones, as :func:`vqlib.fit` takes them)."""
    recent = stack.buffers["recent_count"]
    dead_any = (recent == 0).any(1).tolist()
    if any(dead_any):
        encodings = stack.encode(X[rows, pool])  # (R, P·L, D)
        codebook = stack.params["quantizer.codebook"]
        for r, g in enumerate(generators):
            if dead_any[r]:
                dead = (recent[r] == 0).nonzero().squeeze(1)
                new = encodings[r, torch.randint(encodings.shape[1], (dead.numel(),), generator=g).to(X.device)]
                codebook[r, dead] = new
                stack.buffers["ema_sum"][r, dead] = new
                stack.buffers["ema_count"][r, dead] = 1.0
    recent.zero_()


@torch.no_grad()
def evaluate_stack(stack: Stack, points: Tensor, *, samplers=None, batch_size: int = 1024, posteriors: bool = False):
    """Per-point losses and latent variables of every model in evaluation mode (chapters 2–4, 6, 8).

    No EMA step, nothing counted; the losses are ‖x − x̂‖²/d. The softmax quantizer draws its
    latent variables from ``samplers`` (one generator per model, seeded as
    :func:`vqlib.reconstruction_loss` seeds its own, over chunks of ``batch_size`` points).

    Parameters
    ----------
    stack : Stack
    points : Tensor (R, N, …), one set per model, or (N, …), shared
    samplers : list of R torch.Generator, optional
    batch_size : int
        Points per pass.
    posteriors : bool
        Also return q(k | x) per position.

    Returns
    -------
    losses : Tensor (R, N)
    indices : Tensor (R, N, L)
    posteriors : Tensor (R, N, L, K), only with ``posteriors``
        One-hot for the nearest quantizer, softmax(−β d) for the softmax one.

    All on the CPU.

    See also: :func:`evaluate_models`, :func:`vqlib.models.evaluate_model`; chapter 2.
    """
    t = stack.template
    R, dev = stack.R, stack.device
    if points.dim() == len(t.in_shape) + 1:
        points = points.unsqueeze(0).expand(R, *points.shape)
    X = points.reshape(R, points.shape[1], -1)
    if t.quantizer.quantizer == "nearest":  # no draws: blocks whose codes stay in the cache
        batch_size = max(1, min(batch_size, 2 ** 18 // (R * t.L * t.K)))
    losses, indices, probs = [], [], []
    for start in range(0, X.shape[1], batch_size):
        xb = X[:, start:start + batch_size].to(dev)
        p = stack.forward(xb, samplers)
        losses.append((xb.reshape(R, xb.shape[1], -1) - p.x_hat).pow(2).mean(-1).cpu())
        indices.append(p.idx.reshape(R, xb.shape[1], t.L).cpu())
        if posteriors:
            if p.d is None:  # nearest: a point mass on the chosen code
                post = F.one_hot(p.idx, t.K).to(p.flat.dtype)
            else:
                post = torch.softmax(-stack.betas() * p.d, dim=-1)
            probs.append(post.reshape(R, xb.shape[1], t.L, t.K).cpu())
    out = (torch.cat(losses, 1), torch.cat(indices, 1))
    return (*out, torch.cat(probs, 1)) if posteriors else out


# ------------------------------------------------------------------ models in, models out


def chunk_size_for(model, batch_size: int, n: int, device: torch.device) -> int:
    """How many models of ``model``'s architecture train together within the memory budget (chapters 2–4, 8).

    The budget is about 512 MB on the CPU, a quarter of the free memory on a GPU; one model's
    share counts its weights with gradient and Adam moments, its training set, and the largest
    of a training step, the codebook start and an evaluation chunk (float32).

    Parameters
    ----------
    model : VQVAE
    batch_size : int
    n : int
        Training inputs per model.
    device : torch.device

    Returns
    -------
    int ≥ 1

    See also: :func:`vqlib.models.fit_ensemble`; chapter 2.
    """
    budget = 512 * 2 ** 20
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = free // 4
    return max(1, budget // _per_model_bytes(model, batch_size, n))


def _per_model_bytes(model, batch_size: int, n: int) -> int:
    """float32 bytes one model needs in the engine: weights with gradient and Adam moments,
    its training set, and the largest of a training step, the codebook start and an evaluation chunk."""
    cfg = model.config
    d = math.prod(model.in_shape)
    width = cfg["encoder_width"] * cfg["encoder_depth"] + cfg["decoder_width"] * cfg["decoder_depth"]
    L, K, D = model.L, model.K, model.code_dim
    if cfg.get("architecture") == "conv":  # feature maps of every layer at the largest grid, kept for backward
        places = d // model.in_shape[0] // 4
        width = places * ((cfg["encoder_width"] * (4 + 4 * cfg["encoder_depth"]))
                          + cfg["decoder_width"] * (4 + 4 * cfg["decoder_depth"]))

    def rows(m: int) -> int:  # activations of m inputs: layers, encodings, distances and their softmax
        return m * (3 * d + 3 * width + L * (6 * D + 3 * K))

    start = min(n, 4096) * (d + width) + 3 * min(n * L, 4096) * K
    acts = max(2 * rows(min(batch_size, n)), start, rows(min(n, 1024)))
    n_params = sum(p.numel() for p in model.parameters())
    return 4 * (4 * n_params + acts + n * d)


def train_models(models, xs: Tensor, *, epochs: int, lr: float, batch_size: int | None = None, generators=None,
                 sampler=None, trained=None) -> None:
    """Train ``models`` (one architecture) in place, model r on ``xs[r]``, with :func:`train` (chapter 3).

    Chapter 3's parts and reference decoder. ``trained`` names the parameters that train
    (default: those that require a gradient); the others stay bit-identical. The models end in
    evaluation mode.

    Parameters
    ----------
    models : list of R VQVAE
    xs : Tensor (R, N, …)
    epochs, lr, batch_size, generators, sampler
        As in :func:`train`.
    trained : tuple of str, optional
        Parameter names (see :func:`part_of`).

    See also: :func:`train`, :func:`vqlib.studies.decoder_gap.gaps_by_parts`; chapter 3.
    """
    stack = Stack.of(models, trained=trained)
    train(stack, xs, epochs=epochs, lr=lr, batch_size=batch_size, generators=generators, sampler=sampler)
    stack.copy_to(models)
    for m in models:
        m.eval()


def evaluate_models(models, points: Tensor, *, train_seeds=None, posteriors: bool = False, chunk_size=None):
    """:func:`evaluate_stack` for models of one architecture on their points, in chunks of models (chapters 2, 3, 8).

    Softmax draws are seeded by ``train_seeds`` (one per model), as :func:`vqlib.reconstruction_loss`
    draws them.

    Parameters
    ----------
    models : list of R VQVAE of one architecture
    points : Tensor (R, N, …), one set per model, or (N, …), shared
    train_seeds : list of R int
        Needed for the softmax quantizer; ignored by the nearest one.
    posteriors : bool
        Also return q(k | x) per position.
    chunk_size : int, optional
        Models evaluated together (default :func:`chunk_size_for`); no effect on the result.

    Returns
    -------
    losses : Tensor (R, N)
    indices : Tensor (R, N, L)
    posteriors : Tensor (R, N, L, K), only with ``posteriors``

    See also: :func:`vqlib.models.evaluate_model`, :func:`evaluate_stack`; chapter 2.
    """
    template = models[0]
    dev = template.device
    shared = points.dim() == len(template.in_shape) + 1
    if chunk_size is None:
        chunk_size = chunk_size_for(template, 1, points.shape[-len(template.in_shape) - 1], dev)
    outs = []
    for a in range(0, len(models), chunk_size):
        chunk = models[a:a + chunk_size]
        samplers = None
        if template.quantizer.quantizer == "softmax":
            samplers = [torch.Generator(device=dev).manual_seed(s) for s in train_seeds[a:a + chunk_size]]
        outs.append(evaluate_stack(Stack.of(chunk), points if shared else points[a:a + chunk_size], samplers=samplers,
                             posteriors=posteriors))
    return tuple(torch.cat(parts) for parts in zip(*outs))
