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
    """Train a VQ-VAE for every (K, L) and measure train loss, test loss and usage (chapter 1).

    Each model is :class:`vqlib.VQVAE` (x_train's image shape, K codes, L latent positions)
    trained by :func:`vqlib.fit` from ``train_seed``; losses are the per-input
    ℓ(x, x̂) = ‖x − x̂‖²/d averaged over each set, and usage is :func:`vqlib.codebook_usage`
    of the training set's latent variables (perplexity exp(−Σ_k p_k log p_k), the fraction of
    the K codes used).

    Parameters
    ----------
    x_train : tensor or array (N, C, H, W)
        Training images, floating dtype, values in [0, 1].
    x_test : tensor or array (N_test, C, H, W)
        Held-out images of the same image shape (C, H, W).
    Ks : iterable of int
        Codebook sizes, each ≥ 1; at least one.
    Ls : iterable of int
        Numbers of latent positions, each ≥ 1; at least one.
    epochs : int, default 30
        Training epochs of every model.
    train_seed : int, default 0
        Seeds the initial weights, the training and the evaluation of every model.
    device : str or torch.device, optional
        Where to train (default: :func:`vqlib.default_device`).
    progress : bool, default False
        Show a tqdm progress bar over the settings.
    **model_kwargs
        Further arguments of :class:`vqlib.VQVAE` (``code_dim``, ``quantizer``, ``architecture``, …).

    Returns
    -------
    rows : list of dict
        One dict per setting, L by L and K by K within each L, with K, L, train_seed, epochs,
        train_loss, test_loss, gap (test − train), perplexity and used_fraction (on the
        training set).
    models : dict
        ``models[(K, L)]`` is the trained model in evaluation mode.

    Raises
    ------
    ValueError
        When ``Ks`` or ``Ls`` is empty or holds a value that is not an integer ≥ 1, when
        ``x_train`` or ``x_test`` is not a batch of images in [0, 1], or when their image shapes
        differ (and for model arguments :class:`vqlib.VQVAE` refuses).

    See also
    --------
    vqlib.fit, vqlib.codebook_usage, vqlib.studies.capacity.capacity_runs; chapter 1.
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
