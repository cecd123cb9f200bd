"""CuPy's step as one CUDA graph: captured once per prepared point, replayed per step.

CuPy 14 refuses cuBLAS under stream capture (its ``cublas.setStream`` raises
``NotImplementedError: calling cuBLAS API during stream capture is currently unsupported``),
though cuBLAS itself supports capture. So the graph's five products call ``cublasGemmEx``
directly, through ctypes, on a handle of this module's with its own workspace (set before
capture, as NVIDIA's cuBLAS guide asks, so that nothing is allocated while capturing). The
six fused kernels are the plain cupy backend's. Every buffer the step writes is allocated
in an eager warm-up step before capture, from a memory pool of the graph's own that nothing
else allocates from afterwards, so the addresses the graph replays stay its own.
"""
from __future__ import annotations

import ctypes
import functools
from typing import Any, Callable

from backends.base import CapturedStep
from backends.cupy_backend import CupyBackend, fused_kernels

__all__ = ["CupyGraphBackend", "GraphStep", "Gemm", "buffered_pieces", "cublas_library"]

#: Bytes of cuBLAS workspace (NVIDIA's guide: 32 MiB on Hopper).
WORKSPACE_BYTES = 32 * 2**20

_OP_N, _OP_T = 0, 1
_CUDA_R_32F, _CUDA_R_64F = 0, 1
_COMPUTE = {"float32": 68, "float32-tf32": 77, "float64": 70}  # CUBLAS_COMPUTE_32F, ..._FAST_TF32, _64F
_GEMM_DEFAULT = -1


