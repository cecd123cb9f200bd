"""Batch-1 passes over W, alone: the step's own pieces against rewrites and floors.

µs per call, best of 9 rounds of 2,000 calls; "same": bit-identical to the step's piece.
Run from the repository root: OPENBLAS_NUM_THREADS=1 .venv/bin/python docs/numba-blas-trials/zen3-batch1/batch1.py
"""
import time

import numba
import numpy as np

from backends._numba_pieces import _outer_update


@numba.njit
def matmul(x, W):  # the step's forward product at batch 1: Numba's @ (OpenBLAS)
    return x @ W


@numba.njit
def rows8(x, W):  # row-streaming x @ W, 8 rows of W per pass over u
    n, m = W.shape
    u = np.zeros((1, m), W.dtype)
    k = 0
    while k + 8 <= n:
        for j in range(m):
            u[0, j] += (((x[0, k] * W[k, j] + x[0, k + 1] * W[k + 1, j])
                         + (x[0, k + 2] * W[k + 2, j] + x[0, k + 3] * W[k + 3, j]))
                        + ((x[0, k + 4] * W[k + 4, j] + x[0, k + 5] * W[k + 5, j])
                           + (x[0, k + 6] * W[k + 6, j] + x[0, k + 7] * W[k + 7, j])))
        k += 8
    for kk in range(k, n):
        for j in range(m):
            u[0, j] += x[0, kk] * W[kk, j]
    return u


@numba.njit
def flat(P, a, g, lr):  # the update on flat indices, the gradient row copied
    m = P.shape[1]
    g0 = g[0].copy()
    Pf = P.reshape(P.size)
    for i in range(P.shape[0]):
        a_i = a[0, i]
        for j in range(m):
            Pf[i * m + j] = Pf[i * m + j] - lr * (a_i * g0[j])
    return P


@numba.njit
def lr_times_g(P, a, g, lr):  # lr * g made once: numpy's rounding no longer
    lg = g[0] * lr
    for i in range(P.shape[0]):
        a_i = a[0, i]
        for j in range(P.shape[1]):
            P[i, j] = P[i, j] - a_i * lg[j]
    return P


@numba.njit
def scale(P, c):  # floor of an in-place pass: one read and one write of W, nothing else
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            P[i, j] = P[i, j] * c
    return P


@numba.njit(fastmath=True)
def read(P):  # floor of a read of W: a vectorised sum
    s = P.dtype.type(0)
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            s += P[i, j]
    return s


def best_us(f, *args):
    f(*args)
    best = float("inf")
    for _ in range(9):
        start = time.perf_counter()
        for _ in range(2000):
            f(*args)
        best = min(best, (time.perf_counter() - start) / 2000)
    return round(best * 1e6, 2)


for dtype in ("float64", "float32"):
    for hidden in (100, 1024):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 1000)).astype(dtype)
        g = rng.standard_normal((1, hidden)).astype(dtype)
        W = rng.standard_normal((1000, hidden)).astype(dtype)
        lr, tiny = np.dtype(dtype).type(1e-3), np.dtype(dtype).type(1e-12)
        forward = {f.__name__: best_us(f, x, W) for f in (matmul, rows8)}
        want = _outer_update(W.copy(), x, g, lr)
        update = {f.__name__: (best_us(f, W.copy(), x, g, tiny),
                               "same" if np.array_equal(f(W.copy(), x, g, lr), want) else "differs")
                  for f in (_outer_update, flat, lr_times_g)}
        floors = {"scale": best_us(scale, W.copy(), np.dtype(dtype).type(1)), "read": best_us(read, W)}
        print(dtype, hidden, "forward", forward, "update", update, "floors", floors, flush=True)
