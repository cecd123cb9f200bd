"""CuPy on one NVIDIA GPU: the shared step, its elementwise tail fused, timed with CUDA events."""
from __future__ import annotations

import functools
import os
from typing import Any, Callable

from backends.base import Backend, PreparedStep

__all__ = ["LAUNCHES", "CupyBackend", "DeviceTimer", "fused_kernels", "fused_pieces"]

#: Launches of one fused step, by construction: one per cuBLAS call or CuPy kernel.
#: (cuBLAS may split one call into more than one kernel, split-K say; it is counted once.)
LAUNCHES = {
    "matmul (cuBLAS): x@W, h@S, h.T@grad_y, grad_y@S.T, x.T@grad_u": 5,
    "relu (forward)": 1,
    "loss: sum((y - t)^2), one reduction": 1,
    "grad_y = 2 (y - t)": 1,
    "relu_backward: where(u > 0, grad_h, 0)": 1,
    "sgd_update: W and S, one each": 2,
}

_INSTALL_HINT = ("pip install 'mlpbench[cuda12]' (CUDA 12) or 'mlpbench[cuda13]' (CUDA 13), "
                 "with the CUDA Toolkit's libraries installed (or cupy-cuda12x[ctk])")


def _one_line(exc: BaseException) -> str:
    """An exception as one short line (CuPy's import errors span many lines)."""
    text = " ".join(str(exc).split()) or "no message"
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}"


def _cuda_version(code: int) -> str:
    """CUDA's integer version (12090) as text ("12.9")."""
    return f"{code // 1000}.{code % 1000 // 10}"


def _driver_version(cuda_driver: int) -> str:
    """The kernel driver's version and the CUDA version it supports: "580.159.03 (CUDA 13.0)"."""
    import re

    try:
        with open("/proc/driver/nvidia/version") as f:
            found = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9][0-9.]+)", f.read())
    except OSError:
        found = None
    cuda = f"CUDA {_cuda_version(cuda_driver)}"
    return f"{found.group(1)} ({cuda})" if found else cuda


@functools.lru_cache(maxsize=1)
def _cupy_distribution() -> str:
    from importlib import metadata

    return (metadata.packages_distributions().get("cupy") or ["cupy"])[0]


@functools.lru_cache(maxsize=None)
def fused_kernels(cupy: Any) -> dict[str, Any]:
    """The CuPy kernels of the fused pieces, by name (compiled by CuPy at their first call).

    ``u < 0 ? 0 : u`` keeps a NaN at the relu, as ``maximum`` does, so a diverged run
    still shows in the loss.
    """
    return {
        "relu": cupy.ElementwiseKernel(
            "T u", "T h", "h = u < (T)0 ? (T)0 : u", "mlpbench_relu"),
        "grad_y": cupy.ElementwiseKernel(
            "T y, T t", "T grad_y", "T d = y - t; grad_y = d + d", "mlpbench_grad_y"),
        "squared_sum": cupy.ReductionKernel(
            "T y, T t", "T loss", "(y - t) * (y - t)", "a + b", "loss = a", "0",
            "mlpbench_loss"),
        "mask": cupy.ElementwiseKernel(
            "T u, T grad_h", "T grad_u", "grad_u = u > (T)0 ? grad_h : (T)0",
            "mlpbench_relu_backward"),
        "update": cupy.ElementwiseKernel(
            "T P, T grad, T lr", "T P_new", "P_new = P - lr * grad", "mlpbench_sgd_update"),
    }


@functools.lru_cache(maxsize=None)
def fused_pieces(cupy: Any) -> dict[str, Callable]:
    """Replacements for the step's elementwise pieces, one CuPy kernel per output.

    Same formulas and sequence as ``kernels.step``; ``lr`` is a 0-d device array in the
    arrays' dtype.
    """
    k = fused_kernels(cupy)
    relu, grad_y, squared_sum, mask, update = (
        k["relu"], k["grad_y"], k["squared_sum"], k["mask"], k["update"])

    def forward(x, W, S):
        u = x @ W
        h = relu(u)
        return u, h, h @ S

    def loss_and_grad(y, t):
        return squared_sum(y, t), grad_y(y, t)

    def relu_backward(u, grad_h):
        return mask(u, grad_h)

    def sgd_update(P, grad, lr):
        return update(P, grad, lr)

    return {"forward": forward, "loss_and_grad": loss_and_grad,
            "relu_backward": relu_backward, "sgd_update": sgd_update}


