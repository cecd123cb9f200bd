"""Best-of-5 GFLOP/s of large square gemms through AOCL-BLAS and SciPy's OpenBLAS (their CBLAS), 1 thread."""
import time, numpy as np
from threadpoolctl import threadpool_limits
from backends import _numba_blas as nb
threadpool_limits(1)
for dtype in ("float64", "float32"):
    for n in (1000, 2000, 3000):
        a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype); b = a.copy(); c = np.empty_like(a)
        out = {}
        for name in ("aocl", "scipy"):
            lib = nb.load(name)[0]
            f = nb._cblas_caller(lib, dtype)
            call = lambda: f(nb._ROW_MAJOR, nb._NO_TRANS, nb._NO_TRANS, n, n, n, 1.0, a.ctypes.data, n, b.ctypes.data, n, 0.0, c.ctypes.data, n)
            call(); best = 1e9
            for r in range(5):
                s = time.perf_counter(); call(); best = min(best, time.perf_counter() - s)
            out[name] = round(2 * n**3 / best / 1e9, 1)
        print(dtype, n, out, flush=True)
