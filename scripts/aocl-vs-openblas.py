#!/usr/bin/env python3
"""The step's two large products on AMD's AOCL-BLAS and SciPy's OpenBLAS, side by side (docs/numba-blas.md).

One thread, each library's CBLAS gemm by ctypes (the calls `auto` measures with,
backends/_numba_blas.py), the libraries alternated over 7 rounds; medians, at every size of
the issue's table from batch 64 up (batch 1 runs Numba's @). Needs `pip install 'mlpbench[aocl]'`.
For the libraries' own kernels on a machine whose environment forces OpenBLAS's:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/aocl-vs-openblas.py
"""
import functools
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import backends.numba_backend  # noqa: F401  (imports numba first)
from backends import _numba_blas as blas

LIBRARIES = ("scipy", "aocl")
for name in LIBRARIES:
    if blas.load(name)[0] is None:
        sys.exit(f"aocl-vs-openblas: {blas.load(name)[1]}")


def seconds(call, rounds=7, min_round=0.05):
    call()
    n, start = 1, time.perf_counter()
    call()
    n = max(1, int(min_round / max(time.perf_counter() - start, 1e-9)))
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            call()
        out.append((time.perf_counter() - start) / n)
    return out


with threadpool_limits(1):
    print([(p["filepath"].split("/")[-1], p.get("version"), p.get("architecture"),
            p.get("num_threads")) for p in threadpool_info()])
    rng = np.random.default_rng(0)
    for dtype in ("float64", "float32"):
        for batch, hidden in ((64, 100), (64, 1024), (1024, 100), (1024, 1024)):
            n_in = 1000
            x = rng.standard_normal((batch, n_in)).astype(dtype)
            g = rng.standard_normal((batch, hidden)).astype(dtype)
            W = rng.standard_normal((n_in, hidden)).astype(dtype)
            u = np.empty((batch, hidden), dtype)
            for product in ("x@W", "W-=x.T@g"):
                times = {name: [] for name in LIBRARIES}
                for round_ in range(7):
                    for name in LIBRARIES if round_ % 2 else LIBRARIES[::-1]:
                        gemm = blas._cblas_caller(blas.load(name)[0], dtype)
                        call = (functools.partial(gemm, 101, 111, 111, batch, hidden, n_in, 1.0,
                                                  x.ctypes.data, n_in, W.ctypes.data, hidden,
                                                  0.0, u.ctypes.data, hidden)
                                if product == "x@W" else
                                functools.partial(gemm, 101, 112, 111, n_in, hidden, batch, -1e-6,
                                                  x.ctypes.data, n_in, g.ctypes.data, hidden,
                                                  1.0, W.ctypes.data, hidden))
                        times[name].append(statistics.median(seconds(call, rounds=1)))
                med = {name: statistics.median(v) for name, v in times.items()}
                flops = 2 * batch * n_in * hidden
                print(f"{dtype} {batch}x{n_in}x{hidden} {product:9s} " + "  ".join(
                    f"{name} {med[name] * 1e6:9.1f} us ({flops / med[name] / 1e9:5.1f} GF/s)"
                    for name in LIBRARIES) + f"  openblas/aocl {med['scipy'] / med['aocl']:.2f}",
                    flush=True)
