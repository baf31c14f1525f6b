"""``python -m vqlib``: run the book's sweeps headless (see :mod:`vqlib.book.cli`)."""
import sys

from .book.cli import main

sys.exit(main())
