"""Sweeps over the number of latents: codebook size K and latent positions L (chapter 1).

:func:`sweep_latents` trains one VQ-VAE per (K, L) and returns a tidy table (one dict a
row, seeds in every row) together with the trained models, so a chapter can draw both
summary curves and per-setting reconstructions from one computation.
"""
from __future__ import annotations

from collections.abc import Iterable

from .._checks import positive_int
from ..data import check_images
from ..models.fit import evaluate_model, fit
from ..models.metrics import codebook_usage
from ..models.vqvae import VQVAE

__all__ = ["sweep_latents"]


def sweep_latents(
    x_train,
    x_test,
    Ks: Iterable[int],
    Ls: Iterable[int],
    *,
    epochs: int = 30,
    train_seed: int = 0,
    device=None,
    progress: bool = False,
    **model_kwargs,
) -> tuple[list[dict], dict[tuple[int, int], VQVAE]]:
    """Train a VQ-VAE for every (K, L) and measure train loss, test loss and usage.

    Returns ``(rows, models)``: ``rows`` has one dict per setting with K, L, train_seed,
    train_loss, test_loss, gap (test − train), perplexity and used_fraction (on the
    training set); ``models[(K, L)]`` is the trained model in evaluation mode.
    """
    Ks = [positive_int(K, "Ks entry") for K in Ks]
    Ls = [positive_int(L, "Ls entry") for L in Ls]
    if not Ks or not Ls:
        raise ValueError("Ks and Ls must each hold at least one value")
    x_train = check_images(x_train, name="x_train")
    x_test = check_images(x_test, name="x_test", in_shape=tuple(x_train.shape[1:]))
    rows, models = [], {}
    settings = [(K, L) for L in Ls for K in Ks]
    if progress:
        from tqdm.auto import tqdm  # only when a progress bar is asked for

        settings = tqdm(settings, desc="(K, L)")
    for K, L in settings:
        model = VQVAE(x_train.shape[1:], K, L, seed=train_seed, **model_kwargs)
        fit(model, x_train, epochs=epochs, train_seed=train_seed, device=device)
        train, train_codes = evaluate_model(model, x_train, seed=train_seed)  # one pass: losses and codes
        test, _ = evaluate_model(model, x_test, seed=train_seed)
        usage = codebook_usage(train_codes, K)
        rows.append(dict(
            K=K, L=L, train_seed=train_seed, epochs=epochs,
            train_loss=float(train.mean()), test_loss=float(test.mean()),
            gap=float(test.mean() - train.mean()),
            perplexity=usage.perplexity, used_fraction=usage.used_fraction,
        ))
        models[(K, L)] = model
    return rows, models
