"""Student copies (tools/student_copy.py, issue 6): exercises kept, solutions and outputs gone."""
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import student_copy  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))

INTRO = "# A chapter\n\nSome prose with $x^2$ and a {prf:ref}`thm-a`."

EXERCISES = """## Exercises

```{exercise}
:label: ex-a

Show that KEEP-EXERCISE-A holds.
```

```{solution} ex-a
:class: dropdown

HIDE-SOLUTION-A: by Jensen's inequality.
```

:::{exercise}
:label: ex-b

KEEP-EXERCISE-B: run the cell with $K = 4$.
:::

:::{solution} ex-b
:class: dropdown

HIDE-SOLUTION-B
:::

````{exercise}
:label: ex-c

KEEP-EXERCISE-C, starting from

```python
KEEP_CODE_C = 1
```
````

````{solution} ex-c
:class: dropdown

HIDE-SOLUTION-C, with code:

```python
HIDE_CODE_C = 2
```

and a second block

```
HIDE_PLAIN_C
```
````

::::{solution} ex-b
:class: dropdown

HIDE-SOLUTION-D with a nested note

:::{note}
HIDE-NOTE-D
:::
::::

KEEP-AFTER: a closing remark."""

GATED = """```{exercise-start}
:label: ex-e
```

KEEP-EXERCISE-E

```{exercise-end}
```

```{solution-start} ex-e
:class: dropdown
```

HIDE-SOLUTION-E

```python
HIDE_CODE_E = 3
```

```{solution-end}
```

KEEP-AFTER-E"""

SYNTAX_EXAMPLE = """How a solution is written (an example, not a solution):

````markdown
```{solution} ex-a
KEEP-SYNTAX-EXAMPLE
```
````

```{note}
KEEP-NOTE, with a solution inside it:

:::{solution} ex-a
HIDE-SOLUTION-IN-NOTE
:::
```"""


def _notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("print('KEEP-CODE')", execution_count=3,
                                     outputs=[nbformat.v4.new_output("stream", text="KEEP-CODE\n")])
    tagged = nbformat.v4.new_code_cell("HIDE_TAGGED = 1", metadata={"tags": ["solution"]})
    only_solution = "```{solution} ex-a\nHIDE-ONLY-SOLUTION\n```\n"
    nb.cells = [nbformat.v4.new_markdown_cell(INTRO), code, nbformat.v4.new_markdown_cell(EXERCISES), tagged,
                nbformat.v4.new_markdown_cell(only_solution), nbformat.v4.new_markdown_cell(GATED),
                nbformat.v4.new_markdown_cell(SYNTAX_EXAMPLE)]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def _text(nb) -> str:
    return "\n".join(cell.source for cell in nb.cells)


def test_every_solution_goes_and_everything_else_stays():
    nb = _notebook()
    before = nbformat.writes(nb)
    student, removed = student_copy.student_notebook(nb)
    assert nbformat.writes(nb) == before  # the input notebook is not changed
    nbformat.validate(student)
    text = _text(student)
    assert "HIDE" not in text, text
    for kept in ["KEEP-EXERCISE-A", "KEEP-EXERCISE-B", "KEEP-EXERCISE-C", "KEEP_CODE_C = 1", "KEEP-AFTER",
                 "KEEP-EXERCISE-E", "KEEP-AFTER-E", "KEEP-SYNTAX-EXAMPLE", "KEEP-NOTE", INTRO]:
        assert kept in text, kept
    # 4 fenced solutions, 1 nested in a note, 1 alone in a cell, 1 gated, 1 tagged cell
    assert removed == 8
    assert student_copy.count_directives(student, "exercise") == 3
    assert student_copy.count_directives(student, "solution") == 0
    # the cell that held only a solution and the tagged cell are gone; the code cell is cleared
    assert len(student.cells) == len(nb.cells) - 2
    code = [c for c in student.cells if c.cell_type == "code"]
    assert [c.source for c in code] == ["print('KEEP-CODE')"]
    assert code[0].outputs == [] and code[0].execution_count is None
    assert "widgets" not in student.metadata
    # the exercises' fences are intact: every opened fence is closed in the copy
    exercises = student.cells[2].source
    assert exercises.count("````") == 2 and exercises.count(":::") == 2
    assert "\n\n\n" not in exercises and exercises.endswith("KEEP-AFTER: a closing remark.")


def test_a_text_without_solutions_is_returned_unchanged():
    text = "```{exercise}\n:label: x\n\nA.\n```\n\n\n\n```python\nx = 1\n\n\n\ny = 2\n```\n"
    assert student_copy.strip_solutions(text) == (text, 0)


def test_cli_writes_copies_and_refuses_to_overwrite_its_inputs(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(_notebook(), src / "01_a.ipynb")
    original = (src / "01_a.ipynb").read_bytes()
    out = tmp_path / "student"
    assert student_copy.main(["--out", str(out), str(src / "01_a.ipynb")]) == 0
    assert "01_a.ipynb: 3 exercises kept, 8 solutions removed" in capsys.readouterr().out
    assert "HIDE" not in _text(nbformat.read(out / "01_a.ipynb", as_version=4))
    for bad_out in (src, ROOT / "chapters"):
        with pytest.raises(SystemExit) as exc:
            student_copy.main(["--out", str(bad_out), str(src / "01_a.ipynb")])
        assert exc.value.code == 2
        assert "overwrite" in capsys.readouterr().err
    assert (src / "01_a.ipynb").read_bytes() == original
    with pytest.raises(SystemExit):
        student_copy.main(["--out", str(out), str(tmp_path / "missing.ipynb")])
    assert "missing.ipynb" in capsys.readouterr().err


def test_help_describes_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        student_copy.main(["--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    assert "--out" in help_text and "solution" in help_text and "_build/student" in help_text


@pytest.mark.skipif(not CHAPTERS, reason="no chapters yet")
def test_student_copies_of_the_real_chapters(tmp_path):
    before = {p: p.read_bytes() for p in CHAPTERS}
    written = student_copy.write_student_copies(CHAPTERS, tmp_path)
    assert [p.name for p, _, _ in written] == [p.name for p in CHAPTERS]
    for (target, exercises, removed), source in zip(written, CHAPTERS):
        original = nbformat.read(source, as_version=4)
        student = nbformat.read(target, as_version=4)
        nbformat.validate(student)
        n_exercises = student_copy.count_directives(original, "exercise")
        assert n_exercises >= 1, f"{source.name} has no exercise"
        assert exercises == n_exercises == student_copy.count_directives(student, "exercise")
        assert removed >= 1, f"{source.name} has no solution"
        assert student_copy.count_directives(student, "solution") == 0
        assert "{solution" not in _text(student), source.name
        assert all(not c.outputs and c.execution_count is None for c in student.cells if c.cell_type == "code")
        # every code cell is kept (no chapter tags a code cell as a solution today)
        tagged = [c for c in original.cells if "solution" in c.metadata.get("tags", [])]
        assert sum(c.cell_type == "code" for c in student.cells) == \
            sum(c.cell_type == "code" for c in original.cells) - sum(c.cell_type == "code" for c in tagged)
    assert {p: p.read_bytes() for p in CHAPTERS} == before
