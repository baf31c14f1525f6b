"""Tests for vqlib.book.widgets: sweep panels that work without a kernel, and their twins.

What Python can check: the widget tree (stacks of images in grid order), the jslink
models and the exact (model, trait) pairs they connect, and the embedded widget
state that the static HTML is built from. That moving a slider switches the image
happens in the browser (jslink is front-end only) and is checked by a headless
browser against a built book, not here.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from ipywidgets.embed import embed_data  # noqa: E402
from ipywidgets.widgets.widget_link import Link  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vqlib.book.widgets import axes_renderer, small_multiples, sweep_panel  # noqa: E402

PNG = b"\x89PNG"
ONE = {"K": [2, 8, 32]}
TWO = {"L": [1, 4], "K": [2, 8, 32]}


def draw_setting(ax, **setting) -> None:
    """Draw the setting's values as text, so every setting gives a different image."""
    text = ", ".join(f"{name}={value}" for name, value in setting.items())
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


render = axes_renderer(draw_setting, figsize=(1.5, 1.5))


def panel_for(grid, **kwargs):
    return sweep_panel(render, grid, dpi=40, **kwargs)


def walk(widget: ipywidgets.Widget) -> Iterator[ipywidgets.Widget]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def of_type(panel, kind) -> list:
    return [w for w in walk(panel) if isinstance(w, kind)]


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ------------------------------------------------------------------- structure


def test_one_control_gives_one_stack_with_one_image_per_value_in_order():
    panel = panel_for(ONE)
    (stack,) = of_type(panel, ipywidgets.Stack)
    assert stack is panel.stack and stack.selected_index == 0
    assert all(isinstance(child, ipywidgets.Image) for child in stack.children)
    assert [bytes(image.value) for image in stack.children] == [
        panel.images[(k,)] for k in ONE["K"]
    ]
    assert all(bytes(image.value).startswith(PNG) for image in stack.children)
    assert all(image.format == "png" for image in stack.children)
    assert list(panel.sliders) == ["K"]
    assert panel.sliders["K"].options == (("2", 2), ("8", 8), ("32", 32))


def test_two_controls_give_nested_stacks_outer_first_control():
    panel = panel_for(TWO)
    outer = panel.stack
    assert isinstance(outer, ipywidgets.Stack) and len(outer.children) == len(TWO["L"])
    assert len(of_type(panel, ipywidgets.Stack)) == 1 + len(TWO["L"])
    for L, inner in zip(TWO["L"], outer.children):
        assert isinstance(inner, ipywidgets.Stack) and inner.selected_index == 0
        assert [bytes(image.value) for image in inner.children] == [
            panel.images[(L, K)] for K in TWO["K"]
        ]
    assert len(of_type(panel, ipywidgets.Image)) == len(TWO["L"]) * len(TWO["K"])


def test_every_setting_gives_different_png_bytes():
    panel = panel_for(TWO)
    assert all(data.startswith(PNG) for data in panel.images.values())
    assert len(set(panel.images.values())) == len(TWO["L"]) * len(TWO["K"]) == 6


def test_default_images_are_tens_of_kilobytes():
    def draw(ax, K):
        ax.plot(range(K), [k * k for k in range(K)], marker="o")
        ax.set_title(f"K = {K}")

    panel = sweep_panel(axes_renderer(draw), {"K": [4, 64]})
    sizes = [len(data) for data in panel.images.values()]
    assert all(5_000 < size < 60_000 for size in sizes), sizes


def test_render_may_return_encoded_bytes():
    panel = sweep_panel(lambda K: PNG + bytes([K]), ONE)
    values = [bytes(image.value) for image in panel.stack.children]
    assert values == [PNG + b"\x02", PNG + b"\x08", PNG + b"\x20"]


def test_beta_is_shown_as_greek_letter_and_titles_override():
    panel = panel_for({"beta": [0.1, 0.25]})
    assert panel.sliders["beta"].description == "β"
    assert panel.sliders["beta"].options == (("0.1", 0.1), ("0.25", 0.25))
    titled = panel_for({"prior": ["uniform", "learned"]}, titles={"prior": "prior p"})
    assert titled.sliders["prior"].description == "prior p"


