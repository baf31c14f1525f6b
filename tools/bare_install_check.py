"""Check that vqlib works in a venv holding only torch, numpy, scipy and POT (``.ci/run``).

Everything outside ``vqlib.book`` must run without the ``[book]`` extra (matplotlib,
ipywidgets) and without the optional packages: here a certificate from arrays, one trained
model, chapter 2's toy experiment and the W2 distance. ``vqlib.book.plots`` must fail with a
clear ImportError. Run by ``.ci/run`` with the bare venv's Python; exits 1 on a failure.
"""
import importlib.util
import sys

import numpy as np

import vqlib

ABSENT = ("matplotlib", "ipywidgets", "IPython", "sklearn", "tqdm")
present = [name for name in ABSENT if importlib.util.find_spec(name) is not None]
if present:
    sys.exit(f"the bare venv is not bare: {present} are installed")
rng = np.random.default_rng(0)
losses, masks = rng.uniform(size=(2, 64, 4, 2)), rng.integers(0, 2, size=(2, 64, 4))
values = vqlib.certified_bounds(losses, masks)
assert all(0 <= v <= 1 for v in values.values()), values
x = vqlib.make_synthetic(64, seed=0)
model = vqlib.VQVAE(x.shape[1:], K=4, L=2, hidden=8)
vqlib.fit(model, x, epochs=1)
result = vqlib.run_supersample(x, n=4, K=4, L=1, n_masks=4, n_supersamples=1, learner="kmeans", confidence=None)
distance = vqlib.w2(x[:16].flatten(1), x[16:32].flatten(1))
for name in ("models", "bounds", "studies", "sweeps"):
    getattr(vqlib, name)
try:
    vqlib.book.plots
except ImportError as err:
    book = f"vqlib.book.plots needs the [book] extra ({err})"
else:
    sys.exit("vqlib.book.plots imported without matplotlib")
print(f"bare install OK: certified {values}, gap {result.gap:.4f}, W2 {distance:.3f}; {book}")
