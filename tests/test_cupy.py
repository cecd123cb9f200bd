"""The CuPy backend: how it reports a missing library or GPU (runs anywhere), and on a GPU its step.

Tests marked ``uses_backend("cupy")`` need a usable GPU and are skipped with the reason
``available()`` gives where there is none.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import types
import warnings

import numpy as np
import pytest

import backends
from backends.cupy_backend import CupyBackend, fused_pieces
from kernels import make_pieces, make_step
from mlpbench.errors import UsageError
from mlpbench.options import resolve_backend
from mlpbench.problem import make_inputs
from mlpbench.verify import CHECK_LR, CHECK_SHAPES, check_backend, tolerance

DTYPES = ("float32", "float64")


# -- without a GPU: the backend's own checks ---------------------------------------------

def test_unavailable_without_cupy(monkeypatch):
    # Simulated (a None entry in sys.modules makes the import fail): this tests our harness.
    monkeypatch.setitem(sys.modules, "cupy", None)
    backend = CupyBackend()
    ok, why = backend.available()
    assert not ok
    assert why.startswith("cupy is not installed")
    assert "mlpbench[cuda12]" in why and "\n" not in why
    assert backend.device == "cuda (unavailable)"
    assert backend.gpu_info() is None


class _CUDARuntimeError(RuntimeError):
    """Stands in for cupy_backends.cuda.api.runtime.CUDARuntimeError."""


def _raise(exc):
    def f(*args, **kwargs):
        raise exc
    return f


def _fake_cupy(*, driver=12090, devices=1, runs=True):
    """A module that fails the way CuPy does on a machine without a usable GPU."""
    runtime = types.SimpleNamespace(
        driverGetVersion=lambda: driver,
        getDeviceCount=(_raise(_CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device "
                                                 "is detected"))
                        if devices is None else lambda: devices))
    ones = (np.ones if runs else
            _raise(RuntimeError("CuPy failed to load libcublas.so.12:\nOSError: cannot open")))
    stream = types.SimpleNamespace(synchronize=lambda: None)
    cuda = types.SimpleNamespace(runtime=runtime, get_current_stream=lambda: stream)
    return types.SimpleNamespace(__version__="14.0.0", cuda=cuda, ones=ones, float32=np.float32)


@pytest.mark.parametrize(("fake", "expected"), [
    (dict(driver=0), "no NVIDIA driver here"),
    (dict(devices=None), "no usable CUDA GPU: _CUDARuntimeError: cudaErrorNoDevice"),
    (dict(devices=0), "no CUDA GPU is visible"),
    (dict(runs=False), "sees 1 GPU(s) but cannot run on them: RuntimeError: CuPy failed to load"),
], ids=["no-driver", "no-device-error", "zero-devices", "no-cublas"])
def test_unavailable_with_cupy_but_no_usable_gpu_simulated(monkeypatch, fake, expected):
    # Simulated CuPy failures: this tests our harness, each way CuPy reports a missing GPU.
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(**fake))
    ok, why = CupyBackend().available()
    assert not ok
    assert why.startswith("CuPy 14.0.0 ")
    assert expected in why and "\n" not in why


def test_unavailable_with_real_cupy_and_no_gpu():
    try:
        import cupy
    except ImportError as exc:
        pytest.skip(f"cupy is not installed ({exc})")
    backend = CupyBackend()
    ok, why = backend.available()
    if ok:
        pytest.skip("a usable GPU is present")
    assert why.startswith(f"CuPy {cupy.__version__} ")
    assert "\n" not in why
    assert backend.device == "cuda (unavailable)"


def _unavailable_reason() -> str:
    ok, why = backends.create("cupy").available()
    if ok:
        pytest.skip("cupy can run here, so there is no error to see")
    return why


def test_resolve_backend_names_the_reason():
    why = _unavailable_reason()
    with pytest.raises(UsageError, match="backend 'cupy' is not available here") as info:
        resolve_backend("cupy")
    assert why in str(info.value)


def _mlpbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlpbench", *args],
                          capture_output=True, text=True, timeout=120)


def test_train_with_cupy_unavailable_exits_2_with_one_line():
    why = _unavailable_reason()
    proc = _mlpbench("train", "--backend", "cupy", "--steps", "1")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mlpbench train: error:")
    assert "'cupy'" in lines[0] and why in lines[0]
    assert "Traceback" not in proc.stderr


def test_backends_command_says_why_cupy_is_unavailable():
    why = _unavailable_reason()
    proc = _mlpbench("backends")
    assert proc.returncode == 0, proc.stderr
    assert why in " ".join(proc.stdout.split())


# -- on a GPU ------------------------------------------------------------------------------

@pytest.fixture
def gpu():
    """A cupy backend; cuBLAS left with TF32 off afterwards (its setting is process-wide)."""
    backend = backends.create("cupy")
    ok, why = backend.available()
    if not ok:
        pytest.skip(f"backend 'cupy' unavailable: {why}")
    yield backend
    backends.create("cupy").configure("float32")


# (shape, lr): check's shapes, and a larger one where cuBLAS picks other kernels (a smaller lr:
# 1e-4 diverges there; 1e-5 takes the loss from 5416 to 560 in 50 steps).
CASES = [*((shape, CHECK_LR) for shape in CHECK_SHAPES), ((256, 1000, 1024, 10), 1e-5)]


@pytest.mark.uses_backend("cupy")
@pytest.mark.parametrize(("shape", "lr"), CASES, ids=[str(shape) for shape, _ in CASES])
@pytest.mark.parametrize("steps", [1, 50])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_numpy(gpu, dtype, steps, shape, lr):
    comparison = check_backend(gpu, shape, dtype=dtype, steps=steps, lr=lr)
    assert comparison.dtypes_ok
    assert comparison.ok, f"errors {comparison.errors} above rtol {comparison.rtol}"


def _device_inputs(cupy, dtype):
    """The seed's sizes with exact zeros at the relu (column 0 of W is zero)."""
    arrays = make_inputs(64, 1000, 100, 10, dtype=dtype, seed=3, relu_zeros=True)
    return {k: cupy.asarray(v) for k, v in arrays.items()}