def test_description_is_shown_above_the_sliders():
    panel = panel_for(ONE, description="<b>codebook size</b>")
    assert isinstance(panel.children[0], ipywidgets.HTML)
    assert panel.children[0].value == "<b>codebook size</b>"


def test_render_figures_are_closed():
    def pyplot_render(K):
        fig, ax = plt.subplots(figsize=(1, 1))
        draw_setting(ax, K=K)
        return fig

    before = set(plt.get_fignums())
    sweep_panel(pyplot_render, ONE, dpi=30)
    assert set(plt.get_fignums()) == before


# ----------------------------------------------------------------------- links


def test_links_connect_slider_index_to_stack_selected_index():
    panel = panel_for(TWO)
    slider_L, slider_K = panel.sliders["L"], panel.sliders["K"]
    links = panel.links
    assert all(isinstance(link, Link) for link in links)
    pairs = [(link.source, link.target) for link in links]
    inner = list(panel.stack.children)
    assert pairs == [((slider_L, "index"), (panel.stack, "selected_index"))] + [
        ((slider_K, "index"), (box, "selected_index")) for box in inner
    ]
    # jslink is front-end only: it works because both traits are synced ones.
    assert "index" in slider_L.keys and "selected_index" in panel.stack.keys


def test_one_control_has_one_link():
    panel = panel_for(ONE)
    (link,) = panel.links
    assert link.source == (panel.sliders["K"], "index")
    assert link.target == (panel.stack, "selected_index")


def test_embedded_state_holds_every_image_and_link():
    panel = panel_for(TWO)
    data = embed_data(views=[panel])
    assert [spec["model_id"] for spec in data["view_specs"]] == [panel.model_id]
    state = data["manager_state"]["state"]
    for image in of_type(panel, ipywidgets.Image):
        (buffer,) = state[image.model_id]["buffers"]
        assert buffer["path"] == ["value"] and buffer["data"] == encoded(bytes(image.value))
    for link in panel.links:
        model = state[link.model_id]
        assert model["model_name"] == "LinkModel"
        (slider, trait), (stack, target) = link.source, link.target
        assert model["state"]["source"] == [f"IPY_MODEL_{slider.model_id}", trait]
        assert model["state"]["target"] == [f"IPY_MODEL_{stack.model_id}", target]
        assert state[slider.model_id]["model_name"] == "SelectionSliderModel"
        assert state[stack.model_id]["model_name"] == "StackModel"


# -------------------------------------------------------------------- fallback


def test_without_stack_tabs_are_used(monkeypatch):
    monkeypatch.delattr(ipywidgets, "Stack")
    panel = panel_for(TWO)
    assert isinstance(panel.stack, ipywidgets.Tab)
    assert all(isinstance(inner, ipywidgets.Tab) for inner in panel.stack.children)
    assert panel.stack.titles == ("L = 1", "L = 4")
    assert panel.stack.children[0].titles == ("K = 2", "K = 8", "K = 32")
    assert panel.links[0].target == (panel.stack, "selected_index")
    assert len(of_type(panel, ipywidgets.Image)) == 6


# ----------------------------------------------------------------- compute row


def compute_panel(grid, compute=render):
    return sweep_panel(render, grid, dpi=40, compute=compute)


def type_in(panel, **typed: str) -> None:
    for name, text in typed.items():
        panel.inputs[name].value = text
    panel.button.click()


def test_no_compute_row_without_compute():
    panel = panel_for(ONE)
    assert not of_type(panel, ipywidgets.Button) and not of_type(panel, ipywidgets.Text)


def test_compute_row_shows_a_new_setting():
    calls = []

    def compute(**setting):
        calls.append(setting)
        return render(**setting)

    panel = compute_panel(TWO, compute)
    assert panel.button in of_type(panel, ipywidgets.Button)
    assert panel.result.layout.display == "none"
    type_in(panel, L="3", K="5")
    assert calls == [{"L": 3, "K": 5}]
    assert bytes(panel.result.value).startswith(PNG)
    assert bytes(panel.result.value) not in panel.images.values()
    assert panel.result.layout.display is None
    assert "L = 3, K = 5" in panel.message.value


