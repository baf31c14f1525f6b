"""A result cache for expensive sweeps: tidy tables keyed by configuration, data and code.

Every chapter's sweep (see :mod:`vqlib.experiments`) stores its rows here, so a chapter
re-executed with a warm cache recomputes nothing. The key is a SHA-256 over

* the sweep's name and its full configuration (canonical JSON),
* a fingerprint of the data (shape, dtype and bytes of the array), and
* the code: ``vqlib.__version__`` and a hash of every ``vqlib/*.py`` source file, so
  an edit to the library invalidates what it computed.

An entry is one JSON file holding the key, the rows and a checksum of the rows. A file
that does not parse, whose key differs, or whose checksum fails is reported (a warning
naming the file), moved aside and recomputed: never read as data.

``VQLIB_CACHE`` sets the folder (default ``~/.cache/vqlib``); ``VQLIB_CACHE=off``
turns caching off. ``root=`` names the folder explicitly (a Dask worker started before
``VQLIB_CACHE`` was set still writes where its client reads). Rows come back through
JSON whether the cache is on or off, so a cold, a warm and an uncached call return equal
rows.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

__all__ = ["CacheWarning", "cache_dir", "cached", "code_fingerprint", "data_fingerprint", "entry_path", "key_of",
           "lookup"]

_ENV = object()  # root not given: read VQLIB_CACHE


class CacheWarning(UserWarning):
    """A cache entry was corrupt or partial and has been recomputed."""


def cache_dir() -> Path | None:
    """The cache folder from ``VQLIB_CACHE`` (default ``~/.cache/vqlib``); None when off."""
    value = os.environ.get("VQLIB_CACHE", "").strip()
    if value.lower() in ("off", "0", "false", "none"):
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "vqlib"


# Modules that present results but never compute them: editing them keeps the cache.
PRESENTATION_ONLY = frozenset({"__main__.py", "cli.py", "book.py", "plots.py", "widgets.py"})


def source_fingerprint(root, version: str = "", skip=PRESENTATION_ONLY) -> str:
    """A hash of ``version`` and of every ``*.py`` file under ``root`` (names and bytes),
    except the top-level files named in ``skip``."""
    root = Path(root)
    h = hashlib.sha256(version.encode())
    for path in sorted(root.rglob("*.py")):
        if path.parent == root and path.name in skip:
            continue
        h.update(path.relative_to(root).as_posix().encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """``__version__`` plus a hash of every vqlib source file that computes results
    (any edit to one changes it; the presentation modules in ``PRESENTATION_ONLY`` do not)."""
    from . import __version__

    return source_fingerprint(Path(__file__).resolve().parent, __version__)


def data_fingerprint(data) -> str:
    """A hash of an array's shape, dtype and bytes (a torch tensor or anything numpy reads)."""
    if data is None:
        return "none"
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    arr = np.ascontiguousarray(np.asarray(data))
    h = hashlib.sha256(f"{arr.shape}|{arr.dtype}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()[:16]


def _canonical(obj) -> str:
    def default(o):
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, (np.floating,)):
            return float(o)
        if isinstance(o, (np.ndarray, tuple, set)):
            return list(o.tolist() if isinstance(o, np.ndarray) else o)
        raise TypeError(f"cache keys hold JSON-like values; got {type(o).__name__}: {o!r}")

    return json.dumps(obj, sort_keys=True, default=default, separators=(",", ":"))


def key_of(name: str, config: Mapping, data=None, *, code: str | None = None) -> str:
    """The cache key of sweep ``name`` run with ``config`` on ``data`` by this code.

    ``code`` (default :func:`code_fingerprint`) lets a client hand its own fingerprint to
    workers, so that what they write is keyed exactly as the client reads.
    """
    payload = _canonical({"name": name, "config": dict(config), "data": data_fingerprint(data),
                          "code": code_fingerprint() if code is None else code})
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def entry_path(name: str, config: Mapping, data=None, *, root=_ENV, code: str | None = None) -> Path | None:
    """Where the entry for (name, config, data) lives, or None when caching is off."""
    root = cache_dir() if root is _ENV else (None if root is None else Path(root))
    if root is None:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return root / safe / f"{key_of(name, config, data, code=code)}.json"


def _checksum(rows_json: str) -> str:
    return hashlib.sha256(rows_json.encode()).hexdigest()


def _roundtrip(rows) -> list[dict]:
    """The rows as JSON gives them back (tuples become lists, numpy scalars numbers)."""
    return json.loads(_canonical(_jsonable(rows)))


def _jsonable(rows):
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise TypeError(f"a cached sweep returns a list of dict rows, got {type(rows).__name__}")
    out = []
    for r in rows:
        row = {}
        for k, v in r.items():
            if isinstance(v, np.generic):
                v = v.item()
            row[str(k)] = v
        out.append(row)
    return out


def _read(path: Path, key: str):
    """The rows stored at ``path``, or None (with a CacheWarning) if the entry is unusable."""
    try:
        entry = json.loads(path.read_text())
        rows_json = _canonical(entry["rows"])
        problem = None
        if entry.get("key") != key:
            problem = "its key does not match"
        elif entry.get("checksum") != _checksum(rows_json):
            problem = "its checksum does not match its rows"
        elif not entry.get("complete", False):
            problem = "it is marked incomplete"
    except (OSError, ValueError, KeyError, TypeError) as err:
        problem = f"it cannot be read ({type(err).__name__}: {err})"
    if problem is None:
        return entry["rows"]
    warnings.warn(f"cache entry {path} is corrupt or partial ({problem}); recomputing", CacheWarning, stacklevel=3)
    try:
        path.replace(path.with_suffix(".corrupt"))
    except OSError:
        pass
    return None


def lookup(name: str, config: Mapping, *, data=None, root=_ENV, code: str | None = None) -> list[dict] | None:
    """The stored rows of (name, config, data), or None when absent, unusable or off.

    An unusable entry is reported (:class:`CacheWarning`) and moved aside first.
    """
    path = entry_path(name, config, data, root=root, code=code)
    if path is None or not path.exists():
        return None
    return _read(path, path.stem)


def cached(name: str, config: Mapping, compute: Callable[[], list[dict]], *, data=None,
           refresh: bool = False, root=_ENV, code: str | None = None) -> list[dict]:
    """The rows of sweep ``name`` with ``config`` on ``data``: from the cache, else computed.

    ``compute()`` must return a list of dict rows with JSON values (numbers, strings,
    booleans, None, lists). Rows come back as JSON stores them, so a warm call, a cold
    one and one with the cache off return equal rows. ``refresh=True`` recomputes and
    overwrites. ``root`` overrides ``VQLIB_CACHE`` (None: no cache); ``code`` overrides
    the code fingerprint in the key (see :func:`key_of`).
    """
    code = code_fingerprint() if code is None else code
    path = entry_path(name, config, data, root=root, code=code)
    if path is None:
        return _roundtrip(compute())
    key = path.stem
    if path.exists() and not refresh:
        rows = _read(path, key)
        if rows is not None:
            return rows
    rows = _roundtrip(compute())
    rows_json = _canonical(rows)
    entry = {"key": key, "name": name, "config": json.loads(_canonical(dict(config))),
             "data": data_fingerprint(data), "code": code,
             "complete": True, "checksum": _checksum(rows_json), "rows": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(entry))
    tmp.replace(path)  # atomic: a reader never sees half a file
    return rows
