"""Write the plain notebooks of the book for Colab and Jupyter: ``colab/<page>.ipynb``.

Colab and plain Jupyter render CommonMark, not MyST: in the book's own notebooks their
theorems, proofs, exercises and solutions would show as raw code blocks and every
``{glue:text}`` number as raw text. This converter writes, for every notebook page of the
table of contents (the chapters and the status page), a notebook in which

- theorems, lemmas, definitions, ... are bold headed paragraphs numbered as in the book
  (``**Lemma 1 (Donsker–Varadhan against a fair coin).**``), proofs end with ∎;
- exercises are visible, numbered as in the book, and their solutions are folded
  (``<details>``);
- every glued number is filled in from the executed build (``_build/jupyter_execute``,
  written by ``make book``), with the chapter's format; cross-references become
  "Theorem 2", citations "Author and Author (2020)", the MathJax macros of
  ``_config.yml`` are expanded; no MyST syntax is left;
- code cells are the chapter's own, outputs cleared; cells the book folds (hide-input,
  hide-cell, remove-*) are folded there too (a Colab form title and Jupyter's
  ``source_hidden``).

Commit the result: the Colab badges and the launch buttons open these files.

    python tools/colab_notebooks.py            # write colab/ (numbers from _build/jupyter_execute)
    python tools/colab_notebooks.py --check    # exit 1 if a notebook is out of date with its page
    python tools/colab_notebooks.py --glue-from DIR   # executed notebooks elsewhere

Without an executed build the numbers stored in the existing plain notebooks (their
metadata ``vqbook.glue``) are used again, so a change of prose or code alone can be
converted anywhere; ``--check`` compares with those stored numbers. Alternative tools
were tried first: sphinx-tojupyter 0.6.0 turns myst-nb's code cells into markdown cells
and numbers differently from the book; jupytext reads MyST but does not translate its
directives.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from ast import literal_eval
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "colab"
GLUE_PREFIX = "application/papermill.record/"
FOLDED_TAGS = {"hide-input", "hide-cell", "remove-input", "remove-cell"}
PRF_TYPES = {"definition": "Definition", "lemma": "Lemma", "theorem": "Theorem", "proposition": "Proposition",
             "corollary": "Corollary", "remark": "Remark", "assumption": "Assumption", "example": "Example",
             "conjecture": "Conjecture", "axiom": "Axiom", "criterion": "Criterion", "algorithm": "Algorithm",
             "observation": "Observation", "property": "Property"}
ADMONITIONS = {"note": "Note", "tip": "Tip", "important": "Important", "warning": "Warning",
               "caution": "Caution", "attention": "Attention", "hint": "Hint", "seealso": "See also",
               "danger": "Danger", "error": "Error"}
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|:{3,})(?P<rest>.*)$")
DIRECTIVE = re.compile(r"^\{(?P<name>[A-Za-z0-9:_-]+)\}\s*(?P<arg>.*)$")
ROLE = re.compile(r"\{(?P<role>[A-Za-z0-9:_-]+)\}`(?P<text>[^`]*)`")
TARGET = re.compile(r"^\([A-Za-z0-9_.:-]+\)=\s*$")
MARK = "vqbook"


class ConversionError(ValueError):
    """MyST the converter does not know: it refuses rather than leave raw syntax behind."""


# --------------------------------------------------------------------- the book


def toc_pages() -> list[str]:
    """Every page of the table of contents, in order (paths without suffix)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def walk(node):
        if isinstance(node, dict):
            return ([node["file"]] if "file" in node else []) + [f for v in node.values() for f in walk(v)]
        if isinstance(node, list):
            return [f for v in node for f in walk(v)]
        return []

    return [toc["root"], *walk({k: v for k, v in toc.items() if k != "root"})]


def page_path(page: str) -> Path:
    for suffix in (".ipynb", ".md"):
        if (ROOT / page).with_suffix(suffix).exists():
            return (ROOT / page).with_suffix(suffix)
    raise FileNotFoundError(page)


def notebook_pages() -> list[Path]:
    """The notebook pages of the book, in table-of-contents order."""
    return [p for p in map(page_path, toc_pages()) if p.suffix == ".ipynb"]


def markdown_of(path: Path) -> list[str]:
    if path.suffix == ".md":
        return [path.read_text(encoding="utf-8")]
    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def iter_directives(text: str):
    """Every (name, argument, options) of the MyST directives in ``text``, nested ones included."""
    for block in parse_blocks(text.splitlines()):
        if block[0] == "directive":
            _, name, arg, options, body = block
            yield name, arg, options
            yield from iter_directives("\n".join(body))