def test_compute_row_reuses_images_of_the_grid():
    panel = compute_panel(TWO, compute=lambda **_: pytest.fail("recomputed"))
    type_in(panel, L="4", K="8")
    assert bytes(panel.result.value) == panel.images[(4, 8)]


def test_compute_row_parses_floats_and_strings():
    seen = []

    def compute(**setting):
        seen.append(setting)
        return PNG

    panel = compute_panel({"prior": ["uniform", "learned"], "beta": [0.1, 1.0]}, compute)
    type_in(panel, prior=" mixture ", beta="0.3")
    assert seen == [{"prior": "mixture", "beta": 0.3}]


@pytest.mark.parametrize(
    ("typed", "words"),
    [({"K": "abc"}, "K must be a whole number"), ({"K": "2.5"}, "whole number")],
)
def test_compute_row_reports_unreadable_values(typed, words):
    panel = compute_panel(ONE, compute=lambda **_: pytest.fail("called"))
    type_in(panel, **typed)
    assert words in panel.message.value
    assert panel.result.value == b"" and panel.result.layout.display == "none"


def test_compute_row_reports_errors_of_compute():
    def compute(K):
        raise ValueError(f"K must be positive, got {K}")

    panel = compute_panel(ONE, compute)
    type_in(panel, K="-1")
    assert "ValueError: K must be positive, got -1" in panel.message.value
    assert panel.result.layout.display == "none"


def test_compute_row_reports_wrong_return_type():
    panel = compute_panel(ONE, compute=lambda K: None)
    type_in(panel, K="5")
    assert "TypeError" in panel.message.value


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "grid", [{}, {"K": [2], "L": [1], "n": [10]}, [("K", [2])]], ids=["0", "3", "list"]
)
def test_grid_needs_one_or_two_controls(grid):
    with pytest.raises(ValueError, match="grid"):
        panel_for(grid)
    with pytest.raises(ValueError, match="grid"):
        small_multiples(draw_setting, grid)


def test_empty_values_name_the_control():
    with pytest.raises(ValueError, match="'K'"):
        panel_for({"L": [1, 4], "K": []})


def test_repeated_values_name_the_control():
    with pytest.raises(ValueError, match="'L'"):
        panel_for({"L": [1, 1]})


@pytest.mark.parametrize("bad", [None, "figure.png", 3])
def test_render_returning_wrong_type_raises_type_error(bad):
    with pytest.raises(TypeError, match="Figure"):
        sweep_panel(lambda K: bad, ONE)


def test_unknown_format_raises():
    with pytest.raises(ValueError, match="fmt"):
        panel_for(ONE, fmt="gif")


# --------------------------------------------------------------- static twin


def texts(fig: Figure) -> list[str]:
    return [text.get_text() for ax in fig.axes for text in ax.texts]


def test_small_multiples_two_controls_rows_and_columns():
    drawn = {}

    def draw(ax, L, K):
        drawn[ax] = (L, K)
        draw_setting(ax, L=L, K=K)

    fig = small_multiples(draw, TWO, suptitle="sweep")
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    # fig.axes is row-major: rows follow L, columns follow K.
    assert [drawn[ax] for ax in fig.axes] == [(L, K) for L in TWO["L"] for K in TWO["K"]]
    labels = texts(fig)
    for header in ["L = 1", "L = 4", "K = 2", "K = 8", "K = 32"]:
        assert labels.count(header) == 1, header
    assert fig.get_suptitle() == "sweep"
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (2, 3)


def test_small_multiples_one_control_is_one_row():
    fig = small_multiples(draw_setting, {"beta": [0.1, 0.5, 1.0]}, figsize_per=(1, 1))
    assert len(fig.axes) == 3
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (1, 3)
    assert {"β = 0.1", "β = 0.5", "β = 1"} <= set(texts(fig))
    assert tuple(fig.get_size_inches()) == (3, 1)


