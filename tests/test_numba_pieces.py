"""backends/numba/pieces.py: the fused pieces against the reference ones, float32 typing, stable
cache keys."""
from __future__ import annotations

import numpy as np
import pytest

from kernels import make_pieces, make_step

from numba_common import (  # noqa: F401  (fixtures: pytest collects them from here)
    DTYPES, uses_numba, numba_backend, no_named_choice, close, other_library)


@uses_numba
def test_one_compiled_call_in_float32_throughout(numba_backend, pieces):
    """The step is one nopython function, and no value in it or its pieces is typed float64."""
    import numba

    from backends.numba import pieces as numba_pieces

    dispatcher = numba_backend.compiled_step(make_step, "matmul", "float32")
    assert isinstance(dispatcher, numba.core.dispatcher.Dispatcher)
    train_step = dispatcher.py_func
    backward = dict(zip(train_step.__code__.co_freevars,
                        (c.cell_contents for c in train_step.__closure__)))["backward"]
    assert isinstance(backward, numba.core.dispatcher.Dispatcher)
    x, W, S, t, u = _piece_inputs("float32")
    lr = np.float32(1e-3)
    calls = [(train_step, (x, t, W, S, lr)), (backward.py_func, (x, t, W, S)),
             (make_step(np, jit=numba_pieces.stable_njit, **pieces).gradients.py_func,
              (x, t, W, S)),
             (pieces["forward"].py_func, (x, W, S)),
             (pieces["loss_and_grad"].py_func, (x @ W @ S, t)),
             (pieces["relu_backward"].py_func, (u, u.copy())),
             (pieces["weight_update"].py_func, (W, x[:1], u[:1], lr)),
             (pieces["weight_update"].py_func, (W, x, u, lr)),
             (numba_pieces._pairwise_sum.py_func, (t[:, 0].copy(),))]
    for function, args in calls:
        # A fresh, uncached compilation: only it keeps the type of every variable.
        compiled = numba.njit(function)
        compiled(*args)
        (overload,) = compiled.overloads.values()
        types = {str(v) for v in overload.type_annotation.typemap.values()}
        types.add(str(overload.signature.return_type))
        wide = sorted(v for v in types if "float64" in v)
        assert not wide, f"{function.__qualname__} types {wide} in float32"


def _piece_inputs(dtype, batch_size=5, n_in=7, hidden=6, n_out=3, seed=4):
    rng = np.random.default_rng(seed)
    x, W, S, t = (rng.standard_normal(s).astype(dtype) for s in
                  ((batch_size, n_in), (n_in, hidden), (hidden, n_out), (batch_size, n_out)))
    W[:, 0] = 0  # u[:, 0] is exactly zero: the relu's edge case
    u = x @ W
    u[0, 1] = 0.0
    assert np.count_nonzero(u == 0) >= batch_size and np.any(u < 0) and np.any(u > 0)
    return x, W, S, t, u


@pytest.fixture
def pieces():
    from backends.numba import pieces

    return pieces.PIECES


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [(1, 7, 6, 3), (5, 7, 6, 3), (64, 100, 33, 10)],
                         ids=lambda s: "x".join(map(str, s)))
