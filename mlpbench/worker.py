"""The bench worker: one backend in a process of its own, measuring the points it is sent.

Run as ``python -m mlpbench.worker`` by ``mlpbench.sweep`` (protocol: ``mlpbench.workers``).
It imports only its backend's library, with the thread variables its parent set before any
library started a pool. Requests:

- ``{"op": "start", "backend", "threads", "allow_tf32"}``: the backend's facts;
- ``{"op": "peak", "dtype", "min_time", "repeat"}``: the matmul peak in GFLOP/s;
- ``{"op": "point", "point", "min_time", "repeat", "seed", "peak_gflops"}``: one result.

Time limits belong to the parent, which kills a worker that does not answer in time.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from mlpbench.workers import one_line

__all__ = ["measure_point", "peak_rss_growth", "threads_in_effect"]


def threads_in_effect(requested: int | None, info: dict) -> int | None:
    """The thread count recorded with a result: the one asked for, else the BLAS's."""
    if requested is not None:
        return requested
    blas = info.get("blas") or []
    return max(blas) if blas else None


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


@contextlib.contextmanager
def peak_rss_growth():
    """Yields a dict whose ``bytes`` is, after the block, how far the resident set's peak rose
    above its size at the start (Linux: VmHWM reset through clear_refs; None elsewhere)."""
    out: dict[str, int | None] = {"bytes": None}
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident size
        before = _status_kib("VmRSS")
    except OSError:
        before = None
    try:
        yield out
    finally:
        peak = _status_kib("VmHWM")
        if before is not None and peak is not None:
            out["bytes"] = max(0, peak - before) * 1024


def measure_point(backend: Any, point: dict, *, threads: int | None, thread_info: dict,
                  min_time: float, repeat: int, seed: int, peak_gflops: float | None) -> dict:
    """Run one point: its result, whatever happened to the step (a failure is ``error``)."""
    import numpy as np

    from kernels import make_step, step_flops
    from mlpbench import settings
    from mlpbench.measure import measure_step
    from mlpbench.problem import make_inputs, to_backend
    from mlpbench.results import make_result

    sizes = (point["batch_size"], point["n_in"], point["hidden"], point["n_out"])
    lr = settings.learning_rate(*sizes)
    measurement, started = None, time.perf_counter()
    with peak_rss_growth() as memory:
        try:
            # Overflow in a diverging point is reported as 'invalid', not as numpy warnings.
            with np.errstate(all="ignore"):
                arrays = to_backend(backend, make_inputs(*sizes, dtype=point["dtype"], seed=seed,
                                                         init="scaled"))
                step = backend.prepare(make_step, lr=lr, dtype=point["dtype"])
                measurement = measure_step(backend, step, arrays, min_time=min_time,
                                           repeat=repeat)
            del arrays, step
            if measurement.divergence is not None:
                status, error = "invalid", f"after the timed steps, {measurement.divergence}"
            else:
                status, error = "ok", None
        except Exception as exc:  # any failure of the backend is this point's result
            status, error = "error", one_line(exc)
    extra: dict[str, Any] = {"lr": lr, "seed": seed, **backend.describe(point["dtype"]),
                             "thread_info": thread_info, "min_time": min_time,
                             "elapsed_s": time.perf_counter() - started, "worker_pid": os.getpid(),
                             "peak_rss_bytes": memory["bytes"],
                             "device_peak_bytes": backend.device_memory_peak()}
    if status == "ok" and measurement.device_block_s is not None:
        from mlpbench.measure import per_step

        extra["device_step_s"] = per_step(measurement.device_block_s, measurement.steps_per_block)
    return make_result(point, threads=threads_in_effect(threads, thread_info), status=status,
                       error=error, measurement=measurement, flops_per_step=step_flops(*sizes),
                       peak_gflops=peak_gflops, **extra)


class _Worker:
    """The state of one worker: its backend, entered into its thread limits for good."""

    def __init__(self) -> None:
        self.backend: Any = None
        self.threads: int | None = None
        self.thread_info: dict = {}
        self._stack = contextlib.ExitStack()

    def handle(self, request: dict) -> dict:
        try:
            return getattr(self, "op_" + request["op"])(request)
        except Exception as exc:
            return {"error": one_line(exc)}

    def op_start(self, request: dict) -> dict:
        import backends

        self.backend = backends.create(request["backend"], allow_tf32=request["allow_tf32"])
        ok, why = self.backend.available()
        if not ok:
            return {"error": why}
        self.threads = request["threads"]
        self.thread_info = self._stack.enter_context(self.backend.threads(self.threads))
        from mlpbench.roofline import device_roofs

        return {"pid": os.getpid(), "version": self.backend.version,
                "device": self.backend.device, "gpu": self.backend.gpu_info(),
                "device_roofs": device_roofs(self.backend),
                "thread_info": self.thread_info,
                "threads": threads_in_effect(self.threads, self.thread_info)}

    def op_peak(self, request: dict) -> dict:
        import numpy as np

        from mlpbench.measure import peak_matmul_gflops

        with np.errstate(all="ignore"):
            self.backend.configure(request["dtype"])
            peak = peak_matmul_gflops(self.backend, request["dtype"],
                                      min_time=request["min_time"], repeat=request["repeat"])
        return {"gflops": peak["gflops"]}

    def op_point(self, request: dict) -> dict:
        return {"result": measure_point(
            self.backend, request["point"], threads=self.threads, thread_info=self.thread_info,
            min_time=request["min_time"], repeat=request["repeat"], seed=request["seed"],
            peak_gflops=request["peak_gflops"])}


def main() -> None:
    from mlpbench.workers import serve

    serve(_Worker().handle)


if __name__ == "__main__":
    main()
