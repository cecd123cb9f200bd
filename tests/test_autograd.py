"""Independent gradient check: kernels' hand-derived gradients equal torch.autograd's, jax.grad's.

The loss is written here again, plainly, in each library: sum((relu(x @ W) @ S - t)^2).
The hand-derived gradients run through the same library's namespace (make_step(xp)), in
float64, on random problems (no exact zeros at the relu, where autograd's choice of
derivative is a convention).
"""
from __future__ import annotations

import numpy as np
import pytest

import backends
import helpers
from kernels import make_problem, make_step

SHAPES = [(1, 4, 3, 2), (3, 7, 5, 2), (16, 20, 10, 3), (64, 100, 30, 10)]
SEEDS = [0, 1, 2]
RTOL = 1e-10  # float64, relative to the largest gradient entry


def problem(shape, seed):
    return make_problem(np.random.default_rng(seed), *shape, init="normal")


def assert_close(hand, auto, what):
    helpers.assert_close(np.asarray(hand, dtype=np.float64), np.asarray(auto, dtype=np.float64),
                         RTOL, what=f"{what}: hand-derived vs autograd")


@pytest.mark.uses_backend("torch")
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_hand_gradients_equal_torch_autograd(shape, seed):
    import torch

    backend = backends.create("torch")
    p = {k: backend.asarray(v) for k, v in problem(shape, seed).items()}
    loss, grad_W, grad_S = make_step(backend.xp).gradients(p["x"], p["t"], p["W"], p["S"])

    W = p["W"].clone().requires_grad_(True)
    S = p["S"].clone().requires_grad_(True)
    auto_loss = ((torch.relu(p["x"] @ W) @ S - p["t"]) ** 2).sum()
    auto_loss.backward()

    assert grad_W.dtype == W.grad.dtype == torch.float64
    assert_close(loss.detach(), auto_loss.detach(), "loss")
    assert_close(grad_W, W.grad, "grad_W")
    assert_close(grad_S, S.grad, "grad_S")


@pytest.mark.uses_backend("jax")
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_hand_gradients_equal_jax_grad(shape, seed):
    import jax
    import jax.numpy as jnp

    backend = backends.create("jax")
    p = {k: backend.asarray(v) for k, v in problem(shape, seed).items()}  # float64 (x64 on)
    loss, grad_W, grad_S = make_step(backend.xp).gradients(p["x"], p["t"], p["W"], p["S"])

    def loss_of(W, S):
        return jnp.sum((jnp.maximum(p["x"] @ W, 0.0) @ S - p["t"]) ** 2)

    auto_loss, (auto_W, auto_S) = jax.value_and_grad(loss_of, argnums=(0, 1))(p["W"], p["S"])

    assert grad_W.dtype == auto_W.dtype == jnp.float64
    assert_close(loss, auto_loss, "loss")
    assert_close(grad_W, auto_W, "grad_W")
    assert_close(grad_S, auto_S, "grad_S")
