"""The numba backend: agreement with numpy, its replaced pieces, float32 typing, threads, the disk
cache, and its choice of BLAS (forced, picked, kept only in a file named)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backends
from helpers import ROOT, assert_close
from kernels import make_pieces, make_step
from mlpbench.problem import make_inputs
from mlpbench.verify import run_steps, tolerance

DTYPES = ("float32", "float64")
uses_numba = pytest.mark.uses_backend("numba")


@pytest.fixture
def numba_backend():
    return backends.create("numba")


@pytest.fixture(autouse=True)
def _no_named_choice(monkeypatch):
    """Each test starts from the default: no BLAS forced, no file of picks named."""
    monkeypatch.delenv("MLPBENCH_NUMBA_BLAS", raising=False)
    monkeypatch.delenv("MLPBENCH_NUMBA_BLAS_FILE", raising=False)


def _close(value, reference, dtype, steps=1):
    """The project's closeness at the tolerance of ``dtype`` after ``steps`` steps."""
    assert np.asarray(reference).dtype == np.dtype(dtype)
    assert_close(value, reference, tolerance(dtype, steps))


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
        _close(result[name], reference[name], "float64", steps=5)


@uses_numba
def test_one_compiled_call_in_float32_throughout(numba_backend, pieces):
    """The step is one nopython function, and no value in it or its pieces is typed float64."""
    import numba

    from backends.numba import pieces as numba_pieces

    dispatcher = numba_backend.compiled_step(make_step, "matmul", "float32")
    assert isinstance(dispatcher, numba.core.dispatcher.Dispatcher)
    train_step = dispatcher.py_func
    backward = dict(zip(train_step.__code__.co_freevars,
                        (c.cell_contents for c in train_step.__closure__)))["backward"]
    assert isinstance(backward, numba.core.dispatcher.Dispatcher)
    x, W, S, t, u = _piece_inputs("float32")
    lr = np.float32(1e-3)
    calls = [(train_step, (x, t, W, S, lr)), (backward.py_func, (x, t, W, S)),
             (make_step(np, jit=numba_pieces.stable_njit, **pieces).gradients.py_func,
              (x, t, W, S)),
             (pieces["forward"].py_func, (x, W, S)),
             (pieces["loss_and_grad"].py_func, (x @ W @ S, t)),
             (pieces["relu_backward"].py_func, (u, u.copy())),
             (pieces["weight_update"].py_func, (W, x[:1], u[:1], lr)),
             (pieces["weight_update"].py_func, (W, x, u, lr)),
             (numba_pieces._pairwise_sum.py_func, (t[:, 0].copy(),))]
    for function, args in calls:
        # A fresh, uncached compilation: only it keeps the type of every variable.
        compiled = numba.njit(function)
        compiled(*args)
        (overload,) = compiled.overloads.values()
        types = {str(v) for v in overload.type_annotation.typemap.values()}
        types.add(str(overload.signature.return_type))
        wide = sorted(v for v in types if "float64" in v)
        assert not wide, f"{function.__qualname__} types {wide} in float32"


# -- the replaced pieces against the reference pieces ---------------------------

def _piece_inputs(dtype, batch_size=5, n_in=7, hidden=6, n_out=3, seed=4):
    rng = np.random.default_rng(seed)
    x, W, S, t = (rng.standard_normal(s).astype(dtype) for s in
                  ((batch_size, n_in), (n_in, hidden), (hidden, n_out), (batch_size, n_out)))
    W[:, 0] = 0  # u[:, 0] is exactly zero: the relu's edge case
    u = x @ W
    u[0, 1] = 0.0
    assert np.count_nonzero(u == 0) >= batch_size and np.any(u < 0) and np.any(u > 0)
    return x, W, S, t, u


@pytest.fixture
def pieces():
    from backends.numba import pieces

    return pieces.PIECES


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [(1, 7, 6, 3), (5, 7, 6, 3), (64, 100, 33, 10)],
                         ids=lambda s: "x".join(map(str, s)))