def test_small_multiples_renders_with_headers_outside_decorations():
    def draw(ax, L, K):
        ax.plot([0, 1], [0, K])
        ax.set_title("title")
        ax.set_ylabel("y")

    fig = small_multiples(draw, TWO)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # headers are placed relative to the drawn decorations
    top_left = fig.axes[0]
    renderer = canvas.get_renderer()
    header = {t.get_text(): t.get_window_extent(renderer) for t in top_left.texts}
    assert header["K = 2"].y0 >= top_left.title.get_window_extent(renderer).y1
    assert header["L = 1"].x1 <= top_left.yaxis.label.get_window_extent(renderer).x0


def test_one_draw_function_serves_panel_and_twin():
    fig = render(K=2, L=1)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert fig.axes[0].texts[0].get_text() == "K=2, L=1"
    assert fig.number not in plt.get_fignums()  # never shown on its own
    assert len(small_multiples(draw_setting, TWO).axes) == 6


# ------------------------------------------------------ drawn at the size it is shown


def test_small_multiples_fill_the_column_and_never_exceed_it():
    from vqlib.book.plots import BOOK_WIDTH

    fig = small_multiples(draw_setting, TWO)
    assert fig.get_size_inches()[0] == pytest.approx(BOOK_WIDTH)
    with pytest.raises(ValueError, match="width"):
        small_multiples(draw_setting, TWO, width=BOOK_WIDTH + 1)
    # an old per-panel size that would be wider than the column is scaled into it
    wide = small_multiples(draw_setting, {"K": [1, 2, 3, 4]}, figsize_per=(4, 3))
    assert wide.get_size_inches()[0] == pytest.approx(BOOK_WIDTH)
    assert wide.get_size_inches()[1] == pytest.approx(BOOK_WIDTH / 4 * 3 / 4)


def test_one_control_wraps_into_rows_of_at_most_max_cols():
    fig = small_multiples(draw_setting, {"K": [1, 2, 4, 8, 16, 32]})
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (2, 3)
    assert {"K = 1", "K = 32"} <= set(texts(fig))
    fig = small_multiples(draw_setting, {"K": [1, 2, 4, 8, 16]}, max_cols=4)
    assert len(fig.axes) == 5  # the sixth slot of the 2 x 3 grid is removed
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (2, 3)
    with pytest.raises(ValueError, match="max_cols"):
        small_multiples(draw_setting, ONE, max_cols=0)


def test_a_long_second_control_is_transposed_and_two_long_controls_refused():
    drawn = {}

    def draw(ax, L, K):
        drawn[ax] = (L, K)

    grid = {"L": [1, 4], "K": [1, 2, 4, 8, 16]}
    fig = small_multiples(draw, grid)
    assert fig.axes[0].get_subplotspec().get_geometry()[:2] == (5, 2)  # rows: K, columns: L
    assert [drawn[ax] for ax in fig.axes] == [(L, K) for K in grid["K"] for L in grid["L"]]
    with pytest.raises(ValueError, match="max_cols"):
        small_multiples(draw, {"L": [1, 2, 3, 4, 5], "K": [1, 2, 3, 4, 5]})


def test_shared_axes_keep_labels_outside_and_one_legend_replaces_the_panels():
    def draw(ax, L, K):
        ax.plot([0, 1], [0, K], label="line")
        ax.scatter([0], [L], label="point")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend()

    fig = small_multiples(draw, TWO, sharex=True, sharey=True, legend=True)
    top_right, bottom_left = fig.axes[2], fig.axes[3]
    assert top_right.get_ylabel() == "" and top_right.get_xlabel() == ""
    assert bottom_left.get_ylabel() == "y" and bottom_left.get_xlabel() == "x"
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["line", "point"]


def test_compute_row_says_it_needs_a_kernel_before_it_is_used():
    from vqlib.book.widgets import KERNEL_NOTE

    panel = compute_panel(ONE)
    assert panel.message.value == KERNEL_NOTE
    assert "kernel" in KERNEL_NOTE and "Colab" in KERNEL_NOTE
    type_in(panel, K="8")
    assert "K = 8" in panel.message.value  # a live kernel replaces the note with the result


