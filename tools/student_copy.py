"""Write student copies of the chapters: every exercise kept, every solution removed.

A student copy of a chapter notebook is the same notebook with

* every ``{solution}`` directive removed from the markdown cells, whether fenced with
  backticks (```` ```{solution} ````, ```` ````{solution} ```` for a solution that holds a
  code block) or with colons (``:::{solution}``), together with gated solutions
  (``{solution-start}`` ... ``{solution-end}``) of sphinx-exercise;
* every cell tagged ``solution`` removed;
* every output, execution count and stored widget state cleared.

Everything else (exercises, prose, the hidden setup cell, code) is kept as it is. A
markdown cell that held nothing but solutions is dropped.

Usage (from the repository root)::

    python tools/student_copy.py                       # every chapter into _build/student/
    python tools/student_copy.py --out handout chapters/02_supersample.ipynb

The script refuses to write over its inputs (in particular over ``chapters/``).
It serves issue 6 (the teachers' page, ``teaching.md``).
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "_build" / "student"
SOLUTION_TAG = "solution"

# An opening fence: indentation, 3+ backticks or 3+ colons, then the info string.
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|:{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\s*\{(?P<name>[^}\s]+)\}")


@dataclass
class Removed:
    """What :func:`strip_solutions` took out of one text."""

    solutions: int = 0


def _directive_name(info: str) -> str | None:
    m = _DIRECTIVE.match(info)
    return m.group("name") if m else None


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a fence opened with ``fence`` (same character, at least as long)."""
    stripped = line.strip()
    char = fence[0]
    return len(stripped) >= len(fence) and set(stripped) == {char}


def _find_close(lines: list[str], start: int, fence: str) -> int:
    """Index of the line closing the fence opened at ``start - 1``; len(lines) if unclosed."""
    for j in range(start, len(lines)):
        if _closes(lines[j], fence):
            return j
    return len(lines)


def _open_fence(line: str) -> tuple[str, str] | None:
    """(fence, info) when ``line`` opens a fenced block, else None."""
    m = _OPEN.match(line)
    if not m:
        return None
    fence, info = m.group("fence"), m.group("info")
    if fence[0] == "`" and "`" in info:  # CommonMark: no backtick in a backtick fence's info
        return None
    return fence, info


def _skip_blank(lines: list[str], i: int, out: list[str]) -> int:
    """After a removed block: skip the blank lines that follow it when a blank line (or
    nothing) precedes it, so that removing a block leaves one blank line, not several."""
    if not out or not out[-1].strip():
        while i < len(lines) and not lines[i].strip():
            i += 1
    return i


def _strip_lines(lines: list[str], removed: Removed) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        opened = _open_fence(lines[i])
        if opened is None:
            out.append(lines[i])
            i += 1
            continue
        fence, info = opened
        name = _directive_name(info)
        close = _find_close(lines, i + 1, fence)
        if name == "solution":
            removed.solutions += 1
            i = _skip_blank(lines, close + 1, out)
            continue
        if name == "solution-start":
            # A gated solution runs to the matching {solution-end} directive.
            removed.solutions += 1
            j = close + 1
            while j < len(lines):
                inner = _open_fence(lines[j])
                if inner is not None and _directive_name(inner[1]) == "solution-end":
                    j = _find_close(lines, j + 1, inner[0]) + 1
                    break
                j += 1
            i = _skip_blank(lines, j, out)
            continue
        if name is None:
            # A code block: kept verbatim, whatever it shows (even directive syntax).
            out.extend(lines[i:close + 1])
        else:
            # Another directive: its body is MyST and may hold solutions of its own.
            out.append(lines[i])
            out.extend(_strip_lines(lines[i + 1:close], removed))
            if close < len(lines):
                out.append(lines[close])
        i = close + 1
    return out


def strip_solutions(text: str) -> tuple[str, int]:
    """``text`` (MyST markdown) without its solution blocks, and how many were removed."""
    removed = Removed()
    lines = text.split("\n")
    kept = _strip_lines(lines, removed)
    if removed.solutions == 0:
        return text, 0
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept), removed.solutions


def student_notebook(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """A copy of ``nb`` without solutions or outputs, and the number of solutions removed."""
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)  # a copy: the caller's is unchanged
    removed = 0
    cells = []
    for cell in nb.cells:
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            removed += 1
            continue
        if cell.cell_type == "markdown":
            source, n = strip_solutions(cell.source)
            removed += n
            if n and not source.strip():
                continue
            cell.source = source
        elif cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    return nb, removed


def _directive_names(lines: list[str]) -> list[str]:
    """The names of the directives opened in ``lines``, nested ones included; the text of
    code blocks (which may show directive syntax as an example) is not looked into."""
    names = []
    i = 0
    while i < len(lines):
        opened = _open_fence(lines[i])
        if opened is None:
            i += 1
            continue
        close = _find_close(lines, i + 1, opened[0])
        name = _directive_name(opened[1])
        if name is not None:
            names.append(name)
            names.extend(_directive_names(lines[i + 1:close]))
        i = close + 1
    return names


def count_directives(nb: nbformat.NotebookNode, name: str) -> int:
    """How many ``{name}`` directives (any fence, nested ones included) the markdown cells of ``nb`` open."""
    return sum(_directive_names(cell.source.split("\n")).count(name)
               for cell in nb.cells if cell.cell_type == "markdown")


def write_student_copies(notebooks: list[Path], out: Path) -> list[tuple[Path, int, int]]:
    """Write a student copy of each notebook into ``out``; (path written, exercises, solutions removed).

    Raises ValueError when an input does not exist or is not a notebook, when two inputs
    share a name, or when a copy would overwrite an input.
    """
    if not notebooks:
        raise ValueError("no notebooks given")
    out = Path(out).resolve()
    sources = [Path(p).resolve() for p in notebooks]
    for src in sources:
        if src.suffix != ".ipynb" or not src.is_file():
            raise ValueError(f"not a notebook file: {src}")
    names = [src.name for src in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two inputs share the name(s) {duplicates}; copy them in separate runs")
    if out == (ROOT / "chapters").resolve():
        raise ValueError(f"--out {out} is the chapters folder: a copy would overwrite the chapters; "
                         "choose another folder")
    for src in sources:
        if out / src.name == src or out == src.parent:
            raise ValueError(f"--out {out} would overwrite the source notebook {src}; choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources:
        nb = nbformat.read(src, as_version=4)
        student, removed = student_notebook(nb)
        target = out / src.name
        nbformat.write(student, target)
        written.append((target, count_directives(student, "exercise"), removed))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="student_copy.py",
        description="Write student copies of the book's chapter notebooks: every exercise kept, "
                    "every solution ({solution} blocks, gated solutions and cells tagged "
                    "'solution') removed, every output cleared. The chapters are never modified.")
    parser.add_argument("notebooks", nargs="*", type=Path, metavar="NOTEBOOK",
                        help="chapter notebooks to copy (default: every chapters/*.ipynb)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"output folder, created if missing (default: {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "chapters").glob("*.ipynb"))
    try:
        written = write_student_copies(notebooks, args.out)
    except ValueError as err:
        parser.error(str(err))
    for target, exercises, removed in written:
        print(f"{target}: {exercises} exercises kept, {removed} solutions removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
