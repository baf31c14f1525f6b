"""Drawing helpers shared by the chapters (matplotlib only, no state)."""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.axes import Axes

__all__ = ["image_grid", "show_images"]


def image_grid(images, ncol: int, pad: int = 1) -> np.ndarray:
    """Tile images (N, C, H, W) in [0, 1] into one (rows·H, ncol·W[, C]) array."""
    x = torch.as_tensor(images).detach().cpu().float().numpy()
    n, c, h, w = x.shape
    rows = -(-n // ncol)
    canvas = np.ones((rows * (h + pad) - pad, ncol * (w + pad) - pad, c))
    for i in range(n):
        r, k = divmod(i, ncol)
        canvas[r * (h + pad) : r * (h + pad) + h, k * (w + pad) : k * (w + pad) + w] = x[i].transpose(1, 2, 0)
    return canvas[..., 0] if c == 1 else canvas


def show_images(ax: Axes, images, ncol: int, title: str | None = None) -> None:
    """Draw a tile of images on ``ax`` (grey for one channel), without ticks."""
    grid = image_grid(images, ncol)
    ax.imshow(grid, cmap="gray_r" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
