"""The book's structure: table of contents, chapters without outputs, the Colab setup cell
that every chapter starts with (generated from `_config.yml` by tools/setup_cell.py), code a
reader reads, and the plain notebooks for Colab (tools/colab_notebooks.py)."""
import importlib.util
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import colab_notebooks  # noqa: E402
import setup_cell  # noqa: E402

import vqlib  # noqa: E402
import vqlib.book  # noqa: E402
import vqlib.book.plots  # noqa: E402
import vqlib.sweeps.profile  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
REAL_FIND_SPEC = importlib.util.find_spec
FOLDED = {"hide-input", "hide-cell", "remove-input", "remove-cell"}
MAX_VISIBLE_LINES, MAX_LINE = 80, 88


def _toc_files(node) -> list[str]:
    if isinstance(node, dict):
        return ([node["file"]] if "file" in node else []) + [f for v in node.values() for f in _toc_files(v)]
    if isinstance(node, list):
        return [f for v in node for f in _toc_files(v)]
    return []


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"], *_toc_files(toc)]
    for f in files:
        assert any((ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb")), f
    assert {f"chapters/{p.stem}" for p in CHAPTERS} <= set(files)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_committed_without_outputs_and_with_its_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert setup_cell.sync(path, write=False), "run python tools/setup_cell.py"
    assert code[0].source == setup_cell.setup_source(path) and code[0].metadata["tags"] == ["hide-cell"]
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].removeprefix("https://github.com/")
    # the badge opens the chapter's plain notebook (colab/), which tools/colab_notebooks.py writes
    assert f"colab.research.google.com/github/{url}/blob/main/colab/chapters/{path.name}" in nb.cells[0].source
    assert (ROOT / "colab" / "chapters" / path.name).is_file()


# ------------------------------------------------------------------ code a reader reads


def visible_code(path: Path) -> list[str]:
    """The code lines a reader of the book sees: code cells the book does not fold."""
    nb = nbformat.read(path, as_version=4)
    return [line for c in nb.cells if c.cell_type == "code" and not FOLDED & set(c.metadata.get("tags", []))
            for line in c.source.splitlines()]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_visible_code_is_short_and_fits_the_column(path):
    lines = visible_code(path)
    assert len(lines) <= MAX_VISIBLE_LINES, (
        f"{path.name} shows {len(lines)} lines of code (at most {MAX_VISIBLE_LINES}): move plotting, "
        "glue and table formatting into vqlib or into cells tagged hide-input")
    wide = [line for line in lines if len(line) > MAX_LINE]
    assert not wide, f"{path.name}: {len(wide)} visible lines over {MAX_LINE} characters, e.g. {wide[0]!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_figures_are_drawn_at_the_column_width_with_readable_text(path):
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "plt.subplots(" not in code and "tight_layout" not in code, \
        "draw figures with vqlib.book.plots.figure (the column's width, constrained layout)"
    for width in re.findall(r"figsize\s*=\s*\(\s*([0-9.]+)\s*,", code):
        assert float(width) <= vqlib.book.plots.BOOK_WIDTH, f"{path.name}: a figure {width} in wide"
    for size in re.findall(r"(?:fontsize|labelsize)\s*=\s*([0-9.]+)", code):
        assert float(size) >= 8, f"{path.name}: text of {size} pt is under 11 px on screen"
    assert not re.search(r"title=\"[^\"$]*\bU_i\b", code), "TeX in a figure title needs $...$"


def test_the_book_style_is_applied_by_every_setup_cell_and_is_readable():
    assert "vqlib.book.plots.use_book_style()" in setup_cell.setup_source()
    import matplotlib

    vqlib.book.plots.use_book_style()
    rc = matplotlib.rcParams
    px = lambda key: rc[key] * rc["figure.dpi"] / 72 if isinstance(rc[key], float) else None  # noqa: E731
    assert rc["figure.figsize"][0] * rc["figure.dpi"] <= 690  # the column at 1280 px is ~690 px
    for key in ("xtick.labelsize", "ytick.labelsize", "legend.fontsize", "font.size", "axes.titlesize"):
        assert px(key) >= 10, key
    fig, ax = vqlib.book.plots.figure(height=2)
    assert tuple(fig.get_size_inches()) == (vqlib.book.plots.BOOK_WIDTH, 2)
    with pytest.raises(ValueError, match="width"):
        vqlib.book.plots.figure(width=9)


# ------------------------------------------------------------------------- setup cell


def _run_setup(monkeypatch, *, on_colab: bool, missing: set[str], source: str | None = None,
               gpu: bool = False) -> tuple[list[list[str]], dict]:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(list(cmd)))
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in missing else REAL_FIND_SPEC(name, *a))
    monkeypatch.delenv("VQLIB_PROFILE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(vqlib.sweeps.profile, "has_accelerator", lambda: gpu)
    if on_colab:
        colab = types.ModuleType("google.colab")
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", colab)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    namespace = {}
    exec(source or setup_cell.setup_source(), namespace)
    assert str(namespace["DEVICE"]) and namespace["PROFILE"] in ("quick", "full")
    monkeypatch.delenv("VQLIB_PROFILE", raising=False)
    return calls, namespace


def test_setup_cell_installs_exactly_what_is_missing_on_colab(monkeypatch):
    url, _ = setup_cell.repository()
    commit = setup_cell.pinned_commit()
    calls, _ = _run_setup(monkeypatch, on_colab=True, missing={"vqlib", "ot"})
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", "--no-deps", f"vqlib @ git+{url}@{commit}", "pot"]]
    calls, _ = _run_setup(monkeypatch, on_colab=True, missing={"ot"})
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", "--no-deps", "pot"]]
    assert _run_setup(monkeypatch, on_colab=True, missing=set())[0] == []
    flat = " ".join(setup_cell.setup_source().split())
    assert "torch" not in flat.split("never torch")[1] and "numpy" not in flat.split("or numpy")[1]


def test_setup_cell_installs_nothing_outside_colab(monkeypatch):
    assert _run_setup(monkeypatch, on_colab=False, missing={"vqlib", "ot"})[0] == []


def test_setup_cell_installs_a_pinned_commit_never_a_branch():
    commit = setup_cell.pinned_commit()
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    source = setup_cell.setup_source()
    assert f"@{commit}\"" in source and "@main" not in source and "@master" not in source


def test_the_pinned_commit_holds_the_library_of_this_commit():
    """The setup cell installs the vqlib of the pinned commit: it must be the library that is
    committed here (after committing a change to vqlib/, run tools/setup_cell.py --pin)."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    commit = setup_cell.pinned_commit()
    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    if known.returncode:
        pytest.skip(f"commit {commit} is not in this clone's history (shallow clone?)")
    assert not setup_cell.library_differs(commit), (
        f"vqlib/ or pyproject.toml at HEAD differs from the pinned commit {commit[:10]}: "
        "run python tools/setup_cell.py --pin and commit")


def test_colab_keeps_the_quick_profile_on_a_gpu_unless_asked(monkeypatch, capsys):
    _, ns = _run_setup(monkeypatch, on_colab=True, missing=set(), gpu=True,
                       source=setup_cell.setup_source("02_supersample"))
    assert ns["PROFILE"] == "quick"
    out = capsys.readouterr().out
    assert "quick profile" in out and "FULL_PROFILE = True" in out and "jobs instead of" in out
    asked = setup_cell.setup_source("02_supersample").replace("FULL_PROFILE = False", "FULL_PROFILE = True")
    _, ns = _run_setup(monkeypatch, on_colab=True, missing=set(), gpu=True, source=asked)
    assert ns["PROFILE"] == "full"
    # outside Colab a GPU still chooses the full profile by itself, as the README says
    assert _run_setup(monkeypatch, on_colab=False, missing=set(), gpu=True)[1]["PROFILE"] == "full"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_profile_note_says_how_to_ask_for_the_full_profile(path, monkeypatch):
    monkeypatch.setenv("VQLIB_PROFILE", "quick")
    note = vqlib.book.profile_note(path.stem)
    assert "FULL_PROFILE = True" in note and "VQLIB_PROFILE=full" in note
    assert "GPU" in note
    # every sweep's full run has been timed on the build machine, and the note gives the total
    assert "It costs about" in note or "computing those it reads costs about" in note.lower(), note
    assert "not timed" not in note and "has not been timed" not in note, note


def test_the_sweeps_chapter_9_reads_are_the_ones_its_cost_note_counts():
    # vqlib.book.READS is written by hand: it must name exactly what the notebook reads
    nb = nbformat.read(ROOT / "chapters" / "09_all_bounds.ipynb", as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    read = set(re.findall(r'sweeps\.get\("([^"]+)"\)', source))
    assert read and read == set(vqlib.book.READS["09_all_bounds"])


def test_every_sweep_has_a_measured_cost():
    from vqlib.book.costs import COSTS

    book_sweeps = {name for name, sweep in vqlib.sweeps.all_sweeps().items() if sweep.chapter in
                   {p.stem for p in CHAPTERS}}  # other tests register sweeps of their own
    assert book_sweeps and set(COSTS) == book_sweeps
    for name, cost in COSTS.items():
        assert cost["quick_s"] > 0 and cost["full_s"] > 0, name
        assert cost["full_basis"] == "measured" or cost["full_basis"].startswith("extrapolated from runs with"), name
    quick, full, lines = vqlib.book.sweep_costs(["ch02-vqvae"])
    assert quick == COSTS["ch02-vqvae"]["quick_s"] and full == COSTS["ch02-vqvae"]["full_s"]
    assert vqlib.book.duration(45) == "45 s" and vqlib.book.duration(720) == "12 min"
    assert vqlib.book.duration(0.23) == "0.2 s" and vqlib.book.duration(9.97) == "10 s"
    assert vqlib.book.duration(3 * 3600) == "3.0 h"


def test_glue_prints_nothing_without_myst_nb(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import fails as on Colab
    vqlib.book.glue("test_value", 0.5)
    assert capsys.readouterr().out == "" and vqlib.book.GLUED["test_value"] == 0.5


# ------------------------------------------------------------- plain notebooks (Colab)

COLAB = {path: ROOT / "colab" / path.relative_to(ROOT) for path in colab_notebooks.notebook_pages()}
RAW_MYST = re.compile(r"```\{|:::\{|\{glue|\{prf:|\{cite|\{ref\}|\{doc\}|\{numref\}|^\([\w-]+\)=", re.M)


def test_plain_notebooks_are_in_sync_with_the_chapters(capsys):
    assert set(COLAB) >= set(CHAPTERS)
    assert colab_notebooks.main(["--check"]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("source", list(COLAB), ids=lambda p: p.name)
def test_plain_notebook_is_commonmark_with_folded_solutions(source):
    plain = nbformat.read(COLAB[source], as_version=4)
    nbformat.validate(plain)
    book = nbformat.read(source, as_version=4)
    markdown = "\n".join(c.source for c in plain.cells if c.cell_type == "markdown")
    assert not RAW_MYST.search(markdown), RAW_MYST.search(markdown).group(0)
    assert "\\E " not in markdown and "\\KL(" not in markdown  # the book's macros are expanded
    exercises = len(re.findall(r"\{exercise\}", "\n".join(c.source for c in book.cells if c.cell_type == "markdown")))
    assert len(re.findall(r"^\*\*Exercise \d+", markdown, re.M)) == exercises
    assert markdown.count("<details>") == markdown.count("</details>") >= (1 if exercises else 0)
    # the same code, outputs cleared; folded cells folded there too
    code = [c for c in plain.cells if c.cell_type == "code"]
    assert [re.sub(r"^# @title [^\n]*\n", "", c.source) for c in code] == \
        [c.source for c in book.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    for c in code:
        folded = bool(FOLDED & set(c.metadata.get("tags", [])))
        assert folded == (c.metadata.get("cellView") == "form") == c.source.startswith("# @title")


def test_plain_notebooks_carry_the_numbers_of_the_build():
    """Where an executed build is present, the numbers in the plain notebooks are its numbers."""
    executed = ROOT / "_build" / "jupyter_execute"
    if not executed.is_dir():
        pytest.skip("no executed build (_build/jupyter_execute); make book writes one")
    stale = []
    for source, target in COLAB.items():
        built = colab_notebooks.executed_glue(source, executed)
        if built is None:
            continue
        stored = json.loads(target.read_text())["metadata"]["vqbook"]["glue"]
        stale += [f"{target.name}: {k}" for k, v in stored.items() if k in built and built[k] != v]
    assert not stale, (f"{len(stale)} numbers of the plain notebooks differ from this tree's build "
                       f"(e.g. {stale[0]}): run python tools/colab_notebooks.py after make book")


def test_converter_refuses_myst_it_does_not_know():
    converter = colab_notebooks.Converter()
    with pytest.raises(colab_notebooks.ConversionError, match="unknown directive"):
        converter.markdown("```{figure} a.png\n```", {}, "x")
    with pytest.raises(colab_notebooks.ConversionError, match="no glued value"):
        converter.markdown("{glue:text}`nothing:.2f`", {}, "x")
    text = converter.markdown(
        "See {prf:ref}`lem-dv-coin` and {cite:t}`steinke2020cmi`; $\\E X$, `\\E` kept.\n\n"
        "::::{solution} ex-02-order\n:class: dropdown\n\n```python\nx = 1\n```\n::::", {}, "x")
    assert "Lemma 1" in text and "Steinke and Zakynthinou (2020)" in text
    assert "$\\mathbb{E} X$" in text and "`\\E`" in text
    assert "<summary>Solution to Exercise 4</summary>" in text and "```python\nx = 1\n```" in text
    assert colab_notebooks.format_glue("0.123456", ".2f") == "0.12"
    assert colab_notebooks.format_glue("42", "") == "42"


def test_plain_chapter_2_runs_end_to_end_under_a_stand_in_colab(tmp_path):
    """Execute colab/chapters/02_supersample.ipynb as Colab would: google.colab imported,
    vqlib and POT already there (nothing to install), the quick profile, glue silent."""
    from nbclient import NotebookClient

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys, types\n"
        "google = sys.modules.setdefault('google', types.ModuleType('google'))\n"
        "sys.modules['google.colab'] = types.ModuleType('google.colab')\n")
    nb = nbformat.read(COLAB[ROOT / "chapters" / "02_supersample.ipynb"], as_version=4)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    env.pop("VQLIB_PROFILE", None)
    env.setdefault("VQLIB_CACHE", str(ROOT / "_build" / "vqlib-cache"))  # make test's sweep cache
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute(env=env)
    streams = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                      if o.get("output_type") == "stream")
    assert "quick profile" in streams and "FULL_PROFILE = True" in streams
    assert not re.search(r"^ch02_\w+ = ", streams, re.M), "glue printed its values"
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4
