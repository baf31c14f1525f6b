"""The dependency rules of vqlib's layout, read from the source (``ast``), not from a running import.

The package is layered; a module may import only what lies below it:

    helpers (_checks, _version, _compat, data, device, tables)   import nothing of the package
    models, bounds                                                helpers and themselves, never each other
    studies                                                       models, bounds, helpers
    sweeps                                                        studies and everything below
    book                                                          anything; nothing imports it

and besides:

* no private name (``_x``, or a module ``_x``) crosses from one subpackage into another; the
  top-level helpers ``_checks`` and ``_version`` are the package's own and serve every layer;
* no import cycle among the package's modules (imports inside functions included);
* an import inside a function body carries a comment saying why (on its line or the line above).

The package front (``__init__``) and the entry point (``__main__``, which runs the command line of
``book``) are not layers. :func:`violations` returns one line per broken rule.
"""
from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

HELPERS = {"_checks", "_version", "_compat", "data", "device", "tables"}
SHARED_PRIVATE = {"_checks", "_version"}
#: Each layer and the layers it may import (itself included).
ALLOWED = {
    "helpers": set(),
    "models": {"helpers", "models"},
    "bounds": {"helpers", "bounds"},
    "studies": {"helpers", "models", "bounds", "studies"},
    "sweeps": {"helpers", "models", "bounds", "studies", "sweeps"},
    "book": {"helpers", "models", "bounds", "studies", "sweeps", "book"},
}
EXEMPT = {"__init__", "__main__"}  # the package front and the entry point


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root`` by dotted name (``pkg.models.fit``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([package, *parts])] = path
    return out


def layer(module: str, package: str) -> str | None:
    """The layer of a module, or None for the front and the entry point."""
    parts = module.split(".")[1:]
    if not parts or parts == ["__main__"]:
        return None
    if len(parts) == 1 and parts[0] in HELPERS:
        return "helpers"
    if parts[0] in ALLOWED:
        return parts[0]
    return "unknown"


def _targets(node: ast.ImportFrom | ast.Import, module: str, is_package: bool, known: set[str], package: str):
    """(imported module, names imported from it) for one import statement, within the package only."""
    if isinstance(node, ast.Import):
        return [(a.name, []) for a in node.names if a.name == package or a.name.startswith(package + ".")]
    if node.level == 0:
        if not (node.module == package or (node.module or "").startswith(package + ".")):
            return []
        base = node.module
    else:
        here = module.split(".") if is_package else module.split(".")[:-1]
        here = here[: len(here) - (node.level - 1)]
        base = ".".join([*here, *([node.module] if node.module else [])])
    out = []
    names = []
    for a in node.names:
        sub = f"{base}.{a.name}"
        if sub in known:  # `from . import sweeps`: a submodule
            out.append((sub, []))
        else:
            names.append(a.name)
    if names or not out:
        out.append((base, names))
    return out


def _comment_lines(source: str) -> set[int]:
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            lines.add(tok.start[0])
    return lines


def violations(root: Path, package: str = "vqlib") -> list[str]:
    """Every broken rule of the layout of the package under ``root``, one line each."""
    root = Path(root)
    mods = modules(root, package)
    known = set(mods)
    problems, edges = [], {m: set() for m in mods}
    for module, path in mods.items():
        source = path.read_text()
        tree = ast.parse(source)
        is_package = path.name == "__init__.py"
        comments = _comment_lines(source)
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = sorted({n.lineno: n for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))}.items())
                for k, (lineno, node) in enumerate(lines):
                    first = lineno  # a run of imports on consecutive lines shares the comment of its first
                    j = k
                    while j > 0 and lines[j - 1][1].end_lineno == lines[j][0] - 1:
                        j -= 1
                        first = lines[j][0]
                    if not ({lineno, first, first - 1} & comments):
                        problems.append(f"{module}:{lineno}: import inside a function without a comment saying why")
        mine = layer(module, package)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target, names in _targets(node, module, is_package, known, package):
                if target not in known:
                    problems.append(f"{module}:{node.lineno}: imports {target}, which is not a module of {package}")
                    continue
                if target != module:
                    edges[module].add(target)
                theirs = layer(target, package)
                if module.split(".")[1:2] == ["__main__"] or mine is None:
                    continue
                if theirs is None:
                    problems.append(f"{module}:{node.lineno}: imports the package front {target}")
                    continue
                if theirs not in ALLOWED.get(mine, set()):
                    problems.append(f"{module}:{node.lineno}: the {mine} layer imports {target} ({theirs})")
                if theirs != mine:
                    private = [p for p in target.split(".")[1:] if p.startswith("_") and p not in SHARED_PRIVATE]
                    private += [n for n in names if n.startswith("_") and not n.startswith("__")]
                    if private:
                        problems.append(f"{module}:{node.lineno}: private name(s) {private} cross from "
                                        f"{target} into {mine}")
    problems += [f"import cycle: {' -> '.join(c)}" for c in _cycles(edges)]
    return problems


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component) + [sorted(component)[0]])

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out
