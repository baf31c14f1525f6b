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


#: The hostile-input probes (``test_hostile_*.py``) guard against hangs too: a case that runs past
#: this many seconds fails as a hang instead of stalling the suite.
HANG_SECONDS = 60


@pytest.fixture(autouse=True)
def _no_hang(request):
    """A hostile-probe test that runs past ``HANG_SECONDS`` raises ``TimeoutError`` (the class "hang")."""
    import signal
    import threading

    if not request.module.__name__.rsplit(".", 1)[-1].startswith("test_hostile") \
            or threading.current_thread() is not threading.main_thread():
        yield
        return

    def hang(*_):
        raise TimeoutError(f"hang: {request.node.name} ran past {HANG_SECONDS} s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(HANG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
