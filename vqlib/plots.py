"""Drawing helpers shared by the chapters (matplotlib only, no state)."""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.axes import Axes

__all__ = ["image_grid", "show_images", "bounds_against_gap", "coverage_panel", "BOUND_LABELS"]


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


#: Short labels of the bounds drawn by :func:`bounds_against_gap` (chapters 2 and 9).
BOUND_LABELS = {"ld_cmi_cosh": "ld-CMI\ncosh", "e_cmi_cosh": "e-CMI\ncosh", "held_out": "held-out",
                "ld_cmi": "ld-CMI\n√(2I)", "e_cmi": "e-CMI\n√(2I)"}


def bounds_against_gap(ax: Axes, row, keys=("ld_cmi_cosh", "e_cmi_cosh", "held_out", "ld_cmi", "e_cmi"),
                       title: str | None = None) -> None:
    """Each bound's plug-in estimate and certified value as bars, the measured gap as a line (chapter 2).

    ``row`` has ``bounds`` (estimates), ``certified``, ``gap`` and ``gap_sem`` (a sweep row or a
    :class:`vqlib.SupersampleResult`). The grey band is the gap ± 2 s.e.; the y axis is
    logarithmic and stops at 1, the value of a vacuous bound.
    """
    get = (lambda k: row[k]) if isinstance(row, dict) else (lambda k: getattr(row, k))  # noqa: E731
    bounds, certified, gap, sem = get("bounds"), get("certified"), get("gap"), get("gap_sem")
    x = np.arange(len(keys))
    ax.bar(x - 0.2, [bounds[k] for k in keys], 0.4, color="#b3c6e5", label="estimate (plug-in)")
    ax.bar(x + 0.2, [certified[k] for k in keys], 0.4, color="#3a5a98", label="certified (95%)")
    ax.axhline(gap, color="k", lw=1.5, label="measured gap")
    ax.axhspan(gap - 2 * sem, gap + 2 * sem, color="k", alpha=0.15)
    ax.set_yscale("log")
    ax.set_xticks(x, [BOUND_LABELS.get(k, k) for k in keys])
    low = min(gap, *(bounds[k] for k in keys), *(certified[k] for k in keys))
    ax.set_ylim(max(low, 1e-4) / 2, 1.5)
    if title:
        ax.set_title(title)


def coverage_panel(ax: Axes, summary, title: str | None = None) -> None:
    """Chapter 2's coverage study for one learner: against the number of masks, the median
    certified value and plug-in estimate (bands: 10–90% of the experiments), the true value
    of the bound and the true gap (lines)."""
    m = np.array([r["m"] for r in summary])
    pick = lambda key: np.array([r[key] for r in summary])  # noqa: E731
    ax.fill_between(m, pick("certified_lo"), pick("certified_hi"), color="#3a5a98", alpha=0.25, lw=0)
    ax.plot(m, pick("certified"), "o-", color="#3a5a98", label="certified (95%)")
    ax.fill_between(m, pick("plug_in_lo"), pick("plug_in_hi"), color="#e08a3c", alpha=0.25, lw=0)
    ax.plot(m, pick("plug_in"), "s-", color="#e08a3c", label="plug-in estimate")
    ax.plot(m, pick("true_bound"), "--", color="k", label="true bound")
    ax.plot(m, pick("true_gap"), ":", color="k", label="true gap")
    ax.set(xscale="log", yscale="log", xlabel="masks m")
    ax.set_xticks(m, [str(v) for v in m])
    ax.minorticks_off()
    if title:
        ax.set_title(title)
