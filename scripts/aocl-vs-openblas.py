#!/usr/bin/env python3
"""The step's large products through AMD's AOCL-BLAS and SciPy's OpenBLAS, side by side (docs/numba-blas.md).

One core, one thread, CBLAS gemm by ctypes for both, the two libraries alternated over 7
rounds; medians. AOCL-BLAS is the libblis-mt that the aoclda wheel ships:
    pip download --no-deps -d /tmp/aocl aoclda && unzip -q -d /tmp/aocl/x /tmp/aocl/aoclda-*.whl
usage: python scripts/aocl-vs-openblas.py /tmp/aocl/x/aoclda.libs
"""
import ctypes, glob, os, sys, time
os.sched_setaffinity(0, {0})
import numpy as np
from threadpoolctl import threadpool_limits, threadpool_info
from scipy.linalg import cython_blas
libdir = sys.argv[1]
ctypes.CDLL(glob.glob(libdir + "/libomp-*.so")[0], mode=ctypes.RTLD_GLOBAL)
aocl = ctypes.CDLL(glob.glob(libdir + "/libblis-mt-*.so*")[0])
aocl.bli_thread_set_num_threads(ctypes.c_long(1))
sc = ctypes.CDLL(cython_blas.__file__)
libs = {"aocl": (aocl.cblas_sgemm, aocl.cblas_dgemm), "openblas": (sc.scipy_cblas_sgemm, sc.scipy_cblas_dgemm)}
def call(lib, a, ta, b, c, beta):
    m, n = c.shape; k = a.shape[0] if ta else a.shape[1]
    f = libs[lib][a.dtype == np.float64]
    T = ctypes.c_double if a.dtype == np.float64 else ctypes.c_float
    P = ctypes.c_void_p
    f(101, 112 if ta else 111, 111, m, n, k, T(-1e-6), P(a.ctypes.data), a.shape[1], P(b.ctypes.data), b.shape[1], T(beta), P(c.ctypes.data), n)
def time_it(f, min_time=0.05):
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n): f()
        d = time.perf_counter() - t
        if d > min_time: return d / n
        n *= 2
rows = []
with threadpool_limits(1):
    print([(i["filepath"].split("/")[-1], i.get("architecture"), i.get("num_threads")) for i in threadpool_info()])
    for dt in ("float64", "float32"):
        for (name, m, k, n, ta, beta) in [("x@W seed", 64, 1000, 100, False, 0.0), ("W-=x.T@g seed", 1000, 64, 100, True, 1.0),
                                          ("x@W 1024x1024", 1024, 1000, 1024, False, 0.0), ("W-=x.T@g 1024x1024", 1000, 1024, 1024, True, 1.0)]:
            a = np.random.rand(k, m).astype(dt) if ta else np.random.rand(m, k).astype(dt)
            b = np.random.rand(k, n).astype(dt); c = np.zeros((m, n), dt)
            ts = {"aocl": [], "openblas": []}
            for r in range(7):
                for lib in (("aocl", "openblas") if r % 2 else ("openblas", "aocl")):
                    ts[lib].append(time_it(lambda: call(lib, a, ta, b, c, beta)))
            med = {l: float(np.median(v)) for l, v in ts.items()}
            fl = 2 * m * k * n
            print(f"{dt} {name:20s} openblas {med['openblas']*1e6:9.1f} us ({fl/med['openblas']/1e9:5.1f} GF/s)  aocl {med['aocl']*1e6:9.1f} us ({fl/med['aocl']/1e9:5.1f} GF/s)  openblas/aocl {med['openblas']/med['aocl']:.2f}")
