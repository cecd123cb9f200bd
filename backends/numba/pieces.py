"""Numba versions of the step's named pieces (kernels.step.PIECES), compiled once and cached on disk.

Each piece computes what its reference in ``kernels.make_pieces`` computes, in the
arrays' dtype (no Python scalars, so float32 stays float32), with the elementwise
work fused into one pass. Two pieces write over an argument: ``relu_backward`` over
``grad_h`` (a temporary the step never reads again) and ``weight_update`` over ``P``: the
step updates W and S in place, so the backend hands it only arrays it owns
(``backends.base.OwnOutputs``: the caller's first W and S are copied). ``sgd_update`` is
not replaced: the step's only use of it is inside ``weight_update``.

Loops are serial on purpose: the matmuls between them run in a threaded BLAS, and
Numba's parallel loops beside it oversubscribe the cores (docs/measuring.md).
This module imports numba at the top: import it only through ``backends.numba.backend``.
"""
from __future__ import annotations

import functools
import hashlib
import types
import uuid
from typing import Any, Callable

import numba
import numpy as np

__all__ = ["PIECES", "blas_pieces", "stable_njit"]

#: Options of every compiled function here and of the shared step around them.
JIT_OPTIONS = {"cache": True}


def _fingerprint(obj: Any) -> str:
    """A digest that is the same in every process for the same code and closure."""
    if isinstance(obj, numba.core.dispatcher.Dispatcher):
        return obj._uuid
    if callable(obj) and hasattr(obj, "__code__"):
        try:
            with open(obj.__code__.co_filename, "rb") as f:
                source = f.read()
        except OSError:  # made at a prompt or by exec: nothing stable to key on
            return uuid.uuid4().hex
        cells = tuple(_fingerprint(c.cell_contents) for c in obj.__closure__ or ())
        parts = (obj.__module__, obj.__qualname__, hashlib.sha256(source).hexdigest(), cells)
        return hashlib.sha256(repr(parts).encode()).hexdigest()
    if isinstance(obj, numba.core.types.Type):  # a Numba type is named by what it is
        return f"numba type {obj!r}"
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__}"
    if isinstance(obj, (int, float, str, bytes, bool, type(None))):
        return repr(obj)
    return uuid.uuid4().hex  # unknown content: never share a cache entry


def stable_njit(function: Callable) -> Callable:
    """``numba.njit(cache=True)`` whose on-disk cache also works for closures over other jitted functions.

    Numba keys a closure's cache entry on its pickled cell contents, and a dispatcher pickles
    with a random per-process UUID, so a closure calling another jitted function recompiles
    in every new process (numba issue #6264, open). Giving each dispatcher a UUID derived
    from its source file, name and closure makes that key the same in every process; any
    edit to the source changes it, so a stale entry is never used.
    """
    try:
        dispatcher = numba.njit(**JIT_OPTIONS)(function)
    except RuntimeError as exc:  # no folder where Numba may write its cache
        if "cannot cache function" not in str(exc):
            raise
        _cache_for_this_run_only()
        dispatcher = numba.njit(**JIT_OPTIONS)(function)
    set_uuid = getattr(dispatcher, "_set_uuid", None)  # private; without it, only the cache suffers
    if set_uuid is not None:
        name = f"mlpbench:{_fingerprint(function)}:{sorted(JIT_OPTIONS.items())}"
        set_uuid(str(uuid.uuid5(uuid.NAMESPACE_URL, name)))
    return dispatcher


def _cache_for_this_run_only() -> None:
    """Point Numba's cache at a temporary folder removed at exit, with one warning.

    ``cache=True`` fails when no cache folder can be written (NUMBA_CACHE_DIR, the source
    tree, HOME: a read-only checkout with an unwritable HOME).
    """
    import atexit
    import shutil
    import tempfile
    import warnings

    numba.config.CACHE_DIR = tempfile.mkdtemp(prefix="mlpbench-numba-cache-")
    atexit.register(shutil.rmtree, numba.config.CACHE_DIR, ignore_errors=True)
    warnings.warn("numba: no writable cache folder (NUMBA_CACHE_DIR, the source tree, HOME); "
                  "compiled code is cached for this run only (set NUMBA_CACHE_DIR to a writable "
                  "folder to keep it)", RuntimeWarning, stacklevel=3)


@stable_njit
def _pairwise_sum(values):
    """Sum of a 1-d array by pairwise halving, in its dtype (as numpy's sum, not a long running sum)."""
    n = values.shape[0]
    while n > 1:
        half = n // 2
        for i in range(half):
            values[i] += values[n - 1 - i]
        n -= half
    return values[0]


@stable_njit
def _relu(u):
    """maximum(u, 0) in one pass into a fresh array."""
    h = np.empty_like(u)
    zero = u.dtype.type(0)
    for i in range(u.shape[0]):
        for j in range(u.shape[1]):
            v = u[i, j]
            h[i, j] = zero if v <= zero else v  # as numpy's maximum: NaN stays NaN
    return h


@stable_njit
def forward(x, W, S):
    """u = x @ W ; h = relu(u) ; y = h @ S, the relu in one pass into a fresh h."""
    u = x @ W
    h = _relu(u)
    y = h @ S
    return u, h, y