def test_widget_images_use_the_book_resolution():
    from vqlib.book.plots import DPI

    panel = sweep_panel(axes_renderer(draw_setting, figsize=(2, 1)), ONE)
    from PIL import Image
    import io

    image = Image.open(io.BytesIO(panel.images[(2,)]))
    assert round(image.info["dpi"][0]) == DPI
    assert image.size[0] <= 2 * DPI + 25  # bbox "tight": the figure plus its 0.1 in padding


# ---------------------------------------------------------------- frame cache


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """A real IPython shell (its ``In`` records the cells it runs), with the cache in tmp_path."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("VQLIB_CACHE", str(tmp_path / "cache"))
    main = sys.modules["__main__"]  # the shell installs its own __main__ (no __spec__: Dask's spawn fails)
    sh = InteractiveShell.instance()
    yield sh
    InteractiveShell.clear_instance()
    sys.modules["__main__"] = main


PANEL_CELLS = [
    "import vqlib.book.widgets as W\ncalls = []\n",
    "def draw(ax, K):\n    calls.append(K)\n    ax.set_title(f'K = {K}')\n",
    "panel = W.sweep_panel(W.axes_renderer(draw), {'K': [2, 8, 32]}, dpi=30)\n",
]


def run_cells(sh, cells):
    for cell in cells:
        result = sh.run_cell(cell, store_history=True)
        result.raise_error()
    return sh.user_ns


def fresh_kernel(sh):
    """Forget the cells run so far, as a new kernel would."""
    sh.reset(new_session=True)
    sh.user_ns["In"][:] = [""]


def frame_files(tmp_path):
    return sorted((tmp_path / "cache" / "frames").glob("*.png.frame"))  # one record per image


def test_a_rerun_kernel_reads_every_frame_back(shell, tmp_path):
    ns = run_cells(shell, PANEL_CELLS)
    first = ns["panel"].images
    assert ns["calls"] == [2, 8, 32] and len(frame_files(tmp_path)) == 3
    fresh_kernel(shell)
    ns = run_cells(shell, PANEL_CELLS)
    assert ns["calls"] == []  # nothing drawn
    assert ns["panel"].images == first


def test_any_change_to_the_cells_run_so_far_draws_again(shell, tmp_path):
    run_cells(shell, PANEL_CELLS)
    fresh_kernel(shell)
    changed = [PANEL_CELLS[0], PANEL_CELLS[1].replace("K = {K}", "codes: {K}"), PANEL_CELLS[2]]
    ns = run_cells(shell, changed)
    assert ns["calls"] == [2, 8, 32] and len(frame_files(tmp_path)) == 6
    fresh_kernel(shell)  # an extra cell before the panel is a change too
    ns = run_cells(shell, [*PANEL_CELLS[:2], "x = 1\n", PANEL_CELLS[2]])
    assert ns["calls"] == [2, 8, 32]


def test_two_panels_of_one_cell_keep_their_own_frames(shell):
    cell = ("a = W.sweep_panel(W.axes_renderer(draw), {'K': [2, 8]}, dpi=30)\n"
            "b = W.sweep_panel(W.axes_renderer(lambda ax, K: draw(ax, K + 1)), {'K': [2, 8]}, dpi=30)\n")
    cells = [*PANEL_CELLS[:2], cell]
    ns = run_cells(shell, cells)
    assert ns["calls"] == [2, 8, 3, 9]
    drawn = (ns["a"].images, ns["b"].images)
    assert drawn[0] != drawn[1]
    fresh_kernel(shell)
    ns = run_cells(shell, cells)
    assert ns["calls"] == [] and (ns["a"].images, ns["b"].images) == drawn


def test_a_corrupt_frame_is_drawn_again_with_a_warning(shell, tmp_path):
    from vqlib.sweeps.cache import CacheWarning

    ns = run_cells(shell, PANEL_CELLS)
    first = ns["panel"].images
    victim = frame_files(tmp_path)[0]
    victim.write_bytes(b"not an image")
    fresh_kernel(shell)
    with pytest.warns(CacheWarning, match="not a png image"):
        ns = run_cells(shell, PANEL_CELLS)
    assert len(ns["calls"]) == 1 and ns["panel"].images == first
    assert victim.with_name(victim.name + ".corrupt").exists()


def test_frames_are_drawn_when_the_cache_is_off_or_not_asked_for(shell, monkeypatch):
    run_cells(shell, PANEL_CELLS)
    fresh_kernel(shell)
    ns = run_cells(shell, [*PANEL_CELLS[:2], PANEL_CELLS[2].replace("dpi=30", "dpi=30, cache=False")])
    assert ns["calls"] == [2, 8, 32]
    fresh_kernel(shell)
    monkeypatch.setenv("VQLIB_CACHE", "off")
    ns = run_cells(shell, PANEL_CELLS)
    assert ns["calls"] == [2, 8, 32]


def test_outside_a_kernel_every_frame_is_drawn(tmp_path, monkeypatch):
    from vqlib.book.frames import frame_context

    monkeypatch.setenv("VQLIB_CACHE", str(tmp_path))
    assert frame_context() is None
    calls = []
    for _ in range(2):
        sweep_panel(axes_renderer(lambda ax, K: calls.append(K)), ONE, dpi=30)
    assert calls == [2, 8, 32, 2, 8, 32] and not (tmp_path / "frames").exists()


def test_an_unwritable_cache_draws_with_one_warning(shell, tmp_path, monkeypatch):
    from vqlib.sweeps.cache import CacheWarning

    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("VQLIB_CACHE", str(blocked))
    with pytest.warns(CacheWarning, match="could not be written") as record:
        ns = run_cells(shell, PANEL_CELLS)
    assert ns["calls"] == [2, 8, 32] and len([w for w in record if "could not be written" in str(w.message)]) == 1


FIGURE_CELLS = [
    "import matplotlib.pyplot as plt\nimport vqlib\nvqlib.book.plots.use_book_style()\ndrawn = []\n",
    "def show(title):\n    fig, ax = plt.subplots()\n    ax.set_title(title)\n"
    "    fig.canvas.mpl_connect('draw_event', lambda event: drawn.count(title) or drawn.append(title))\n"
    "    return fig\n",
    "a, b = show('first'), show('second')\npng = [get_ipython().display_formatter.format(f)[0]['image/png'] "
    "for f in (a, b)]\n",
]


@pytest.fixture
def inline_shell(shell):
    """The shell with the PNG formatter for figures that the inline backend registers."""
    from IPython.core.pylabtools import select_figure_formats

    select_figure_formats(shell, {"png"}, bbox_inches="tight")
    return shell


def test_figures_a_rerun_kernel_would_draw_the_same_are_read_back(inline_shell, tmp_path):
    ns = run_cells(inline_shell, FIGURE_CELLS)
    assert ns["drawn"] == ["first", "second"]
    first = ns["png"]
    assert first[0] != first[1] and all(first)
    fresh_kernel(inline_shell)
    ns = run_cells(inline_shell, FIGURE_CELLS)
    assert ns["drawn"] == [] and ns["png"] == first  # nothing rendered, the same images
    fresh_kernel(inline_shell)
    ns = run_cells(inline_shell, [*FIGURE_CELLS[:2], FIGURE_CELLS[2].replace("'second'", "'third'")])
    assert ns["drawn"] == ["first", "third"]


def test_figures_are_not_cached_without_the_book_style_or_off_the_cache(inline_shell, monkeypatch):
    cells = [FIGURE_CELLS[0].replace("vqlib.book.plots.use_book_style()\n", ""), *FIGURE_CELLS[1:]]
    for _ in range(2):
        fresh_kernel(inline_shell)
        assert run_cells(inline_shell, cells)["drawn"] == ["first", "second"]
    monkeypatch.setenv("VQLIB_CACHE", "off")
    for _ in range(2):
        fresh_kernel(inline_shell)
        assert run_cells(inline_shell, FIGURE_CELLS)["drawn"] == ["first", "second"]
