"""Every registered backend honours the Backend interface: numpy's results, dtypes, arrays, threads.

Runs over each backend the ``backend`` fixture yields (``pytest --backend NAME`` for one);
a backend that cannot run here is skipped with the reason its ``available()`` gives. The
last test checks that reason for the optional extras torch, jax and dask.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import backends
from kernels import make_step
from mlpbench.problem import make_inputs, to_backend
from mlpbench.verify import CHECK_SHAPES, check_backend

# check's shapes (batch 1, odd sizes, the seed's), an all-odd batch of 17, batch 1 at the seed's widths.
SHAPES = [*CHECK_SHAPES, (17, 33, 9, 5), (1, 1000, 100, 10)]
DTYPES = ["float32", "float64"]


def shape_id(shape):
    return "x".join(map(str, shape))


@pytest.mark.against_reference
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("steps", [1, 50])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_matches_numpy(backend, shape, steps, dtype):
    c = check_backend(backend, shape, dtype=dtype, steps=steps)
    assert c.dtypes_ok, f"{backend.name} returned W or S in another dtype than {dtype}"
    assert c.ok, f"{backend.name}: errors {c.errors} above rtol {c.rtol:g}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_step_keeps_dtype_and_returns_a_0d_loss(backend, dtype):
    dev = to_backend(backend, make_inputs(5, 4, 3, 2, dtype=dtype, seed=1))
    step = backend.prepare(make_step, lr=1e-3, dtype=dtype)
    W, S, loss = step(dev["x"], dev["t"], dev["W"], dev["S"])
    W, S, loss = step(dev["x"], dev["t"], W, S)  # outputs feed the next step
    backend.synchronize(W, S, loss)
    out = {"W": backend.to_numpy(W), "S": backend.to_numpy(S), "loss": backend.to_numpy(loss)}
    assert {k: v.dtype for k, v in out.items()} == {k: np.dtype(dtype) for k in out}
    assert (out["W"].shape, out["S"].shape, np.ndim(out["loss"])) == ((4, 3), (3, 2), 0)
    assert np.isfinite(out["loss"]) and out["loss"] > 0


@pytest.mark.parametrize("shape", [(1, 16, 8, 3), (3, 7, 5, 2)], ids=shape_id)
def test_the_callers_arrays_stay_as_they_were(backend, shape):
    # A backend may update its own outputs in place (numba, jax), never what it was given.
    given = make_inputs(*shape, dtype="float64", seed=3, init="scaled")
    dev = to_backend(backend, given)
    step = backend.prepare(make_step, lr=1e-2, dtype="float64")
    W, S, _ = step(dev["x"], dev["t"], dev["W"], dev["S"])
    W1 = backend.to_numpy(W).copy()
    for _ in range(3):
        W, S, _ = step(dev["x"], dev["t"], W, S)  # outputs feed the next step
    W2, S2, _ = step(dev["x"], dev["t"], dev["W"], dev["S"])  # the first arrays again
    backend.synchronize(W, S, W2, S2)
    for name in ("x", "t", "W", "S"):
        np.testing.assert_array_equal(backend.to_numpy(dev[name]), given[name], err_msg=name)
    assert not np.array_equal(backend.to_numpy(W), W1)  # the steps did train
    np.testing.assert_array_equal(backend.to_numpy(W2), W1)  # same arrays in, same step out


def test_updates_in_place_says_what_the_step_does(backend):
    dev = to_backend(backend, make_inputs(3, 7, 5, 2, dtype="float64", seed=4, init="scaled"))
    step = backend.prepare(make_step, lr=1e-2, dtype="float64")
    W1, S1, _ = step(dev["x"], dev["t"], dev["W"], dev["S"])
    before = backend.to_numpy(W1).copy()
    W2, S2, _ = step(dev["x"], dev["t"], W1, S1)  # the step's own outputs, fed back
    backend.synchronize(W2, S2)
    if getattr(W1, "is_deleted", lambda: False)():  # a donated JAX buffer
        overwritten = True
    else:
        overwritten = not np.array_equal(backend.to_numpy(W1), before)
    assert overwritten is backend.updates_in_place


@pytest.mark.parametrize("dtype", DTYPES)
def test_asarray_to_numpy_round_trips(backend, dtype):
    a = np.random.default_rng(2).standard_normal((7, 5)).astype(dtype)
    a[0, :] = 0  # exact zeros, as at the relu
    a[1, 1] = -0.0
    back = backend.to_numpy(backend.asarray(a))
    assert isinstance(back, np.ndarray)
    assert back.dtype == a.dtype and back.shape == a.shape
    np.testing.assert_array_equal(back, a)


def test_threads_one_yields_its_info_and_restores(backend):
    """threads(1) limits BLAS and the backend's own pools (each count in its info) to 1 and
    restores them after; a pool that cannot be resized once started says so with a warning
    (jax's XLA pool: tests/test_jax.py). threads(None) leaves every pool as it is."""
    before = backend.thread_info()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with backend.threads(1) as info:
            assert isinstance(info, dict) and info == backend.thread_info()
            assert all(n == 1 for n in info["blas"]), f"BLAS not limited to 1 thread: {info}"
            own = {k: v for k, v in info.items() if type(v) is int}
            if not any(issubclass(w.category, RuntimeWarning) for w in caught):
                assert all(v == 1 for v in own.values()), f"a pool not limited to 1: {info}"
    assert backend.thread_info() == before
    with backend.threads(None) as info:
        assert info == before


@pytest.mark.parametrize("name, module", [("torch", "torch"), ("jax", "jax"), ("dask", "dask")])
def test_missing_library_is_reported_with_how_to_install(name, module, monkeypatch):
    """An optional extra that is not installed makes its backend unavailable, saying how to get it.

    Runs whether or not the library is installed here: importing it is made to fail.
    """
    monkeypatch.setitem(sys.modules, module, None)  # "import module" now raises ImportError
    fresh = type(backends.create(name))()  # no cached state
    ok, why = fresh.available()
    assert not ok
    assert f"pip install 'mlpbench[{name}]'" in why and module in why