def test_forward_piece(pieces, dtype, sizes):
    x, W, S, _, _ = _piece_inputs(dtype, *sizes)
    got = pieces["forward"](x, W, S)
    want = make_pieces(np)["forward"](x, W, S)
    for g, w in zip(got, want):
        _close(g, w, dtype)
    u, h, _ = got
    np.testing.assert_array_equal(h == 0, u <= 0)  # zeros exactly where the relu cuts


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [1, 5, 1023])
def test_loss_and_grad_piece(pieces, dtype, batch_size):
    rng = np.random.default_rng(5)
    y, t = (rng.standard_normal((batch_size, 10)).astype(dtype) for _ in range(2))
    y[0, 0] = t[0, 0]
    loss, grad_y = pieces["loss_and_grad"](y, t)
    want_loss, want_grad = make_pieces(np)["loss_and_grad"](y, t)
    _close(np.asarray(loss, dtype=dtype), want_loss, dtype)
    assert grad_y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(grad_y, want_grad)


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_piece(pieces, dtype):
    _, _, _, _, u = _piece_inputs(dtype)
    grad_h = np.random.default_rng(6).standard_normal(u.shape).astype(dtype)
    u_before = u.copy()
    want = make_pieces(np)["relu_backward"](u, grad_h)
    got = pieces["relu_backward"](u, grad_h.copy())
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)
    assert np.all(got[u == 0] == 0)
    np.testing.assert_array_equal(u, u_before)


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_weight_gradient_piece(pieces, dtype, batch_size):
    _, _, _, _, u = _piece_inputs(dtype)  # relu zeros in the input, as h has them
    a = np.maximum(u[:batch_size], 0)
    grad_out = np.random.default_rng(8).standard_normal((batch_size, 4)).astype(dtype)
    got = pieces["weight_gradient"](a, grad_out)
    want = make_pieces(np)["weight_gradient"](a, grad_out)
    assert got.dtype == np.dtype(dtype) and got.shape == want.shape
    _close(got, want, dtype)
    assert np.all(got[0] == 0)  # u[:, 0] == 0: no gradient through that unit, exactly


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_weight_update_piece(pieces, dtype, batch_size):
    _, _, _, _, u = _piece_inputs(dtype)
    a = np.maximum(u[:batch_size], 0)  # a[:, 0] == 0: that row of P must not move
    rng = np.random.default_rng(9)
    grad_out = rng.standard_normal((batch_size, 4)).astype(dtype)
    P = rng.standard_normal((a.shape[1], 4)).astype(dtype)
    lr = np.dtype(dtype).type(1e-2)
    P_before = P.copy()
    want = make_pieces(np)["weight_update"](P_before, a, grad_out, lr)
    got = pieces["weight_update"](P, a, grad_out, lr)
    assert np.shares_memory(got, P)  # written over P, as an optimiser updates in place
    assert got.dtype == np.dtype(dtype) and got.shape == P.shape
    _close(got, want, dtype)
    np.testing.assert_array_equal(got[0], P_before[0])
    assert not np.array_equal(got, P_before)


# -- threads --------------------------------------------------------------------

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


# -- compilation cache ----------------------------------------------------------

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
@pytest.mark.parametrize("blas", ["matmul", "scipy", "mkl", "aocl"])
def test_second_process_loads_the_step_from_the_cache(tmp_path, blas):
    if blas in ("mkl", "aocl"):
        _need(blas)
    first = _fresh_process(tmp_path, blas)
    # matmul: one dtype-generic dispatcher, compiled for two dtypes; a gemm step per dtype.
    assert first == {**first, "hits": 0, "misses": 2}
    assert list(tmp_path.rglob("*train_step*.nbi")), "no cache index for the step was written"
    second = _fresh_process(tmp_path, blas)
    assert second == {**second, "hits": 2, "misses": 0}, "the second process compiled again"


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
def test_cache_keys_follow_the_closure(pieces):
    """The same step built twice shares its key; a step over other pieces never does (numba #6093)."""
    from backends.numba.pieces import stable_njit

    first = make_step(np, jit=stable_njit, **pieces).train_step
    again = make_step(np, jit=stable_njit, **pieces).train_step
    reference_update = {k: v for k, v in pieces.items() if k != "weight_update"}
    other = make_step(np, jit=stable_njit, **reference_update).train_step
    assert first is not again
    assert first._uuid == again._uuid != other._uuid


# -- the BLAS: MKL or SciPy's, by gemm from nopython code ---------------------------

def _need(library):
    from backends.numba.libraries import load

    loaded, why = load(library)
    if loaded is None:
        pytest.skip(why)