@pytest.mark.uses_backend("cupy")
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_pieces_match_reference_pieces(gpu, dtype):
    import cupy

    fused, reference = fused_pieces(cupy), make_pieces(gpu.xp)
    a = _device_inputs(cupy, dtype)
    rtol = tolerance(dtype, 1)

    u, h, y = fused["forward"](a["x"], a["W"], a["S"])
    u_ref, h_ref, y_ref = reference["forward"](a["x"], a["W"], a["S"])
    assert int((u == 0).sum()) >= 64 and int((u < 0).sum()) > 0  # zeros and negatives at the relu
    assert cupy.array_equal(u, u_ref) and cupy.array_equal(h, h_ref)
    assert bool(((h == 0) == (u <= 0)).all())
    assert float(abs(y - y_ref).max()) <= rtol * float(abs(y_ref).max())

    loss, grad_y = fused["loss_and_grad"](y, a["t"])
    loss_ref, grad_y_ref = reference["loss_and_grad"](y, a["t"])
    assert loss.shape == () and loss.dtype == np.dtype(dtype)
    assert cupy.array_equal(grad_y, grad_y_ref)
    assert abs(float(loss) - float(loss_ref)) <= rtol * abs(float(loss_ref))

    grad_h = grad_y @ a["S"].T
    grad_u = fused["relu_backward"](u, grad_h)
    assert cupy.array_equal(grad_u, reference["relu_backward"](u, grad_h))
    assert bool((grad_u[u <= 0] == 0).all())

    lr = gpu.scalar(1e-4, dtype)
    grad_W = a["x"].T @ grad_u
    W, W_ref = fused["sgd_update"](a["W"], grad_W, lr), reference["sgd_update"](a["W"], grad_W, lr)
    assert W.dtype == np.dtype(dtype)
    # The kernel may contract P - lr*g into one fused multiply-add: equal within rounding.
    assert float(abs(W - W_ref).max()) <= rtol * float(abs(W_ref).max())
    assert not cupy.array_equal(W, a["W"])