def test_forward_piece(pieces, dtype, sizes):
    x, W, S, _, _ = _piece_inputs(dtype, *sizes)
    got = pieces["forward"](x, W, S)
    want = make_pieces(np)["forward"](x, W, S)
    for g, w in zip(got, want):
        close(g, w, dtype)
    u, h, _ = got
    np.testing.assert_array_equal(h == 0, u <= 0)  # zeros exactly where the relu cuts


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [1, 5, 1023])
def test_loss_and_grad_piece(pieces, dtype, batch_size):
    rng = np.random.default_rng(5)
    y, t = (rng.standard_normal((batch_size, 10)).astype(dtype) for _ in range(2))
    y[0, 0] = t[0, 0]
    loss, grad_y = pieces["loss_and_grad"](y, t)
    want_loss, want_grad = make_pieces(np)["loss_and_grad"](y, t)
    close(np.asarray(loss, dtype=dtype), want_loss, dtype)
    assert grad_y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(grad_y, want_grad)


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_piece(pieces, dtype):
    _, _, _, _, u = _piece_inputs(dtype)
    grad_h = np.random.default_rng(6).standard_normal(u.shape).astype(dtype)
    u_before = u.copy()
    want = make_pieces(np)["relu_backward"](u, grad_h)
    got = pieces["relu_backward"](u, grad_h.copy())
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)
    assert np.all(got[u == 0] == 0)
    np.testing.assert_array_equal(u, u_before)


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_weight_gradient_piece(pieces, dtype, batch_size):
    _, _, _, _, u = _piece_inputs(dtype)  # relu zeros in the input, as h has them
    a = np.maximum(u[:batch_size], 0)
    grad_out = np.random.default_rng(8).standard_normal((batch_size, 4)).astype(dtype)
    got = pieces["weight_gradient"](a, grad_out)
    want = make_pieces(np)["weight_gradient"](a, grad_out)
    assert got.dtype == np.dtype(dtype) and got.shape == want.shape
    close(got, want, dtype)
    assert np.all(got[0] == 0)  # u[:, 0] == 0: no gradient through that unit, exactly


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_weight_update_piece(pieces, dtype, batch_size):
    _, _, _, _, u = _piece_inputs(dtype)
    a = np.maximum(u[:batch_size], 0)  # a[:, 0] == 0: that row of P must not move
    rng = np.random.default_rng(9)
    grad_out = rng.standard_normal((batch_size, 4)).astype(dtype)
    P = rng.standard_normal((a.shape[1], 4)).astype(dtype)
    lr = np.dtype(dtype).type(1e-2)
    P_before = P.copy()
    want = make_pieces(np)["weight_update"](P_before, a, grad_out, lr)
    got = pieces["weight_update"](P, a, grad_out, lr)
    assert np.shares_memory(got, P)  # written over P, as an optimiser updates in place
    assert got.dtype == np.dtype(dtype) and got.shape == P.shape
    close(got, want, dtype)
    np.testing.assert_array_equal(got[0], P_before[0])
    assert not np.array_equal(got, P_before)


@uses_numba
def test_cache_keys_follow_the_closure(pieces):
    """The same step built twice shares its key; a step over other pieces never does (numba #6093)."""
    from backends.numba.pieces import stable_njit

    first = make_step(np, jit=stable_njit, **pieces).train_step
    again = make_step(np, jit=stable_njit, **pieces).train_step
    reference_update = {k: v for k, v in pieces.items() if k != "weight_update"}
    other = make_step(np, jit=stable_njit, **reference_update).train_step
    assert first is not again
    assert first._uuid == again._uuid != other._uuid


@uses_numba
def test_a_gemm_has_one_compiled_piece_in_every_pair():
    """Pairs sharing a gemm share its pieces: two dispatchers of one code and closure got one
    uuid (stable_njit), which Numba keeps for one dispatcher only."""
    from backends.numba import cblas, pieces as numba_pieces

    other = other_library()
    gemm = {name: cblas.gemm_for(name, "float32") for name in (other, "scipy")}
    pairs = [(other, "scipy"), ("scipy", "scipy"), ("scipy", other), (other, other)]
    pieces = {pair: numba_pieces.blas_pieces(gemm[pair[0]], gemm[pair[1]]) for pair in pairs}
    for name, side in (("forward", 0), ("weight_gradient", 1), ("weight_update", 1)):
        for library in (other, "scipy"):
            shared = {id(pieces[pair][name]) for pair in pairs if pair[side] == library}
            assert len(shared) == 1, (name, library)
        assert pieces[(other, other)][name] is not pieces[("scipy", "scipy")][name]
    made = {id(p): p for pair in pairs for p in pieces[pair].values()}.values()
    assert len({p._uuid for p in made}) == len(made)  # no uuid on two dispatchers
