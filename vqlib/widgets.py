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

__all__ = ["SweepPanel", "axes_renderer", "small_multiples", "sweep_panel"]

Setting = dict[str, Any]
Render = Callable[..., "Figure | bytes"]
DrawAxes = Callable[..., Any]

_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "svg": "svg+xml"}
_SYMBOLS = {"beta": "β"}
_KERNEL_HINT = "Needs a running kernel (e.g. on Colab); the sliders above do not."


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
    dpi: int = 80,
    fmt: str = "png",
    description: str | None = None,
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
        Resolution and format (``"png"``, ``"jpeg"``, ``"svg"``) of the images; at
        the default 80 dpi a 3 × 3 inch figure is a PNG of roughly 10–30 kB.
    description
        Optional HTML shown above the sliders.
    """
    if fmt not in _IMAGE_FORMATS:
        raise ValueError(f"fmt must be one of {sorted(_IMAGE_FORMATS)}, got {fmt!r}")
    grid = _check_grid(grid)
    images = {
        _key(s): _to_bytes(render(**s), fmt=fmt, dpi=dpi, setting=s)
        for s in _settings(grid)
    }
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
    message = widgets.HTML()
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
                fontsize="large", fontweight="bold")


def _label_row(ax: Axes, text: str, pad: float = 6) -> None:
    """Write a row header left of ``ax``, outside its tick and axis labels."""
    ax.annotate(text, xy=(0, 0.5), xycoords=_beside(ax, "left"), xytext=(-pad, 0),
                textcoords="offset points", ha="right", va="center",
                rotation=90, fontsize="large", fontweight="bold")


def small_multiples(
    render_axes: DrawAxes,
    grid: Mapping[str, Sequence[Any]],
    *,
    figsize_per: tuple[float, float] = (2.2, 2.2),
    suptitle: str | None = None,
    titles: Mapping[str, str] | None = None,
) -> Figure:
    """The static twin of a `sweep_panel`: one subplot per setting of ``grid``.

    Every chapter shows one under each widget, so the printed book and readers
    without JavaScript see the whole sweep. Rows follow the first control and
    columns the second (one row for a single control); each cell is drawn by
    ``render_axes(ax, **setting)`` and headed "L = 4", "K = 32", ....
    The figure is detached from pyplot: a cell shows it once when it is the last
    expression (or via ``display``/``glue``); a script saves it with ``savefig``.
    """
    grid = _check_grid(grid)
    names = list(grid)
    rows = grid[names[0]] if len(names) == 2 else [None]
    cols = grid[names[-1]]
    width, height = figsize_per
    fig = _detached_figure((width * len(cols), height * len(rows)))
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for (i, row), (j, col) in itertools.product(enumerate(rows), enumerate(cols)):
        setting = {names[-1]: col} if row is None else {names[0]: row, names[-1]: col}
        render_axes(axes[i, j], **setting)
    for j, value in enumerate(cols):
        _label_column(axes[0, j], _caption(names[-1], value, titles))
    if len(names) == 2:
        for i, value in enumerate(rows):
            _label_row(axes[i, 0], _caption(names[0], value, titles))
    if suptitle:
        fig.suptitle(suptitle)
    return fig