class Numbers:
    """The numbers the book gives its theorems and exercises, and their titles by label.

    sphinx-proof and sphinx-exercise number each kind through the whole book in the order of
    the table of contents; this walks the pages in that order and counts the same way.
    """

    def __init__(self) -> None:
        self.by_label: dict[str, str] = {}  # label -> "Lemma 1"
        self.counters: dict[str, int] = {}
        self.page_of: dict[str, str] = {}
        for page in toc_pages():
            for text in markdown_of(page_path(page)):
                for name, arg, options in iter_directives(text):
                    kind = self.kind(name)
                    if kind is None:
                        continue
                    self.counters[kind] = self.counters.get(kind, 0) + 1
                    if "label" in options:
                        self.by_label[options["label"]] = f"{kind} {self.counters[kind]}"
                        self.page_of[options["label"]] = page

    @staticmethod
    def kind(name: str) -> str | None:
        if name.startswith("prf:") and name[4:] in PRF_TYPES:
            return PRF_TYPES[name[4:]]
        return "Exercise" if name == "exercise" else None

    def number(self, label: str) -> str:
        if label not in self.by_label:
            raise ConversionError(f"unknown label {label!r}")
        return self.by_label[label]


# --------------------------------------------------------------------- blocks


def fence_closes(line: str, fence: str) -> bool:
    m = FENCE.match(line)
    return bool(m and m.group("fence")[0] == fence[0] and len(m.group("fence")) >= len(fence)
                and not m.group("rest").strip())


def parse_blocks(lines: list[str]) -> list[tuple]:
    """Split markdown lines into ("text", lines), ("code", lines) and
    ("directive", name, arg, options, body_lines) blocks (top level only)."""
    blocks: list[tuple] = []
    text: list[str] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            text.append(lines[i])
            i += 1
            continue
        fence, rest = m.group("fence"), m.group("rest").strip()
        j = i + 1
        while j < len(lines) and not fence_closes(lines[j], fence):
            j += 1
        if j == len(lines):
            raise ConversionError(f"unclosed fence {fence} opened by {lines[i]!r}")
        directive = DIRECTIVE.match(rest)
        if directive:
            if text:
                blocks.append(("text", text))
                text = []
            body = lines[i + 1:j]
            options = {}
            while body and re.match(r"^:[A-Za-z_-]+:", body[0]):
                key, _, value = body.pop(0)[1:].partition(":")
                options[key.strip()] = value.strip()
            blocks.append(("directive", directive.group("name"), directive.group("arg").strip(), options, body))
        elif fence.startswith(":"):
            raise ConversionError(f"a colon fence that is no directive: {lines[i]!r}")
        else:
            text.extend(lines[i:j + 1])  # a code block: kept verbatim
        i = j + 1
    if text:
        blocks.append(("text", text))
    return blocks


# --------------------------------------------------------------------- citations


class Citations:
    """Author-year citations from references.bib, as the book shows them."""

    def __init__(self) -> None:
        from pybtex.database import parse_file

        self.entries = parse_file(str(ROOT / "references.bib")).entries

    def authors(self, key: str) -> tuple[str, str]:
        if key not in self.entries:
            raise ConversionError(f"unknown citation {key!r}")
        entry = self.entries[key]
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [latex_to_text(" ".join(p.prelast_names + p.last_names)) for p in people]
        if len(names) >= 3:
            who = f"{names[0]} et al."
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = names[0] if names else key
        return who, entry.fields.get("year", "n.d.")

    def textual(self, keys: str) -> str:
        return "; ".join(f"{who} ({year})" for who, year in map(self.authors, split_keys(keys)))

    def parenthetical(self, keys: str) -> str:
        return "(" + "; ".join(f"{who}, {year}" for who, year in map(self.authors, split_keys(keys))) + ")"


def latex_to_text(text: str) -> str:
    """A BibTeX name as text: accents decoded (Hellstr\\"om: Hellström), braces dropped."""
    import codecs

    import latexcodec  # noqa: F401  (registers the "ulatex" codec; it comes with pybtex)

    return codecs.decode(text, "ulatex").replace("{", "").replace("}", "")


def split_keys(keys: str) -> list[str]:
    return [k.strip() for k in keys.split(",") if k.strip()]


# --------------------------------------------------------------------- glue


def format_glue(text: str, spec: str) -> str:
    """myst-nb's formatting of a glued text/plain value (myst_nb.core.variables.format_plain_text)."""
    try:
        value = literal_eval(text)
    except (SyntaxError, ValueError):
        value = text
    if spec == "":
        return str(value)
    kind = spec[-1]
    if kind == "s":
        value = str(value)
    elif kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    return format(value, spec)


def glue_of_executed(nb) -> dict[str, str]:
    """The text/plain of every value glued in an executed notebook."""
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("scrapbook")
            if out.get("output_type") == "display_data" and meta:
                data = out.get("data", {})
                text = data.get(meta.get("mime_prefix", GLUE_PREFIX) + "text/plain", data.get("text/plain"))
                if text is not None:
                    values[meta["name"]] = text
    return values


