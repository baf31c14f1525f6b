"""The package layout: vqlib obeys its dependency rules, and the checker catches every broken one."""
from pathlib import Path

import pytest

import vqlib
from layout_rules import violations

ROOT = Path(vqlib.__file__).resolve().parent


def test_vqlib_obeys_its_layout_rules():
    assert violations(ROOT) == []


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A small package ``pkg`` with vqlib's layers, every module empty unless given."""
    root = tmp_path / "pkg"
    base = {"__init__.py": "", "_checks.py": "", "data.py": "", "tables.py": ""}
    for sub in ("models", "bounds", "studies", "sweeps", "book"):
        base[f"{sub}/__init__.py"] = ""
        base[f"{sub}/core.py"] = ""
    base.update(files)
    for name, text in base.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_clean_package_passes(tmp_path):
    root = _package(tmp_path, {
        "models/core.py": "from .._checks import x\nfrom ..data import y\n",
        "bounds/core.py": "from .._checks import x\n",
        "studies/core.py": "from ..models.core import a\nfrom ..bounds import b\nfrom .other import c\n",
        "studies/other.py": "c = 1\n",
        "sweeps/core.py": "from ..studies.core import a\nfrom ..models.core import b\n",
        "book/core.py": "from ..sweeps.core import a\nfrom ..studies import other\n",
        "book/cli.py": "def main():\n    import json  # why: only when run\n",
        "__main__.py": "from .book.cli import main\n",
    })
    assert violations(root, "pkg") == []


@pytest.mark.parametrize("files, expected", [
    ({"data.py": "from . import tables\n"}, "the helpers layer imports pkg.tables"),
    ({"_checks.py": "from .models.core import a\n"}, "the helpers layer imports pkg.models.core"),
    ({"models/core.py": "from ..bounds.core import a\n"}, "the models layer imports pkg.bounds.core"),
    ({"bounds/core.py": "from ..models import VQVAE\n"}, "the bounds layer imports pkg.models"),
    ({"models/core.py": "from ..studies.core import a\n"}, "the models layer imports pkg.studies.core"),
    ({"studies/core.py": "from ..sweeps.core import a\n"}, "the studies layer imports pkg.sweeps.core"),
    ({"sweeps/core.py": "from ..book.core import a\n"}, "the sweeps layer imports pkg.book.core"),
    ({"sweeps/core.py": "import pkg.book.core\n"}, "the sweeps layer imports pkg.book.core"),
    ({"studies/core.py": "from ..models.core import _evaluate\n"}, "private name(s) ['_evaluate'] cross"),
    ({"studies/core.py": "from ..models._engine import a\n", "models/_engine.py": ""}, "private name(s) ['_engine']"),
    ({"models/core.py": "from .other import a\n", "models/other.py": "from .core import b\n"},
     "import cycle: pkg.models.core -> pkg.models.other -> pkg.models.core"),
    ({"models/core.py": "def f():\n    from .other import a\n", "models/other.py": "from .core import b\n"},
     "import cycle"),
    ({"models/core.py": "def f():\n    import json\n    return json\n"}, "pkg.models.core:2: import inside a function"),
    ({"studies/core.py": "from ..models.gone import a\n"}, "imports pkg.models.gone, which is not a module"),
    ({"studies/core.py": "from .. import thing\n"}, "imports the package front pkg"),
])
def test_each_broken_rule_is_reported(tmp_path, files, expected):
    found = violations(_package(tmp_path, files), "pkg")
    assert any(expected in line for line in found), found


def test_a_private_name_within_a_subpackage_is_allowed(tmp_path):
    root = _package(tmp_path, {"bounds/core.py": "from .other import _helper\n", "bounds/other.py": "_helper = 1\n"})
    assert violations(root, "pkg") == []


def test_the_cli_entry_point_may_import_book(tmp_path):
    root = _package(tmp_path, {"__main__.py": "from .book.core import main\n"})
    assert violations(root, "pkg") == []
