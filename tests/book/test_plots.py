"""The book's figure style and drawing helpers (vqlib.book.plots)."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vqlib.book import plots  # noqa: E402


def test_style_draws_at_the_column_width_with_text_of_at_least_ten_pixels():
    plots.use_book_style()
    rc = matplotlib.rcParams
    assert rc["figure.dpi"] == rc["savefig.dpi"] == plots.DPI
    assert plots.BOOK_WIDTH * plots.DPI <= 690
    smallest = min(rc[k] for k in ("font.size", "xtick.labelsize", "ytick.labelsize", "legend.fontsize"))
    assert smallest * plots.DPI / 72 >= 10


def test_figure_and_figure_legend():
    fig, axes = plots.figure(height=2, ncols=2)
    assert tuple(fig.get_size_inches()) == (plots.BOOK_WIDTH, 2) and len(axes) == 2
    axes[0].plot([0, 1], label="a")
    axes[0].legend()
    axes[1].plot([0, 1], label="a")
    axes[1].plot([1, 0], label="b")
    assert plots.figure_legend(fig) is None  # a cell may end with it: nothing is echoed
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]
    assert axes[0].get_legend() is None
    with pytest.raises(ValueError, match="width"):
        plots.figure(width=0)


def test_plain_log_axis_labels_with_plain_numbers():
    fig, ax = plots.figure()
    ax.plot([1, 10, 100], [1, 2, 3])
    plots.plain_log_axis(ax, "x", [1, 10, 100])
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "10", "100"]
    with pytest.raises(ValueError, match="axis"):
        plots.plain_log_axis(ax, "z")


def test_image_grid_pads_with_white():
    grid = plots.image_grid(torch.ones(4, 1, 2, 2), ncol=2)
    assert grid.shape == (5, 5)
    assert grid[2].tolist() == [0.0] * 5  # the padding row: 0 is white in gray_r
    rgb = plots.image_grid(torch.zeros(2, 3, 2, 2), ncol=2)
    assert rgb.shape == (2, 5, 3) and np.all(rgb[:, 2] == 1.0)


def test_bounds_against_gap_vertical_and_horizontal():
    row = {"bounds": {"a": 0.1, "b": np.nan}, "certified": {"a": 0.2, "b": 0.5}, "gap": 0.05, "gap_sem": 0.01}
    fig, (ax0, ax1) = plots.figure(ncols=2)
    plots.bounds_against_gap(ax0, row, keys=("a", "b"), title="t")
    plots.bounds_against_gap(ax1, row, keys=("a", "b"), labels={"a": "A"}, horizontal=True)
    assert ax0.get_yscale() == "log" and ax1.get_xscale() == "log"
    assert [t.get_text() for t in ax1.get_yticklabels()] == ["A", "b"]
    assert ax1.get_ylim()[0] > ax1.get_ylim()[1]  # the first bound on top
