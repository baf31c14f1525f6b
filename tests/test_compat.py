"""The flat layout's import paths keep working for one release, and vqlib works without the book's extra."""
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import vqlib

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("old, name, new", [
    ("vqlib.supersample", "make_supersample", vqlib.bounds.make_supersample),
    ("vqlib.supersample", "run_supersample", vqlib.studies.run_supersample),
    ("vqlib.supersample", "kmeans_learner", vqlib.models.kmeans_learner),
    ("vqlib.certify", "certify", vqlib.bounds.certify),
    ("vqlib.information", "test_set_bound", vqlib.bounds.test_set_bound),
    ("vqlib.information", "cmi_bound", vqlib.bounds.cmi_bound),
    ("vqlib.model", "VQVAE", vqlib.models.VQVAE),
    ("vqlib.model", "Residual", vqlib.models.Residual),
    ("vqlib.quantize", "kmeans_batched", vqlib.models.kmeans_batched),
    ("vqlib.train", "evaluate", vqlib.models.model_summary),
    ("vqlib.engine", "evaluate", vqlib.models.engine.evaluate_stack),
    ("vqlib.ensemble", "fit_ensemble", vqlib.models.fit_ensemble),
    ("vqlib.capacity", "t_quantile", vqlib.studies.statistics.t_quantile),
    ("vqlib.experiments", "get", vqlib.sweeps.get),
    ("vqlib.experiments", "Sweep", vqlib.sweeps.Sweep),
    ("vqlib.experiments.ch04_prior", "runs_of", vqlib.sweeps.ch04_prior.runs_of),
    ("vqlib.experiments.costs", "COSTS", vqlib.book.costs.COSTS),
    ("vqlib.cache", "code_fingerprint", vqlib.sweeps.cache.code_fingerprint),
    ("vqlib.profile", "current_profile", vqlib.sweeps.current_profile),
])
def test_old_module_paths_forward_with_a_warning_naming_the_new_path(old, name, new):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} is deprecated .*use vqlib\."):
        value = getattr(module, name)
    assert value is new


def test_from_import_of_an_old_path_warns_once():
    sys.modules.pop("vqlib.w2", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from vqlib.w2 import w2  # noqa: F401
    assert [str(w.message) for w in caught if w.category is DeprecationWarning] == [
        "vqlib.w2.w2 is deprecated and will be removed in vqlib 0.3; use vqlib.bounds.wasserstein.w2"]


@pytest.mark.parametrize("name, new", [("evaluate", "model_summary"), ("current_profile", "current_profile"),
                                       ("pick", "pick")])
def test_old_top_level_names_forward(name, new):
    with pytest.warns(DeprecationWarning, match=rf"vqlib\.{name} is deprecated"):
        value = getattr(vqlib, name)
    assert value.__name__ == new


def test_an_old_module_that_shared_a_function_name_still_calls_it():
    import vqlib.certify  # noqa: F401  (rebinds vqlib.certify to the forwarding module)

    assert callable(vqlib.certify)
    losses = torch.rand(2, 8, 4, 2).numpy()
    masks = torch.randint(0, 2, (2, 8, 4)).numpy()
    cert = vqlib.certify(losses, masks, warn=False)
    assert set(cert.values) == set(vqlib.bounds.certify(losses, masks, warn=False).values)


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        vqlib.nothing  # noqa: B018
    with pytest.raises(AttributeError, match="moved to vqlib.bounds.supersample"):
        importlib.import_module("vqlib.supersample").nothing  # noqa: B018


def test_models_saved_whole_by_the_flat_layout_load():
    """tests/data/models_v0.1.0.pt was written by ``torch.save`` before the move (vqlib 0.1.0 at
    d007664): its pickle names ``vqlib.model.VQVAE``, ``vqlib.model.Residual`` and
    ``vqlib.quantize.VectorQuantizer``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        saved = torch.load(DATA / "models_v0.1.0.pt", weights_only=False)
    x = vqlib.load_dataset("digits", split="train")[:8]
    for name in ("mlp", "conv"):
        model = saved[name]
        assert isinstance(model, vqlib.VQVAE)
        torch.testing.assert_close(vqlib.reconstruction_loss(model, x, seed=0), saved[f"loss_{name}"], rtol=0, atol=0)


def test_vqlib_works_without_the_book_extra():
    """``import vqlib`` and everything outside vqlib.book run with matplotlib, ipywidgets, IPython,
    scikit-learn and tqdm unimportable (CI also runs this in a venv holding only torch, numpy,
    scipy and POT: .ci/run)."""
    script = r'''
import importlib.abc, sys
BLOCKED = ("matplotlib", "ipywidgets", "IPython", "sklearn", "tqdm", "myst_nb")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked")
sys.meta_path.insert(0, Block())
import numpy as np, vqlib
rng = np.random.default_rng(0)
losses, masks = rng.uniform(size=(2, 64, 4, 2)), rng.integers(0, 2, size=(2, 64, 4))
values = vqlib.certified_bounds(losses, masks)
assert 0 <= min(values.values()) <= 1, values
x = vqlib.make_synthetic(64, seed=0)
model = vqlib.VQVAE(x.shape[1:], K=4, L=2, hidden=8)
vqlib.fit(model, x, epochs=1)
r = vqlib.run_supersample(x, n=4, K=4, L=1, n_masks=4, n_supersamples=1, learner="kmeans", confidence=None)
import vqlib.models, vqlib.bounds, vqlib.studies, vqlib.sweeps, vqlib.book
assert not any(m.split(".")[0] in BLOCKED for m in sys.modules), sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
try:
    vqlib.book.plots
except ImportError as err:
    print("book.plots needs the extra:", err)
else:
    raise SystemExit("vqlib.book.plots imported without matplotlib")
'''
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "book.plots needs the extra: matplotlib is blocked" in out.stdout
