"""Sweep panels that stay interactive in the static HTML, and their static twins.

Every chapter that lets readers vary the codebook size K, the number of latent
positions L, the sample size n, the softmax quantizer's inverse temperature β
(``beta``) or the prior
uses this module. A chapter writes one axes-drawing function and calls it twice::

    def draw(ax, K, L):
        ...

    grid = {"L": [1, 4, 16], "K": [2, 8, 32, 128]}
    sweep_panel(axes_renderer(draw), grid)   # sliders, works without a kernel
    small_multiples(draw, grid)              # the static twin (print, no JavaScript)

How the panel survives without a kernel: every setting is rendered once to a small
image, each image becomes an ``ipywidgets.Image``, and the images sit in an
``ipywidgets.Stack`` whose ``selected_index`` is ``jslink``-ed to the ``index``
trait of a ``SelectionSlider``. Jupyter Book embeds the widget state in the page,
so the browser switches images with no Python running. Two controls give nested
stacks: the outer stack follows the first slider, every inner stack the second.
Where ipywidgets has no ``Stack`` (version 7), a ``Tab`` takes its place.

Frames are cached (:mod:`vqlib.book.frames`): a chapter executed again in a fresh kernel reads
each frame back from ``$VQLIB_CACHE/frames`` instead of drawing it, when nothing that could
change it has changed (the cells, the files they read, ...) and the stored frame is sound (a
complete record that decodes as an image of its format and of the size drawn; anything else is
warned about, moved aside and drawn again). Outside an IPython kernel every frame is drawn.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from .frames import cached_image, frame_path
from .plots import BOOK_WIDTH, DPI, figure_legend

__all__ = ["KERNEL_NOTE", "SweepPanel", "axes_renderer", "small_multiples", "sweep_panel"]

Setting = dict[str, Any]
Render = Callable[..., "Figure | bytes"]
DrawAxes = Callable[..., Any]

_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "svg": "svg+xml"}
_SYMBOLS = {"beta": "β"}
_KERNEL_HINT = "Needs a running kernel (e.g. on Colab); the sliders above do not."
#: What the compute row says before it is used. In the static HTML page the button cannot
#: run anything: this line says so, and where to get a kernel.
KERNEL_NOTE = ("<i>“compute” needs a running Python kernel: open this chapter on Colab (the "
               "badge at the top of the page) or in Jupyter. The sliders above work without one.</i>")


# --------------------------------------------------------------------------- grid


def _check_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Return ``grid`` as an ordered dict of lists, or raise on a malformed grid."""
    if not isinstance(grid, Mapping) or not 1 <= len(grid) <= 2:
        size = len(grid) if isinstance(grid, Mapping) else type(grid).__name__
        raise ValueError(f"grid must map one or two control names to values, got {size}")
    checked = {}
    for name, values in grid.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"grid: control name {name!r} is not a valid keyword")
        values = list(values)
        if not values:
            raise ValueError(f"grid: control {name!r} has no values")
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"grid: control {name!r} has repeated values {values}")
        checked[name] = values
    return checked