# --------------------------------------------------------------------- converter


class Converter:
    def __init__(self) -> None:
        self.numbers = Numbers()
        self.cites = Citations()
        config = yaml.safe_load((ROOT / "_config.yml").read_text())
        tex = config.get("sphinx", {}).get("config", {}).get("mathjax3_config", {}).get("tex", {})
        self.macros = {name: value for name, value in tex.get("macros", {}).items()}

    # -- markdown
    def markdown(self, text: str, glue: dict[str, str], page: str) -> str:
        out = "\n".join(self.blocks(text.splitlines(), glue, page)).strip("\n")
        out = re.sub(r"\n{3,}", "\n\n", out)
        return out

    def blocks(self, lines: list[str], glue, page) -> list[str]:
        out: list[str] = []
        for block in parse_blocks(lines):
            if block[0] == "text":
                out.extend(self.text(block[1], glue, page))
            else:
                out.extend(["", *self.directive(*block[1:], glue=glue, page=page), ""])
        return out

    def text(self, lines: list[str], glue, page) -> list[str]:
        out, code = [], None
        for line in lines:
            m = FENCE.match(line)
            if code is None and m and m.group("fence")[0] == "`":
                code = m.group("fence")
                out.append(line)
                continue
            if code is not None:
                out.append(line)
                if fence_closes(line, code):
                    code = None
                continue
            if TARGET.match(line) or re.match(r"^%", line):
                continue  # a MyST target "(label)=" or comment
            out.append(self.inline(line, glue, page))
        return out

    def inline(self, line: str, glue, page) -> str:
        """Roles replaced, then the TeX macros expanded outside code spans."""
        line = ROLE.sub(lambda m: self.role(m.group("role"), m.group("text"), glue, page), line)
        parts = re.split(r"(`[^`]+`)", line)
        return "".join(part if k % 2 else self.expand_macros(part) for k, part in enumerate(parts))

    def expand_macros(self, text: str) -> str:
        for name, value in self.macros.items():
            body = value if isinstance(value, str) else value[0]
            text = re.sub(r"\\" + name + r"(?![A-Za-z])", lambda _: body.replace("\\\\", "\\"), text)
        return text

    def role(self, role: str, text: str, glue, page) -> str:
        label = text
        shown = None
        m = re.match(r"^(?P<shown>.*?)\s*<(?P<target>[^<>]+)>$", text)
        if m:
            shown, label = m.group("shown"), m.group("target")
        if role in ("glue:text", "glue"):
            key, _, spec = text.rpartition(":") if ":" in text else (text, "", "")
            if not key:
                key, spec = text, ""
            if key not in glue:
                raise ConversionError(f"{page}: no glued value {key!r} (run the book build first)")
            return format_glue(glue[key], spec)
        if role in ("prf:ref", "numref"):
            return shown or self.numbers.number(label)
        if role == "ref":
            return shown or self.numbers.number(label)
        if role == "doc":
            return shown or label
        if role == "cite:t":
            return self.cites.textual(text)
        if role in ("cite:p", "cite"):
            return self.cites.parenthetical(text)
        raise ConversionError(f"{page}: unknown role {{{role}}}`{text}`")

    def directive(self, name, arg, options, body, *, glue, page) -> list[str]:
        inner = self.blocks(body, glue, page)
        arg_text = self.inline(arg, glue, page) if arg else ""
        kind = Numbers.kind(name)
        if kind is not None:
            number = self.numbers.number(options["label"]) if "label" in options else kind
            head = f"**{number}" + (f" ({arg_text})" if arg_text else "") + ".**"
            return [head, "", *inner]
        if name == "prf:proof":
            while inner and not inner[-1].strip():
                inner.pop()
            if not inner or inner[-1].strip() == "$$":  # ends with a display: ∎ below it
                return ["*Proof.*", "", *inner, "", "∎"]
            return ["*Proof.*", "", *inner[:-1], inner[-1] + " ∎"]
        if name == "solution":
            title = f"Solution to {self.numbers.number(arg)}" if arg else "Solution"
            return ["<details>", f"<summary>{title}</summary>", "", *inner, "", "</details>"]
        if name == "nb-exec-table":
            return ["*(The book's page shows here how long each page took to execute in its build.)*"]
        if name == "admonition":
            return [f"**{arg_text}**", "", *inner]
        if name in ADMONITIONS:
            return [f"**{ADMONITIONS[name]}.**" + (f" {arg_text}" if arg_text else ""), "", *inner]
        raise ConversionError(f"{page}: unknown directive {{{name}}}")

    # -- notebooks
    def notebook(self, path: Path, glue: dict[str, str]):
        """The plain notebook of the book's notebook ``path``."""
        nb = nbformat.read(path, as_version=4)
        page = path.relative_to(ROOT).as_posix()
        out = nbformat.v4.new_notebook()
        out.metadata = {k: copy.deepcopy(v) for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")}
        used = sorted(set(re.findall(r"\{glue(?::text)?\}`([^`:]+)", "\n".join(markdown_of(path)))))
        out.metadata[MARK] = {
            "generated_by": "tools/colab_notebooks.py",
            "source": page,
            "glue": {k: glue[k] for k in used if k in glue},
        }
        out.metadata["colab"] = {"provenance": [], "toc_visible": True}
        for cell in nb.cells:
            tags = set(cell.metadata.get("tags", []))
            if cell.cell_type == "markdown":
                if "<!-- colab-badge -->" in cell.source:
                    source = self.banner(page, cell.source)
                else:
                    source = self.markdown(cell.source, glue, page)
                new = nbformat.v4.new_markdown_cell(source, id=cell.get("id"))
            elif cell.cell_type == "code":
                source = cell.source
                new = nbformat.v4.new_code_cell(source, id=cell.get("id"))
                if tags & FOLDED_TAGS:
                    new.source = f"# @title {self.fold_title(cell)}\n{source}"
                    new.metadata["cellView"] = "form"
                    new.metadata["jupyter"] = {"source_hidden": True}
            else:
                continue
            if tags:
                new.metadata["tags"] = sorted(tags)
            out.cells.append(new)
        return out

    @staticmethod
    def fold_title(cell) -> str:
        if cell.source.startswith("# Setup"):
            return "Setup: install vqlib (on Colab), choose the device and the profile"
        return "Code folded in the book (figures, tables, bookkeeping): run it, or open it to read"

    @staticmethod
    def banner(page: str, badge: str) -> str:
        source = re.search(r"\[!\[Source\][^\n]*", badge)
        return ("*Why VQ-VAEs generalise* — the plain notebook of `" + page + "` for Colab and Jupyter, "
                "written by `tools/colab_notebooks.py`. Numbers in the text are those of the book's build "
                "(quick profile); running the cells computes your own. Solutions are folded: click to "
                "open them." + ("\n\n" + source.group(0) if source else ""))


# --------------------------------------------------------------------- files


def target_of(path: Path) -> Path:
    return OUT / path.relative_to(ROOT)


def executed_glue(source: Path, glue_from: Path) -> dict[str, str] | None:
    """The values glued when the build executed ``source``: myst-nb keeps them in
    ``<page>.glue.json`` beside the executed notebook (older builds: in its outputs)."""
    executed = glue_from / source.relative_to(ROOT)
    stored = executed.with_suffix(".glue.json")
    if stored.is_file():
        outputs = json.loads(stored.read_text(encoding="utf-8"))
        return {name: out["data"]["text/plain"] for name, out in outputs.items()
                if "text/plain" in out.get("data", {})}
    if not executed.is_file():
        return None
    return glue_of_executed(nbformat.read(executed, as_version=4))


def stored_glue(target: Path) -> dict[str, str]:
    if not target.is_file():
        return {}
    return json.loads(target.read_text(encoding="utf-8")).get("metadata", {}).get(MARK, {}).get("glue", {})


def dumps(nb) -> str:
    from nbformat.v4.rwbase import split_lines

    nbformat.validate(nb)
    return json.dumps(split_lines(copy.deepcopy(nb)), indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def build(glue_from: Path | None = None, pages: list[Path] | None = None,
          stored: bool = False) -> dict[Path, tuple[str, str]]:
    """{target: (new text, where the numbers came from)} for every notebook page."""
    converter = Converter()
    glue_from = glue_from or ROOT / "_build" / "jupyter_execute"
    result = {}
    for source in pages or notebook_pages():
        target = target_of(source)
        glue = None if stored else executed_glue(source, glue_from)
        origin = f"{glue_from.relative_to(ROOT) if glue_from.is_relative_to(ROOT) else glue_from}"
        if glue is None:
            glue, origin = stored_glue(target), f"{target.relative_to(ROOT)} (stored)"
        result[target] = (dumps(converter.notebook(source, glue)), origin)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a plain notebook differs from its page (numbers as stored)")
    parser.add_argument("--glue-from", type=Path, default=None,
                        help="folder of executed notebooks (default _build/jupyter_execute)")
    args = parser.parse_args(argv)
    try:
        notebooks = build(args.glue_from, stored=args.check)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stale = []
    for target, (text, origin) in notebooks.items():
        old = target.read_text(encoding="utf-8") if target.is_file() else None
        if old == text:
            continue
        stale.append(target)
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(ROOT)} (numbers from {origin})")
    if args.check:
        for target in stale:
            print(f"out of date: {target.relative_to(ROOT)} (run python tools/colab_notebooks.py)")
        return 1 if stale else 0
    if not stale:
        print("every plain notebook is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
