"""What scripts/gpu-check.sh records beside the bench: versions, CuPy's cuBLAS under capture, and
the GPU work of one step of each GPU backend as CUPTI sees it (torch.profiler).

usage: python scripts/gpu_probe.py OUT.json [BACKEND ...]   (default: every GPU backend)
Each part that fails is recorded with its error; the exit status is 0 unless OUT.json
cannot be written.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GPU_BACKENDS = ("cupy", "cupy-graph", "torch", "torch-graph", "jax")
#: The points whose kernels are counted: launch-bound and compute-bound.
POINTS = ((64, 1000, 100, 10), (4096, 1000, 4096, 10))
STEPS = 10


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def versions() -> dict:
    from importlib import metadata

    found = {}
    for name in ("numpy", "cupy-cuda13x", "cupy-cuda12x", "torch", "jax", "jaxlib",
                 "jax-cuda13-plugin", "numba", "scipy", "array-api-compat"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        found["nvidia-smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        found["nvidia-smi"] = _one_line(exc)
    return found


def cupy_cublas_capture() -> str:
    """'captured' when CuPy's own matmul can be captured in a CUDA graph, else its error."""
    import cupy

    a = cupy.ones((64, 64), dtype=cupy.float32)
    a @ a
    stream = cupy.cuda.Stream(non_blocking=True)
    try:
        with stream:
            stream.begin_capture()
            try:
                a @ a
            finally:
                stream.end_capture()
    except Exception as exc:
        return _one_line(exc)
    return "captured"


def kernels_per_step(name: str, point: tuple, dtype: str) -> dict:
    """Kernels and copies on the GPU per step of ``name`` at ``point`` (CUPTI, via torch)."""
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    import backends
    from kernels import make_step
    from mlpbench import settings
    from mlpbench.problem import make_inputs, to_backend

    backend = backends.create(name)
    ok, why = backend.available()
    if not ok:
        return {"error": why}
    with np.errstate(all="ignore"):
        arrays = to_backend(backend, make_inputs(*point, dtype=dtype, seed=0, init="scaled"))
        step = backend.prepare(make_step, lr=settings.learning_rate(*point), dtype=dtype)
        x, t, W, S = arrays["x"], arrays["t"], arrays["W"], arrays["S"]
        for _ in range(3):
            W, S, loss = step(x, t, W, S)
        backend.synchronize(W, S, loss)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(STEPS):
                W, S, loss = step(x, t, W, S)
            backend.synchronize(W, S, loss)
            torch.cuda.synchronize()
    names: dict[str, int] = {}
    for event in prof.events():
        if str(getattr(event, "device_type", "")).endswith("CUDA"):
            names[event.name] = names.get(event.name, 0) + 1
    copies = sum(n for k, n in names.items() if "memcpy" in k.lower() or "memset" in k.lower())
    return {"kernels": (sum(names.values()) - copies) / STEPS, "copies": copies / STEPS,
            "names": {k: v / STEPS for k, v in sorted(names.items())}}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    out, chosen = Path(argv[0]), argv[1:] or list(GPU_BACKENDS)
    record: dict = {"versions": versions()}
    try:
        record["cupy_cublas_capture"] = cupy_cublas_capture()
    except Exception as exc:
        record["cupy_cublas_capture"] = f"probe failed: {_one_line(exc)}"
    record["kernels_per_step"] = {}
    for name in chosen:
        for point in POINTS:
            for dtype in ("float32", "float64"):
                key = f"{name} b{point[0]} h{point[2]} {dtype}"
                try:
                    record["kernels_per_step"][key] = kernels_per_step(name, point, dtype)
                except Exception as exc:
                    record["kernels_per_step"][key] = {"error": _one_line(exc)}
                print(key, {k: v for k, v in record["kernels_per_step"][key].items()
                            if k != "names"}, flush=True)
    print("cupy cuBLAS under capture:", record["cupy_cublas_capture"])
    out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
