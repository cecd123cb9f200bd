import numpy as np, numba, time
@numba.njit
def outer_update(P, a, g, lr):
    for i in range(P.shape[0]):
        a_i = a[0, i]
        for j in range(P.shape[1]):
            P[i, j] = P[i, j] - lr * (a_i * g[0, j])
    return P
@numba.njit
def v_row(P, a, g, lr):
    g0 = g[0].copy()
    for i in range(P.shape[0]):
        a_i = a[0, i]
        row = P[i]
        for j in range(row.shape[0]):
            row[j] = row[j] - lr * (a_i * g0[j])
    return P
@numba.njit
def v_flat(P, a, g, lr):
    m = P.shape[1]
    g0 = g[0].copy()
    Pf = P.reshape(P.size)
    for i in range(P.shape[0]):
        a_i = a[0, i]
        base = i * m
        for j in range(m):
            Pf[base + j] = Pf[base + j] - lr * (a_i * g0[j])
    return P
@numba.njit
def v_lrg(P, a, g, lr):
    # g scaled once: lr*g_j then times a_i -> different rounding from numpy's lr*(a_i*g_j)
    m = P.shape[1]
    lg = g[0] * lr
    for i in range(P.shape[0]):
        a_i = a[0, i]
        for j in range(m):
            P[i, j] = P[i, j] - a_i * lg[j]
    return P
@numba.njit
def v_two_rows(P, a, g, lr):
    g0 = g[0].copy()
    n, m = P.shape
    i = 0
    while i + 2 <= n:
        a0 = a[0, i]; a1 = a[0, i + 1]
        r0 = P[i]; r1 = P[i + 1]
        for j in range(m):
            gj = g0[j]
            r0[j] = r0[j] - lr * (a0 * gj)
            r1[j] = r1[j] - lr * (a1 * gj)
        i += 2
    while i < n:
        a0 = a[0, i]; r0 = P[i]
        for j in range(m):
            r0[j] = r0[j] - lr * (a0 * g0[j])
        i += 1
    return P
@numba.njit
def scale(P, c):
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            P[i, j] = P[i, j] * c
    return P
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
        a = rng.standard_normal((1,1000)).astype(dt); g = rng.standard_normal((1,h)).astype(dt); P0 = rng.standard_normal((1000,h)).astype(dt)
        lr = np.dtype(dt).type(1e-3)
        ref = outer_update(P0.copy(), a, g, lr)
        out = {}
        for f in (outer_update, v_row, v_flat, v_lrg, v_two_rows):
            same = np.array_equal(f(P0.copy(), a, g, lr), ref)
            out[f.__name__] = (t(f, P0.copy(), a, g, np.dtype(dt).type(1e-12)), same)
        out['scale'] = t(scale, P0.copy(), np.dtype(dt).type(1.0))
        print(dt, h, out, flush=True)
