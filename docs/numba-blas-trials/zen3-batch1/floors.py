import numpy as np, numba, time
@numba.njit
def outer_update(P, a, g, lr):
    for i in range(P.shape[0]):
        a_i = a[0, i]
        for j in range(P.shape[1]):
            P[i, j] = P[i, j] - lr * (a_i * g[0, j])
    return P
@numba.njit
def outer_update_fma(P, a, g, lr):
    for i in range(P.shape[0]):
        c = -lr * a[0, i]
        for j in range(P.shape[1]):
            P[i, j] += c * g[0, j]
    return P
@numba.njit(fastmath={'contract'})
def outer_update_contract(P, a, g, lr):
    for i in range(P.shape[0]):
        a_i = a[0, i]
        for j in range(P.shape[1]):
            P[i, j] = P[i, j] - lr * (a_i * g[0, j])
    return P
@numba.njit
def scale(P, c):
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            P[i, j] = P[i, j] * c
    return P
@numba.njit
def read_only(P):
    s = P.dtype.type(0)
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            s += P[i, j]
    return s
@numba.njit(fastmath=True)
def read_fast(P):
    s = P.dtype.type(0)
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            s += P[i, j]
    return s
@numba.njit
def at(x, W):
    return x @ W
def t(f, *a):
    f(*a); best = 1e9
    for r in range(9):
        n = 3000; s = time.perf_counter()
        for i in range(n): f(*a)
        best = min(best, (time.perf_counter()-s)/n)
    return round(best*1e6, 2)
for dt in ('float64','float32'):
    for h in (100, 1024):
        rng = np.random.default_rng(0)
        a = rng.standard_normal((1,1000)).astype(dt); g = rng.standard_normal((1,h)).astype(dt); P = rng.standard_normal((1000,h)).astype(dt)
        lr = np.dtype(dt).type(1e-12); c = np.dtype(dt).type(1.0)
        print(dt, h, 'outer', t(outer_update, P, a, g, lr), 'fma', t(outer_update_fma, P, a, g, lr), 'contract', t(outer_update_contract, P, a, g, lr),
              'scale', t(scale, P, c), 'read', t(read_only, P), 'readfast', t(read_fast, P), 'x@W', t(at, a, P), flush=True)
