"""Tidy result tables: one dict a row, seeds in every row (every chapter's results)."""
from __future__ import annotations

import csv
import io

__all__ = ["rows_to_csv"]


def rows_to_csv(rows: list[dict], path=None) -> str:
    """The rows as CSV text with a header from the first row; also written to ``path``."""
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
