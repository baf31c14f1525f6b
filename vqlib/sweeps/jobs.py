"""Running a sweep's independent jobs here or on a Dask cluster (every chapter's sweep).

A sweep (:class:`vqlib.sweeps.Sweep`) is a list of independent jobs, each one
configuration whose rows are computed and cached on their own. :func:`map_jobs` runs
them in this process (``executor="serial"``) or through Dask's distributed scheduler
(``executor="dask"``): by default a local cluster of ``workers`` processes with one
thread each, started for the call and closed after it; with ``address`` (or the
environment variable ``VQLIB_DASK_SCHEDULER``) an existing scheduler, e.g. one that
spans several machines. Dask is an optional extra: ``pip install "vqlib[distributed]"``.

A scheduler must answer within ``VQLIB_DASK_TIMEOUT`` seconds (default
:data:`CONNECT_TIMEOUT`), or the call fails with one clear error
(:func:`check_scheduler`): an address that accepts connections and never answers does not
hang the caller.

Each job computes exactly what it computes serially (same seeds, same code, one torch
thread: :func:`one_torch_thread`), and results come back in the order of ``jobs``, so the
rows of a sweep do not depend on the executor. Workers write the cache entries they
compute (writes are atomic).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence

__all__ = ["CONNECT_TIMEOUT", "EXECUTORS", "check_executor", "check_scheduler", "connect_timeout", "map_jobs",
           "one_torch_thread", "scheduler_address"]

EXECUTORS = ("serial", "dask")
#: Seconds a Dask scheduler has to answer (``VQLIB_DASK_TIMEOUT`` overrides).
CONNECT_TIMEOUT = 10.0
#: Seconds between two looks at the jobs' futures while they run.
_POLL = 0.05


def _dask():
    try:
        import distributed  # optional: the [distributed] extra
    except ImportError as err:
        raise ImportError(
            "executor='dask' needs Dask's distributed scheduler, the optional extra 'distributed' of vqlib: "
            "pip install 'vqlib[distributed]' (or pip install -e '.[distributed]' in a checkout)"
        ) from err
    return distributed


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the body with one torch thread, restoring the caller's setting after (every chapter's sweep).

    Convolutions reduce in an order that depends on the number of threads, so a model trained
    at two threads differs from one trained at one by rounding (≈ 1e-6 in the weights). Every
    job of a sweep is computed inside this context, serially or on a worker, so its numbers
    (and what the cache stores) do not depend on the machine's or the caller's thread count.
    """
    import torch  # here, not at the top: a Dask client need not load torch

    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _one_thread(fn: Callable, job):
    """Run ``fn(job)`` with one torch thread: the workers already share the cores."""
    with one_torch_thread():
        return fn(job)


def connect_timeout() -> float:
    """Seconds a Dask scheduler has to answer: ``VQLIB_DASK_TIMEOUT``, else :data:`CONNECT_TIMEOUT` (every chapter's sweep).

    Raises
    ------
    ValueError
        Naming ``VQLIB_DASK_TIMEOUT`` when it is not a finite number > 0.
    """
    raw = os.environ.get("VQLIB_DASK_TIMEOUT", "").strip()
    if not raw:
        return CONNECT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"VQLIB_DASK_TIMEOUT={raw!r} must be a number of seconds > 0")
    return value


def scheduler_address(address: str | None = None) -> str | None:
    """The scheduler to use: ``address``, else ``VQLIB_DASK_SCHEDULER``; None for a local cluster (every chapter's sweep).

    Raises
    ------
    ValueError
        When the address is not a string of the form ``[scheme://]host:port`` (naming where it came from).
    """
    where = "address"
    if address is None:
        address, where = os.environ.get("VQLIB_DASK_SCHEDULER", ""), "VQLIB_DASK_SCHEDULER"
    if not isinstance(address, str):
        raise ValueError(f"{where} must be a scheduler address such as 'tcp://host:8786', got {address!r}")
    address = address.strip()
    if not address:
        return None
    scheme, sep, location = address.rpartition("://")
    host, colon, port = location.rpartition(":")
    known = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
    if (sep and scheme not in known) or (scheme != "inproc" and (not colon or not host or not port.isdigit()
                                                                 or not 0 < int(port) < 65536)):
        raise ValueError(f"{where}={address!r} is not a Dask scheduler address: expected [scheme://]host:port, "
                         f"e.g. 'tcp://127.0.0.1:8786' (scheme one of {known})")
    return address


