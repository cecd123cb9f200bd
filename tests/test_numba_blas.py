"""backends/numba/cblas.py and libraries.py: CBLAS gemm from compiled code; each library loaded,
forced, broken, threaded."""
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
    DTYPES, uses_numba, numba_backend, no_named_choice, close, need, other_library)


@uses_numba
def test_external_gemm_pickles_the_same_in_every_process():
    """Numba keys code calling the CBLAS gemm on its pickle: two processes must agree on it."""
    script = ("import hashlib; from backends.numba import cblas; "
              "from numba.core.serialize import dumps; "
              "print(hashlib.sha256(dumps(cblas._GEMMS['scipy', 'float64'])).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                              text=True, check=True, timeout=300).stdout for _ in range(2)}
    assert len(digests) == 1


@uses_numba
@pytest.mark.parametrize("library", ["scipy", "mkl", "aocl"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
def test_gemm_matches_numpy_with_transposes_and_layouts(library, dtype, trans_a, trans_b):
    from backends.numba import cblas

    if library in ("mkl", "aocl"):
        need(library)
    gemm = cblas.gemm_for(library, dtype)
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((6, 4)).astype(dtype), rng.standard_normal((4, 5)).astype(dtype)
    a = a.T.copy() if trans_a else a  # stored as its transpose, read through the flag
    b = b.T.copy() if trans_b else b
    op_a, op_b = (a.T if trans_a else a), (b.T if trans_b else b)
    for order in "CF":  # an F-ordered c is written through a copy, still in place
        c = np.asarray(rng.standard_normal((6, 5)), dtype=dtype, order=order)
        want = np.dtype(dtype).type(-0.5) * (op_a @ op_b) + c
        got = gemm(np.dtype(dtype).type(-0.5), a, trans_a, b, trans_b, np.dtype(dtype).type(1), c)
        assert got is c
        close(got, want, dtype)


@uses_numba
@pytest.mark.parametrize("library", ["scipy", "mkl", "aocl"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [1, 17])
def test_forced_library_runs_the_step_and_says_so(numba_backend, monkeypatch, library, dtype,
                                                  batch_size):
    if library in ("mkl", "aocl"):
        need(library)
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS", library)
    inputs = make_inputs(batch_size, 30, 9, 4, dtype=dtype, seed=3, relu_zeros=True)
    reference = run_steps(backends.create("numpy"), inputs, 3, lr=1e-3, dtype=dtype)
    result = run_steps(numba_backend, inputs, 3, lr=1e-3, dtype=dtype)
    for name in ("W", "S", "loss"):  # run_steps gives the losses as float64
        close(result[name].astype(dtype), reference[name].astype(dtype), dtype, steps=3)
    blas = numba_backend.describe(dtype)["blas"]
    assert blas["setting"] == library
    assert blas["name"] == library and blas["api"] == "cblas" and blas["version"]
    assert blas["internal_api"] == {"mkl": "mkl", "aocl": "blis"}.get(library, "openblas")
    assert "products" not in blas  # one library offered: nothing measured


_STEP_SCRIPT = """
import json
import backends
from kernels import make_step
from mlpbench.problem import make_inputs

backend = backends.create("numba")
with backend.threads(1):
    arrays = make_inputs(64, 50, 20, 3, dtype="float32", seed=0)
    step = backend.prepare(make_step, lr=1e-3, dtype="float32")
    step(arrays["x"], arrays["t"], arrays["W"], arrays["S"])
    print(json.dumps(backend.describe("float32")["blas"]))
"""


def _run_step_script(**env) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", _STEP_SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return done


_LIBRARY_FILES = {"mkl": ("libmkl_rt.so", "MLPBENCH_MKL_LIBRARY", "MKL_NUM_THREADS"),
                  "aocl": ("libblis-mt.so", "MLPBENCH_AOCL_LIBRARY", "BLIS_NUM_THREADS")}


@uses_numba
@pytest.mark.parametrize("library", ["mkl", "aocl"])
@pytest.mark.parametrize("broken", ["missing", "not-a-library"])
def test_broken_library_falls_back_to_numbas_matmul_with_one_warning_line(tmp_path, library,
                                                                          broken):
    file_name, setting, _ = _LIBRARY_FILES[library]
    path = tmp_path / file_name
    if broken == "not-a-library":
        path.write_text("not a shared library")
    done = _run_step_script(MLPBENCH_NUMBA_BLAS=library, **{setting: str(path)})
    blas = json.loads(done.stdout.strip().splitlines()[-1])
    assert blas["name"] == "matmul"
    warnings = [line for line in done.stderr.splitlines() if "numba uses Numba's @" in line]
    assert len(warnings) == 1 and str(path) in warnings[0], done.stderr


@uses_numba
@pytest.mark.parametrize("library", ["mkl", "aocl"])
def test_threads_limit_the_library_loaded_by_the_step(library):
    need(library)
    variable = _LIBRARY_FILES[library][2]
    done = _run_step_script(MLPBENCH_NUMBA_BLAS=library, **{variable: "2", "OMP_NUM_THREADS": "2"})
    blas = json.loads(done.stdout.strip().splitlines()[-1])
    assert blas["name"] == library and blas["threads"] == 1, blas


_CLASH_SCRIPT = """
import ctypes, shutil, sys
shutil.copy(sys.argv[1], sys.argv[2])  # a real library under the other OpenMP's file name
ctypes.CDLL(sys.argv[2])
from backends.numba import libraries
print(libraries.load(sys.argv[3])[1])
"""


@uses_numba
@pytest.mark.parametrize("runtime,library,expected", [
    ("libiomp5.so", "aocl", "AOCL-BLAS is not loaded: Intel OpenMP (MKL's) is in this process"),
    ("libomp-0123abcd.so", "mkl", "MKL is not loaded: LLVM OpenMP (AOCL-BLAS's) is in this process"),
])
def test_a_library_whose_openmp_would_meet_the_other_is_not_loaded(tmp_path, runtime, library,
                                                                   expected):
    """Intel's and LLVM's OpenMP in one process deadlock; the second library stays out, saying why.

    Harness test: the runtime already in the process is a copy of the C maths library named
    as that runtime's file is.
    """
    import ctypes.util

    libm = ctypes.util.find_library("m")
    source = next((str(p) for d in ("/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib")
                   for p in Path(d).glob(f"{libm}*") if p.is_file()), None) if libm else None
    if source is None:
        pytest.skip("no C maths library file found to copy")
    # the library asked for is "installed" (named by its setting), so only the clash stops it
    env = {**os.environ, "MLPBENCH_MKL_LIBRARY": source, "MLPBENCH_AOCL_LIBRARY": source}
    done = subprocess.run([sys.executable, "-c", _CLASH_SCRIPT, source, str(tmp_path / runtime),
                           library], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(expected), done.stdout


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_step_on_two_libraries_matches_numpy(numba_backend, dtype):
    """Forward products on one library, updates on the other, both ways round."""
    other = other_library()
    inputs = make_inputs(17, 30, 9, 4, dtype=dtype, seed=3, relu_zeros=True)
    reference = make_step(np).train_step(*(np.copy(inputs[k]) for k in ("x", "t", "W", "S")),
                                         np.dtype(dtype).type(1e-3))
    for pair in ((other, "scipy"), ("scipy", other)):
        step = numba_backend.compiled_step(make_step, pair, dtype)
        W, S, loss = step(*(np.copy(inputs[k]) for k in ("x", "t", "W", "S")),
                          np.dtype(dtype).type(1e-3))
        for got, want in zip((W, S, np.asarray(loss, dtype)), reference):
            close(got, np.asarray(want), dtype)
