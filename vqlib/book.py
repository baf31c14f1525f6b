"""Small helpers the chapters use to put computed numbers and code into the prose.

In the built book :func:`glue` stores a value for ``{glue:text}`` roles (myst-nb); on
Colab or in plain Jupyter, where myst-nb may be absent, it prints the value instead, so
every chapter runs everywhere.
"""
from __future__ import annotations

import inspect

__all__ = ["glue", "show_source"]


def glue(name: str, value) -> None:
    """Store a number under ``name`` for the chapter's prose (every chapter).

    The prose picks the format, e.g. ``{glue:text}`name:.4f```.
    """
    if hasattr(value, "item"):  # numpy and torch scalars render as np.float64(...) otherwise
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        print(f"{name} = {value}")
        return
    myst_glue(name, value, display=False)


def show_source(obj) -> None:
    """Print the source of a ``vqlib`` function or class: the book shows the library's
    own code before calling it, never a second copy."""
    print(inspect.getsource(obj).rstrip())