async def _identity(distributed, address: str) -> dict:
    comm = await distributed.comm.connect(address, timeout=None)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def check_scheduler(address: str | None = None, *, timeout: float | None = None) -> str | None:
    """The scheduler's address once it has answered, within ``timeout`` seconds (every chapter's sweep).

    Connects, asks the scheduler who it is and disconnects, on an event loop of its own (so it
    works inside a Jupyter kernel too). A listener that accepts the connection and never
    answers fails like a closed port: after ``timeout`` seconds.

    Parameters
    ----------
    address : str, optional
        A scheduler's address (default ``VQLIB_DASK_SCHEDULER``).
    timeout : float, optional
        Seconds to wait (default :func:`connect_timeout`).

    Returns
    -------
    str or None
        The address, or None when none is named (a local cluster will be started).

    Raises
    ------
    ValueError
        When the address or ``VQLIB_DASK_TIMEOUT`` is malformed (:func:`scheduler_address`).
    ConnectionError
        When no Dask scheduler answers at that address within the timeout.
    ImportError
        When Dask's ``distributed`` is not installed.
    """
    named = address is not None
    address = scheduler_address(address)
    if address is None:
        return None
    timeout = connect_timeout() if timeout is None else float(timeout)
    distributed = _dask()
    where = "address" if named else "VQLIB_DASK_SCHEDULER"

    def probe():
        return asyncio.run(asyncio.wait_for(_identity(distributed, address), timeout))

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vqlib-scheduler-check") as pool:
        try:
            reply = pool.submit(probe).result()
        except (asyncio.TimeoutError, TimeoutError):
            raise ConnectionError(f"{where}={address!r}: no Dask scheduler answered within {timeout:g} s "
                                  "(set VQLIB_DASK_TIMEOUT to wait longer)") from None
        except (OSError, ValueError, TypeError, EOFError) as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            raise ConnectionError(f"{where}={address!r}: cannot reach a Dask scheduler ({reason})") from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        kind = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
        raise ConnectionError(f"{where}={address!r} answers, but is not a Dask scheduler (it is a {kind})")
    return address