def _settings(grid: Mapping[str, list[Any]]) -> list[Setting]:
    """All settings of ``grid`` in row-major order (last control varies fastest)."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*grid.values())]


def _key(setting: Setting) -> tuple[Any, ...]:
    return tuple(setting.values())


def _label(name: str, titles: Mapping[str, str] | None) -> str:
    """The name shown for a control: ``titles[name]`` or the math symbol."""
    return (titles or {}).get(name, _SYMBOLS.get(name, name))


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _caption(name: str, value: Any, titles: Mapping[str, str] | None = None) -> str:
    return f"{_label(name, titles)} = {_show(value)}"


# ------------------------------------------------------------------------ images


def _to_bytes(result: Any, *, fmt: str, dpi: int, setting: Setting) -> bytes:
    """Turn what a render returned (Figure or encoded bytes) into image bytes."""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result)
    if not isinstance(result, Figure):
        raise TypeError(
            f"render({setting}) must return a matplotlib Figure or image bytes, "
            f"got {type(result).__name__}"
        )
    buffer = io.BytesIO()
    try:
        result.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(result)
    return buffer.getvalue()


def _detached_figure(figsize: tuple[float, float]) -> Figure:
    """A constrained-layout Figure that pyplot will not show on its own.

    Made through pyplot (so a notebook's inline backend is active and displays the
    figure when it is a cell's last expression) and closed at once (so it is not
    shown a second time at the end of the cell).
    """
    fig = plt.figure(figsize=figsize, layout="constrained")
    plt.close(fig)
    return fig


def _frames(render: Render, grid: dict[str, list[Any]], fmt: str, dpi: int, cache: bool) -> dict[tuple, bytes]:
    """Every frame of a panel, read from the image cache (:mod:`vqlib.book.frames`) where it holds
    a sound one, else drawn (and stored). Each frame is keyed just before it is read or drawn,
    so that a file an earlier frame's drawing opened is part of the later frames' keys."""
    images = {}
    for s in _settings(grid):
        path = frame_path("widget frame", fmt, getattr(render, "__name__", ""), repr(grid), dpi,
                          repr(s)) if cache else None
        images[_key(s)] = cached_image(path, fmt, lambda s=s: _to_bytes(render(**s), fmt=fmt, dpi=dpi, setting=s))
    return images


def _image(data: bytes, fmt: str) -> widgets.Image:
    return widgets.Image(value=data, format=_IMAGE_FORMATS[fmt])


def axes_renderer(draw: DrawAxes, figsize: tuple[float, float] = (3, 3)) -> Render:
    """Wrap ``draw(ax, **setting)`` into ``render(**setting) -> Figure``.

    Used by every chapter's widget so that the panel (`sweep_panel`) and its static
    twin (`small_multiples`) share one drawing function. The figure is detached
    from pyplot, so it never shows up on its own in a notebook.
    """

    def render(**setting: Any) -> Figure:
        fig = _detached_figure(figsize)
        draw(fig.add_subplot(), **setting)
        return fig

    render.__name__ = f"render_{getattr(draw, '__name__', 'axes')}"
    render.__doc__ = f"One figure drawn by {getattr(draw, '__name__', draw)!r}."
    return render


# ------------------------------------------------------------------------ panel


class SweepPanel(widgets.VBox):
    """The container `sweep_panel` returns: a VBox with handles for code and tests.

    Plain attributes (not synced): ``grid``, ``sliders`` (name → SelectionSlider),
    ``stack`` (outer Stack, or Tab without ``Stack``), ``links`` (the jslinks),
    ``images`` (tuple of values in grid order → encoded bytes) and, when
    ``compute`` was given, ``inputs``, ``button``, ``message`` and ``result``.
    """


def _stack_class() -> type[widgets.Box]:
    """``Stack`` where ipywidgets has it (8+), else ``Tab``; detected by feature."""
    return getattr(widgets, "Stack", None) or widgets.Tab


def _selection(children: list[widgets.Widget], titles: list[str]) -> widgets.Box:
    """A Stack (or Tab) over ``children`` showing the first one."""
    box = _stack_class()(children=children)
    if isinstance(box, widgets.Tab):
        for i, title in enumerate(titles):
            box.set_title(i, title)
    box.selected_index = 0
    return box


def _slider(
    name: str, values: list[Any], titles: Mapping[str, str] | None
) -> widgets.SelectionSlider:
    return widgets.SelectionSlider(
        options=[(_show(v), v) for v in values],
        description=_label(name, titles),
        continuous_update=True,
        style={"description_width": "initial"},
        layout=widgets.Layout(width="min(100%, 24em)"),
    )


def _link(slider: widgets.SelectionSlider, box: widgets.Box) -> widgets.Widget:
    # SelectionSlider syncs its position as the integer trait ``index`` (its
    # ``value`` is Python-side only: jslink refuses it with "cannot be synced").
    return widgets.jslink((slider, "index"), (box, "selected_index"))


def _build_stacks(
    grid: dict[str, list[Any]],
    images: dict[tuple, bytes],
    fmt: str,
    titles: Mapping[str, str] | None,
) -> tuple[widgets.Box, list[widgets.Box]]:
    """The outer stack and the stacks linked to the last control (inner ones)."""
    names = list(grid)
    last = names[-1]
    tab_titles = [_caption(last, v, titles) for v in grid[last]]
    if len(names) == 1:
        children = [_image(images[(v,)], fmt) for v in grid[last]]
        box = _selection(children, tab_titles)
        return box, [box]
    first = names[0]
    inner = [
        _selection([_image(images[(u, v)], fmt) for v in grid[last]], tab_titles)
        for u in grid[first]
    ]
    outer = _selection(inner, [_caption(first, u, titles) for u in grid[first]])
    return outer, inner


def sweep_panel(
    render: Render,
    grid: Mapping[str, Sequence[Any]],
    *,
    compute: Callable[..., Figure | bytes] | None = None,
    titles: Mapping[str, str] | None = None,
    dpi: int = DPI,
    fmt: str = "png",
    description: str | None = None,
    cache: bool = True,
) -> SweepPanel:
    """Sliders over ``grid`` that switch precomputed figures, with or without a kernel.

    Every chapter's interactive figure (sweeps over K, L, n, β, the prior) is one
    of these; `small_multiples` draws its static twin.

    Parameters
    ----------
    render
        ``render(**setting)`` returns a matplotlib Figure (closed after saving) or
        encoded image bytes in ``fmt``, for one setting of the grid.
    grid
        One or two controls, ``{name: values}``, in the order of the sliders; with
        two controls the first is the outer (row) one, e.g.
        ``{"L": [1, 4, 16], "K": [2, 8, 32, 128]}``.
    compute
        Optional ``compute(**setting) -> Figure | bytes`` for settings outside the
        grid; adds a compact "compute another setting" row that works only with a
        running kernel (inert in the static HTML).
    titles
        Optional ``{name: label}`` shown instead of the control names (``beta`` is
        shown as ``β`` by default).
    dpi, fmt
        Resolution and format (``"png"``, ``"jpeg"``, ``"svg"``) of the images; the
        default is the book's :data:`vqlib.book.plots.DPI` (100), so a figure
        :data:`vqlib.book.plots.BOOK_WIDTH` inches wide fills the content column at 100 %;
        a 6.7 × 3 inch figure is a PNG of roughly 20–50 kB.
    description
        Optional HTML shown above the sliders.
    cache
        Read frames from the image cache and store new ones (:mod:`vqlib.book.frames`);
        ``False`` draws every frame.
    """
    if fmt not in _IMAGE_FORMATS:
        raise ValueError(f"fmt must be one of {sorted(_IMAGE_FORMATS)}, got {fmt!r}")
    grid = _check_grid(grid)
    images = _frames(render, grid, fmt, dpi, cache)
    sliders = {name: _slider(name, values, titles) for name, values in grid.items()}
    outer, inner = _build_stacks(grid, images, fmt, titles)
    first, last = sliders[next(iter(grid))], sliders[list(grid)[-1]]
    links = [_link(last, box) for box in inner]
    if len(grid) == 2:
        links.insert(0, _link(first, outer))

    header = [widgets.HTML(description)] if description else []
    panel = SweepPanel(children=[*header, *sliders.values(), outer])
    panel.grid, panel.sliders, panel.stack = grid, sliders, outer
    panel.links, panel.images = links, images
    if compute is not None:
        _add_compute_row(panel, compute, titles=titles, dpi=dpi, fmt=fmt)
    return panel


# ------------------------------------------------------------------ compute row


def _parse(
    text: str, name: str, examples: list[Any], titles: Mapping[str, str] | None
) -> Any:
    """Read a typed value with the type of the grid's values for that control."""
    text = text.strip()
    numbers = [v for v in examples if not isinstance(v, bool)]
    label = _label(name, titles)
    if numbers and all(isinstance(v, int) for v in numbers):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{label} must be a whole number, got {text!r}") from None
    if numbers and all(isinstance(v, (int, float)) for v in numbers):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{label} must be a number, got {text!r}") from None
    if not text:
        raise ValueError(f"{label} is empty")
    return text


