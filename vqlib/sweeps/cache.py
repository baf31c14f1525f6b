"""A result cache for expensive sweeps: tidy tables keyed by configuration, data and code.

Every chapter's sweep (see :mod:`vqlib.sweeps`) stores its rows here, so a chapter
re-executed with a warm cache recomputes nothing. The key is a SHA-256 over

* the sweep's name and its full configuration (canonical JSON),
* a fingerprint of the data it reads (shape, dtype and bytes of each array, by name: a
  sweep declares which datasets and splits a job reads, :meth:`vqlib.sweeps.Sweep.inputs`), and
* the code: ``vqlib.__version__`` and a hash of every source file of the package outside
  ``vqlib/book/`` (:func:`code_fingerprint`), so an edit to the library invalidates what it
  computed, while an edit to what only presents results (figures, widgets, prose helpers,
  the command line) does not. That is a rule, not a list: nothing outside ``book/`` imports
  ``book/`` (``tests/test_layout.py`` checks it), so no computed number can depend on it.

An entry is one JSON file holding the key, the rows and a checksum of the rows, written
to a temporary file and renamed into place, so a kill leaves either the whole entry or
none. Rows hold finite numbers only: a NaN or an infinity anywhere in a row (a diverged
training, an undefined estimate) is never stored (:func:`rows_problem`). A file that does
not parse, whose key differs, whose checksum fails, or whose rows are not rows (a list of
JSON objects of finite numbers; a sweep adds its own schema, ``validate=``) is reported (a
warning naming the file), moved aside (``<key>.corrupt``, then ``<key>.corrupt-2``, … so an
earlier copy is never overwritten) and recomputed: never read as data.
A folder that cannot be written is reported too (:class:`CacheWarning`): the rows are
returned uncached, and a read-only folder of complete entries is read as usual.

``VQLIB_CACHE`` sets the folder (default ``~/.cache/vqlib``; a relative path is taken from
the current folder, once); ``VQLIB_CACHE=off`` turns caching off. ``root=`` names the folder explicitly (a Dask worker started before
``VQLIB_CACHE`` was set still writes where its client reads). Rows come back through
JSON whether the cache is on or off, so a cold, a warm and an uncached call return equal
rows.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from .._version import PACKAGE_ROOT, __version__
from ..tables import write_text_atomic

__all__ = ["CacheWarning", "cache_dir", "cached", "code_fingerprint", "data_fingerprint", "entry_path", "is_cached",
           "key_of", "lookup", "nonfinite_problem", "rows_problem", "writable_problem"]

_ENV = object()  # root not given: read VQLIB_CACHE


class CacheWarning(UserWarning):
    """A cache entry was corrupt or partial and has been recomputed, or could not be written (every chapter).

    The entry is moved aside (suffix ``.corrupt``, then ``.corrupt-2``, … : an earlier copy is
    kept) before it is recomputed; an unwritable folder gives the rows uncached.

    See also
    --------
    cached, lookup, writable_problem; every chapter.
    """


def cache_dir() -> Path | None:
    """The cache folder from ``VQLIB_CACHE`` (default ``~/.cache/vqlib``); None when off (every chapter).

    Returns
    -------
    pathlib.Path or None
        The folder (``~`` expanded, made absolute), or None when ``VQLIB_CACHE`` is ``off``,
        ``0``, ``false`` or ``none`` (any case).

    Raises
    ------
    ValueError
        Naming ``VQLIB_CACHE`` when it holds a ``~user`` that names no user.

    See also
    --------
    entry_path, writable_problem; every chapter.
    """
    value = os.environ.get("VQLIB_CACHE", "").strip()
    if value.lower() in ("off", "0", "false", "none"):
        return None
    if not value:
        return Path.home() / ".cache" / "vqlib"
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # "~nosuchuser/…"
        path = Path(value)
    if path.parts and path.parts[0].startswith("~"):
        raise ValueError(f"VQLIB_CACHE={value!r} starts with {path.parts[0]!r}, which names no user's home folder")
    return path.absolute()  # workers and later calls write where this process reads


#: The subpackage that presents results but never computes them: editing it keeps the cache.
PRESENTATION = "book"


def source_fingerprint(root, version: str = "", skip: tuple[str, ...] = (PRESENTATION,)) -> str:
    """A hash of ``version`` and of every ``*.py`` file under ``root``, names and bytes (every chapter).

    SHA-256 over ``version`` and, file by file in sorted order, each relative path and the
    SHA-256 of its bytes; files under the top-level folders of ``root`` named in ``skip`` are
    left out.

    Parameters
    ----------
    root : str or path
        A package folder (holding ``__init__.py``).
    version : str, default ""
        Mixed into the hash first.
    skip : tuple of str, default ("book",)
        Top-level folders of ``root`` left out.

    Returns
    -------
    str
        16 hexadecimal characters.

    Raises
    ------
    ValueError
        When ``root`` has no ``__init__.py``.

    See also
    --------
    code_fingerprint, key_of; every chapter.
    """
    root = Path(root)
    if not (root / "__init__.py").is_file():
        raise ValueError(f"root={str(root)!r} is not a package folder (no __init__.py)")
    h = hashlib.sha256(version.encode())
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] in skip:
            continue
        h.update(path.relative_to(root).as_posix().encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """``__version__`` plus a hash of every vqlib source file outside ``book/`` (every chapter).

    Any edit to one of those files changes it; it is rooted at the package's folder
    (:data:`vqlib._version.PACKAGE_ROOT`) and computed once per process (cached).

    Returns
    -------
    str
        16 hexadecimal characters (:func:`source_fingerprint` of the package).

    See also
    --------
    source_fingerprint, key_of; every chapter.
    """
    return source_fingerprint(PACKAGE_ROOT, __version__)


def data_fingerprint(data) -> str:
    """A hash of an array's shape, dtype and bytes, or of a mapping of names to arrays (every chapter).

    An array is a torch tensor (moved to the CPU) or anything numpy reads; a mapping (what a
    sweep's job reads) hashes each name with its array's hash, names sorted.

    Parameters
    ----------
    data : tensor, array_like, mapping of str to arrays, or None
        The data.

    Returns
    -------
    str
        16 hexadecimal characters, or ``"none"`` for None.

    See also
    --------
    key_of, vqlib.sweeps.Sweep.inputs; every chapter.
    """
    if data is None:
        return "none"
    if isinstance(data, Mapping):
        h = hashlib.sha256(b"named arrays")
        for name in sorted(data):
            h.update(f"|{name}={data_fingerprint(data[name])}".encode())
        return h.hexdigest()[:16]
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
    """The cache key of sweep ``name`` run with ``config`` on ``data`` by this code (every chapter).

    SHA-256 of the canonical JSON of the name, the configuration, :func:`data_fingerprint`
    (``data``) and the code fingerprint. ``code`` lets a client hand its own fingerprint to
    workers, so that what they write is keyed exactly as the client reads.

    Parameters
    ----------
    name : str
        The sweep's name.
    config : mapping
        The job's full configuration (JSON-like values).
    data : tensor, array or mapping of str to arrays, optional
        The data the job reads (:func:`data_fingerprint`).
    code : str, optional
        The code fingerprint (default :func:`code_fingerprint`).

    Returns
    -------
    str
        32 hexadecimal characters.

    Raises
    ------
    TypeError
        When ``config`` holds a value that is not JSON-like.

    See also
    --------
    entry_path, cached; every chapter.
    """
    payload = _canonical({"name": name, "config": dict(config), "data": data_fingerprint(data),
                          "code": code_fingerprint() if code is None else code})
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def entry_path(name: str, config: Mapping, data=None, *, root=_ENV, code: str | None = None) -> Path | None:
    """Where the entry for (name, config, data) lives, or None when caching is off (every chapter).

    The path is ``root / <name> / <key>.json``, characters of the name other than letters,
    digits, ``-``, ``_`` and ``.`` replaced by ``_``.

    Parameters
    ----------
    name : str
        The sweep's name.
    config : mapping
        The job's full configuration (JSON-like values).
    data : tensor, array or mapping of str to arrays, optional
        The data the job reads (:func:`data_fingerprint`).
    root : str or path or None, optional
        The cache folder; not given: ``VQLIB_CACHE`` (:func:`cache_dir`); None: no cache.
    code : str, optional
        The code fingerprint in the key (default :func:`code_fingerprint`).

    Returns
    -------
    pathlib.Path or None
        The entry's path (it need not exist).

    See also
    --------
    key_of, lookup, cached; every chapter.
    """
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


def _nonfinite_at(value, where: str = "") -> str | None:
    """Where in ``value`` (nested lists and objects) a NaN or an infinity is, and which, or None."""
    stack = [(value, where)]
    while stack:
        v, at = stack.pop()
        if isinstance(v, float):
            if not math.isfinite(v):
                return f"{'NaN' if math.isnan(v) else ('inf' if v > 0 else '-inf')}{' at ' + at if at else ''}"
        elif isinstance(v, dict):
            stack.extend((item, f"{at}[{json.dumps(str(k))}]") for k, item in reversed(list(v.items())))
        elif isinstance(v, (list, tuple)):
            stack.extend((item, f"{at}[{i}]") for i, item in reversed(list(enumerate(v))))
    return None


def nonfinite_problem(rows) -> str | None:
    """Where the first NaN or infinity of ``rows`` is, e.g. ``"row 3 holds NaN in column 'gap'"``; None: nowhere (every chapter).

    Parameters
    ----------
    rows : list of dict
        Rows (numbers at any depth of lists and objects are looked at).

    Returns
    -------
    str or None
        The row, the column and, inside a nested value, the position of the first non-finite number.

    See also
    --------
    rows_problem; every chapter (``python -m vqlib run … --out`` refuses such a table).
    """
    for i, row in enumerate(rows):
        for key, value in (row.items() if isinstance(row, dict) else ()):
            found = _nonfinite_at(value)
            if found is not None:
                what, _, at = found.partition(" at ")
                return f"row {i} holds {what} in column {key!r}" + (f" at {at}" if at else "")
    return None


def rows_problem(rows) -> str | None:
    """What makes ``rows`` unfit to be a table's rows (None: nothing): the schema of every entry (every chapter).

    Rows are a list of JSON objects (dicts with string keys) whose numbers are all finite: a
    NaN or an infinity at any depth (a diverged training) is never a result; a sweep adds its
    own schema (:meth:`vqlib.sweeps.Sweep.check_rows`).

    Parameters
    ----------
    rows : object
        The candidate rows.

    Returns
    -------
    str or None
        A short description of the first problem, or None.

    See also
    --------
    vqlib.sweeps.Sweep.check_rows, cached; every chapter.
    """
    if not isinstance(rows, list):
        return f"its rows are a {type(rows).__name__}, not a list"
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not all(isinstance(k, str) for k in row):
            return f"its row {i} is not an object of named values: {row!r:.60}"
    found = nonfinite_problem(rows)
    return None if found is None else f"its {found}, not a finite number"


def _load(path: Path, key: str, validate: Callable | None = None):
    """(rows, None) for a healthy entry at ``path``; (None, what is wrong) otherwise. Reads only."""
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
        else:
            problem = rows_problem(entry["rows"]) or (validate(entry["rows"]) if validate else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        problem = f"it cannot be read ({type(err).__name__}: {err})"
    return (entry["rows"], None) if problem is None else (None, problem)


def _read(path: Path, key: str, validate: Callable | None = None):
    """The rows stored at ``path``, or None (with a CacheWarning) if the entry is unusable."""
    rows, problem = _load(path, key, validate)
    if problem is None:
        return rows
    warnings.warn(f"cache entry {path} is corrupt or partial ({problem}); recomputing", CacheWarning, stacklevel=3)
    _move_aside(path)
    return None


def _move_aside(path: Path) -> Path | None:
    """Move a corrupt entry to ``<key>.corrupt`` (``.corrupt-2``, … when taken): never over an earlier copy."""
    for i in range(1, 10_000):
        target = path.with_suffix(".corrupt" if i == 1 else f".corrupt-{i}")
        try:
            os.link(path, target)  # fails if target exists: no copy is ever overwritten
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links: a rename to a name that is free now
            if target.exists():
                continue
            try:
                path.rename(target)
                return target
            except OSError:
                return None
        try:
            path.unlink()
        except OSError:
            pass
        return target
    return None


def lookup(name: str, config: Mapping, *, data=None, root=_ENV, code: str | None = None,
           validate: Callable | None = None) -> list[dict] | None:
    """The stored rows of (name, config, data), or None when absent, unusable or off (every chapter).

    An unusable entry is reported (:class:`CacheWarning`) and moved aside first.

    Parameters
    ----------
    name : str
        The sweep's name.
    config : mapping
        The job's full configuration (JSON-like values).
    data : tensor, array or mapping of str to arrays, optional
        The data the job reads (:func:`data_fingerprint`).
    root : str or path or None, optional
        The cache folder; not given: ``VQLIB_CACHE`` (:func:`cache_dir`); None: no cache.
    code : str, optional
        The code fingerprint in the key (default :func:`code_fingerprint`).
    validate : callable, optional
        ``validate(rows)`` returns what is wrong with rows that parse (None: nothing), e.g.
        :meth:`vqlib.sweeps.Sweep.check_rows`.

    Returns
    -------
    list of dict or None
        The rows as JSON stores them.

    See also
    --------
    is_cached, cached; every chapter.
    """
    path = entry_path(name, config, data, root=root, code=code)
    if path is None or not _is_file(path):
        return None
    return _read(path, path.stem, validate)


def is_cached(name: str, config: Mapping, *, data=None, root=_ENV, code: str | None = None,
              validate: Callable | None = None) -> bool:
    """Whether a healthy entry for (name, config, data) is stored; reads only (every chapter).

    It moves nothing and warns nothing, unlike :func:`lookup`.

    Parameters
    ----------
    name : str
        The sweep's name.
    config : mapping
        The job's full configuration (JSON-like values).
    data : tensor, array or mapping of str to arrays, optional
        The data the job reads (:func:`data_fingerprint`).
    root : str or path or None, optional
        The cache folder; not given: ``VQLIB_CACHE`` (:func:`cache_dir`); None: no cache.
    code : str, optional
        The code fingerprint in the key (default :func:`code_fingerprint`).
    validate : callable, optional
        ``validate(rows)`` returns what is wrong with rows that parse (None: nothing), e.g.
        :meth:`vqlib.sweeps.Sweep.check_rows`.

    Returns
    -------
    bool
        True when the entry exists, parses, matches its key and checksum, is complete and
        passes the schema.

    See also
    --------
    lookup, vqlib.sweeps.Sweep.count_cached; every chapter.
    """
    path = entry_path(name, config, data, root=root, code=code)
    return path is not None and _is_file(path) and _load(path, path.stem, validate)[1] is None


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False where it cannot even be looked at (a name too long, no permission)."""
    try:
        return path.is_file()
    except OSError:
        return False


def writable_problem(root) -> str | None:
    """Why the cache folder ``root`` cannot take new entries (None: it can); creates nothing (every chapter).

    The test creates (and at once removes) a temporary file in ``root``, or, while ``root``
    does not exist yet, in its nearest existing parent: the one reliable test, since
    permission bits do not bind every user or file system.

    Parameters
    ----------
    root : str or path
        The cache folder (``~`` expanded); it need not exist.

    Returns
    -------
    str or None
        Why not (a file in the way, or a folder that cannot be written), or None.

    See also
    --------
    cache_dir, cached; every chapter.
    """

    root = probe = Path(root).expanduser()
    long = [part for part in root.parts if len(os.fsencode(part)) > 255]
    if long:
        return f"{root} cannot be created: the name {long[0][:40]!r}… is longer than 255 bytes"
    try:
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            return f"{probe} is a file, not a folder"
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        where = "" if probe == root else f" (its parent {probe} cannot be written)"
        return f"{root} cannot be written{where}: {err.strerror or type(err).__name__}"
    return None


def cached(name: str, config: Mapping, compute: Callable[[], list[dict]], *, data=None,
           refresh: bool = False, root=_ENV, code: str | None = None, validate: Callable | None = None,
           job: str | None = None) -> list[dict]:
    """The rows of sweep ``name`` with ``config`` on ``data``: from the cache, else computed (every chapter).

    Rows come back as JSON stores them, so a warm call, a cold one and one with the cache
    off return equal rows. A stored entry that fails ``validate`` is corrupt (reported and
    recomputed). A new entry is written to a temporary file and renamed into place; a folder
    that cannot be written gives a :class:`CacheWarning` and the rows uncached.

    Parameters
    ----------
    name : str
        The sweep's name.
    config : mapping
        The job's full configuration (JSON-like values).
    compute : callable
        ``compute()`` returns a list of dict rows with JSON values (numbers, strings,
        booleans, None, lists).
    data : tensor, array or mapping of str to arrays, optional
        The data the job reads (:func:`data_fingerprint`).
    refresh : bool, default False
        Recompute and overwrite.
    root : str or path or None, optional
        Overrides ``VQLIB_CACHE`` (None: no cache).
    code : str, optional
        Overrides the code fingerprint in the key (see :func:`key_of`).
    validate : callable, optional
        ``validate(rows)`` returns what is wrong with rows that parse (None: nothing), e.g.
        :meth:`vqlib.sweeps.Sweep.check_rows`.
    job : str, optional
        How errors name this job (e.g. its grid values, ``"L=4, K=16"``); default its configuration.

    Returns
    -------
    list of dict
        The rows.

    Raises
    ------
    ValueError
        When computed rows fail :func:`rows_problem` (a NaN or an infinity anywhere) or ``validate``:
        nothing is stored, and the message names the sweep, the job, the row and the column.
    TypeError
        When ``compute()`` does not return a list of dict rows.

    See also
    --------
    lookup, is_cached, key_of, vqlib.sweeps.Sweep.run; every chapter.
    """
    code = code_fingerprint() if code is None else code
    path = entry_path(name, config, data, root=root, code=code)
    label = job if job is not None else f"job {_canonical(dict(config))[:200]}"
    if path is None:
        return _computed(compute, validate, name, label)
    key = path.stem
    if _is_file(path) and not refresh:
        rows = _read(path, key, validate)
        if rows is not None:
            return rows
    rows = _computed(compute, validate, name, label)
    rows_json = _canonical(rows)
    entry = {"key": key, "name": name, "config": json.loads(_canonical(dict(config))),
             "data": data_fingerprint(data), "code": code,
             "complete": True, "checksum": _checksum(rows_json), "rows": rows}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # atomic: a reader never sees half a file, a failed write leaves no temporary file
        write_text_atomic(path, json.dumps(entry, allow_nan=False))
    except OSError as err:
        warnings.warn(f"cache entry {path} cannot be written ({type(err).__name__}: {err}); "
                      "the rows are returned but not cached", CacheWarning, stacklevel=2)
    return rows


def _computed(compute: Callable, validate: Callable | None, name: str, job: str) -> list[dict]:
    """``compute()``'s rows through JSON, checked (finite numbers, ``validate``) before anything stores them."""
    rows = _roundtrip(compute())
    problem = rows_problem(rows) or (validate(rows) if validate else None)
    if problem:
        raise ValueError(f"{name}, {job}: the computed rows do not fit the sweep's schema, so nothing is cached: "
                         f"{problem}")
    return rows
