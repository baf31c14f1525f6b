"""Training many independent VQ-VAEs at once (chapters 2–4: one model per supersample and mask).

:func:`fit_ensemble` trains R models of the same architecture, each on its own training
set of the same size and with its own seed, in one batched computation: the R models'
weights are stacked into tensors of shape (R, …), every linear layer becomes one
``torch.baddbmm``, and one ``torch.optim.Adam`` over the stacked tensors with loss
Σ_r loss_r gives each model exactly its own Adam update (Adam acts elementwise, and the
gradient of Σ_r loss_r with respect to model r's weights is the gradient of loss_r).

Everything else that :func:`vqlib.fit` does is done per model with that model's own
random generator, in the same order: the data-dependent start (encoder rescaling and
k-means codebook), the batch order of every epoch, the EMA codebook step after each
batch, the dead-code reset after each epoch and, for the softmax quantizer, the latent
draws (from a generator seeded like ``fit``'s global one). So a model trained here
ends with the weights it would have after ``fit`` with the same construction, data and
seed, up to float rounding (batched and single matrix products may round differently);
``tests/test_ensemble.py`` checks how close. ``fit``'s per-epoch evaluation is skipped:
it never changes the weights (it runs in evaluation mode with its own generator).

Models are trained in chunks of at most ``chunk_size`` so that the stacked tensors fit
the device's memory; the chunking does not change any model's result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_seed, positive_int
from .data import check_images
from .device import resolve_device
from .model import VQVAE
from .train import check_lr, check_training_set

__all__ = ["fit_ensemble", "EnsembleHistory", "stack_parameters", "batched_layers", "batched_mlp"]


@dataclass
class EnsembleHistory:
    """What :func:`fit_ensemble` returns: the seeds, the shared configuration and, when
    asked for, each model's final mean training loss (evaluation mode, as
    ``History.final.train_loss``)."""

    seeds: list[int]
    config: dict
    train_loss: list[float] | None = None
    chunks: list[int] = field(default_factory=list)  # the chunk sizes used, in order


def batched_layers(layers: list[tuple[Tensor, Tensor]], h: Tensor) -> Tensor:
    """Linear layers (W of shape (R, out, in), b of shape (R, out)) with a ReLU between
    consecutive ones, as in vqlib's MLPs, applied model by model to ``h`` (R, N, in).

    The one batched MLP of the library: the ensemble trainer here, chapter 3's
    :func:`vqlib.decoder_gap.batched_loss` and the encoder-only runs of chapters 4 and 6.
    """
    for j, (W, b) in enumerate(layers):
        if j > 0:
            h = torch.relu(h)
        h = torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))
    return h


def batched_mlp(seq: torch.nn.Sequential, prefix: str, h: Tensor, params: dict[str, Tensor]) -> Tensor:
    """The MLP ``seq`` (vqlib's Linear/ReLU stacks) applied model by model.

    ``params[f"{prefix}.{i}.weight"]`` has shape (R, out, in); ``h`` is (R, N, in).
    """
    linear = [i for i, mod in enumerate(seq) if isinstance(mod, torch.nn.Linear)]
    return batched_layers([(params[f"{prefix}.{i}.weight"], params[f"{prefix}.{i}.bias"]) for i in linear], h)


def stack_parameters(models: list[VQVAE], device) -> dict[str, Tensor]:
    """Every parameter and EMA buffer of ``models``, stacked along a new first axis (R, …)."""
    out = {}
    for name, _ in models[0].named_parameters():
        out[name] = torch.stack([dict(m.named_parameters())[name].detach() for m in models]).to(device).clone()
    for name in ("ema_count", "ema_sum", "recent_count"):
        out[f"quantizer.{name}"] = torch.stack(
            [getattr(m.quantizer, name) for m in models]).to(device).clone()
    return out


def _signature(model: VQVAE) -> tuple:
    config = {k: v for k, v in model.config.items() if k != "seed"}
    trainable = tuple(name for name, p in model.named_parameters() if p.requires_grad)
    return (tuple(sorted(config.items(), key=lambda kv: kv[0])), model.quantizer.update,
            model.dead_code_reset, trainable)


def _per_model_bytes(model: VQVAE, batch_size: int, n: int) -> int:
    n_params = sum(p.numel() for p in model.parameters())
    cfg = model.config
    d = int(torch.tensor(model.in_shape).prod())
    width = cfg["encoder_width"] * cfg["encoder_depth"] + cfg["decoder_width"] * cfg["decoder_depth"]
    rows = max(batch_size, min(n, 1024))
    acts = rows * (3 * d + 3 * width + model.L * (6 * model.code_dim + 3 * model.K))
    return 4 * (5 * n_params + 2 * acts + n * d)


def _auto_chunk(model: VQVAE, batch_size: int, n: int, dev: torch.device) -> int:
    budget = 256 * 2 ** 20
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        budget = free // 4
    return max(1, budget // _per_model_bytes(model, batch_size, n))


def fit_ensemble(
    models: list[VQVAE],
    xs,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    seeds=0,
    *,
    device=None,
    chunk_size: int | None = None,
    evaluate: bool = True,
    kl_weight: float = 0.0,
    progress: bool = False,
) -> EnsembleHistory:
    """Train ``models`` (R VQ-VAEs of one architecture) in place, model r on ``xs[r]``.

    ``xs`` is a tensor (R, N, C, H, W) or a list of R image tensors with the same N;
    ``seeds`` is one seed for all or a list of R seeds. Model r ends as
    ``vqlib.fit(models[r], xs[r], epochs, batch_size, lr, seeds[r])`` would leave it (up to
    float rounding), in evaluation mode on ``device`` (default
    :func:`vqlib.default_device`). Used by :func:`vqlib.run_supersample` (chapters 2–4).
    ``chunk_size`` caps how many models train together (default: what fits in about
    256 MB on the CPU, a quarter of the free memory on a GPU). With ``evaluate=True``
    each model's final mean training loss is computed as ``fit`` reports it.
    ``kl_weight`` must be 0: the prior penalty of chapter 7 is trained by ``fit`` only.
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
    if isinstance(seeds, Tensor):
        seeds = seeds.tolist()  # Python ints (or floats, refused below) instead of 0-d tensors
    if isinstance(seeds, (list, tuple)):
        seeds = [check_seed(s, "seeds entry") for s in seeds]
        if len(seeds) != R:
            raise ValueError(f"seeds has {len(seeds)} entries for {R} models")
    else:
        seeds = [check_seed(seeds, "seeds")] * R
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
        chunk_size = _auto_chunk(models[0], batch_size, n, dev)
    chunk_size = positive_int(chunk_size, "chunk_size")
    history = EnsembleHistory(seeds=list(seeds), config=dict(
        {k: v for k, v in models[0].config.items() if k != "seed"}, epochs=epochs, batch_size=batch_size, lr=lr))
    starts = range(0, R, chunk_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="model chunks", leave=False)
    for a in starts:
        b = min(R, a + chunk_size)
        _fit_chunk(models[a:b], [x.to(dev) for x in xs[a:b]], seeds[a:b], epochs, batch_size, lr, dev)
        history.chunks.append(b - a)
    if evaluate:
        from .train import _evaluate

        history.train_loss = [float(_evaluate(m, x, seed=s)[0].mean()) for m, x, s in zip(models, xs, seeds)]
        if not all(map(math.isfinite, history.train_loss)):  # never a silent NaN
            raise FloatingPointError(f"training diverged: some models' losses are not finite (lr={lr!r}); "
                                     "try a smaller lr")
    return history


def _fit_chunk(models: list[VQVAE], xs: list[Tensor], seeds: list[int], epochs: int, batch_size: int,
               lr: float, dev: torch.device) -> None:
    R, N = len(models), len(xs[0])
    template = models[0]
    K, L, D = template.K, template.L, template.code_dim
    q0 = template.quantizer
    softmax = q0.quantizer == "softmax"
    update = q0.update
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    # fit draws the softmax latents from the global generator seeded with its seed
    draws = [torch.Generator(device=dev).manual_seed(s) for s in seeds] if softmax else None

    # The data-dependent start, model by model, exactly as fit does it (it draws from
    # ``gen`` only, so fit's reseeding of the global generator plays no part here).
    for m, x, gen in zip(models, xs, gens):
        m.to(dev)
        if not bool(m.codebook_initialised):
            sample = x[torch.randperm(len(x), generator=gen)[:4096].to(dev)]
            m.init_codebook(sample, generator=gen)
        m.quantizer.recent_count.zero_()

    p = stack_parameters(models, dev)
    codebook = p.pop("quantizer.codebook")
    ema_count, ema_sum, recent = p.pop("quantizer.ema_count"), p.pop("quantizer.ema_sum"), p.pop("quantizer.recent_count")
    trained = [name for name, prm in template.named_parameters() if prm.requires_grad]
    for name in trained:
        if name == "quantizer.codebook":
            codebook.requires_grad_(True)
        else:
            p[name].requires_grad_(True)
    opt_params = [codebook if name == "quantizer.codebook" else p[name] for name in trained]
    opt = torch.optim.Adam(opt_params, lr=lr)
    X = torch.stack(xs)  # (R, N, C, H, W)
    Xflat = X.reshape(R, N, -1)
    rows = torch.arange(R, device=dev)[:, None]
    offsets = rows * K
    decay, eps, commitment = q0.decay, q0.eps, template.commitment

    def encode(xb: Tensor) -> Tensor:  # (R, B, d) → (R, B·L, D) on the sphere
        z = batched_mlp(template.encoder, "encoder", xb, p)
        return F.normalize(z.reshape(R, -1, L, D), dim=-1).reshape(R, -1, D)

    for _ in range(epochs):
        order = torch.stack([torch.randperm(N, generator=g) for g in gens]).to(dev)
        for start in range(0, N, batch_size):
            xb = Xflat[rows, order[:, start:start + batch_size]]  # (R, B, d)
            B = xb.shape[1]
            flat = encode(xb)
            codes = F.normalize(codebook, dim=-1)
            if update != "loss":
                codes = codes.detach()
            d = ((flat * flat).sum(-1, keepdim=True) - 2 * torch.bmm(flat, codes.transpose(1, 2))
                 + (codes * codes).sum(-1).unsqueeze(1)).clamp_min(0.0).clamp_max(4.0)
            if softmax:
                probs = torch.softmax(-q0.beta * d, dim=-1).detach()
                idx = torch.stack([torch.multinomial(probs[r], 1, generator=draws[r]).squeeze(1)
                                   for r in range(R)])
            else:
                idx = d.argmin(-1)
            chosen = torch.gather(codes, 1, idx.unsqueeze(-1).expand(-1, -1, D))
            z_q = chosen + (flat - flat.detach())
            x_hat = torch.sigmoid(batched_mlp(template.decoder, "decoder", z_q.reshape(R, B, L * D), p))
            loss = (x_hat - xb).pow(2).mean((1, 2))
            if update == "loss":
                loss = loss + (chosen - flat.detach()).pow(2).mean((1, 2))
            loss = loss + commitment * (flat - chosen.detach()).pow(2).mean((1, 2))
            with torch.no_grad():
                slot = (idx + offsets).reshape(-1)
                counts = torch.bincount(slot, minlength=R * K).reshape(R, K).to(recent.dtype)
                recent += counts
                if update == "ema":
                    sums = torch.zeros(R * K, D, dtype=flat.dtype, device=dev).index_add_(
                        0, slot, flat.detach().reshape(-1, D)).reshape(R, K, D)
                    ema_count.mul_(decay).add_(counts.to(flat.dtype), alpha=1 - decay)
                    ema_sum.mul_(decay).add_(sums, alpha=1 - decay)
                    total = ema_count.sum(1, keepdim=True)
                    smoothed = (ema_count + eps) / (total + K * eps) * total
                    codebook.copy_(ema_sum / smoothed.unsqueeze(-1))
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
        if template.dead_code_reset:
            with torch.no_grad():
                pool = encode(Xflat[rows, order[:, :min(N, 1024)]])  # (R, P·L, D)
                dead_any = (recent == 0).any(1).tolist()
                for r in range(R):
                    if not dead_any[r]:
                        continue
                    dead = (recent[r] == 0).nonzero().squeeze(1)
                    pick = torch.randint(pool.shape[1], (dead.numel(),), generator=gens[r]).to(dev)
                    new = pool[r, pick]
                    codebook.data[r, dead] = new
                    ema_sum[r, dead] = new
                    ema_count[r, dead] = 1.0
                recent.zero_()

    with torch.no_grad():
        for r, m in enumerate(models):
            own = dict(m.named_parameters())
            for name, value in p.items():
                own[name].copy_(value[r])
            m.quantizer.codebook.copy_(codebook[r])
            m.quantizer.ema_count.copy_(ema_count[r])
            m.quantizer.ema_sum.copy_(ema_sum[r])
            m.quantizer.recent_count.copy_(recent[r])
            m.eval()
