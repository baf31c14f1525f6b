"""Shared test settings."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest, and without oversubscription under xdist, on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