def _float32_matmul_error(cupy) -> float:
    """max|float32 product - float64 product| / max|float64 product|, on random data."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((512, 2048)), rng.standard_normal((2048, 512))
    exact = cupy.asarray(a) @ cupy.asarray(b)
    approx = cupy.asarray(a, dtype=cupy.float32) @ cupy.asarray(b, dtype=cupy.float32)
    return float(abs(approx - exact).max() / abs(exact).max())


@pytest.mark.uses_backend("cupy")
def test_tf32_off_by_default_even_when_cupy_had_it_on(gpu):
    import cupy
    from cupy._core import _routines_linalg as linalg

    cupy._core.set_compute_type(cupy.float32, linalg.COMPUTE_TYPE_TF32)  # as CUPY_TF32=1 does
    backend = CupyBackend()
    assert backend.allow_tf32 is False
    backend.prepare(make_step, lr=1e-4, dtype="float32")
    assert backend.tf32("float32") is False
    assert cupy._core.get_compute_type(cupy.float32) == linalg.COMPUTE_TYPE_DEFAULT
    # Full float32 is ~1e-7 here; TF32's 10-bit mantissa would give ~1e-4.
    assert _float32_matmul_error(cupy) < 1e-5


@pytest.mark.uses_backend("cupy")
def test_cupy_tf32_environment_variable_does_not_turn_tf32_on(gpu):
    code = ("import backends, cupy; from cupy._core import _routines_linalg as L\n"
            "b = backends.create('cupy'); assert b.available()[0]; b.configure('float32')\n"
            "a = cupy.ones((64, 64), dtype=cupy.float32); a @ a\n"
            "print(b.tf32('float32'), cupy._core.get_compute_type(cupy.float32) == L.COMPUTE_TYPE_TF32)")
    env = {**os.environ, "CUPY_TF32": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


@pytest.mark.uses_backend("cupy")
def test_allow_tf32_sets_it_and_unsetting_clears_it(gpu, monkeypatch):
    import cupy
    from cupy._core import _routines_linalg as linalg

    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    allowed = backends.create("cupy", allow_tf32=True)
    allowed.prepare(make_step, lr=1e-4, dtype="float32")
    major = cupy.cuda.Device().compute_capability[0]
    assert allowed.tf32("float32") is (int(major) >= 8)  # TF32 exists from sm_80 (Ampere) on
    assert allowed.tf32("float64") is False  # float64 matmuls never use TF32
    assert allowed.describe("float32")["allow_tf32"] is True
    gpu.prepare(make_step, lr=1e-4, dtype="float32")  # a backend of another run: not allowed
    assert gpu.tf32("float32") is False
    assert cupy._core.get_compute_type(cupy.float32) == linalg.COMPUTE_TYPE_DEFAULT


@pytest.mark.uses_backend("cupy")
def test_device_timer_returns_positive_seconds_within_wall_time(gpu):
    import cupy

    a = cupy.ones((1024, 1024), dtype=cupy.float32)
    timer = gpu.device_timer()
    wall = time.perf_counter()
    timer.start()
    for _ in range(10):
        a = a @ a * (1 / 1024)
    seconds = timer.stop()
    wall = time.perf_counter() - wall
    assert 0 < seconds <= wall + 1e-4


@pytest.mark.uses_backend("cupy")
@pytest.mark.parametrize("dtype", DTYPES)
def test_arrays_stay_on_device(gpu, dtype):
    import cupy

    a = _device_inputs(cupy, dtype)
    step = gpu.prepare(make_step, lr=1e-4, dtype=dtype)
    W, S, loss = a["W"], a["S"], None
    for _ in range(3):
        W, S, loss = step(a["x"], a["t"], W, S)
    device = cupy.cuda.Device().id
    for out in (W, S, loss):
        assert isinstance(out, cupy.ndarray)
        assert out.device.id == device
        assert out.dtype == np.dtype(dtype)
    assert loss.shape == ()
    assert np.isfinite(float(loss))


@pytest.mark.uses_backend("cupy")
def test_steps_never_copy_back_or_synchronise(gpu):
    import cupy
    import cupyx

    allow_synchronize = getattr(cupyx, "allow_synchronize", None)
    if allow_synchronize is None:
        pytest.skip(f"CuPy {cupy.__version__} no longer has cupyx.allow_synchronize")
    a = _device_inputs(cupy, "float32")
    step = gpu.prepare(make_step, lr=1e-4, dtype="float32")
    W, S, _ = step(a["x"], a["t"], a["W"], a["S"])  # compiles the kernels
    # A copy back to the host, or any synchronisation CuPy makes, raises DeviceSynchronized here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # deprecated since CuPy 10, still works
        with allow_synchronize(False):
            for _ in range(3):
                W, S, _ = step(a["x"], a["t"], W, S)
    gpu.synchronize(W, S)