@uses_numba
@pytest.mark.parametrize("library", ["scipy", "mkl", "aocl"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
def test_gemm_matches_numpy_with_transposes_and_layouts(library, dtype, trans_a, trans_b):
    from backends.numba import cblas

    if library in ("mkl", "aocl"):
        _need(library)
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
        _close(got, want, dtype)


@uses_numba
@pytest.mark.parametrize("library", ["scipy", "mkl", "aocl"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [1, 17])
def test_forced_library_runs_the_step_and_says_so(numba_backend, monkeypatch, library, dtype,
                                                  batch_size):
    if library in ("mkl", "aocl"):
        _need(library)
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS", library)
    inputs = make_inputs(batch_size, 30, 9, 4, dtype=dtype, seed=3, relu_zeros=True)
    reference = run_steps(backends.create("numpy"), inputs, 3, lr=1e-3, dtype=dtype)
    result = run_steps(numba_backend, inputs, 3, lr=1e-3, dtype=dtype)
    for name in ("W", "S", "loss"):  # run_steps gives the losses as float64
        _close(result[name].astype(dtype), reference[name].astype(dtype), dtype, steps=3)
    blas = numba_backend.describe(dtype)["blas"]
    assert blas["setting"] == library
    assert blas["name"] == library and blas["api"] == "cblas" and blas["version"]
    assert blas["internal_api"] == {"mkl": "mkl", "aocl": "blis"}.get(library, "openblas")
    assert "products" not in blas  # one library offered: nothing measured


@uses_numba
@pytest.mark.parametrize("vendor,maker", [("GenuineIntel", "mkl"), ("AuthenticAMD", "aocl"),
                                          ("HygonGenuine", None)])
def test_auto_offers_the_cpu_makers_library_beside_scipys(monkeypatch, vendor, maker):
    from backends.numba import choice

    monkeypatch.setattr(choice, "_cpu_vendor", lambda: vendor)
    scipy_cblas = "scipy" if choice.load("scipy")[0] is not None else "matmul"
    library, why = choice.load(maker) if maker else (None, "")
    offered = (((maker, "scipy") if scipy_cblas == "scipy" else (maker,)) if library
               else (scipy_cblas,))
    # an absent library is no news; one that is there and does not load says why
    label = {"mkl": "MKL", "aocl": "AOCL-BLAS"}.get(maker)
    warning = "" if library or not why or "is not installed" in why else (
        f"mlpbench: numba does not use {label}: {why}")
    assert choice.choose() == (offered, warning)
    blas = backends.create("numba").describe("float64")["blas"]
    assert blas["name"] == offered[0] and blas["setting"] == "auto"
    assert blas["api"] == ("numba @" if offered == ("matmul",) else "cblas")


@uses_numba
@pytest.mark.parametrize("library", ["matmul", "scipy"])
def test_pieces_are_the_steps_own_on_the_chosen_blas(numba_backend, monkeypatch, library):
    """`mlpbench pieces` times what the step runs: the pieces on the BLAS the step chose."""
    from kernels import resolve_pieces

    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS", library)
    pieces = numba_backend.prepare_pieces(resolve_pieces, lr=1e-3, dtype="float64")
    expected = "forward" if library == "matmul" else "_blas_forward.<locals>.blas_forward"
    assert pieces["forward"].py_func.__qualname__ == expected


@uses_numba
def test_auto_on_intel_with_a_broken_mkl_takes_scipys_blas_with_one_line(monkeypatch):
    from backends.numba import choice

    real_load = choice.load
    monkeypatch.setattr(choice, "_cpu_vendor", lambda: "GenuineIntel")
    monkeypatch.setattr(choice, "load", lambda name: (
        (None, "MKL at /x/libmkl_rt.so does not load (bad ELF)") if name == "mkl"
        else real_load(name)))
    expected = ("scipy",) if real_load("scipy")[0] is not None else ("matmul",)
    assert choice.choose() == (
        expected, "mlpbench: numba does not use MKL: MKL at /x/libmkl_rt.so does not load (bad ELF)")
    monkeypatch.setattr(choice, "load", lambda name: (
        (None, "MKL is not installed (pip install 'mlpbench[mkl]')") if name == "mkl"
        else real_load(name)))
    assert choice.choose() == (expected, "")  # unasked, absent MKL is no news


def test_unknown_setting_makes_numba_unavailable_with_one_line(numba_backend, monkeypatch):
    pytest.importorskip("numba", reason="numba is not installed")
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS", "openblas")
    ok, why = numba_backend.available()
    assert not ok and "MLPBENCH_NUMBA_BLAS='openblas'" in why
    assert "auto, mkl, aocl, scipy, matmul" in why
    assert "\n" not in why


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


#: Per library: the file a broken copy is named as, the setting naming it, its thread variable.
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
    _need(library)
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


# -- two libraries offered: each product on the one measured faster ----------------

def _other_library():
    """A library to offer beside SciPy's: the CPU maker's where installed, else skip."""
    from backends.numba.libraries import load

    for name in ("aocl", "mkl"):
        if load(name)[0] is not None and load("scipy")[0] is not None:
            return name
    pytest.skip("neither AOCL-BLAS nor MKL is installed (pip install 'mlpbench[aocl]')")


@uses_numba
def test_pick_with_one_library_or_a_batch_of_one_measures_nothing():
    from backends.numba import choice

    assert choice.pick(("scipy",), "float64", 64, 50, 20) == choice.Products(
        "scipy", "scipy", (64, 50, 20), {})
    assert choice.pick(("aocl", "scipy"), "float32", 1, 50, 20) == choice.Products(
        "aocl", "aocl", (1, 50, 20), {})


@uses_numba
@pytest.mark.parametrize("times,expected", [
    # harness test: the libraries' times are given, not measured
    ({"maker": 1.00, "scipy": 0.97}, "maker"),   # within the margin: the preferred one
    ({"maker": 1.00, "scipy": 0.90}, "scipy"),   # the other 10% faster
    ({"maker": 0.80, "scipy": 1.00}, "maker"),
])
def test_pick_keeps_the_preferred_library_unless_another_is_a_margin_faster(monkeypatch, times,
                                                                          expected):
    from backends.numba import choice

    other = _other_library()
    given = {other if k == "maker" else k: v for k, v in times.items()}
    monkeypatch.setattr(choice, "_least_seconds", lambda calls: {
        name: given[name] for name in calls})
    products = choice.pick((other, "scipy"), "float64", 8, 30, 9)
    want = other if expected == "maker" else "scipy"
    assert (products.forward, products.update) == (want, want)
    assert products.seconds == {"forward": given, "update": given}


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_pick_times_each_product_on_each_library(dtype):
    from backends.numba import choice

    other = _other_library()
    products = choice.pick((other, "scipy"), dtype, 16, 40, 12)
    for product in ("forward", "update"):
        seconds = products.seconds[product]
        assert set(seconds) == {other, "scipy"} and all(0 < v < 1 for v in seconds.values())
        best = min(seconds, key=seconds.get)
        margin = 1 + choice.MARGIN
        assert getattr(products, product) == (other if seconds[other] <= seconds[best] * margin
                                              else best)


_PICK_SCRIPT = """
import json, sys
from backends.numba import choice
products = choice.pick(tuple(sys.argv[1].split(",")), "float64", 16, 40, 12)
print(json.dumps(products.record()))
"""


def _picks_in(path):
    return json.loads(Path(path).read_text())["picks"]


@uses_numba
def test_no_file_is_written_unless_one_is_named(tmp_path):
    """A pick is measured in the process that runs it and recorded in the result; nothing is
    kept anywhere (home, cache folders, working folder) for a later process to run instead."""
    other = _other_library()
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
           "PYTHONPATH": str(ROOT)}
    records = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _PICK_SCRIPT, f"{other},scipy"], cwd=cwd,
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        records.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for record in records:  # each process measured its own
        assert record["kept"] is None and set(record["seconds"]["forward"]) == {other, "scipy"}
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@uses_numba
def test_a_named_file_keeps_each_pick_for_the_processes_naming_it(tmp_path, monkeypatch):
    from backends.numba import choice

    other = _other_library()
    path = tmp_path / "picks.json"
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(path))
    first = choice.pick((other, "scipy"), "float64", 16, 40, 12)
    assert first.kept is None and first.seconds  # measured, then written
    (entry,) = _picks_in(path)
    assert (entry["forward"], entry["update"], entry["dtype"], entry["sizes"]) == (
        first.forward, first.update, "float64", [16, 40, 12])
    assert [name for name, *_ in entry["libraries"]] == [other, "scipy"]
    monkeypatch.setattr(choice, "_measure", lambda *a: pytest.fail("measured again"))
    again = choice.pick((other, "scipy"), "float64", 16, 40, 12)
    assert again == choice.Products(first.forward, first.update, (16, 40, 12), first.seconds,
                                    str(path))
    monkeypatch.undo()
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(path))
    choice.pick((other, "scipy"), "float32", 16, 40, 12)  # another dtype: measured and added
    assert [e["dtype"] for e in _picks_in(path)] == ["float64", "float32"]


