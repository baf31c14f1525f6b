"""Tidy result tables: one dict a row, seeds in every row (every chapter's results)."""
from __future__ import annotations

import csv
import io

__all__ = ["rows_to_csv"]


def rows_to_csv(rows: list[dict], path=None) -> str:
    """The rows as CSV text with a header from the first row; also written to ``path`` (every chapter's results).

    One dict a row, one column per key of the first row, in its order (``csv.DictWriter``,
    ``\\r\\n`` line ends). A key missing from a later row gives an empty cell; a key that the
    first row lacks is a ``ValueError`` from ``csv``. Every sweep row names its seeds, so the
    table says how to recompute each row.

    Parameters
    ----------
    rows : list of dict
        The table, non-empty.
    path : path, optional
        A file to write the same text to (overwritten).

    Returns
    -------
    str
        The CSV text, header first.

    Raises
    ------
    ValueError
        When ``rows`` is empty, or a later row has a key the first row lacks.

    See also
    --------
    vqlib.sweeps; chapters 1–9 (``python -m vqlib run NAME --out t.csv``).
    """
    if not rows:
        raise ValueError("rows is empty: there is no table to write")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    if path is not None:
        with open(path, "w", newline="") as fh:
            fh.write(buf.getvalue())
    return buf.getvalue()
