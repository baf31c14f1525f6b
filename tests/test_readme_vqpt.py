"""The README's researchers' example: certified bounds for VQ-VAEs trained by other code.

The example lives once, in README.md under the heading below; this test pulls its python
block out of the README, runs it (VQ-VAEs built around ``vector_quantize_pytorch``'s
``VectorQuantize``, trained by the example's own loop) and checks what it printed. It is
skipped where ``vector-quantize-pytorch`` is not installed (``pip install -e ".[vqpt]"``;
``requirements-book.txt`` pins it). The bad-input tests need only vqlib.
"""
import ast
import contextlib
import io
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import vqlib

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "### Certified bounds for models trained by other code"
NAMES = {"ld_cmi_cosh", "ld_cmi", "e_cmi_cosh", "e_cmi", "held_out"}


def readme_example() -> str:
    """The first python block after HEADING, with no other heading in between."""
    lines = README.read_text(encoding="utf-8").splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip() == HEADING]
    assert len(starts) == 1, f"README.md must hold the heading {HEADING!r} exactly once"
    i = starts[0] + 1
    while lines[i].rstrip() != "```python":
        assert not lines[i].startswith("#"), f"no python block under {HEADING!r} before {lines[i].strip()!r}"
        i += 1
    end = next(j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```")
    return "".join(lines[i + 1 : end])


@pytest.fixture(scope="module")
def example():
    """Run the README block once in a fresh namespace: (namespace, stdout, warnings)."""
    pytest.importorskip("vector_quantize_pytorch")
    code = compile(readme_example(), f"README.md ({HEADING[4:]})", "exec")
    namespace = {"__name__": "readme_example"}
    out = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(code, namespace)
    finally:
        torch.set_num_threads(threads)
    return namespace, out.getvalue(), caught


def printed_bounds(stdout: str) -> dict:
    dicts = [line for line in stdout.splitlines() if line.startswith("{")]
    assert len(dicts) == 1, f"the example should print the bounds once, printed:\n{stdout}"
    return ast.literal_eval(dicts[0])


def test_example_records_runs_of_the_right_shape(example):
    ns, _, _ = example
    S, M, n = ns["S"], ns["M"], ns["n"]
    assert ns["losses"].shape == (S, M, n, 2) and ns["masks"].shape == (S, M, n)
    assert np.all((ns["losses"] >= 0) & (ns["losses"] <= 1))
    assert set(np.unique(ns["masks"])) <= {0, 1}
    assert M >= 64  # fewer masks leave every certificate vacuous


def test_example_prints_five_certified_values_in_range(example):
    ns, stdout, _ = example
    bounds = printed_bounds(stdout)
    assert set(bounds) == NAMES
    for name, value in bounds.items():
        assert math.isfinite(value) and -1.0 <= value <= 1.0, (name, value)
    gap = re.search(r"measured mean gap: (-?[0-9.]+)", stdout)
    assert gap is not None, stdout
    assert float(gap.group(1)) == pytest.approx(ns["gap"], abs=1e-4)


def test_held_out_is_at_least_the_mean_gap_of_the_estimation_runs(example):
    """held_out = the estimation runs' mean gap + a nonnegative betting confidence term."""
    ns, stdout, _ = example
    losses, masks, M = ns["losses"], ns["masks"], ns["M"]
    m_fit = min(max(1, math.ceil(0.1 * M)), M - 1)  # certified_bounds' default fit_fraction
    gaps = (1 - 2 * masks) * (losses[..., 1] - losses[..., 0])  # ghost loss minus training loss
    assert printed_bounds(stdout)["held_out"] >= gaps[:, m_fit:].mean() - 1e-9


def test_loss_difference_cosh_bound_is_not_vacuous(example):
    _, stdout, _ = example
    assert printed_bounds(stdout)["ld_cmi_cosh"] < 1.0


def test_every_vacuous_value_says_how_many_masks_would_help(example):
    _, stdout, caught = example
    said = [str(w.message) for w in caught if issubclass(w.category, vqlib.CertificateWarning)]
    for name, value in printed_bounds(stdout).items():
        if value >= 1.0:
            assert any(m.startswith(f"{name}: vacuous") and "masks per supersample" in m for m in said), (name, said)
    from_vqlib = [w for w in caught if issubclass(w.category, RuntimeWarning) and "vqlib" in str(w.filename)]
    assert not from_vqlib, [str(w.message) for w in from_vqlib]


def _runs(seed=0, S=1, M=4, n=3):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(S, M, n, 2)), rng.integers(0, 2, size=(S, M, n))


@pytest.mark.parametrize("bad", [
    lambda losses: losses[..., 0],  # (S, M, n): the pair axis is missing
    lambda losses: np.concatenate([losses, losses[..., :1]], axis=-1),  # three points per pair
    lambda losses: losses[0],  # (M, n, 2): the supersample axis is missing
    lambda losses: np.where(np.arange(losses.size).reshape(losses.shape) == 0, 1.5, losses),  # a loss > 1
    lambda losses: 100 * losses,  # a loss in percent
])
def test_bad_losses_fail_naming_losses(bad):
    losses, masks = _runs()
    with pytest.raises(ValueError, match="losses"):
        vqlib.certified_bounds(bad(losses), masks)