@uses_numba
def test_two_processes_started_together_on_one_file_run_one_pick(tmp_path):
    """The second waits for the first's measuring and runs what it picked (as a gate's sides)."""
    other = _other_library()
    path = tmp_path / "picks.json"
    env = {**os.environ, "MLPBENCH_NUMBA_BLAS_FILE": str(path)}
    procs = [subprocess.Popen([sys.executable, "-c", _PICK_SCRIPT, f"{other},scipy"], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    records = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sorted(str(r["kept"]) for r in records) == sorted(["None", str(path)])
    assert len({(r["forward"], r["update"]) for r in records}) == 1
    assert len(_picks_in(path)) == 1


@uses_numba
@pytest.mark.parametrize("content", ["{not json", '{"picks": []}', '["a list"]'])
def test_a_named_file_that_is_not_ours_makes_numba_unavailable_and_stays(numba_backend, tmp_path,
                                                                       monkeypatch, content):
    path = tmp_path / "picks.json"
    path.write_text(content)
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(path))
    ok, why = numba_backend.available()
    assert not ok and f"MLPBENCH_NUMBA_BLAS_FILE={str(path)!r}" in why and "\n" not in why
    assert path.read_text() == content
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(tmp_path))  # a folder
    assert numba_backend.available()[0] is False
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(tmp_path / "no" / "picks.json"))
    assert numba_backend.available()[0] is False


