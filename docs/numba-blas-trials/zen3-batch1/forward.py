import numpy as np, numba, time
@numba.njit(cache=False)
def at(x, W):
    return x @ W
@numba.njit(cache=False, fastmath=False)
def rows4(x, W):
    n, m = W.shape
    u = np.zeros((1, m), W.dtype)
    k = 0
    while k + 4 <= n:
        a0, a1, a2, a3 = x[0, k], x[0, k+1], x[0, k+2], x[0, k+3]
        for j in range(m):
            u[0, j] += (a0 * W[k, j] + a1 * W[k+1, j]) + (a2 * W[k+2, j] + a3 * W[k+3, j])
        k += 4
    while k < n:
        a0 = x[0, k]
        for j in range(m):
            u[0, j] += a0 * W[k, j]
        k += 1
    return u
@numba.njit(cache=False)
def rows8(x, W):
    n, m = W.shape
    u = np.zeros((1, m), W.dtype)
    k = 0
    while k + 8 <= n:
        for j in range(m):
            u[0, j] += ((x[0,k]*W[k,j] + x[0,k+1]*W[k+1,j]) + (x[0,k+2]*W[k+2,j] + x[0,k+3]*W[k+3,j])) + ((x[0,k+4]*W[k+4,j] + x[0,k+5]*W[k+5,j]) + (x[0,k+6]*W[k+6,j] + x[0,k+7]*W[k+7,j]))
        k += 8
    while k < n:
        for j in range(m):
            u[0, j] += x[0, k] * W[k, j]
        k += 1
    return u
def t(f, *a):
    f(*a)
    best = 1e9
    for r in range(7):
        n = 2000; s = time.perf_counter()
        for i in range(n): f(*a)
        best = min(best, (time.perf_counter()-s)/n)
    return best*1e6
for dt in ('float64','float32'):
    for h in (100, 1024):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1,1000)).astype(dt); W = rng.standard_normal((1000,h)).astype(dt)
        ref = (x.astype(np.float64) @ W.astype(np.float64))
        res = {f.__name__: t(f, x, W) for f in (at, rows4, rows8)}
        err = {f.__name__: float(np.max(np.abs(f(x,W)-ref))/np.max(np.abs(ref))) for f in (at, rows4, rows8)}
        print(dt, h, {k: round(v,2) for k,v in res.items()}, {k: f"{v:.1e}" for k,v in err.items()})
