"""The maths of kernels/: analytic gradients against finite differences, flop count, purity."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kernels import PIECES, make_pieces, make_problem, make_step, step_flops


def loss_of(x, t, W, S):
    """The loss, written plainly for the check."""
    return float(np.sum((np.maximum(x @ W, 0) @ S - t) ** 2))


def central_differences(f, P, eps=1e-6):
    grad = np.zeros_like(P)
    for index in np.ndindex(P.shape):
        old = P[index]
        P[index] = old + eps
        up = f()
        P[index] = old - eps
        down = f()
        P[index] = old
        grad[index] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("shape", [(1, 4, 3, 2), (3, 7, 5, 2), (8, 6, 9, 4)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradients_equal_central_differences(shape, seed):
    p = make_problem(np.random.default_rng(seed), *shape, init="scaled")
    x, t, W, S = p["x"], p["t"], p["W"], p["S"]
    loss, grad_W, grad_S = make_step(np).gradients(x, t, W, S)
    assert float(loss) == pytest.approx(loss_of(x, t, W, S), rel=1e-12)
    fd_W = central_differences(lambda: loss_of(x, t, W, S), W)
    fd_S = central_differences(lambda: loss_of(x, t, W, S), S)
    # Random inputs keep u away from the relu's kink, so the loss is smooth here.
    scale = max(np.abs(fd_W).max(), np.abs(fd_S).max())
    np.testing.assert_allclose(grad_W, fd_W, rtol=1e-6, atol=1e-7 * scale)
    np.testing.assert_allclose(grad_S, fd_S, rtol=1e-6, atol=1e-7 * scale)


def test_gradient_is_zero_where_relu_is_off():
    p = make_problem(np.random.default_rng(3), 5, 4, 6, 2, init="scaled")
    p["W"][:, 2] = 0  # u[:, 2] == 0 exactly: no gradient flows through that unit
    _, grad_W, _ = make_step(np).gradients(p["x"], p["t"], p["W"], p["S"])
    assert np.all(grad_W[:, 2] == 0)
    assert np.any(grad_W[:, 1] != 0)


def test_train_step_is_sgd_on_the_gradients():
    p = make_problem(np.random.default_rng(4), 4, 5, 3, 2, init="normal")
    step = make_step(np)
    loss, grad_W, grad_S = step.gradients(p["x"], p["t"], p["W"], p["S"])
    W, S, loss2 = step.train_step(p["x"], p["t"], p["W"], p["S"], 1e-3)
    np.testing.assert_array_equal(W, p["W"] - 1e-3 * grad_W)
    np.testing.assert_array_equal(S, p["S"] - 1e-3 * grad_S)
    assert loss2 == loss  # the loss is the one before the update


def test_replaced_pieces_are_the_ones_the_step_calls():
    p = make_problem(np.random.default_rng(6), 3, 5, 4, 2, init="normal")
    args = (p["x"], p["t"], p["W"], p["S"], 1e-3)
    reference = make_pieces(np)
    calls = []

    def spy(name):
        def piece(*a):
            calls.append(name)
            return reference[name](*a)
        return piece

    # weight_update, unless replaced, is sgd_update of weight_gradient: replacements included.
    step = make_step(np, sgd_update=spy("sgd_update"), weight_gradient=spy("weight_gradient"))
    step.train_step(*args)
    assert calls == ["weight_gradient", "sgd_update"] * 2
    calls.clear()
    W, S, _ = make_step(np, weight_update=spy("weight_update"),
                        sgd_update=spy("sgd_update")).train_step(*args)
    assert calls == ["weight_update"] * 2  # one per layer; sgd_update is then never called
    want_W, want_S, _ = make_step(np).train_step(*args)
    np.testing.assert_array_equal(W, want_W)
    np.testing.assert_array_equal(S, want_S)


def test_flop_count_counts_the_five_matmuls():
    B, n_in, H, n_out = 7, 11, 13, 3
    matmuls = [(B, n_in, H), (B, H, n_out), (H, B, n_out), (B, n_out, H), (n_in, B, H)]
    assert step_flops(B, n_in, H, n_out) == sum(2 * m * k * n for m, k, n in matmuls)
    assert step_flops(64, 1000, 100, 10) == 2 * 64 * 100 * (2 * 1000 + 3 * 10)


def test_scaled_init_has_the_stated_variance():
    p = make_problem(np.random.default_rng(5), 2, 2000, 500, 400, init="scaled")
    assert np.var(p["W"]) == pytest.approx(2 / 2000, rel=0.02)
    assert np.var(p["S"]) == pytest.approx(1 / 500, rel=0.02)


def test_make_step_refuses_unknown_pieces():
    with pytest.raises(ValueError, match="unknown step pieces"):
        make_step(np, softmax=lambda y: y)
    assert set(make_pieces(np)) == set(PIECES)


def test_kernels_import_no_array_library():
    code = ("import sys, kernels, kernels.step, kernels.problem; "
            "bad = [m for m in ('numpy', 'numba', 'cupy', 'torch', 'jax', 'dask', "
            "'array_api_strict', 'array_api_compat') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_backends_import_with_numpy_alone():
    code = ("import sys, backends; backends.names(); "
            "print([m for m in ('numba', 'cupy', 'torch', 'jax', 'dask') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