@stable_njit
def loss_and_grad(y, t):
    """loss = sum((y - t)^2) and grad_y = 2 (y - t) in one pass over y and t."""
    grad_y = np.empty_like(y)
    row_loss = np.empty(y.shape[0], dtype=y.dtype)
    for i in range(y.shape[0]):
        acc = y.dtype.type(0)  # typed: a Python 0 would make the sum float64
        for j in range(y.shape[1]):
            d = y[i, j] - t[i, j]
            acc += d * d
            grad_y[i, j] = d + d
        row_loss[i] = acc
    return _pairwise_sum(row_loss), grad_y


@stable_njit
def relu_backward(u, grad_h):
    """where(u > 0, grad_h, 0), written over grad_h (a temporary of the step) and returned."""
    zero = grad_h.dtype.type(0)
    for i in range(u.shape[0]):
        for j in range(u.shape[1]):
            if not u[i, j] > zero:
                grad_h[i, j] = zero
    return grad_h


@stable_njit
def weight_gradient(a, grad_out):
    """a.T @ grad_out; for a batch of one, the outer product written in one pass.

    A rank-1 product through BLAS (gemm with k = 1) was 4-7x slower than this loop at
    n_in 1000 x hidden 1024 on a 2-core machine; from two rows on, BLAS is as fast or faster.
    """
    if a.shape[0] != 1:
        return a.T @ grad_out
    out = np.empty((a.shape[1], grad_out.shape[1]), dtype=a.dtype)
    for i in range(a.shape[1]):
        a_i = a[0, i]
        for j in range(grad_out.shape[1]):
            out[i, j] = a_i * grad_out[0, j]
    return out


@stable_njit
def _outer_update(P, a, grad_out, lr):
    """P - lr * outer(a[0], grad_out[0]), written over P: a batch of one's update in one pass."""
    for i in range(P.shape[0]):
        a_i = a[0, i]
        for j in range(P.shape[1]):
            P[i, j] = P[i, j] - lr * (a_i * grad_out[0, j])
    return P


@stable_njit
def weight_update(P, a, grad_out, lr):
    """P - lr * (a.T @ grad_out), written over P and returned.

    In place, as an optimiser updates its parameters: at a batch of one (the gradient is an
    outer product) this is one pass over P, each gradient element made where it is used;
    from two rows on, the BLAS product, then one pass over P.
    """
    if a.shape[0] != 1:
        grad = a.T @ grad_out
        for i in range(P.shape[0]):
            for j in range(P.shape[1]):
                P[i, j] = P[i, j] - lr * grad[i, j]
        return P
    return _outer_update(P, a, grad_out, lr)


def blas_pieces(gemm: Callable, update_gemm: Callable | None = None) -> dict[str, Callable]:
    """The products' pieces on ``gemm(alpha, a, trans_a, b, trans_b, beta, c)`` of a BLAS in one dtype.

    ``gemm`` computes the forward products, ``update_gemm`` (by default ``gemm``; another
    library's, where that one is faster there) the weight gradients and updates. The update
    is fused into its product as torch's ``addmm_`` does: ``P = -lr a.T @ grad_out + 1 P`` in
    one gemm over P, no gradient written out. A batch of one keeps the pieces of Numba's
    ``@`` and their loops: a one-row gemm made the step 1.9-3.4x slower (docs/numba-blas.md).
    Each piece is compiled once per gemm in a process, whatever pairs it joins.
    """
    update_gemm = gemm if update_gemm is None else update_gemm
    weight_gradient_, weight_update_ = _blas_updates(update_gemm)
    return {"forward": _blas_forward(gemm), "loss_and_grad": loss_and_grad,
            "relu_backward": relu_backward, "weight_gradient": weight_gradient_,
            "weight_update": weight_update_}


# Pieces made once per gemm: pairs sharing a gemm ((aocl, scipy), (scipy, scipy)) share
# them. stable_njit derives a dispatcher's uuid from its code and closure, and Numba expects
# one dispatcher per uuid (Dispatcher._memo, which unpickling reads).
@functools.lru_cache(maxsize=None)
def _blas_forward(gemm: Callable) -> Callable:
    def blas_forward(x, W, S):
        if x.shape[0] == 1:
            return forward(x, W, S)
        one, zero = x.dtype.type(1), x.dtype.type(0)
        u = gemm(one, x, False, W, False, zero, np.empty((x.shape[0], W.shape[1]), x.dtype))
        h = _relu(u)
        y = gemm(one, h, False, S, False, zero, np.empty((h.shape[0], S.shape[1]), h.dtype))
        return u, h, y

    return stable_njit(blas_forward)


@functools.lru_cache(maxsize=None)
def _blas_updates(gemm: Callable) -> tuple[Callable, Callable]:
    def blas_weight_gradient(a, grad_out):
        if a.shape[0] == 1:
            return weight_gradient(a, grad_out)
        one, zero = a.dtype.type(1), a.dtype.type(0)
        out = np.empty((a.shape[1], grad_out.shape[1]), a.dtype)
        return gemm(one, a, True, grad_out, False, zero, out)

    def weight_update(P, a, grad_out, lr):
        if a.shape[0] == 1:
            return _outer_update(P, a, grad_out, lr)
        return gemm(-lr, a, True, grad_out, False, P.dtype.type(1), P)

    return stable_njit(blas_weight_gradient), stable_njit(weight_update)


#: The replaced pieces, by name, for ``make_step(numpy, jit=stable_njit, **PIECES)``.
PIECES = {
    "forward": forward,
    "loss_and_grad": loss_and_grad,
    "relu_backward": relu_backward,
    "weight_gradient": weight_gradient,
    "weight_update": weight_update,
}
