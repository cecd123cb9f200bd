"""PyTorch: the shared step on torch tensors through array-api-compat, CPU or CUDA, no autograd."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

from backends.base import Backend, OwnOutputs, PreparedStep

__all__ = ["TorchBackend", "weight_update"]


def weight_update(P, a, grad_out, lr):
    """P - lr * (a.T @ grad_out), written over P in one ``addmm_`` (one BLAS gemm, beta = 1).

    As ``torch.optim.SGD`` updates parameters in place; ``lr`` is a Python float.
    """
    return P.addmm_(a.T, grad_out, alpha=-lr)


def _cuda_version(code: int) -> str:
    """CUDA's integer version (12090) as text ("12.9"), as the cupy backend writes it."""
    return f"{code // 1000}.{code % 1000 // 10}"


class _EventTimer:
    """GPU time of one timed block, from two CUDA events on torch's current stream."""

    def __init__(self, torch: Any) -> None:
        self._start = torch.cuda.Event(enable_timing=True)
        self._stop = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record()

    def stop(self) -> float:
        self._stop.record()
        self._stop.synchronize()
        return self._start.elapsed_time(self._stop) / 1000.0


class TorchBackend(Backend):
    """torch through ``array_api_compat.torch``, on ``cuda:0`` when CUDA is usable, else the CPU.

    The step runs under ``torch.inference_mode()``: no autograd graph is recorded (the
    gradients are the hand-derived ones of ``kernels``). ``threads(n)`` sets torch's
    intra-op pool (OpenMP and its bundled MKL) with ``torch.set_num_threads`` and any
    BLAS threadpoolctl finds, and restores both after.
    """

    name = "torch"
    updates_in_place = True
    library = "torch"
    install_hint = ("pip install 'mlpbench[torch]' (for the CPU-only build, first: "
                    "pip install torch --index-url https://download.pytorch.org/whl/cpu)")

    def _import(self) -> Any:
        import array_api_compat.torch  # noqa: F401  (the namespace the step runs with)
        import torch

        return torch

    @property
    def _on_cuda(self) -> bool:
        return self._import().cuda.is_available()

    @property
    def device(self) -> str:
        return "cuda:0" if self._on_cuda else "cpu"

    def gpu_info(self) -> dict | None:
        """{"name", "driver", "cuda"} of the CUDA device used, or None on the CPU.

        "driver" is the CUDA version the driver supports (as the cupy backend reports it).
        """
        torch = self._import()
        if not torch.cuda.is_available():
            return None
        get_driver = getattr(torch._C, "_cuda_getDriverVersion", None)  # private, CUDA builds only
        try:
            driver = _cuda_version(get_driver()) if get_driver else None
        except RuntimeError:
            driver = None
        return {"name": torch.cuda.get_device_name(0), "driver": driver, "cuda": torch.version.cuda}

    # -- arrays ---------------------------------------------------------------
    @property
    def xp(self) -> Any:
        import array_api_compat.torch as xp

        return xp

    def asarray(self, array: Any) -> Any:
        # A copy: the step never writes into its inputs, but the caller's array stays its own.
        return self._import().asarray(array, device=self.device, copy=True)

    def to_numpy(self, array: Any) -> Any:
        return array.detach().to("cpu", copy=True).numpy()

    def device_memory_peak(self) -> int | None:
        torch = self._import()
        return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None

    def synchronize(self, *arrays: Any) -> None:
        torch = self._import()
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def tf32(self, dtype: str) -> bool | None:
        """On CUDA, whether float32 matmuls use TF32 (``allow_tf32``; off by default)."""
        if not self._on_cuda:
            return None
        torch = self._import()
        return dtype == "float32" and bool(torch.backends.cuda.matmul.allow_tf32)

    def device_timer(self) -> Any:
        """On CUDA: a block's GPU time from two CUDA events on the current stream."""
        return _EventTimer(self._import()) if self._on_cuda else None

    def empty_launches(self) -> dict[str, Callable[[int], None]] | None:
        """On CUDA: ``torch.cuda._sleep(0)`` (a kernel that waits no cycles) and a graph of it."""
        if not self._on_cuda:
            return None
        torch = self._import()
        torch.cuda._sleep(0)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            torch.cuda._sleep(0)

        def kernels(n: int) -> None:
            for _ in range(n):
                torch.cuda._sleep(0)

        def graphs(n: int) -> None:
            for _ in range(n):
                graph.replay()

        return {"empty_kernel": kernels, "empty_graph": graphs}

    # -- the step -------------------------------------------------------------
    def configure(self, dtype: str) -> None:
        """On CUDA, TF32 for float32 matmuls exactly as ``allow_tf32`` says, whatever the defaults."""
        if self._on_cuda:
            self._import().backends.cuda.matmul.allow_tf32 = self.allow_tf32

    def prepare(self, make_step: Callable, *, lr: float, dtype: str) -> PreparedStep:
        """The shared step, run under ``inference_mode`` (no autograd bookkeeping).

        Its ``weight_update`` piece writes over W and S, as torch's optimisers do; they are
        this step's own previous outputs, the caller's first W and S being copied
        (``OwnOutputs``), so the caller's tensors stay as they were.
        """
        torch = self._import()
        self.configure(dtype)
        train_step = make_step(self.xp, weight_update=weight_update).train_step
        lr_ = float(lr)  # a Python scalar keeps float32 tensors float32

        def run(x, t, W, S):
            with torch.inference_mode():
                return train_step(x, t, W, S, lr_)

        return OwnOutputs(run, lambda a: a.detach().clone())

    def prepare_pieces(self, make_pieces: Callable, *, lr: float, dtype: str) -> dict[str, Callable]:
        """The step's pieces (its in-place ``weight_update``), each run under ``inference_mode``."""
        torch = self._import()
        self.configure(dtype)
        pieces = super().prepare_pieces(
            lambda xp: make_pieces(xp, weight_update=weight_update), lr=lr, dtype=dtype)

        def no_autograd(piece):
            def run(*args):
                with torch.inference_mode():
                    return piece(*args)
            return run

        return {name: no_autograd(piece) for name, piece in pieces.items()}

    # -- threads --------------------------------------------------------------
    @contextlib.contextmanager
    def threads(self, n: int | None) -> Iterator[dict]:
        """torch's intra-op threads and any BLAS limited to ``n``; both restored after."""
        from threadpoolctl import threadpool_limits

        torch = self._import()
        before = torch.get_num_threads()
        with threadpool_limits(limits=n):
            if n is not None:
                torch.set_num_threads(n)
            try:
                yield self.thread_info()
            finally:
                torch.set_num_threads(before)

    def thread_info(self) -> dict:
        info = super().thread_info()
        info["torch"] = self._import().get_num_threads()
        return info