@uses_numba
def test_a_forced_pair_wins_over_the_pick_and_any_file(numba_backend, tmp_path, monkeypatch):
    """``MLPBENCH_NUMBA_BLAS=FORWARD,UPDATE`` runs what a result says ``auto`` picked; nothing is
    measured, and a file named is neither read nor written."""
    from backends.numba import choice

    other = _other_library()
    path = tmp_path / "picks.json"
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS", f"scipy,{other}")
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(path))
    monkeypatch.setattr(choice, "_measure", lambda *a: pytest.fail("measured"))
    inputs = make_inputs(17, 30, 9, 4, dtype="float64", seed=3, relu_zeros=True)
    reference = run_steps(backends.create("numpy"), inputs, 3, lr=1e-3, dtype="float64")
    result = run_steps(numba_backend, inputs, 3, lr=1e-3, dtype="float64")
    for name in ("W", "S", "loss"):
        _close(result[name], reference[name], "float64", steps=3)
    blas = numba_backend.describe("float64")["blas"]
    assert blas["setting"] == f"scipy,{other}" and blas["name"] == "scipy"
    assert (blas["products"]["forward"], blas["products"]["update"]) == ("scipy", other)
    assert blas["products"]["seconds"] == {} and not path.exists()


@uses_numba
def test_the_gate_runs_one_pick_on_both_sides(tmp_path):
    """``mlpbench regress``'s workers share one file of picks, named by the gate for its run
    and removed after: base and head run the same libraries, in every process pair."""
    from dataclasses import replace

    from mlpbench.gate import SETTINGS, runner

    other = _other_library()
    point = runner.Point("numba", 16, 9, "float64", n_in=30, n_out=4)
    fast = replace(SETTINGS, process_pairs=2, more_process_pairs=0, max_process_pairs=2,
                   sample_pairs=2, warmup_pairs=1, budget_s=1.0)
    runner.run([point], {"base": ROOT, "head": ROOT}, {"base": "a" * 40, "head": "b" * 40},
               fast, seed=1, log=lambda line: None)
    products = {side: point.blas[side]["products"] for side in ("base", "head")}
    assert {(p["forward"], p["update"]) for p in products.values()} <= {
        (f, u) for f in (other, "scipy") for u in (other, "scipy")}
    assert products["base"]["forward"] == products["head"]["forward"]
    assert products["base"]["update"] == products["head"]["update"]
    kept = {p["kept"] for p in products.values()}  # the last pair read what the first measured
    assert len(kept) == 1 and "mlpbench-gate-" in kept.pop()
    assert point.report()["blas"]["head"]["products"] == products["head"]


