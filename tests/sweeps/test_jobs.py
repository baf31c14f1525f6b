"""A sweep's jobs through Dask's local distributed cluster (vqlib.sweeps.jobs), against serial."""
import sys

import cloudpickle
import pytest
import torch

import vqlib
from vqlib import sweeps
from vqlib.sweeps.jobs import map_jobs


def _tiny_compute(x, *, seed, n, K, epochs):
    """One real job: train a small VQ-VAE on n digits with ``seed``, report its losses."""
    model = vqlib.VQVAE(x.shape[1:], K, 2, hidden=16, seed=seed)
    hist = vqlib.fit(model, x[:n], epochs=epochs, train_seed=seed, device="cpu")
    test = vqlib.reconstruction_loss(model, x[n:2 * n], seed=seed)
    return [{"train_seed": seed, "K": K, "train_loss": hist.final.train_loss, "test_loss": float(test.mean()),
             "codes": vqlib.encode_indices(model, x[:4], seed=seed).tolist()}]


TINY = sweeps.register(sweeps.Sweep(
    name="test-jobs-tiny", chapter="tests", doc="two seeds × two K, a few epochs each (tests only)",
    quick=dict(seed=[0, 1], K=[4, 8], n=64, epochs=3), full=dict(seed=[0, 1], K=[4, 8], n=64, epochs=3),
    compute=_tiny_compute, grid=("seed", "K"),
))
# the workers are separate processes that cannot import this test module: ship its code
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def scheduler():
    """One local cluster of two worker processes shared by the tests that name it."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _pid(job):
    import os

    return os.getpid(), job * job


def test_map_jobs_serial_and_dask_agree():
    jobs = list(range(6))
    serial = map_jobs(_pid, jobs)
    dask = map_jobs(_pid, jobs, executor="dask", workers=2)  # starts and stops its own local cluster
    assert [r[1] for r in serial] == [r[1] for r in dask] == [j * j for j in jobs]
    import os

    pids = {pid for pid, _ in dask}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # computed by the worker processes


def test_sweep_through_two_workers_equals_serial(tmp_path, monkeypatch, scheduler):
    serial = TINY.run("quick", cache=False)
    monkeypatch.setenv("VQLIB_CACHE", str(tmp_path))
    monkeypatch.setenv("VQLIB_DASK_SCHEDULER", scheduler)  # the shared two-worker cluster
    dask = TINY.run("quick", executor="dask", workers=2)
    assert len(serial) == 4 and dask == serial  # the same rows, in the same order, bit for bit
    # the workers filled the cache: a serial warm run computes nothing
    calls = []
    warm = sweeps.Sweep(name=TINY.name, chapter=TINY.chapter, doc=TINY.doc, quick=TINY.quick, full=TINY.full,
                             compute=lambda x, **job: calls.append(job) or [], grid=TINY.grid)
    assert warm.run("quick") == serial and calls == []
    assert len(list(tmp_path.rglob("*.json"))) == 4


def test_job_errors_are_raised_here(scheduler):
    def boom(job):
        if job == 2:
            raise ArithmeticError("job 2 failed")
        return job

    with pytest.raises(ArithmeticError, match="job 2"):
        map_jobs(boom, [1, 2, 3], executor="dask", address=scheduler)


def test_bad_arguments_and_missing_extra(monkeypatch):
    with pytest.raises(ValueError, match="executor"):
        map_jobs(_pid, [1], executor="threads")
    with pytest.raises(ValueError, match="workers"):
        map_jobs(_pid, [1], executor="dask", workers=0)
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    with pytest.raises(ImportError, match=r"vqlib\[distributed\]"):
        map_jobs(_pid, [1], executor="dask")
    assert map_jobs(_pid, [3])[0][1] == 9  # serial needs no extra


def test_torch_threads_stay_one_in_workers(scheduler):
    def threads(_):
        return torch.get_num_threads()

    assert map_jobs(threads, [0, 1], executor="dask", address=scheduler) == [1, 1]