def _add_compute_row(
    panel: SweepPanel,
    compute: Callable[..., Any],
    *,
    titles: Mapping[str, str] | None,
    dpi: int,
    fmt: str,
) -> None:
    """Append text inputs, a button, a message line and a result image to ``panel``."""
    inputs = {
        name: widgets.Text(
            value=_show(values[0]),
            description=_label(name, titles),
            style={"description_width": "initial"},
            layout=widgets.Layout(width="8em"),
        )
        for name, values in panel.grid.items()
    }
    button = widgets.Button(description="compute", tooltip=_KERNEL_HINT)
    message = widgets.HTML(KERNEL_NOTE)
    result = widgets.Image(format=_IMAGE_FORMATS[fmt], layout=widgets.Layout(display="none"))

    def on_click(_: widgets.Button) -> None:
        try:
            setting = {
                name: _parse(box.value, name, panel.grid[name], titles)
                for name, box in inputs.items()
            }
        except ValueError as error:
            message.value = f"<i>{error}</i>"
            return
        text = ", ".join(_caption(n, v, titles) for n, v in setting.items())
        message.value = f"<i>computing {text} …</i>"
        try:
            data = panel.images.get(_key(setting))
            if data is None:
                data = _to_bytes(compute(**setting), fmt=fmt, dpi=dpi, setting=setting)
        except Exception as error:  # a UI callback: report, never raise a traceback
            message.value = f"<i>could not compute {text}: {type(error).__name__}: {error}</i>"
            return
        result.value = data
        result.layout.display = None
        message.value = f"{text}:"

    button.on_click(on_click)
    row = widgets.HBox(
        [widgets.Label("another setting:"), *inputs.values(), button],
        layout=widgets.Layout(flex_flow="row wrap", align_items="center"),
    )
    panel.children = [*panel.children, row, message, result]
    panel.inputs, panel.button, panel.message, panel.result = inputs, button, message, result