class DeviceTimer:
    """GPU time of one timed block, from two CUDA events on the current stream."""

    def __init__(self, cupy: Any) -> None:
        self._cupy = cupy
        self._start = cupy.cuda.Event()
        self._stop = cupy.cuda.Event()

    def start(self) -> None:
        self._start.record(self._cupy.cuda.get_current_stream())

    def stop(self) -> float:
        """Seconds of device time since ``start()``; waits for the stop event."""
        self._stop.record(self._cupy.cuda.get_current_stream())
        self._stop.synchronize()
        return self._cupy.cuda.get_elapsed_time(self._start, self._stop) / 1000.0


class CupyBackend(Backend):
    """CuPy through ``array_api_compat.cupy``, on the current CUDA device.

    ``launches_per_step`` is 11: 5 cuBLAS matmuls + 6 fused elementwise/reduction
    kernels (``LAUNCHES`` lists them); the unfused reference pieces take about 13
    elementwise operations instead of 6. TF32 stays off for float32 unless the backend is
    created with ``allow_tf32``; ``configure`` sets it, ``tf32(dtype)`` says what holds.
    """

    name = "cupy"
    install_hint = _INSTALL_HINT
    launches_per_step = sum(LAUNCHES.values())

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        #: Whether cuBLAS's float32 compute type is TF32, as ``configure`` left it (None
        #: before it ran).
        self._tf32_set: bool | None = None
        self._status: tuple[bool, str] | None = None

    # -- what and where -------------------------------------------------------
    def _import(self) -> Any:
        import cupy

        return cupy

    def available(self) -> tuple[bool, str]:
        """(True, "") when CuPy imports and runs a kernel and a matmul on a GPU here."""
        if self._status is None:
            self._status = self._probe()
        return self._status

    def _probe(self) -> tuple[bool, str]:
        try:
            cupy = self._import()
        except ImportError as exc:
            return False, f"cupy is not installed ({_one_line(exc)}); {_INSTALL_HINT}"
        except Exception as exc:  # a broken install can raise anything at import
            return False, f"cupy failed to import ({_one_line(exc)}); {_INSTALL_HINT}"
        version = getattr(cupy, "__version__", "?")
        try:
            if cupy.cuda.runtime.driverGetVersion() == 0:  # CUDA's answer when libcuda is absent
                return False, (f"CuPy {version} is installed but there is no NVIDIA driver here "
                               "(no CUDA GPU)")
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError: no driver, too old a driver, no device
            return False, f"CuPy {version} is installed but no usable CUDA GPU: {_one_line(exc)}"
        if count < 1:
            return False, f"CuPy {version} is installed but no CUDA GPU is visible"
        try:
            # One kernel (NVRTC) and one matmul (cuBLAS): the libraries a step needs.
            a = cupy.ones((2, 2), dtype=cupy.float32)
            total = float(((a + a) @ a).sum())
        except Exception as exc:  # missing libnvrtc/libcublas, out of memory, busy device
            return False, (f"CuPy {version} sees {count} GPU(s) but cannot run on them: "
                           f"{_one_line(exc)}")
        if total != 16.0:
            return False, f"CuPy {version} computed a wrong 2x2 matmul ({total} != 16) on this GPU"
        return True, ""

    @property
    def library(self) -> str:
        """The distribution that holds the ``cupy`` package (cupy-cuda12x, cupy-cuda13x...)."""
        return _cupy_distribution()

    @property
    def version(self) -> str | None:
        try:
            return self._import().__version__
        except Exception:
            return None

    @property
    def device(self) -> str:
        if not self.available()[0]:
            return "cuda (unavailable)"
        info = self.gpu_info()
        sm = info["compute_capability"].replace(".", "")
        return f"cuda:{info['index']} {info['name']} (sm_{sm})"

    def gpu_info(self) -> dict | None:
        """{"name", "driver", "cuda", "index", "compute_capability", "memory_bytes"}, or None."""
        if not self.available()[0]:
            return None
        cupy = self._import()
        runtime = cupy.cuda.runtime
        index = cupy.cuda.Device().id
        props = runtime.getDeviceProperties(index)
        name = props["name"]
        return {
            "name": name.decode() if isinstance(name, bytes) else str(name),
            "driver": _driver_version(runtime.driverGetVersion()),
            "cuda": _cuda_version(runtime.runtimeGetVersion()),
            "index": index,
            "compute_capability": f"{props['major']}.{props['minor']}",
            "memory_bytes": int(props["totalGlobalMem"]),
        }

    # -- arrays ---------------------------------------------------------------
    @property
    def xp(self) -> Any:
        import array_api_compat.cupy as xp

        return xp

    def asarray(self, array: Any) -> Any:
        return self._import().asarray(array)

    def to_numpy(self, array: Any) -> Any:
        return self._import().asnumpy(array)

    def scalar(self, value: float, dtype: str) -> Any:
        # A 0-d array on the device: no host value enters the step, float32 stays float32.
        return self._import().asarray(value, dtype=dtype)

    def device_memory_peak(self) -> int | None:
        # CuPy's pool keeps what it once held: its total is the peak so far.
        return int(self._import().get_default_memory_pool().total_bytes())

    def synchronize(self, *arrays: Any) -> None:
        self._import().cuda.get_current_stream().synchronize()

    def device_timer(self) -> DeviceTimer:
        return DeviceTimer(self._import())

    def empty_launches(self) -> dict[str, Callable[[int], None]]:
        cupy = self._import()
        empty = cupy.RawKernel('extern "C" __global__ void mlpbench_empty() {}', "mlpbench_empty")
        empty((1,), (1,), ())  # compiled and loaded before capture
        stream = cupy.cuda.Stream(non_blocking=True)
        with stream:
            stream.begin_capture()
            empty((1,), (1,), ())
            graph = stream.end_capture()

        def kernels(n: int) -> None:
            for _ in range(n):
                empty((1,), (1,), ())

        def graphs(n: int) -> None:
            for _ in range(n):
                graph.launch()

        return {"empty_kernel": kernels, "empty_graph": graphs}

    # -- the step -------------------------------------------------------------
    def configure(self, dtype: str) -> None:
        """Set cuBLAS's float32 compute type explicitly, from ``allow_tf32``.

        CuPy reads ``CUPY_TF32`` once, at its first float32 matmul; setting the compute
        type here overrides it both ways, so the environment cannot turn TF32 on unasked.
        """
        cupy = self._import()
        from cupy._core import _routines_linalg as linalg

        wanted = linalg.COMPUTE_TYPE_TF32 if self.allow_tf32 else linalg.COMPUTE_TYPE_DEFAULT
        cupy._core.set_compute_type(cupy.float32, wanted)  # falls back to DEFAULT below sm_80
        on = cupy._core.get_compute_type(cupy.float32) == linalg.COMPUTE_TYPE_TF32
        # NVIDIA_TF32_OVERRIDE=0 turns TF32 off in every CUDA library, whatever was asked.
        on = on and os.environ.get("NVIDIA_TF32_OVERRIDE") != "0"
        self._tf32_set = bool(on)

    def tf32(self, dtype: str) -> bool | None:
        if self._tf32_set is None:
            return None
        return self._tf32_set and dtype == "float32"

    def prepare(self, make_step: Callable, *, lr: float, dtype: str) -> PreparedStep:
        self.configure(dtype)
        train_step = make_step(self.xp, **fused_pieces(self._import())).train_step
        lr_ = self.scalar(lr, dtype)

        def step(x, t, W, S):
            return train_step(x, t, W, S, lr_)

        return step

    def prepare_pieces(self, make_pieces: Callable, *, lr: float, dtype: str) -> dict[str, Callable]:
        """The step's pieces, its elementwise ones fused as in ``prepare``."""
        self.configure(dtype)
        fused = fused_pieces(self._import())
        return super().prepare_pieces(lambda xp: make_pieces(xp, **fused), lr=lr, dtype=dtype)
