"""``python -m vqlib``: run the book's sweeps headless (see :mod:`vqlib.cli`)."""
import sys

from .cli import main

sys.exit(main())
