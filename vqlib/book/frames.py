"""The image cache of a notebook kernel: widget frames and figures, read back instead of drawn.

Every chapter's widget frames (:func:`vqlib.book.widgets.sweep_panel`) and, once the setup cell
has called :func:`vqlib.book.plots.use_book_style`, every figure it displays are cached in
``$VQLIB_CACHE/frames``. A chapter executed again in a fresh kernel reads each image back
when nothing that could change it has changed (:func:`frame_context`): the cells the kernel
has run so far, the files they read, vqlib's source, the versions of matplotlib and numpy,
the profile, and the image's place among those the running cell has made. Images are cached
only where that record exists and the numbers behind them are reproducible: in an IPython
kernel, on the CPU. Elsewhere (scripts, tests, a GPU, ``VQLIB_CACHE=off``) every image is drawn.

**The files the cells read.** What a cell shows may come from a file it read (a table, an
array, a dataset), and a file can change while the cells do not. So from the moment this
module is loaded, an audit hook (:func:`sys.addaudithook`, the ``open`` event, which
``open``, ``io.open``, ``os.open``, ``pathlib``, ``numpy.load``, ``torch.load``, pandas' readers
and every other Python-level open raise) records each file the kernel opens to read, and an
image's key holds, for every such file read so far in the kernel, its path and the SHA-256 of
its contents (computed once per size and modification time; a file over 1 GiB by its size and
modification time only). A file that could not be opened is recorded as absent, so a file
that appears later changes the key too. Left out, as the rest of the key covers them:

* installed software: files under ``sys.prefix``, ``sys.base_prefix`` and the site-packages
  folders (modules, fonts, package data), and vqlib's own source files;
* the sweep cache's entries (``$VQLIB_CACHE/<sweep>/<key>.json``: an entry holds what computing
  its key gives, and the key is fixed by the cells' settings, the data's fingerprint and the
  code) and this cache's own files;
* ``/proc``, ``/sys`` and ``/dev``;
* a file the kernel itself created or truncated (a temporary file, an output it reads back):
  from then on it holds what the cells wrote.

An image is stored only if drawing it opened no file that its key does not already cover (a
draw function that reads a file is keyed from its next image on). Images are not cached at
all in a kernel whose earlier cells ran before this module was loaded (what they read is not
known; the book loads it in its first cell), that read a pipe or a device, or that read more
than 10,000 files. Not tracked: what a cell learns without opening a file (whether one
exists, a folder's listing, the network, the clock), files opened from C code, and what other
processes read (an executor's workers: vqlib's sweeps key what their jobs read by the data's
fingerprint).

**What is served.** Each image is one file, ``<key>.<format>.frame``: a header line
(``vqlib frame 1`` and a JSON object holding the key, the format, the image's size as drawn
(pixels; an SVG's ``width`` and ``height``), its byte count and its SHA-256), then the image's
bytes as drawn. It is written to a temporary file (``.frame-*.tmp``) and renamed into place;
a failed write removes its temporary file (the previous file stays), and temporary files a
killed writer left over an hour ago are removed by a kernel's first write into the folder. A file is served only if it is such a
record of the key asked for, complete, with its checksum, and its image decodes fully as an
image of its format (PNG and JPEG with Pillow, which matplotlib depends on; SVG as XML
whose root is ``svg``, entity declarations refused) of the size recorded. Anything else (a
truncated, damaged, foreign or oversized file, a folder or a pipe in its place) is reported
(:class:`vqlib.sweeps.cache.CacheWarning`), moved aside (``.corrupt``, then ``.corrupt-2``, …:
a later damage never overwrites an earlier copy; ten are kept) and drawn again. An image that
does not decode when drawn is shown but not cached; a folder that cannot be written is
reported once.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import re
import site
import stat
import sys
import tempfile
import threading
import time
import warnings
import weakref
from pathlib import Path

import numpy as np

from .._version import PACKAGE_ROOT, __version__
from ..device import default_device
from ..sweeps.cache import CacheWarning, cache_dir, source_fingerprint
from ..sweeps.profile import current_profile

__all__ = ["frame_context", "frame_path", "read_frame", "write_frame", "cached_image", "cache_figures",
           "MAX_FRAME_BYTES"]

FORMATS = ("png", "jpeg", "svg")
_MAGIC = b"vqlib frame 1 "
_MAX_HEADER = 4096
#: The largest frame file read back (a book's image is tens of kilobytes): larger ones are refused.
MAX_FRAME_BYTES = 64 << 20
_HASH_LIMIT = 1 << 30  # files read by cells larger than this are known by size and mtime only
_MAX_FILES = 10_000  # files read by one kernel that are tracked; beyond, images are not cached
_KEEP_CORRUPT = 10  # copies moved aside per frame
_STALE_TMP_S = 3600  # a temporary file this old belongs to a writer that died


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


# ------------------------------------------------------------- the files the kernel reads


_LOCAL = threading.local()  # .busy: this thread is inside the hook (its own opens are not the kernel's)
_LOCK = threading.RLock()
#: The kernel session being tracked: its shell (weakly), history session and execution count,
#: whether every file it read is known, the (path, contents) of each, the files it created or
#: truncated itself (``own``); ``generation`` changes with every new record.
_SESSION = {"shell": None, "number": None, "count": 0, "complete": True, "files": {}, "own": set(),
            "generation": 0, "digest": None}
_HASHES: dict[tuple, str] = {}  # (path, device, inode, size, mtime, ctime) -> SHA-256 of the contents
_SYSTEM = ("/proc/", "/sys/", "/dev/")
_PID = os.getpid()  # the kernel's process
_ENTRY = re.compile(r"[0-9a-f]{32}\.json")


def _running_shell():
    """The IPython shell, without importing IPython where it is not loaded (a cheap check per open)."""
    get = getattr(sys.modules.get("IPython"), "get_ipython", None)  # None while IPython is still importing
    return None if get is None else get()


@functools.lru_cache(maxsize=1)
def _installed() -> tuple[str, ...]:
    """Folders of installed software, as given and resolved, each ending with a separator."""
    folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    try:
        folders.update(site.getsitepackages())
        folders.add(site.getusersitepackages())
    except AttributeError:  # pragma: no cover - a virtualenv's old site module
        pass
    found = set()
    for folder in folders:
        for form in (os.path.abspath(folder), os.path.realpath(folder)):
            if form != os.sep:  # a Python installed at / would leave nothing to track
                found.add(form.rstrip(os.sep) + os.sep)
    return tuple(sorted(found))


@functools.lru_cache(maxsize=1)
def _own_source() -> tuple[str, ...]:
    return tuple({str(PACKAGE_ROOT) + os.sep, os.path.abspath(PACKAGE_ROOT) + os.sep})


def _keyed_elsewhere(path: str) -> bool:
    """Whether the rest of the key covers what ``path`` holds (installed software, vqlib's source,
    the sweep cache's entries, this cache, the kernel's view of the system)."""
    if path.startswith(_SYSTEM) or path.startswith(_installed()):
        return True
    if path.startswith(_own_source()) and path.endswith((".py", ".pyc")):
        return True
    root = cache_dir()
    if root is None:
        return False
    for base in {os.path.abspath(root), os.path.realpath(root)}:
        if path.startswith(base + os.sep):
            parts = path[len(base) + 1:].split(os.sep)
            return parts[0] == "frames" or (len(parts) == 2 and _ENTRY.fullmatch(parts[1]) is not None)
    return False


def _contents(path: str) -> str | None:
    """A token for what ``path`` holds now; None for a file whose contents cannot be known (a pipe)."""
    try:
        before = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "absent"
    except (OSError, ValueError) as error:
        return f"unreadable:{type(error).__name__}:{getattr(error, 'errno', '')}"
    if stat.S_ISDIR(before.st_mode):
        return "folder"
    if not stat.S_ISREG(before.st_mode):
        return None
    signature = (path, before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns)
    known = _HASHES.get(signature)
    if known is not None:
        return known
    if before.st_size > _HASH_LIMIT:
        return f"stat:{before.st_size}:{before.st_mtime_ns}"
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
            after = os.fstat(f.fileno())
    except OSError as error:
        return f"unreadable:{type(error).__name__}:{error.errno}"
    if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != signature[3:]:
        return f"changing:{after.st_size}:{after.st_mtime_ns}"  # written while read: never matches again
    token = "sha256:" + h.hexdigest()
    if len(_HASHES) > 4 * _MAX_FILES:  # a long-lived process: forget old files' hashes
        _HASHES.clear()
    _HASHES[signature] = token
    return token


def _session(shell) -> dict:
    """The state of the kernel session ``shell`` runs now, started afresh when it is a new one
    (another shell, a new history session, an execution count that went back). Call under _LOCK."""
    s = _SESSION
    number = getattr(getattr(shell, "history_manager", None), "session_number", None)
    count = getattr(shell, "execution_count", 0)
    tracked = s["shell"]() if s["shell"] is not None else None
    if tracked is not shell or s["number"] != number or count < s["count"]:
        late = _LOADED_LATE.get("shell") is not None and _LOADED_LATE["shell"]() is shell \
            and _LOADED_LATE["number"] == number
        s.update(shell=weakref.ref(shell), number=number, complete=not late, files={}, own=set(), digest=None)
        s["generation"] += 1
    s["count"] = count
    return s


def _give_up() -> None:
    """Images of the running session cannot be keyed by what it read: cache none of them."""
    shell = _running_shell()
    if shell is None:
        return
    with _LOCK:
        s = _session(shell)
        if s["complete"]:
            s["complete"] = False
            s["generation"] += 1


def _creates(flags: int, where: str) -> bool:
    """Whether an open with ``flags`` makes ``where`` hold only what the kernel writes into it:
    truncating it, creating it (``O_EXCL``, ``O_TMPFILE``: temporary files) or a file not there."""
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if flags & os.O_TRUNC or (flags & os.O_CREAT and flags & os.O_EXCL) or (tmpfile and flags & tmpfile == tmpfile):
        return True
    return bool(flags & os.O_CREAT) and not os.path.lexists(where)


def _note_open(path, flags) -> None:
    if path is None or isinstance(path, int):  # an open file descriptor: its open was seen before
        return
    if os.getpid() != _PID:  # a forked worker: what it reads reaches the kernel through the sweep cache
        return
    shell = _running_shell()
    if shell is None:
        return
    shown = os.fsdecode(os.fspath(path))
    where = os.path.abspath(shown)
    if _keyed_elsewhere(where) or _keyed_elsewhere(os.path.realpath(where)):
        return
    flags = flags if isinstance(flags, int) else os.O_RDONLY
    creates = _creates(flags, where)
    if not creates and (flags & os.O_ACCMODE) == os.O_WRONLY:
        return  # appended to, not read
    with _LOCK:
        s = _session(shell)
        if creates:  # the kernel's own output from now on: reading it back depends on the cells only
            s["own"].add(where)
            return
        if not s["complete"] or where in s["own"]:
            return
    token = _contents(where)
    with _LOCK:
        s = _session(shell)
        if token is None or len(s["files"]) >= _MAX_FILES:
            s["complete"] = False
            s["generation"] += 1
        elif (shown, token) not in s["files"]:
            s["files"][(shown, token)] = None
            s["digest"] = None
            s["generation"] += 1


def _audit(event: str, args: tuple) -> None:
    """The audit hook: note each file the kernel opens to read (never breaking the open)."""
    if event != "open" or getattr(_LOCAL, "busy", False):
        return
    _LOCAL.busy = True
    try:
        _note_open(args[0], args[2] if len(args) > 2 else None)
    except Exception:  # an open we could not account for: the session's images go uncached
        _quietly_give_up()
    except BaseException:  # Ctrl-C while hashing: the same, and the interrupt goes on
        _quietly_give_up()
        raise
    finally:
        _LOCAL.busy = False


def _quietly_give_up() -> None:
    try:
        _give_up()
    except Exception:  # pragma: no cover - the hook must never break the kernel's open
        pass


def _reads_digest() -> str | None:
    """A hash of the files the running kernel session has read, or None when they are not all known."""
    shell = _running_shell()
    if shell is None:
        return None
    with _LOCK:
        s = _session(shell)
        if not s["complete"]:
            return None
        if s["digest"] is None:
            h = hashlib.sha256(b"files read")
            for shown, token in sorted(s["files"]):
                h.update(shown.encode("utf-8", "surrogateescape") + b"\0" + token.encode() + b"\0")
            s["digest"] = h.hexdigest()
        return s["digest"]


def _reads_mark() -> int:
    with _LOCK:
        return _SESSION["generation"]


def _read_since(mark: int) -> bool:
    """Whether the kernel has read a file not yet in the key (or started a session) since ``mark``."""
    with _LOCK:
        return _SESSION["generation"] != mark


#: The kernel session that had run cells before this module was loaded (its images are not cached).
_LOADED_LATE: dict = {"shell": None, "number": None}


def _install() -> None:
    """Start recording at import; note a session that had run cells before."""
    shell = _shell()
    history = None if shell is None else shell.user_ns.get("In")
    if isinstance(history, list) and len(history) > 2:  # cells ran before the one loading this module
        _LOADED_LATE.update(shell=weakref.ref(shell),
                            number=getattr(getattr(shell, "history_manager", None), "session_number", None))
    sys.addaudithook(_audit)


_install()


# -------------------------------------------------------------------------------- keys


def frame_context() -> str | None:
    """A hash of everything an image drawn now could depend on, or None (not cacheable here).

    What an image shows is computed by the cells this kernel has run so far, from data they
    read (the sweep cache, keyed by configuration, data and vqlib's computing code; files,
    keyed by their contents) or computed themselves, and drawn by vqlib and matplotlib. So
    the hash covers the source of those cells in the order they ran, the files they read
    (module docstring), vqlib's source, the matplotlib and numpy versions and the profile.
    None outside an IPython kernel (no record of the cells), off the CPU (a GPU's numbers
    may differ from run to run, and a figure must show this run's), and where the files the
    cells read are not all known (cells ran before this module was loaded; a pipe was read).
    """
    history = _kernel_history()
    if history is None:
        return None
    import matplotlib  # the frame key needs its version only; drawing imports it anyway


    if default_device().type != "cpu":
        return None
    reads = _reads_digest()
    if reads is None:
        return None
    h = hashlib.sha256(b"vqlib frame")
    for part in (_library_fingerprint(), matplotlib.__version__, np.__version__, current_profile(),
                 str(len(history)), reads):
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

    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {list(FORMATS)}, got {fmt!r}")
    context = frame_context()
    root = None if context is None else cache_dir()
    if root is None:
        return None
    key = hashlib.sha256(repr((context, kind, _place_in_cell(kind), fmt, parts)).encode()).hexdigest()[:32]
    return root / "frames" / f"{key}.{fmt}.frame"


# ------------------------------------------------------------------------ checking images


def _svg_size(data: bytes):
    """(width, height) attributes of an SVG's root, or raise ValueError: it is not one."""
    import xml.parsers.expat  # only when an SVG image is checked

    root = []

    def start(name, attrs):
        if not root:
            root.append((name, attrs))

    def refuse(*_):
        raise ValueError("it declares an entity")

    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = start
    parser.EntityDeclHandler = refuse
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as error:
        raise ValueError(f"it is not well-formed XML ({error})") from None
    if not root or root[0][0].rsplit(" ", 1)[-1] != "svg":
        raise ValueError("its root element is not svg")
    attrs = root[0][1]
    return [attrs.get("width"), attrs.get("height")]


def _image_size(data, fmt: str):
    """(size, None) when ``data`` decodes fully as a ``fmt`` image; (None, what is wrong) otherwise."""
    if not isinstance(data, (bytes, bytearray)):
        return None, f"it is a {type(data).__name__}, not bytes"
    if not data:
        return None, "it is empty"
    if fmt == "svg":
        try:
            return _svg_size(bytes(data)), None
        except ValueError as error:
            return None, str(error)
    from PIL import Image  # only when an image is checked; Pillow comes with matplotlib

    name = {"png": "PNG", "jpeg": "JPEG"}[fmt]
    try:
        with Image.open(io.BytesIO(data), formats=[name]) as im:
            size = list(im.size)
            im.verify()  # the chunks' structure and checksums, to the end
        with Image.open(io.BytesIO(data), formats=[name]) as im:
            im.load()  # every pixel decodes
    except Exception as error:  # Pillow raises many kinds for a broken file
        return None, f"it does not decode as {fmt} ({type(error).__name__}: {error})"
    return size, None


def _format_of(path: Path) -> str:
    parts = path.name.split(".")[1:]
    if parts and parts[-1] == "frame":
        parts = parts[:-1]
    if not parts or parts[-1] not in FORMATS:
        raise ValueError(f"path={str(path)!r} does not name an image format ({', '.join(FORMATS)})")
    return parts[-1]


def _record(path: Path, data: bytes, fmt: str, size) -> bytes:
    meta = {"key": path.name.split(".")[0], "format": fmt, "size": size, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}
    return _MAGIC + json.dumps(meta, sort_keys=True).encode() + b"\n" + bytes(data)


def _served(raw: bytes, path: Path, fmt: str):
    """(image, None) when ``raw`` is a sound record of ``path``'s key in ``fmt``; (None, what is wrong)."""
    if not raw:
        return None, "the file is empty"
    if not raw.startswith(_MAGIC):
        return None, "it is not a frame record (no header)"
    end = raw.find(b"\n", 0, _MAX_HEADER)
    if end < 0:
        return None, "its header is cut off"
    try:
        meta = json.loads(raw[len(_MAGIC):end])
    except ValueError:
        return None, "its header does not parse"
    if not isinstance(meta, dict):
        return None, "its header is not a record"
    if meta.get("key") != path.name.split(".")[0]:
        return None, "it is the record of another image"
    if meta.get("format") != fmt:
        return None, f"it records a {meta.get('format')!r} image"
    data = raw[end + 1:]
    if meta.get("bytes") != len(data):
        return None, f"it holds {len(data)} bytes of an image of {meta.get('bytes')}"
    if meta.get("sha256") != hashlib.sha256(data).hexdigest():
        return None, "its checksum does not match"
    size, problem = _image_size(data, fmt)
    if problem:
        return None, problem
    if size != meta.get("size"):
        return None, f"its image's size is {size}, {meta.get('size')} was written"
    return data, None


def _aside(path: Path, seen: os.stat_result) -> str:
    """Move the bad file at ``path`` (the one described by ``seen``) aside without overwriting an
    earlier copy; what was done, for the warning."""
    try:
        now = os.stat(path)
    except OSError:
        now = None
    if now is None or (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
        return "already replaced"  # another kernel moved or rewrote it meanwhile
    folder = stat.S_ISDIR(seen.st_mode)
    for i in range(1, _KEEP_CORRUPT + 1):  # the sweep cache's names: .corrupt, .corrupt-2, ...
        target = path.with_name(path.name + (".corrupt" if i == 1 else f".corrupt-{i}"))
        try:
            if folder:
                if os.path.lexists(target):
                    continue
                os.rename(path, target)
                return f"moved aside to {target.name}"
            try:
                os.link(path, target, follow_symlinks=False)  # fails, never overwrites, if target exists
            except FileExistsError:
                continue
            except OSError:  # no hard links here: a rename, checked first
                if os.path.lexists(target):
                    continue
                os.rename(path, target)
                return f"moved aside to {target.name}"
            try:
                os.unlink(path)
            except FileNotFoundError:  # another reader moved it at the same time: one copy is enough
                os.unlink(target)
                return "moved aside by another reader"
            return f"moved aside to {target.name}"
        except OSError:
            break
    try:
        if not folder:
            os.unlink(path)
            return f"removed ({_KEEP_CORRUPT} copies are kept already)"
    except OSError:
        pass
    return "left in place (it could not be moved)"


def read_frame(path: Path | None, fmt: str) -> bytes | None:
    """A cached image's bytes as drawn, or None (no path, no file; a file that is not a sound
    record of a ``fmt`` image of that key is warned about and moved aside)."""

    if path is None:
        return None
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        warnings.warn(f"cached image {path} could not be read ({error}); drawing it again", CacheWarning,
                      stacklevel=3)
        return None
    try:
        seen = os.fstat(fd)
        if not stat.S_ISREG(seen.st_mode):
            kind = "a folder" if stat.S_ISDIR(seen.st_mode) else "not a regular file"
            raw, problem = None, f"it is {kind}"
        elif seen.st_size > MAX_FRAME_BYTES:
            raw, problem = None, f"it is {seen.st_size} bytes, over the {MAX_FRAME_BYTES} a frame may be"
        else:
            with os.fdopen(os.dup(fd), "rb") as f:
                raw = f.read(MAX_FRAME_BYTES + 1)
            raw, problem = _served(raw, path, fmt)
    except OSError as error:
        warnings.warn(f"cached image {path} could not be read ({error}); drawing it again", CacheWarning,
                      stacklevel=3)
        return None
    finally:
        os.close(fd)
    if problem is None:
        return raw
    done = _aside(path, seen)
    warnings.warn(f"cached image {path} is not a {fmt} image ({problem}); {done} and drawn again", CacheWarning,
                  stacklevel=3)
    return None


_UNWRITABLE: set[Path] = set()  # folders already reported as unwritable
_SWEPT: set[Path] = set()  # folders whose stale temporary files were removed by this process


def _remove_stale_temporaries(folder: Path) -> None:
    """Remove the temporary files writers that died (killed mid-write) left over an hour ago."""
    if folder in _SWEPT:
        return
    _SWEPT.add(folder)
    cutoff = time.time() - _STALE_TMP_S
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".frame-") and entry.name.endswith(".tmp"):
                    try:
                        if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                            os.unlink(entry.path)
                    except OSError:
                        pass
    except OSError:
        pass


def write_frame(path: Path | None, data: bytes, fmt: str | None = None) -> None:
    """Store an image (a record in a temporary file renamed into place; ``fmt`` defaults to the
    one ``path`` names). An image that does not decode as ``fmt`` is not stored; a folder that
    cannot be written is reported once (:class:`vqlib.sweeps.cache.CacheWarning`); the image
    is then simply not cached. A failed write leaves no temporary file and the previous file."""

    if path is None:
        return
    path = Path(path)
    fmt = _format_of(path) if fmt is None else fmt
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {list(FORMATS)}, got {fmt!r}")
    if path.parent in _UNWRITABLE:
        return
    size, problem = _image_size(data, fmt)
    if problem is None and len(data) > MAX_FRAME_BYTES:
        problem = f"it is {len(data)} bytes, over the {MAX_FRAME_BYTES} a frame may be"
    if problem is not None:
        warnings.warn(f"the image drawn for {path.name} is shown but not cached: {problem}", CacheWarning,
                      stacklevel=3)
        return
    record = _record(path, data, fmt, size)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".frame-", suffix=".tmp")
        try:
            view = memoryview(record)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
    except OSError as error:
        if os.path.isdir(path):  # a folder in the frame's place: this image only
            warnings.warn(f"image {path} could not be stored ({error}); it is drawn without caching",
                          CacheWarning, stacklevel=3)
        else:
            _UNWRITABLE.add(path.parent)
            warnings.warn(f"images could not be written to {path.parent} ({error}); they are drawn without caching",
                          CacheWarning, stacklevel=3)
    finally:
        if tmp is not None:  # the write failed or was interrupted: no temporary file stays behind
            try:
                os.unlink(tmp)
            except OSError:
                pass


def cached_image(path: Path | None, fmt: str, draw) -> bytes:
    """The image at ``path`` if it is sound (:func:`read_frame`), else ``draw()``'s bytes, stored
    (:func:`write_frame`) unless drawing opened a file the key does not cover."""
    data = read_frame(path, fmt)
    if data is not None:
        return data
    mark = _reads_mark()
    data = draw()
    if path is not None and not _read_since(mark):
        write_frame(path, data, fmt)
    return data


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
        mark = _reads_mark()
        shown = draw(fig)
        data = base64.b64decode(shown) if as_text and isinstance(shown, str) else shown
        if isinstance(data, bytes) and not _read_since(mark):
            write_frame(path, data, "png")
        return shown

    cached_png.vqlib_cached = True
    png.for_type(Figure, cached_png)
    return True