@functools.lru_cache(maxsize=1)
def cublas_library() -> ctypes.CDLL:
    """The libcublas this process already loaded for CuPy (else the one the loader finds)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/libcublas.so" in line}
    except OSError:
        paths = set()
    for path in sorted(paths):
        return ctypes.CDLL(path)
    for name in ("libcublas.so.13", "libcublas.so.12", "libcublas.so"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise OSError("libcublas is not loaded in this process and the loader cannot find it")


def _check(status: int, call: str) -> None:
    if status != 0:
        raise RuntimeError(f"{call} failed with cuBLAS status {status}")


class Gemm:
    """c = alpha op(a) @ op(b) + beta c on C-contiguous arrays, by ``cublasGemmEx`` on a handle
    of its own, bound to one stream (capturable: no CuPy cuBLAS wrapper in the way)."""

    def __init__(self, cupy: Any, stream: Any, dtype: str, tf32: bool) -> None:
        lib = cublas_library()
        self._lib = lib
        self._handle = ctypes.c_void_p()
        _check(lib.cublasCreate_v2(ctypes.byref(self._handle)), "cublasCreate")
        _check(lib.cublasSetStream_v2(self._handle, ctypes.c_void_p(stream.ptr)),
               "cublasSetStream")
        self._workspace = cupy.empty(WORKSPACE_BYTES, dtype=cupy.uint8)
        _check(lib.cublasSetWorkspace_v2(self._handle, ctypes.c_void_p(self._workspace.data.ptr),
                                         ctypes.c_size_t(WORKSPACE_BYTES)), "cublasSetWorkspace")
        self._type = _CUDA_R_32F if dtype == "float32" else _CUDA_R_64F
        self._compute = _COMPUTE["float32-tf32" if dtype == "float32" and tf32 else dtype]
        self._scalar = ctypes.c_float if dtype == "float32" else ctypes.c_double

    def __call__(self, a, b, c, *, trans_a: bool = False, trans_b: bool = False,
                 alpha: float = 1.0, beta: float = 0.0):
        # Row-major c = op(a) op(b) is column-major c^T = op(b)^T op(a)^T: the operands swap.
        m, n = c.shape
        k = a.shape[0] if trans_a else a.shape[1]
        al, be = self._scalar(alpha), self._scalar(beta)
        _check(self._lib.cublasGemmEx(
            self._handle, _OP_T if trans_b else _OP_N, _OP_T if trans_a else _OP_N, n, m, k,
            ctypes.byref(al), ctypes.c_void_p(b.data.ptr), self._type, b.shape[1],
            ctypes.c_void_p(a.data.ptr), self._type, a.shape[1], ctypes.byref(be),
            ctypes.c_void_p(c.data.ptr), self._type, n, self._compute, _GEMM_DEFAULT),
            "cublasGemmEx")
        return c

    def __del__(self) -> None:
        handle, self._handle = self._handle, None
        if handle:
            self._lib.cublasDestroy_v2(handle)


def buffered_pieces(cupy: Any, gemm: Gemm) -> dict[str, Callable]:
    """The step's pieces writing every output to a buffer of their own, made at the first call.

    The same kernels as the plain cupy backend (``fused_kernels``) and the same products;
    ``weight_update`` writes its gradient to a buffer and P over itself.
    """
    k = fused_kernels(cupy)
    buffers: dict[str, Any] = {}

    def buffer(name: str, shape: tuple, like: Any) -> Any:
        if name not in buffers:  # one set per capture, made by its eager step
            buffers[name] = cupy.empty(shape, dtype=like.dtype)
        return buffers[name]

    def forward(x, W, S):
        u = gemm(x, W, buffer("u", (x.shape[0], W.shape[1]), x))
        h = k["relu"](u, buffer("h", u.shape, u))
        return u, h, gemm(h, S, buffer("y", (h.shape[0], S.shape[1]), h))

    def loss_and_grad(y, t):
        loss = k["squared_sum"](y, t, out=buffer("loss", (), y))
        return loss, k["grad_y"](y, t, buffer("grad_y", y.shape, y))

    def grad_h(grad_y, S):
        return gemm(grad_y, S, buffer("grad_h", (grad_y.shape[0], S.shape[0]), S), trans_b=True)

    def relu_backward(u, grad_h_):
        return k["mask"](u, grad_h_, buffer("grad_u", u.shape, u))

    def weight_update(P, a, grad_out, lr):
        grad = gemm(a, grad_out, buffer(f"grad {P.shape}", P.shape, P), trans_a=True)
        return k["update"](P, grad, lr, P)

    return {"forward": forward, "loss_and_grad": loss_and_grad, "grad_h": grad_h,
            "relu_backward": relu_backward, "weight_update": weight_update}


class GraphStep(CapturedStep):
    """(x, t, W, S) -> (W, S, loss): the step replayed from a CUDA graph (``CapturedStep``).

    Each capture follows one eager step on scratch copies that compiles the kernels and makes
    the buffers. The loss is copied out of the graph's buffer after each replay, so that every
    step's loss stays its own (one small copy per step).
    """

    def __init__(self, cupy: Any, make_step: Callable, *, lr: float, dtype: str, tf32: bool):
        self._cupy = cupy
        self._make_step = make_step
        self._stream = cupy.cuda.Stream(non_blocking=True)
        self._gemm = Gemm(cupy, self._stream, dtype, tf32)
        self._lr = cupy.asarray(lr, dtype=dtype)
        #: Nodes of the captured graph (kernels and copies), once captured.
        self.nodes: int | None = None

    def _capture(self, x, t, W, S) -> dict:
        cupy = self._cupy
        W, S = W.copy(), S.copy()  # the graph's own, outside its pool: they outlive it
        cupy.cuda.get_current_stream().synchronize()
        pool = cupy.cuda.MemoryPool()  # the graph's alone: no later allocation reuses it
        train_step = self._make_step(**buffered_pieces(cupy, self._gemm)).train_step
        with cupy.cuda.using_allocator(pool.malloc), self._stream:
            train_step(x, t, W.copy(), S.copy(), self._lr)  # compiles; makes the buffers
            self._stream.synchronize()
            self._stream.begin_capture()
            try:
                _, _, loss = train_step(x, t, W, S, self._lr)
            finally:
                graph = self._stream.end_capture()
            graph.upload(self._stream)
            self._stream.synchronize()
        self.nodes = _graph_nodes(graph)
        return {"graph": graph, "pool": pool, "loss": loss, "W": W, "S": S}

    @staticmethod
    def _key(x, t) -> tuple:
        return (x.data.ptr, t.data.ptr, x.shape, t.shape, x.dtype)

    def _replay(self, c: dict) -> tuple:
        c["graph"].launch()  # on the current stream, after what the caller queued there
        return c["W"], c["S"], c["loss"].copy()


def _graph_nodes(graph: Any) -> int | None:
    """The captured graph's node count (kernels, copies), from its DOT description."""
    try:
        dot = graph.debug_dot_str()
    except Exception:  # a CuPy without it
        return None
    text = dot.decode() if isinstance(dot, bytes) else str(dot)
    nodes = {line.split('"')[1] for line in text.splitlines()
             if line.strip().startswith('"') and "->" not in line and "[" in line}
    return len(nodes) or None


class CupyGraphBackend(CupyBackend):
    """The cupy backend's step, products and fused kernels alike, replayed as one CUDA graph.

    Two launches from the host per step: the graph, and the copy of its loss.
    """

    name = "cupy-graph"
    updates_in_place = True
    launches_per_step = 2

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._last: GraphStep | None = None

    def available(self) -> tuple[bool, str]:
        ok, why = super().available()
        if not ok:
            return ok, why
        try:
            cublas_library()
        except OSError as exc:
            return False, f"cupy-graph cannot call cuBLAS directly: {exc}"
        return True, ""

    def prepare(self, make_step: Callable, *, lr: float, dtype: str):
        self.configure(dtype)
        self._last = GraphStep(self._import(), functools.partial(make_step, self.xp), lr=lr,
                               dtype=dtype, tf32=bool(self.tf32(dtype)))
        return self._last

    def describe(self, dtype: str) -> dict:
        facts = super().describe(dtype)
        facts["graph"] = {"captured": "the whole step: 5 cublasGemmEx and 6 CuPy kernels",
                          "nodes": self._last.nodes if self._last else None,
                          "host_launches": "the graph, then a copy of its loss"}
        return facts
