"""Shared test settings."""
import pytest
import torch
from hypothesis import settings

# Property-based tests (Hypothesis) are deterministic: the same examples on every run and
# machine, no example database written to disk, a modest number of examples so that the
# suite stays fast on two cores, and no per-example deadline (a busy CI machine is slow).
# This profile applies to every @given test, including those that set max_examples.
settings.register_profile("ci", derandomize=True, database=None, max_examples=25, deadline=None)
settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest, and without oversubscription under xdist, on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
