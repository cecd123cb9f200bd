"""The CUDA-graph steps' parts a CPU can check: the products' cuBLAS arguments, the pieces they
replace, the device roofs, and the backends' availability without a GPU. The graphs themselves
run on a GPU (scripts/gpu-check.sh; docs/gpu.md)."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import backends
from backends.base import CapturedStep
from helpers import ROOT
from kernels import make_pieces, make_step
from mlpbench import roofline


class EmulatedCublas:
    """cublasGemmEx computed by numpy on column-major views of registered buffers.

    A stand-in for libcublas that tests only how ``Gemm`` turns a row-major product into
    cuBLAS's column-major arguments (which operand first, which transposed, which leading
    dimension)."""

    def __init__(self) -> None:
        self.buffers: dict[int, np.ndarray] = {}

    def array(self, values: np.ndarray) -> SimpleNamespace:
        flat = np.array(values, dtype=np.float64).ravel()  # a copy: the caller keeps its values
        ptr = 4096 * (len(self.buffers) + 1)
        self.buffers[ptr] = flat
        return SimpleNamespace(data=SimpleNamespace(ptr=ptr), shape=values.shape, flat=flat)

    def _view(self, ptr, rows: int, cols: int, ld: int) -> np.ndarray:
        # A column-major rows x cols matrix with leading dimension ld, over the flat buffer.
        return self.buffers[ptr.value].reshape(cols, ld)[:, :rows].T

    def cublasGemmEx(self, handle, transa, transb, m, n, k, alpha, A, atype, lda, B, btype, ldb,
                     beta, C, ctype, ldc, compute, algo):
        a = self._view(A, *((m, k) if transa == 0 else (k, m)), lda)
        b = self._view(B, *((k, n) if transb == 0 else (n, k)), ldb)
        c = self._view(C, m, n, ldc)
        op_a = a if transa == 0 else a.T
        op_b = b if transb == 0 else b.T
        c[...] = alpha._obj.value * (op_a @ op_b) + beta._obj.value * c
        return 0


def _gemm(lib):
    from backends.cupy_graph import Gemm

    gemm = Gemm.__new__(Gemm)  # without CuPy: a handle of nothing, the emulated library
    gemm._lib, gemm._handle, gemm._type, gemm._compute = lib, None, 1, 70
    gemm._scalar = ctypes.c_double
    return gemm


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_passes_row_major_products_to_cublas_column_major(trans_a, trans_b):
    rng = np.random.default_rng(0)
    m, k, n = 5, 3, 4
    a = rng.standard_normal((k, m) if trans_a else (m, k))
    b = rng.standard_normal((n, k) if trans_b else (k, n))
    c0 = rng.standard_normal((m, n))
    lib = EmulatedCublas()
    A, B, C = lib.array(a), lib.array(b), lib.array(c0)
    _gemm(lib)(A, B, C, trans_a=trans_a, trans_b=trans_b, alpha=-0.5, beta=1.0)
    expected = -0.5 * ((a.T if trans_a else a) @ (b.T if trans_b else b)) + c0
    np.testing.assert_allclose(C.flat.reshape(m, n), expected, rtol=1e-12)


def test_grad_h_is_a_piece_the_step_runs():
    # The graph steps write grad_h to a buffer of their own: the step must call the piece.
    calls = []
    reference = make_pieces(np)

    def grad_h(grad_y, S):
        calls.append(grad_y.shape)
        return reference["grad_h"](grad_y, S)

    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((4, 6)), rng.standard_normal((4, 2))
    W, S = rng.standard_normal((6, 3)), rng.standard_normal((3, 2))
    replaced = make_step(np, grad_h=grad_h).train_step(x, t, W, S, 1e-3)
    plain = make_step(np).train_step(x, t, W, S, 1e-3)
    assert calls == [(4, 2)]
    for got, want in zip(replaced, plain):
        np.testing.assert_array_equal(got, want)


@pytest.mark.uses_backend("torch")
def test_torch_graph_without_cuda_says_why():
    backend = backends.create("torch-graph")
    if backends.create("torch")._on_cuda:
        pytest.skip("CUDA is present: torch-graph runs here")
    ok, why = backend.available()
    assert not ok and "needs a CUDA GPU" in why


def test_cupy_graph_without_cupy_gives_cupys_reason():
    plain, graph = backends.create("cupy"), backends.create("cupy-graph")
    if plain.available()[0]:
        pytest.skip("CuPy runs here")
    assert graph.available() == plain.available()


class _FakeGpu:
    """A made-up GPU backend for the launch-floor harness: its launches only count."""

    device = "cuda:0"

    def __init__(self) -> None:
        self.launched = {"empty_kernel": 0, "empty_graph": 0}

    def empty_launches(self):
        def counter(name):
            def run(n):
                for _ in range(n):  # as a real launcher, its time grows with n
                    self.launched[name] += 1
            return run
        return {name: counter(name) for name in self.launched}

    def synchronize(self, *arrays):
        pass


def test_launch_floor_times_each_launcher_per_launch():
    fake = _FakeGpu()
    floor = roofline.launch_floor(fake, min_time=0.001, repeat=3)
    assert set(floor) == {"empty_kernel_s", "empty_graph_s"}
    assert all(0 < s < 1e-3 for s in floor.values())
    assert all(n > 3 for n in fake.launched.values())


def test_a_cpu_backend_has_no_device_roofs_and_its_results_use_the_machines():
    assert roofline.device_roofs(backends.create("numpy")) is None
    env = {"roofs": {"bandwidth": [1]}, "device_roofs": {"cupy": {"bandwidth": [2]}}}
    assert roofline.roofs_for({"backend": "cupy"}, env) == {"bandwidth": [2]}
    assert roofline.roofs_for({"backend": "numpy"}, env) == {"bandwidth": [1]}
    assert roofline.roofs_for({"backend": "numpy"}, {"roofs": {"bandwidth": [1]}}) == {
        "bandwidth": [1]}


@pytest.mark.uses_backend("jax")
def test_jax_platforms_naming_a_missing_gpu_is_refused_before_work():
    pytest.importorskip("jax", reason="jax is not installed")
    env = {**os.environ, "JAX_PLATFORMS": "cuda"}
    probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], env=env,
                           capture_output=True, text=True, timeout=120)
    if probe.returncode == 0:
        pytest.skip("JAX starts CUDA here: a GPU and its plugin are present")
    listing = subprocess.run([sys.executable, "-m", "mlpbench", "backends"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    line = next(x for x in listing.stdout.splitlines() if x.startswith("jax "))
    assert line.split()[1] == "no" and "JAX_PLATFORMS='cuda'" in line
    train = subprocess.run([sys.executable, "-m", "mlpbench", "train", "--backend", "jax",
                            "--steps", "2"], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert train.returncode == 2 and train.stdout == ""
    assert train.stderr.strip().splitlines() == [
        train.stderr.strip()] and "JAX_PLATFORMS='cuda'" in train.stderr


class NumpyReplay(CapturedStep):
    """A stand-in for a graph step, on numpy: a capture copies W and S, a replay runs the
    shared step on those copies in place. It tests ``CapturedStep``'s rules, not a GPU."""

    def __init__(self) -> None:
        self.captures = 0

    @staticmethod
    def _key(x, t):
        return (id(x), id(t), x.shape, t.shape)

    def _capture(self, x, t, W, S):
        self.captures += 1
        return {"x": x, "t": t, "W": W.copy(), "S": S.copy()}

    def _replay(self, c):
        W, S, loss = make_step(np).train_step(c["x"], c["t"], c["W"], c["S"], 1e-2)
        c["W"][...], c["S"][...] = W, S
        return c["W"], c["S"], loss


def test_a_captured_step_writes_over_only_what_it_returned():
    rng = np.random.default_rng(5)
    x, t = rng.standard_normal((3, 7)), rng.standard_normal((3, 2))
    W0, S0 = rng.standard_normal((7, 5)), rng.standard_normal((5, 2))
    given = W0.copy()
    step = NumpyReplay()
    W1, S1, _ = step(x, t, W0, S0)
    first = W1.copy()
    W, S, _ = step(x, t, W1, S1)  # its own outputs, fed back: replayed in place
    assert W is W1 and not np.array_equal(W1, first) and step.captures == 1
    W2, _, _ = step(x, t, W0, S0)  # the caller's first arrays again: a new capture
    assert step.captures == 2 and W2 is not W1
    np.testing.assert_array_equal(W0, given)  # the caller's W as it was
    np.testing.assert_array_equal(W2, first)  # same arrays in, same step out
    assert not np.array_equal(W1, first)  # the earlier outputs were left alone