# ------------------------------------------------------------------ static twin


def _beside(ax: Axes, side: str) -> Callable[[Any], Bbox]:
    """Reference box for a header: ``ax`` stretched to its decorations on ``side``.

    Decorations are the tick labels, axis labels and title, whether or not the
    draw function set them (texts drawn inside the axes are left out).
    """

    def bbox(renderer: Any) -> Bbox:
        tight = ax.get_tightbbox(renderer, bbox_extra_artists=[])
        box = ax.get_window_extent(renderer)
        if side == "top":
            return Bbox.from_extents(box.x0, box.y0, box.x1, max(box.y1, tight.y1))
        return Bbox.from_extents(min(box.x0, tight.x0), box.y0, box.x1, box.y1)

    return bbox


def _label_column(ax: Axes, text: str, pad: float = 4) -> None:
    """Write a column header above ``ax``, above any title the draw function set."""
    ax.annotate(text, xy=(0.5, 1), xycoords=_beside(ax, "top"), xytext=(0, pad),
                textcoords="offset points", ha="center", va="bottom",
                fontsize="medium", fontweight="bold")


def _label_row(ax: Axes, text: str, pad: float = 6) -> None:
    """Write a row header left of ``ax``, outside its tick and axis labels."""
    ax.annotate(text, xy=(0, 0.5), xycoords=_beside(ax, "left"), xytext=(-pad, 0),
                textcoords="offset points", ha="right", va="center",
                rotation=90, fontsize="medium", fontweight="bold")


