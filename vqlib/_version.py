"""vqlib's version and where its source lives (one place; the cache keys read both)."""
from pathlib import Path

__version__ = "0.1.0"

#: The package's folder: the root of the source the sweep cache and the image cache fingerprint,
#: defined here so that moving a module that hashes the source cannot move the root with it.
PACKAGE_ROOT = Path(__file__).resolve().parent
