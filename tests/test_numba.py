"""The numba backend: agreement with numpy, threads, Numba's disk cache, and without numba."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backends
from helpers import ROOT
from kernels import make_step
from mlpbench.problem import make_inputs
from mlpbench.verify import run_steps

from numba_common import (  # noqa: F401  (fixtures: pytest collects them from here)
    DTYPES, uses_numba, numba_backend, no_named_choice, close, need)


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_step_keeps_dtype_and_leaves_inputs_alone(numba_backend, dtype):
    inputs = make_inputs(3, 7, 5, 2, dtype=dtype, seed=1, relu_zeros=True)
    arrays = {k: numba_backend.asarray(v) for k, v in inputs.items()}
    assert all(arrays[k] is not inputs[k] for k in arrays)
    step = numba_backend.prepare(make_step, lr=1e-3, dtype=dtype)
    W, S, loss = step(arrays["x"], arrays["t"], arrays["W"], arrays["S"])
    assert W.dtype == S.dtype == np.dtype(dtype)
    assert np.asarray(loss).dtype == np.dtype(dtype)
    assert W is not arrays["W"] and S is not arrays["S"]
    # The step writes its update into its own temporaries, never into the weights passed in.
    np.testing.assert_array_equal(arrays["W"], inputs["W"])
    np.testing.assert_array_equal(arrays["S"], inputs["S"])


@uses_numba
def test_run_steps_returns_final_weights_not_initial(numba_backend):
    inputs = make_inputs(4, 6, 5, 3, dtype="float64", seed=2, relu_zeros=True)
    reference = run_steps(backends.create("numpy"), inputs, 5, lr=1e-2, dtype="float64")
    result = run_steps(numba_backend, inputs, 5, lr=1e-2, dtype="float64")
    assert not np.array_equal(result["W"], inputs["W"])
    for name in ("W", "S", "loss"):
        close(result[name], reference[name], "float64", steps=5)


def _blas_threads():
    from threadpoolctl import threadpool_info

    return {p["filepath"]: p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


@uses_numba
def test_threads_sets_blas_and_numba_together_and_restores(numba_backend):
    import numba
    from threadpoolctl import threadpool_limits

    outer = min(2, numba.config.NUMBA_NUM_THREADS)
    numba_default = numba.get_num_threads()
    with threadpool_limits(limits=2, user_api="blas"):
        numba.set_num_threads(outer)
        try:
            blas_before = _blas_threads()
            with numba_backend.threads(1) as info:
                assert numba.get_num_threads() == 1
                assert set(_blas_threads().values()) == {1}
                assert info == {"blas": [1], "numba": 1}
            assert numba.get_num_threads() == outer
            after = _blas_threads()
            assert {p: after[p] for p in blas_before} == blas_before
        finally:
            numba.set_num_threads(numba_default)


_FIRST_MATMUL_INSIDE = """
import json
import numba, numpy as np
from threadpoolctl import threadpool_info
import backends

with backends.create("numba").threads(1):
    numba.njit(lambda a, b: a @ b)(np.ones((2, 2)), np.ones((2, 2)))  # Numba's BLAS in use
    print(json.dumps({p["filepath"]: p["num_threads"] for p in threadpool_info()
                      if p["user_api"] == "blas"}))
"""


@uses_numba
def test_threads_limit_the_blas_numba_calls_even_when_first_used_inside():
    """Numba's ``@`` calls SciPy's BLAS, which numpy alone does not load: it must be limited too."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", _FIRST_MATMUL_INSIDE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    blas = json.loads(done.stdout.strip().splitlines()[-1])
    assert blas and set(blas.values()) == {1}, blas


@uses_numba
def test_threads_beyond_numba_pool_reports_what_is_used(numba_backend):
    import numba

    n = numba.config.NUMBA_NUM_THREADS + 1
    with numba_backend.threads(n) as info:
        assert info["numba"] == numba.config.NUMBA_NUM_THREADS
        assert info["blas"] == [n]


@uses_numba
def test_threads_none_changes_nothing(numba_backend):
    import numba

    before = (numba.get_num_threads(), _blas_threads())
    with numba_backend.threads(None) as info:
        assert (numba.get_num_threads(), _blas_threads()) == before
        assert info["numba"] == before[0]


_COMPILE_SCRIPT = """
import json, time
import numpy as np
import backends
from kernels import make_step
from mlpbench.problem import make_inputs

from backends.numba import choice

backend = backends.create("numba")
stats, dispatchers = {}, []
blas = choice.choose()[0][0]
for dtype in ("float64", "float32"):
    arrays = make_inputs(3, 7, 5, 2, dtype=dtype, seed=0)
    step = backend.prepare(make_step, lr=1e-3, dtype=dtype)
    start = time.perf_counter()
    step(arrays["x"], arrays["t"], arrays["W"], arrays["S"])
    stats[dtype] = time.perf_counter() - start
    dispatchers.append(backend.compiled_step(make_step, blas, dtype))
unique = {id(d): d for d in dispatchers}.values()  # matmul: one dispatcher for both dtypes
hits = sum(sum(d.stats.cache_hits.values()) for d in unique)
misses = sum(sum(d.stats.cache_misses.values()) for d in unique)
print(json.dumps({"hits": hits, "misses": misses, "seconds": stats}))
"""


def _fresh_process(cache_dir: Path, blas: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "MLPBENCH_NUMBA_BLAS": blas}
    done = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@uses_numba
# One library in the fast tests; the others compile the same way, in CI's slow run (20 s each).
@pytest.mark.parametrize("blas", ["scipy", *(pytest.param(b, marks=pytest.mark.slow)
                                             for b in ("matmul", "mkl", "aocl"))])
def test_second_process_loads_the_step_from_the_cache(tmp_path, blas):
    if blas in ("mkl", "aocl"):
        need(blas)
    first = _fresh_process(tmp_path, blas)
    # matmul: one dtype-generic dispatcher, compiled for two dtypes; a gemm step per dtype.
    assert first == {**first, "hits": 0, "misses": 2}
    assert list(tmp_path.rglob("*train_step*.nbi")), "no cache index for the step was written"
    second = _fresh_process(tmp_path, blas)
    assert second == {**second, "hits": 2, "misses": 0}, "the second process compiled again"


def test_unavailable_without_numba_says_how_to_install():
    code = ("import sys; sys.modules['numba'] = None\n"
            "import backends\n"
            "ok, why = backends.create('numba').available()\n"
            "print(ok); print(why)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    ok, why = done.stdout.splitlines()[:2]
    assert ok == "False"
    assert "pip install 'mlpbench[numba]'" in why
