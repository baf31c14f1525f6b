"""The book's figure style and the drawing helpers shared by the chapters (matplotlib only).

One style for the whole book, in one place: every chapter's setup cell calls
:func:`use_book_style`, which sets matplotlib's ``rcParams`` so that a figure is drawn at
the size it is shown. The content column of the rendered book is about 690 px wide on a
1280 px screen; a figure :data:`BOOK_WIDTH` inches wide at :data:`DPI` dots per inch is
670 px, shown at 100 %, and its smallest text (ticks and legends, 9 pt) is 12.5 px on
screen. :func:`figure` makes such a figure; :func:`figure_legend` puts one legend under
a figure of several panels; :func:`plain_log_axis` labels a log axis with plain numbers.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .frames import cache_figures

__all__ = ["BOOK_WIDTH", "DPI", "BOOK_RC", "use_book_style", "figure", "figure_legend", "plain_log_axis",
           "image_grid", "show_images", "bounds_against_gap", "coverage_panel", "BOUND_LABELS"]

#: Width of a full-column figure in inches: 670 px at :data:`DPI`, the content column of the
#: book on a desktop (about 690 px at 1280 px). On a phone the same figure is shown at ~53 %.
BOOK_WIDTH = 6.7
#: Dots per inch of every figure and every widget image of the book.
DPI = 100
#: The smallest font size the book draws, in points (12.5 px at :data:`DPI`).
MIN_FONT_PT = 9

#: The rcParams :func:`use_book_style` sets (readable at the size the figure is shown).
BOOK_RC = {
    "figure.figsize": (BOOK_WIDTH, 3.2),
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
    "legend.framealpha": 0.85,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 5,
    "errorbar.capsize": 2,
    "image.cmap": "viridis",
}


def use_book_style() -> None:
    """Set the book's figure style (:data:`BOOK_RC`); every chapter's setup cell calls it.

    In a kernel the notebook's backend is loaded first (matplotlib would load it at the first
    figure, and the inline backend applies its own settings then), so it cannot override the
    style afterwards, and the figures it displays are cached as images
    (:func:`vqlib.book.frames.cache_figures`).
    """
    import matplotlib  # matplotlib.pyplot picks a backend on import: only when the style is applied


    cache_figures()  # in a kernel: figures a later run would draw the same are read back
    matplotlib.rcParams.update(BOOK_RC)


def figure(height: float = 3.2, ncols: int = 1, nrows: int = 1, *, width: float = BOOK_WIDTH,
           **subplots) -> tuple[Figure, np.ndarray | Axes]:
    """A figure of the column's width and the given height (inches), with its axes.

    Like ``plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained")``;
    extra keywords (``sharey=True``, ...) go to ``plt.subplots``. Every chapter draws its
    figures with it, so that none is wider than the column it is shown in.
    """
    import matplotlib.pyplot as plt  # pyplot picks a backend on import: only when a figure is made

    if not 0 < width <= BOOK_WIDTH:
        raise ValueError(f"width must be in (0, {BOOK_WIDTH}] inches (the column), got {width!r}")
    return plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **subplots)


def figure_legend(fig: Figure, axes: Iterable[Axes] | None = None, *, ncols: int | None = None,
                  loc: str = "outside lower center", **kwargs) -> None:
    """One legend for all panels of ``fig``, below them (the panels' own legends removed).

    Collects every labelled artist of ``axes`` (default: all axes of ``fig``) and keeps the
    first of each label. Returns nothing, so that a notebook cell may end with it (the
    legend is ``fig.legends[-1]``). Used by small multiples and by figures of several panels
    that share their series.
    """
    axes = list(fig.axes if axes is None else axes)
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles and not label.startswith("_"):
                handles[label] = handle
                labels.append(label)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if not labels:
        return
    ncols = ncols or min(len(labels), 3)
    fig.legend([handles[k] for k in labels], labels, loc=loc, ncols=ncols, **kwargs)


def plain_log_axis(ax: Axes, axis: str = "x", ticks: Sequence[float] | None = None) -> None:
    """A log axis labelled with plain numbers (1, 10, 100, or ``ticks``), no minor ticks."""
    from matplotlib.ticker import (  # only when a log axis is drawn
        FuncFormatter,
        NullLocator,
    )

    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    which = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    if ticks is not None:
        (ax.set_xticks if axis == "x" else ax.set_yticks)(list(ticks), [f"{t:g}" for t in ticks])
    else:
        which.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    which.set_minor_locator(NullLocator())


def image_grid(images, ncol: int, pad: int = 1) -> np.ndarray:
    """Tile images (N, C, H, W) in [0, 1] into one (rows·H, ncol·W[, C]) array.

    The ``pad`` pixels between images are white as :func:`show_images` draws them: 0 for
    one channel (drawn with ``gray_r``, ink dark), 1 for colour images.
    """
    x = torch.as_tensor(images).detach().cpu().float().numpy()
    n, c, h, w = x.shape
    rows = -(-n // ncol)
    canvas = np.full((rows * (h + pad) - pad, ncol * (w + pad) - pad, c), 0.0 if c == 1 else 1.0)
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
        ax.set_title(title)


#: Short labels of the bounds drawn by :func:`bounds_against_gap` (chapters 2 and 9).
BOUND_LABELS = {"ld_cmi_cosh": "ld-CMI\ncosh", "e_cmi_cosh": "e-CMI\ncosh", "held_out": "held-out",
                "ld_cmi": "ld-CMI\n√(2I)", "e_cmi": "e-CMI\n√(2I)"}


def bounds_against_gap(ax: Axes, row, keys=("ld_cmi_cosh", "e_cmi_cosh", "held_out", "ld_cmi", "e_cmi"),
                       title: str | None = None, labels: dict | None = None,
                       horizontal: bool = False) -> None:
    """Each bound's plug-in estimate and certified value as bars, the measured gap as a line (chapters 2, 9).

    ``row`` has ``bounds`` (estimates), ``certified``, ``gap`` and ``gap_sem`` (a sweep row or a
    :class:`vqlib.SupersampleResult`). The grey band is the gap ± 2 s.e.; the value axis is
    logarithmic and stops at 1, the value of a vacuous bound. ``labels`` names the bounds
    (default :data:`BOUND_LABELS`); ``horizontal=True`` draws the bars across, the bounds
    listed top to bottom (small multiples with a shared bound axis).
    """
    get = (lambda k: row[k]) if isinstance(row, dict) else (lambda k: getattr(row, k))  # noqa: E731
    bounds, certified, gap, sem = get("bounds"), get("certified"), get("gap"), get("gap_sem")
    names = [(labels or BOUND_LABELS).get(k, k) for k in keys]
    x = np.arange(len(keys))
    low = np.nanmin([gap, *(bounds[k] for k in keys), *(certified[k] for k in keys)])
    limits = (max(low, 1e-4) / 2, 1.5)
    if horizontal:
        ax.barh(x - 0.2, [bounds[k] for k in keys], 0.4, color="#b3c6e5", label="estimate (plug-in)")
        ax.barh(x + 0.2, [certified[k] for k in keys], 0.4, color="#3a5a98", label="certified (95%)")
        ax.axvline(gap, color="k", lw=1.5, label="measured gap")
        ax.axvspan(gap - 2 * sem, gap + 2 * sem, color="k", alpha=0.15)
        ax.set_xscale("log")
        ax.set_yticks(x, [n.replace("\n", " ") for n in names])
        ax.set_xlim(*limits)
        ax.set_ylim(len(keys) - 0.5, -0.5)  # the first bound on top (also on a shared axis)
    else:
        ax.bar(x - 0.2, [bounds[k] for k in keys], 0.4, color="#b3c6e5", label="estimate (plug-in)")
        ax.bar(x + 0.2, [certified[k] for k in keys], 0.4, color="#3a5a98", label="certified (95%)")
        ax.axhline(gap, color="k", lw=1.5, label="measured gap")
        ax.axhspan(gap - 2 * sem, gap + 2 * sem, color="k", alpha=0.15)
        ax.set_yscale("log")
        ax.set_xticks(x, names)
        ax.set_ylim(*limits)
    if title:
        ax.set_title(title)


def coverage_panel(ax: Axes, experiments, which: str = "certified", title: str | None = None,
                   seed: int = 0) -> None:
    """Chapter 2's coverage study for one learner: each experiment's value ÷ the truth it bounds.

    ``experiments``: the ``experiments`` of a ``ch02-coverage`` row (one dict per independent
    experiment: ``m``, the certified values, the plug-in estimate, the true gap and the true
    value of each bound with that experiment's bins). ``which="certified"``: one row per
    certified value (the ld-CMI and e-CMI cosh forms ÷ their true values, the held-out value ÷
    the true gap) on a log axis; ``"plug_in"``: the plug-in
    estimate of the ld-CMI cosh bound ÷ its true value, on a linear axis. One dot per
    experiment (jittered up and down), the median as a black diamond, a red line at 1 (left of
    it the value fell below its truth), and each row's label says how many did (over every m).
    Several numbers of masks m are drawn in colours of their own, labelled for one legend under
    the figure (:func:`figure_legend`).
    """
    ratios_of = {  # per experiment: the value, the truth it bounds, its label
        "plug_in": (("plug_in", "true_ld_cmi_cosh", "ld-CMI cosh"),),
        "certified": (("certified_ld_cmi_cosh", "true_ld_cmi_cosh", "ld-CMI cosh"),
                      ("certified_e_cmi_cosh", "true_e_cmi_cosh", "e-CMI cosh"),
                      ("certified_held_out", "true_gap", "held-out")),
    }
    if which not in ratios_of:
        raise ValueError(f"which must be 'certified' or 'plug_in', got {which!r}")
    rows = ratios_of[which]
    ms = sorted({e["m"] for e in experiments})
    colours = ["#3a5a98", "#e08a3c", "#4d9a5b", "#8c5aa8"]
    rng = np.random.default_rng(seed)
    labels, ratios = [], []
    for y, (value, truth, label) in enumerate(rows):
        ok = [e for e in experiments if e[truth] > 0]
        below = sum(e[value] < e[truth] for e in ok)
        labels.append(f"{label}\n{below} of {len(ok)} below")
        for j, m in enumerate(ms):
            r = np.array([e[value] / e[truth] for e in ok if e["m"] == m])
            ratios.append(r)
            offset = 0.0 if len(ms) == 1 else (j - (len(ms) - 1) / 2) * 0.6 / len(ms)
            spread = 0.28 / len(ms)
            ax.scatter(r, y + offset + rng.uniform(-spread, spread, len(r)), s=7, alpha=0.35, lw=0,
                       color=colours[j % len(colours)], label=f"m = {m}" if y == 0 and len(ms) > 1 else None)
            ax.scatter([np.median(r)], [y + offset], marker="D", s=30, color="k", edgecolor="w", lw=0.8, zorder=3)
    every = np.concatenate(ratios)
    if which == "certified":
        ax.set_xscale("log")
        low, high = min(0.8, every.min() / 1.15), every.max() * 1.3
        plain_log_axis(ax, "x", [t for t in (1, 2, 5, 10, 20, 50) if low <= t <= high])
    else:
        half = max(np.abs(every - 1).max() * 1.15, 0.01)
        low, high = 1 - half, 1 + half
    ax.set_xlim(low, high)
    ax.axvspan(low, 1, color="#c0392b", alpha=0.08, lw=0)
    ax.axvline(1, color="#c0392b", lw=1.2)
    ax.text(0.01, 0.99, "missed", transform=ax.transAxes, ha="left", va="top", color="#c0392b", fontsize=10)
    ax.set_yticks(range(len(rows)), labels, fontsize=10.5)  # text a phone still reads at half size
    ax.tick_params(axis="x", labelsize=10)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("÷ its true value", fontsize=10.5)
    if title:
        ax.set_title(title, fontsize=11)
