"""Tidy result tables: one dict a row, seeds in every row (every chapter's results).

Files are written atomically (:func:`write_text_atomic`): to a temporary file in the same
folder, then renamed over the target, so a failed write (a full disk, a kill) leaves the
previous file as it was and no temporary file behind.
"""
from __future__ import annotations

import csv
import io
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["rows_to_csv", "write_text_atomic"]


def _umask() -> int:
    """This process's umask, read without changing it where the system says (Linux), else set and restored."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path, text: str, *, newline: str | None = None) -> Path:
    """Write ``text`` to ``path`` all at once or not at all (every chapter's results, the sweep cache).

    The text goes to a temporary file in the target's folder (a symbolic link is followed to
    its target), is flushed to disk, and the file is renamed over the target: a reader sees
    the old file or the new one, never half of one. When anything fails (a full disk, a
    size limit, a folder that cannot be written) the temporary file is removed, the previous
    file is left as it was, and the error is raised. A new file gets the permissions an
    ordinary ``open`` would give it (the umask's); a replaced one keeps its own.

    Parameters
    ----------
    path : str or path
        The file to write.
    text : str
        Its new content (encoded as ``open`` encodes by default).
    newline : str, optional
        As ``open``'s ``newline`` (``""`` writes the text's line ends untranslated, as CSV needs).

    Returns
    -------
    pathlib.Path
        The file written (the link's target for a link).

    Raises
    ------
    OSError
        When the file cannot be written; nothing is changed then.

    See also
    --------
    rows_to_csv; every chapter (``python -m vqlib run NAME --out t.csv``).
    """
    target = Path(os.path.realpath(path))
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline=newline) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        Path(tmp).replace(target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def rows_to_csv(rows: list[dict], path=None) -> str:
    """The rows as CSV text with a header from the first row; also written to ``path`` (every chapter's results).

    One dict a row, one column per key of the first row, in its order (``csv.DictWriter``,
    ``\\r\\n`` line ends). A key missing from a later row gives an empty cell; a key that the
    first row lacks is a ``ValueError`` from ``csv``. Every sweep row names its seeds, so the
    table says how to recompute each row. The file is written atomically
    (:func:`write_text_atomic`): a failed write leaves the previous file intact.

    Parameters
    ----------
    rows : list of dict
        The table, non-empty.
    path : path, optional
        A file to write the same text to (replaced, all at once).

    Returns
    -------
    str
        The CSV text, header first.

    Raises
    ------
    ValueError
        When ``rows`` is empty, or a later row has a key the first row lacks.
    OSError
        When ``path`` cannot be written (the previous file is left as it was).

    See also
    --------
    write_text_atomic, vqlib.sweeps; chapters 1–9 (``python -m vqlib run NAME --out t.csv``).
    """
    if not rows:
        raise ValueError("rows is empty: there is no table to write")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    if path is not None:
        write_text_atomic(path, buf.getvalue(), newline="")
    return buf.getvalue()
