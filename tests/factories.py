"""The tests' one set of factories: bench results and documents, made by the project's own
``make_result`` from a measurement, so they have the fields a real run writes."""
from __future__ import annotations

import copy

from kernels import step_flops
from mlpbench.measure import Measurement
from mlpbench.results import SCHEMA, make_result

__all__ = ["DOC", "ENVIRONMENT", "bench_doc", "bench_result", "corrupted"]

ENVIRONMENT = {"python": "3.11", "platform": "Linux", "cpu": "test CPU", "cores": 2,
               "libraries": {}, "blas": [], "gpu": None, "command": ["mlpbench", "bench"],
               "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00"}


def bench_result(backend: str, dtype: str, batch_size: int, median_s: float | None = None, *,
                 status: str = "ok", error: str | None = None, hidden: int = 16,
                 n_in: int = 1000, n_out: int = 10, threads: int | None = 1,
                 compile_s: float = 0.1, flops_per_step: int | None = None,
                 peak_gflops: float | None = None, final_loss: float = 1.0,
                 steps_per_block: int = 10) -> dict:
    """One entry of "results". ok: three blocks whose steps took ``median_s`` (the median),
    0.9x and 1.2x; otherwise no speeds, and ``error``."""
    point = {"backend": backend, "dtype": dtype, "batch_size": batch_size, "n_in": n_in,
             "hidden": hidden, "n_out": n_out}
    flops = flops_per_step or step_flops(batch_size, n_in, hidden, n_out)
    if status != "ok":
        return make_result(point, threads=threads, status=status, error=error,
                           flops_per_step=flops)
    blocks = [f * median_s * steps_per_block for f in (0.9, 1.0, 1.2)]
    measured = Measurement(compile_s, steps_per_block, blocks, final_loss)
    return make_result(point, threads=threads, status="ok", measurement=measured,
                       peak_gflops=peak_gflops, flops_per_step=flops)


def bench_doc(results: list[dict], *, peak_gflops: dict | None = None, **extra) -> dict:
    """A results document (schema ``mlpbench.bench/1``) holding ``results``."""
    return {"schema": SCHEMA, "environment": dict(ENVIRONMENT), "peak_gflops": peak_gflops or {},
            "results": results, **extra}


#: A valid results document of one tiny ok point.
DOC = bench_doc([bench_result("numpy", "float64", 2, 1e-5, n_in=8, hidden=4, n_out=2,
                              compile_s=0.001, peak_gflops=30.0, final_loss=12.5)],
                peak_gflops={"numpy/float64": 30.0})


def corrupted(where: tuple, value) -> dict:
    """A copy of DOC with the value at ``where`` (keys and indices) replaced by ``value``."""
    doc = copy.deepcopy(DOC)
    node = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    return doc
