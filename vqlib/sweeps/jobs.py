"""Running a sweep's independent jobs here or on a Dask cluster (every chapter's sweep).

A sweep (:class:`vqlib.sweeps.Sweep`) is a list of independent jobs, each one
configuration whose rows are computed and cached on their own. :func:`map_jobs` runs
them in this process (``executor="serial"``) or through Dask's distributed scheduler
(``executor="dask"``): by default a local cluster of ``workers`` processes with one
thread each, started for the call and closed after it; with ``address`` (or the
environment variable ``VQLIB_DASK_SCHEDULER``) an existing scheduler, e.g. one that
spans several machines. Dask is an optional extra: ``pip install "vqlib[distributed]"``.

Each job computes exactly what it computes serially (same seeds, same code), and
results come back in the order of ``jobs``, so the rows of a sweep do not depend on the
executor. Workers write the cache entries they compute (writes are atomic).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence

__all__ = ["EXECUTORS", "map_jobs"]

EXECUTORS = ("serial", "dask")


def _dask():
    try:
        import distributed  # optional: the [distributed] extra
    except ImportError as err:
        raise ImportError(
            "executor='dask' needs Dask's distributed scheduler, the optional extra 'distributed' of vqlib: "
            "pip install 'vqlib[distributed]' (or pip install -e '.[distributed]' in a checkout)"
        ) from err
    return distributed


def _one_thread(fn: Callable, job):
    """Run ``fn(job)`` with one torch thread: the workers already share the cores."""
    import torch  # in the worker process: the client need not load torch

    torch.set_num_threads(1)
    return fn(job)


def map_jobs(fn: Callable, jobs: Sequence, *, executor: str = "serial", workers: int = 2,
             address: str | None = None) -> list:
    """``[fn(job) for job in jobs]``, computed here or by Dask workers, in that order (every chapter).

    ``executor="serial"`` runs the jobs one after another in this process.
    ``executor="dask"`` sends each job to a Dask worker, with one torch thread each:
    ``address`` (default ``$VQLIB_DASK_SCHEDULER``) names a running scheduler; without one a
    local cluster of ``workers`` single-threaded processes runs the jobs and is shut down
    afterwards. ``fn`` and the jobs must pickle (cloudpickle): functions defined in an
    importable module, or closures over picklable values. An exception in a job is raised here.

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
        When ``executor`` is not one of :data:`EXECUTORS` or ``workers`` is not an integer ≥ 1.
    ImportError
        When ``executor="dask"`` and Dask's ``distributed`` is not installed (the extra
        ``vqlib[distributed]``).

    See also
    --------
    vqlib.sweeps.Sweep.run; every chapter.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r} is not one of {EXECUTORS}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer ≥ 1, got {workers!r}")
    jobs = list(jobs)
    if executor == "serial" or not jobs:
        return [fn(job) for job in jobs]
    distributed = _dask()
    address = address or os.environ.get("VQLIB_DASK_SCHEDULER") or None
    if address:
        with distributed.Client(address) as client:
            return _run(client, fn, jobs)
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        return _run(client, fn, jobs)


def _run(client, fn, jobs) -> list:
    futures = client.map(_one_thread, [fn] * len(jobs), jobs, pure=False)
    return client.gather(futures)
