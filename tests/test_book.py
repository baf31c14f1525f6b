"""The book's structure: table of contents, chapters without outputs, and the Colab setup
cell that every chapter starts with (generated from `_config.yml` by tools/setup_cell.py)."""
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import setup_cell  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
REAL_FIND_SPEC = importlib.util.find_spec


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
    assert code[0].source == setup_cell.setup_source() and code[0].metadata["tags"] == ["hide-cell"]
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].removeprefix("https://github.com/")
    assert f"colab.research.google.com/github/{url}/blob/main/chapters/{path.name}" in nb.cells[0].source


def _run_setup(monkeypatch, *, on_colab: bool, missing: set[str]) -> list[list[str]]:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(list(cmd)))
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in missing else REAL_FIND_SPEC(name, *a))
    if on_colab:
        colab = types.ModuleType("google.colab")
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", colab)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    namespace = {}
    exec(setup_cell.setup_source(), namespace)
    assert str(namespace["DEVICE"]) and namespace["PROFILE"] in ("quick", "full")
    return calls


def test_setup_cell_installs_exactly_what_is_missing_on_colab(monkeypatch):
    url, branch = setup_cell.repository()
    calls = _run_setup(monkeypatch, on_colab=True, missing={"vqlib", "ot"})
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", "--no-deps", f"vqlib @ git+{url}@{branch}", "pot"]]
    calls = _run_setup(monkeypatch, on_colab=True, missing={"ot"})
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", "--no-deps", "pot"]]
    assert _run_setup(monkeypatch, on_colab=True, missing=set()) == []
    flat = " ".join(setup_cell.setup_source().split())
    assert "torch" not in flat.split("never torch")[1] and "numpy" not in flat.split("or numpy")[1]


def test_setup_cell_installs_nothing_outside_colab(monkeypatch):
    assert _run_setup(monkeypatch, on_colab=False, missing={"vqlib", "ot"}) == []
