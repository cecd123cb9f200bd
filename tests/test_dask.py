"""The dask backend: the array API ops it needs, batch chunks, a bounded graph, threads, a cluster.

The cluster tests start one dask.distributed LocalCluster of two worker processes for the
module and point the backend at it through MLPBENCH_DASK_SCHEDULER, as a user would.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

import backends
from helpers import assert_close
from backends.dask_backend import CHUNK_ENV, SCHEDULER_ENV, DaskBackend
from kernels import make_step
from mlpbench.problem import make_inputs, to_backend
from mlpbench.verify import check_backend

pytestmark = pytest.mark.uses_backend("dask")

DTYPES = ["float32", "float64"]


@pytest.fixture
def local_backend(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    monkeypatch.delenv(CHUNK_ENV, raising=False)
    return DaskBackend()


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture
def cluster_backend(cluster, monkeypatch):
    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    monkeypatch.delenv(CHUNK_ENV, raising=False)
    backend = DaskBackend()
    yield backend
    backend.close()


# -- the array API through array_api_compat.dask.array ----------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_the_ops_of_the_step_follow_numpy_and_keep_dtype(local_backend, dtype):
    xp = local_backend.xp
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((7, 5)).astype(dtype)
    b_np = rng.standard_normal((5, 3)).astype(dtype)
    a_np[0, :] = 0
    a, b = local_backend.asarray(a_np), local_backend.asarray(b_np)
    cases = {
        ".T": (a.T, a_np.T),
        "@": (a @ b, a_np @ b_np),
        "maximum": (xp.maximum(a, xp.zeros_like(a)), np.maximum(a_np, 0)),
        "where": (xp.where(a > 0, a, xp.zeros_like(a)), np.where(a_np > 0, a_np, 0)),
        "sum": (xp.sum(a * a), np.sum(a_np * a_np)),
    }
    for op, (got, want) in cases.items():
        assert_close(local_backend.to_numpy(got), np.asarray(want, dtype=dtype),
                     1e-6 if dtype == "float32" else 1e-14, what=op)


# -- chunks and graph -------------------------------------------------------------

def test_chunks_default_to_one_per_core(local_backend):
    x = local_backend.asarray(np.zeros((64, 10)))
    rows = math.ceil(64 / os.cpu_count())
    assert x.chunks == (tuple(min(rows, 64 - i) for i in range(0, 64, rows)), (10,))


def test_chunk_rows_from_the_environment(local_backend, monkeypatch):
    monkeypatch.setenv(CHUNK_ENV, "3")
    assert local_backend.asarray(np.zeros((7, 4))).chunks == ((3, 3, 1), (4,))
    monkeypatch.setenv(CHUNK_ENV, "zero")
    ok, why = local_backend.available()
    assert not ok and CHUNK_ENV in why and "'zero'" in why


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("steps", [1, 50])
def test_uneven_chunks_match_numpy(local_backend, monkeypatch, steps, dtype):
    monkeypatch.setenv(CHUNK_ENV, "4")  # batch 17: chunks of 4, 4, 4, 4, 1
    c = check_backend(local_backend, (17, 33, 9, 5), dtype=dtype, steps=steps)
    assert c.dtypes_ok and c.ok, f"errors {c.errors} above rtol {c.rtol:g}"


def test_graph_does_not_grow_across_steps(local_backend, monkeypatch):
    monkeypatch.setenv(CHUNK_ENV, "2")
    dev = to_backend(local_backend, make_inputs(7, 6, 5, 3, dtype="float64", seed=0))
    step = local_backend.prepare(make_step, lr=1e-3, dtype="float64")
    W, S = dev["W"], dev["S"]
    sizes = []
    for _ in range(10):
        W, S, loss = step(dev["x"], dev["t"], W, S)
        sizes.append((len(W.__dask_graph__()), len(S.__dask_graph__()),
                      len(loss.__dask_graph__())))
    assert sizes == [(1, 1, 1)] * 10  # each a single computed chunk: nothing left to run
    assert W.chunks == ((6,), (5,)) and loss.shape == ()


def test_one_thread_runs_on_the_local_threaded_scheduler(local_backend):
    # threads set and restored: the backend contract; here, what dask's info adds
    with local_backend.threads(1) as info:
        assert info["dask_scheduler"] == "threads"
        assert check_backend(local_backend, (8, 6, 5, 3), dtype="float64", steps=3).ok


def test_registered_backend_is_this_class():
    assert isinstance(backends.create("dask"), DaskBackend)


# -- a dask.distributed cluster of two worker processes --------------------------------

# Every shape and dtype for one step; 50 steps (about 0.1-0.3 s each on a busy 2-core
# machine: a step is ~15 scheduler round trips in a row) for two of them. The local
# scheduler runs the full matrix in test_backends_contract.py.
CLUSTER_CASES = [(shape, 1, dtype) for shape in [(1, 16, 8, 3), (3, 7, 5, 2), (64, 1000, 100, 10)]
                 for dtype in DTYPES] + [((3, 7, 5, 2), 50, "float64"),
                                         ((64, 1000, 100, 10), 50, "float32")]


@pytest.mark.parametrize("shape, steps, dtype", CLUSTER_CASES,
                         ids=["x".join(map(str, s)) + f"-{n}-{d}" for s, n, d in CLUSTER_CASES])
def test_cluster_matches_numpy(cluster_backend, shape, steps, dtype):
    c = check_backend(cluster_backend, shape, dtype=dtype, steps=steps)
    assert c.dtypes_ok and c.ok, f"errors {c.errors} above rtol {c.rtol:g}"


def test_cluster_computes_on_its_workers(cluster, cluster_backend):
    ok, why = cluster_backend.available()
    assert ok, why
    assert cluster_backend.device == f"cpu (dask.distributed {cluster.scheduler_address})"
    assert cluster_backend.thread_info()["dask"] == 2  # two workers, one thread each
    dev = to_backend(cluster_backend, make_inputs(6, 5, 4, 2, dtype="float64", seed=0))
    assert cluster_backend.chunk_rows(6) == 3
    step = cluster_backend.prepare(make_step, lr=1e-3, dtype="float64")
    W, S, loss = step(dev["x"], dev["t"], dev["W"], dev["S"])
    cluster_backend.synchronize(W, S, loss)
    client = cluster_backend._client()
    held = client.who_has([W, S, loss])
    assert held and all(held.values()), "W, S and the loss are not held by the workers"
    assert set().union(*held.values()) <= set(cluster.scheduler_info["workers"])


def test_cluster_threads_are_the_workers(cluster_backend):
    with pytest.warns(RuntimeWarning, match="workers set their own threads"):
        with cluster_backend.threads(1) as info:
            assert info["dask"] == 2 and info["dask_scheduler"].startswith("tcp://")
