"""The image cache of a notebook kernel: widget frames and figures, read back instead of drawn.

Every chapter's widget frames (:func:`vqlib.book.widgets.sweep_panel`) and, once the setup cell
has called :func:`vqlib.book.plots.use_book_style`, every figure it displays are cached in
``$VQLIB_CACHE/frames``. A chapter executed again in a fresh kernel reads each image back
when nothing that could change it has changed (:func:`frame_context`): the cells the kernel
has run so far, vqlib's source, the versions of matplotlib and numpy, the profile, and the
image's place among those the running cell has made. Images are cached only where that
record exists and the numbers behind them are reproducible: in an IPython kernel, on the
CPU. Elsewhere (scripts, tests, a GPU, ``VQLIB_CACHE=off``) every image is drawn.

Each image is one file, written to a temporary file and renamed into place; a file that
is not an image of its format is reported (:class:`vqlib.sweeps.cache.CacheWarning`), moved aside
and drawn again, and a folder that cannot be written is reported once.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .._version import PACKAGE_ROOT, __version__
from ..device import default_device
from ..sweeps.cache import CacheWarning, cache_dir, source_fingerprint
from ..sweeps.profile import current_profile

__all__ = ["frame_context", "frame_path", "read_frame", "write_frame", "cache_figures"]

_MAGIC = {"png": (b"\x89PNG\r\n\x1a\n",), "jpeg": (b"\xff\xd8\xff",), "svg": (b"<?xml", b"<svg")}


def _shell():
    """The running IPython shell, or None outside IPython."""
    try:
        from IPython import get_ipython  # IPython only where a kernel may run

    except ImportError:  # pragma: no cover - ipywidgets brings IPython
        return None
    return get_ipython()


def _kernel_history() -> list[str] | None:
    """The cells this IPython kernel has run, in order, the running one last (``In``); None outside IPython."""
    shell = _shell()
    history = None if shell is None else shell.user_ns.get("In")
    return list(history) if isinstance(history, list) else None


@functools.lru_cache(maxsize=1)
def _library_fingerprint() -> str:
    """vqlib's version and every one of its source files, presentation modules included
    (an image depends on how it is drawn as much as on what it shows)."""
    return source_fingerprint(PACKAGE_ROOT, __version__, skip=())


def frame_context() -> str | None:
    """A hash of everything an image drawn now could depend on, or None (not cacheable here).

    What an image shows is computed by the cells this kernel has run so far, from data they
    read (the sweep cache, keyed by configuration, data and vqlib's computing code) or
    computed themselves, and drawn by vqlib and matplotlib. So the hash covers the source of
    those cells in the order they ran, vqlib's source, the matplotlib and numpy versions and
    the profile. None outside an IPython kernel (no record of the cells) and off the CPU
    (a GPU's numbers may differ from run to run, and a figure must show this run's).
    """
    history = _kernel_history()
    if history is None:
        return None
    import matplotlib  # the frame key needs its version only; drawing imports it anyway


    if default_device().type != "cpu":
        return None
    h = hashlib.sha256(b"vqlib frame")
    for part in (_library_fingerprint(), matplotlib.__version__, np.__version__, current_profile(),
                 str(len(history))):
        h.update(part.encode() + b"\0")
    for cell in history:
        h.update(hashlib.sha256(str(cell).encode()).digest())
    return h.hexdigest()


_CELL = {"shell": None, "counts": {}}  # images of each kind made so far by the running cell


def _new_cell(*_) -> None:
    _CELL["counts"] = {}


def _place_in_cell(kind: str) -> int:
    """1 for the running cell's first image of ``kind``, 2 for its second, ... (counted from
    IPython's ``pre_run_cell`` event): two images of one cell never share a file."""
    shell = _shell()
    if _CELL["shell"] is not shell:
        shell.events.register("pre_run_cell", _new_cell)
        _CELL["shell"] = shell
        _new_cell()
    _CELL["counts"][kind] = _CELL["counts"].get(kind, 0) + 1
    return _CELL["counts"][kind]


def frame_path(kind: str, fmt: str, *parts) -> Path | None:
    """The file of the running cell's next image of ``kind`` (``parts``: what else tells it
    apart, e.g. a panel's setting), or None when images are not cached here."""

    context = frame_context()
    root = None if context is None else cache_dir()
    if root is None:
        return None
    key = hashlib.sha256(repr((context, kind, _place_in_cell(kind), fmt, parts)).encode()).hexdigest()[:32]
    return root / "frames" / f"{key}.{fmt}"


def read_frame(path: Path | None, fmt: str) -> bytes | None:
    """A cached image's bytes, or None (no path, no file; a file that is not a ``fmt`` image
    is warned about and moved aside)."""

    if path is None:
        return None
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        warnings.warn(f"cached image {path} could not be read ({error}); drawing it again", CacheWarning,
                      stacklevel=3)
        return None
    if data.lstrip().startswith(_MAGIC[fmt]):
        return data
    warnings.warn(f"cached image {path} is not a {fmt} image; moved aside and drawn again", CacheWarning,
                  stacklevel=3)
    try:
        os.replace(path, path.with_name(path.name + ".corrupt"))
    except OSError:
        pass
    return None


def write_frame(path: Path | None, data: bytes) -> None:
    """Store an image (a temporary file renamed into place). A folder that cannot be written is
    reported once (:class:`vqlib.sweeps.cache.CacheWarning`); the image is then simply not cached."""

    if path is None or path.parent in _UNWRITABLE:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".frame-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as error:
        _UNWRITABLE.add(path.parent)
        warnings.warn(f"images could not be written to {path.parent} ({error}); they are drawn without caching",
                      CacheWarning, stacklevel=3)


_UNWRITABLE: set[Path] = set()  # folders already reported as unwritable


def cache_figures() -> bool:
    """Route the kernel's PNG rendering of matplotlib figures through the image cache
    (every chapter, through :func:`vqlib.book.plots.use_book_style`); True when installed.

    The formatter the inline backend registered stays in charge: the cache keeps the bytes
    it returns, keyed by :func:`frame_context`, its own settings and the figure's place
    among those the cell displays, and hands them back in a later kernel instead of
    drawing the figure again (as bytes, or as base64 text where the formatter returns that).
    Anything else it returns is passed through uncached.
    """
    shell = _shell()
    if shell is None or not hasattr(shell, "display_formatter"):
        return False
    import matplotlib  # pyplot picks a backend on import: only in a kernel that draws
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    png = shell.display_formatter.formatters["image/png"]
    if Figure not in png.type_printers and not plt.get_fignums():
        # matplotlib loads the kernel's backend, which registers its formatter, at the first
        # figure: load it now (switching closes every figure, so only while there is none)
        plt.switch_backend(matplotlib.get_backend())
    try:
        draw = png.lookup_by_type(Figure)
    except KeyError:  # no inline backend: figures are not shown as PNG here
        return False
    if getattr(draw, "vqlib_cached", False):
        return True
    keywords = getattr(draw, "keywords", {})
    settings, as_text = repr(sorted(keywords.items())), bool(keywords.get("base64"))

    def cached_png(fig):
        path = frame_path("figure", "png", settings)
        data = read_frame(path, "png")
        if data is not None:
            return base64.b64encode(data).decode("ascii") if as_text else data
        shown = draw(fig)
        data = base64.b64decode(shown) if as_text and isinstance(shown, str) else shown
        if isinstance(data, bytes):
            write_frame(path, data)
        return shown

    cached_png.vqlib_cached = True
    png.for_type(Figure, cached_png)
    return True