def _shape(n: int, max_cols: int) -> tuple[int, int]:
    """Rows and columns for ``n`` panels, at most ``max_cols`` wide, rows as even as can be."""
    rows = -(-n // max_cols)
    cols = -(-n // rows)
    return rows, cols


def small_multiples(
    render_axes: DrawAxes,
    grid: Mapping[str, Sequence[Any]],
    *,
    width: float | None = None,
    panel_height: float | None = None,
    figsize_per: tuple[float, float] | None = None,
    max_cols: int = 4,
    sharex: bool = False,
    sharey: bool = False,
    legend: bool = False,
    suptitle: str | None = None,
    titles: Mapping[str, str] | None = None,
) -> Figure:
    """The static twin of a `sweep_panel`: one subplot per setting of ``grid``.

    Every chapter shows one under each widget, so the printed book and readers
    without JavaScript see the whole sweep. Each cell is drawn by
    ``render_axes(ax, **setting)`` and headed "L = 4", "K = 32", ....

    Drawn at the size it is shown: the figure is ``width`` inches wide (default the
    book's column, :data:`vqlib.book.plots.BOOK_WIDTH`) and has at most ``max_cols``
    columns. Two controls: rows follow the first and columns the second; when the
    second has more than ``max_cols`` values and the first does not, the grid is
    transposed (columns follow the first). One control: its values fill rows of at most
    ``max_cols`` panels. Each panel is ``panel_height`` inches high (default: 0.8 of
    its width, or the aspect of ``figsize_per``, the old per-panel size, which also
    sets the width when that fits the column). ``sharex``/``sharey`` share the axes
    (inner tick labels hidden); ``legend=True`` draws one legend under the grid instead
    of the panels' own.

    The figure is detached from pyplot: a cell shows it once when it is the last
    expression (or via ``display``/``glue``); a script saves it with ``savefig``.
    """
    grid = _check_grid(grid)
    if not isinstance(max_cols, int) or max_cols < 1:
        raise ValueError(f"max_cols must be a positive whole number, got {max_cols!r}")
    names = list(grid)
    settings: list[list[Setting | None]]
    col_headers: list[str] | None
    row_headers: list[str] | None = None
    if len(names) == 2:
        rows_name, cols_name = names
        if len(grid[cols_name]) > max_cols and len(grid[rows_name]) <= max_cols:
            rows_name, cols_name = cols_name, rows_name
        if len(grid[cols_name]) > max_cols:
            raise ValueError(f"grid: both controls have more than max_cols = {max_cols} values "
                             f"({len(grid[names[0]])} and {len(grid[names[1]])}); split the grid "
                             "or let the panel's sliders pick the slice")
        settings = [[{names[0]: r, names[1]: c} if rows_name == names[0] else {names[0]: c, names[1]: r}
                     for c in grid[cols_name]] for r in grid[rows_name]]
        col_headers = [_caption(cols_name, c, titles) for c in grid[cols_name]]
        row_headers = [_caption(rows_name, r, titles) for r in grid[rows_name]]
        nrows, ncols = len(grid[rows_name]), len(grid[cols_name])
    else:
        (name,) = names
        values = grid[name]
        nrows, ncols = _shape(len(values), max_cols)
        flat = [{name: v} for v in values] + [None] * (nrows * ncols - len(values))
        settings = [flat[i * ncols:(i + 1) * ncols] for i in range(nrows)]
        col_headers = None
    aspect = 0.8 if figsize_per is None else figsize_per[1] / figsize_per[0]
    if width is None:
        width = BOOK_WIDTH if figsize_per is None else min(BOOK_WIDTH, figsize_per[0] * ncols)
    if not 0 < width <= BOOK_WIDTH:
        raise ValueError(f"width must be in (0, {BOOK_WIDTH}] inches (the column), got {width!r}")
    height = panel_height if panel_height is not None else aspect * width / ncols
    fig = _detached_figure((width, height * nrows + (0.5 if legend else 0)))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    for i, j in itertools.product(range(nrows), range(ncols)):
        setting = settings[i][j]
        if setting is None:
            axes[i, j].remove()
            continue
        render_axes(axes[i, j], **setting)
        if col_headers is None:
            (value,) = setting.values()
            _label_column(axes[i, j], _caption(names[0], value, titles))
    if col_headers is not None:
        for j, text in enumerate(col_headers):
            _label_column(axes[0, j], text)
        for i, text in enumerate(row_headers or []):
            _label_row(axes[i, 0], text)
    for i, j in itertools.product(range(nrows), range(ncols)):
        if settings[i][j] is None:
            continue
        ax = axes[i, j]
        if sharey and j > 0:  # shared y: tick labels and label on the first column only
            ax.tick_params(labelleft=False)
            ax.set_ylabel("")
        below = [k for k in range(i + 1, nrows) if settings[k][j] is not None]
        if sharex and below:  # shared x: on the lowest panel of each column only
            ax.tick_params(labelbottom=False)
            ax.set_xlabel("")
    if legend:
        figure_legend(fig)
    if suptitle:
        fig.suptitle(suptitle)
    return fig