def check_executor(executor: str = "serial", workers: int = 2, address: str | None = None) -> str | None:
    """Check how jobs would run, computing nothing; the scheduler's address or None (every chapter's sweep).

    ``executor`` must be one of :data:`EXECUTORS` and ``workers`` an integer ≥ 1. For
    ``"dask"``: Dask's ``distributed`` must be installed, ``VQLIB_DASK_TIMEOUT`` well formed, and
    the scheduler (``address``, else ``VQLIB_DASK_SCHEDULER``) must answer in time
    (:func:`check_scheduler`); without a scheduler, ``workers`` must be at most four per CPU
    core (each is a process that loads torch).

    Raises
    ------
    ValueError
        A bad executor, number of workers, address or timeout, naming it.
    ConnectionError
        When the scheduler does not answer in time.
    ImportError
        When ``executor="dask"`` and ``distributed`` is not installed.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r} is not one of {EXECUTORS}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer ≥ 1, got {workers!r}")
    if executor == "serial":
        return None
    _dask()
    timeout = connect_timeout()  # refused when malformed, whether a scheduler is named or not
    address = check_scheduler(address, timeout=timeout)
    cores = os.cpu_count() or 1
    if address is None and workers > 4 * cores:
        raise ValueError(f"workers={workers} processes for a local cluster on {cores} CPU core(s): at most "
                         f"{4 * cores} (each loads torch); name a scheduler in VQLIB_DASK_SCHEDULER for more")
    return address


def map_jobs(fn: Callable, jobs: Sequence, *, executor: str = "serial", workers: int = 2,
             address: str | None = None) -> list:
    """``[fn(job) for job in jobs]``, computed here or by Dask workers, in that order (every chapter).

    ``executor="serial"`` runs the jobs one after another in this process.
    ``executor="dask"`` sends each job to a Dask worker, with one torch thread each:
    ``address`` (default ``$VQLIB_DASK_SCHEDULER``) names a running scheduler, which must answer
    within :func:`connect_timeout` seconds (:func:`check_scheduler`); without one a local cluster
    of ``workers`` single-threaded processes runs the jobs and is shut down afterwards (its
    logs are silenced: a job's error is raised here, and a Ctrl-C prints nothing of the workers' shutdown).
    ``fn`` and the jobs must pickle (cloudpickle): functions defined in an importable module,
    or closures over picklable values. An exception in a job is raised here.

    Parameters
    ----------
    fn : callable
        ``fn(job)`` computes one job.
    jobs : sequence
        The jobs.
    executor : str, default "serial"
        ``"serial"`` or ``"dask"``.
    workers : int, default 2
        Processes of the local Dask cluster, ≥ 1 (checked for both executors).
    address : str, optional
        A running Dask scheduler's address.

    Returns
    -------
    list
        ``fn(job)`` for each job, in the order of ``jobs``.

    Raises
    ------
    ValueError
        When ``executor`` is not one of :data:`EXECUTORS`, ``workers`` is not an integer ≥ 1 (or,
        for a local cluster, more than four per CPU core), or the scheduler's address is malformed.
    ConnectionError
        When the named scheduler does not answer in time.
    ImportError
        When ``executor="dask"`` and Dask's ``distributed`` is not installed (the extra
        ``vqlib[distributed]``).

    See also
    --------
    vqlib.sweeps.Sweep.run, check_scheduler; every chapter.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r} is not one of {EXECUTORS}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer ≥ 1, got {workers!r}")
    jobs = list(jobs)
    if executor == "serial" or not jobs:
        return [fn(job) for job in jobs]
    distributed = _dask()
    address = check_executor(executor, workers, address)
    if address:
        with distributed.Client(address, timeout=connect_timeout()) as client:
            return _run(client, fn, jobs)
    with _local_cluster(distributed, workers) as cluster, distributed.Client(cluster) as client:
        return _run(client, fn, jobs)


def _local_cluster(distributed, workers: int):
    """A local cluster of ``workers`` single-threaded processes that a Ctrl-C does not reach.

    A Ctrl-C goes to every process of the terminal's group. The worker processes are started
    while SIGINT is ignored here, and inherit that (an ignored signal stays ignored across
    ``exec``): they are closed by this process, in one piece, instead of being interrupted
    halfway through their imports, each with a traceback. The signal is ignored only until
    the processes exist; the cluster is built on a thread meanwhile, so a Ctrl-C while the
    workers get ready still stops the call (the cluster is closed first).
    """
    import multiprocessing  # to see when the worker processes exist

    box: dict = {}
    before_children = len(multiprocessing.active_children())

    def build():
        try:
            box["cluster"] = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                      dashboard_address=":0", silence_logs=logging.CRITICAL)
        except BaseException as err:  # raised in the caller's thread below
            box["error"] = err

    builder = threading.Thread(target=build, name="vqlib-local-cluster", daemon=True)
    with _sigint_ignored():
        builder.start()
        while builder.is_alive() and len(multiprocessing.active_children()) < before_children + workers:
            time.sleep(0.01)
    try:
        while builder.is_alive():
            builder.join(_POLL)
    except KeyboardInterrupt:
        builder.join()
        if "cluster" in box:
            box["cluster"].close()
        raise
    if "error" in box:
        raise box["error"]
    return box["cluster"]


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while the body runs (in the main thread only, where signals are handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _run(client, fn, jobs) -> list:
    futures = client.map(_one_thread, [fn] * len(jobs), jobs, pure=False)
    # wait here, in this thread, rather than in a blocking gather: a Ctrl-C then leaves no
    # half-finished gather on the client's event loop to be reported when the client closes
    while not all(f.done() for f in futures):
        if any(f.status == "error" for f in futures):
            break  # the gather below raises the first job's error at once
        time.sleep(_POLL)
    return client.gather(futures)