def test_the_gate_takes_the_users_file_of_picks_where_one_is_named(tmp_path, monkeypatch):
    from mlpbench.gate import runner

    assert runner.shared_choices(str(tmp_path)) == {
        "MLPBENCH_NUMBA_BLAS_FILE": str(tmp_path / "numba-blas.json")}
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(tmp_path / "mine.json"))
    assert runner.shared_choices(str(tmp_path)) == {}  # the workers inherit the user's


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_step_on_two_libraries_matches_numpy(numba_backend, dtype):
    """Forward products on one library, updates on the other, both ways round."""
    other = _other_library()
    inputs = make_inputs(17, 30, 9, 4, dtype=dtype, seed=3, relu_zeros=True)
    reference = make_step(np).train_step(*(np.copy(inputs[k]) for k in ("x", "t", "W", "S")),
                                         np.dtype(dtype).type(1e-3))
    for pair in ((other, "scipy"), ("scipy", other)):
        step = numba_backend.compiled_step(make_step, pair, dtype)
        W, S, loss = step(*(np.copy(inputs[k]) for k in ("x", "t", "W", "S")),
                          np.dtype(dtype).type(1e-3))
        for got, want in zip((W, S, np.asarray(loss, dtype)), reference):
            _close(got, np.asarray(want), dtype)


@uses_numba
def test_a_gemm_has_one_compiled_piece_in_every_pair():
    """Pairs sharing a gemm share its pieces: two dispatchers of one code and closure got one
    uuid (stable_njit), which Numba keeps for one dispatcher only."""
    from backends.numba import cblas, pieces as numba_pieces

    other = _other_library()
    gemm = {name: cblas.gemm_for(name, "float32") for name in (other, "scipy")}
    pairs = [(other, "scipy"), ("scipy", "scipy"), ("scipy", other), (other, other)]
    pieces = {pair: numba_pieces.blas_pieces(gemm[pair[0]], gemm[pair[1]]) for pair in pairs}
    for name, side in (("forward", 0), ("weight_gradient", 1), ("weight_update", 1)):
        for library in (other, "scipy"):
            shared = {id(pieces[pair][name]) for pair in pairs if pair[side] == library}
            assert len(shared) == 1, (name, library)
        assert pieces[(other, other)][name] is not pieces[("scipy", "scipy")][name]
    made = {id(p): p for pair in pairs for p in pieces[pair].values()}.values()
    assert len({p._uuid for p in made}) == len(made)  # no uuid on two dispatchers


@uses_numba
def test_auto_with_two_libraries_picks_per_size_and_records_it(numba_backend, monkeypatch):
    from backends.numba import choice

    other = _other_library()
    monkeypatch.setattr(choice, "choose", lambda: ((other, "scipy"), ""))
    for batch_size in (5, 9):
        inputs = make_inputs(batch_size, 30, 9, 4, dtype="float64", seed=3, relu_zeros=True)
        reference = run_steps(backends.create("numpy"), inputs, 3, lr=1e-3, dtype="float64")
        result = run_steps(numba_backend, inputs, 3, lr=1e-3, dtype="float64")
        for name in ("W", "S", "loss"):
            _close(result[name], reference[name], "float64", steps=3)
        products = numba_backend.describe("float64")["blas"]["products"]
        assert products["sizes"] == [batch_size, 30, 9]
        assert {products["forward"], products["update"]} <= {other, "scipy"}
        assert set(products["seconds"]["forward"]) == {other, "scipy"}


@uses_numba
def test_pieces_follow_the_pick_of_their_forward_call(numba_backend, monkeypatch):
    from backends.numba import choice
    from kernels import resolve_pieces

    other = _other_library()
    monkeypatch.setattr(choice, "choose", lambda: ((other, "scipy"), ""))
    monkeypatch.setattr(choice, "pick", lambda offered, dtype, *sizes: choice.Products(
        "scipy", other, sizes))  # harness test: the pick is given
    pieces = numba_backend.prepare_pieces(resolve_pieces, lr=1e-3, dtype="float64")
    inputs = make_inputs(6, 30, 9, 4, dtype="float64", seed=3)
    u, h, y = pieces["forward"](inputs["x"], inputs["W"], inputs["S"])
    _close(u, inputs["x"] @ inputs["W"], "float64")
    W = np.copy(inputs["W"])
    grad_u = np.ones_like(u)
    got = pieces["weight_update"](W, inputs["x"], grad_u)
    _close(got, inputs["W"] - 1e-3 * (inputs["x"].T @ grad_u), "float64")
    assert numba_backend.describe("float64")["blas"]["products"]["update"] == other


# -- without numba ----------------------------------------------------------------

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
