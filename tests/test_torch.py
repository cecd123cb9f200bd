"""The torch backend: numpy's results through array-api-compat, no autograd, dtypes and threads."""
from __future__ import annotations

import numpy as np
import pytest

import backends
from helpers import assert_close
from kernels import make_pieces, make_step
from mlpbench.problem import make_inputs, to_backend

pytestmark = pytest.mark.uses_backend("torch")


@pytest.fixture
def torch_backend():
    return backends.create("torch")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tensors_keep_dtype_and_device(torch_backend, dtype):
    import torch

    dev = to_backend(torch_backend, make_inputs(4, 6, 5, 3, dtype=dtype, seed=0))
    W, S, loss = torch_backend.prepare(make_step, lr=1e-3, dtype=dtype)(
        dev["x"], dev["t"], dev["W"], dev["S"])
    expected = getattr(torch, dtype)
    assert all(isinstance(a, torch.Tensor) for a in (W, S, loss))
    assert (W.dtype, S.dtype, loss.dtype) == (expected,) * 3
    assert loss.ndim == 0
    assert str(W.device).startswith(torch_backend.device.split(":")[0])


def test_step_records_no_autograd(torch_backend):
    """Even weights that ask for gradients come out of the step without an autograd graph."""
    dev = to_backend(torch_backend, make_inputs(4, 6, 5, 3, dtype="float64", seed=0))
    W0, S0 = dev["W"].requires_grad_(True), dev["S"].requires_grad_(True)
    W, S, loss = torch_backend.prepare(make_step, lr=1e-3, dtype="float64")(
        dev["x"], dev["t"], W0, S0)
    for out in (W, S, loss):
        assert not out.requires_grad and out.grad_fn is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [1, 5])
def test_weight_update_piece_writes_over_P(torch_backend, dtype, batch_size):
    import torch

    from backends.torch_backend import weight_update

    rng = np.random.default_rng(10)
    a = np.maximum(rng.standard_normal((batch_size, 7)), 0).astype(dtype)
    a[:, 0] = 0  # that row of P must not move
    grad_out, P = (rng.standard_normal(s).astype(dtype) for s in ((batch_size, 4), (7, 4)))
    want = make_pieces(np)["weight_update"](P, a, grad_out, np.dtype(dtype).type(1e-2))
    P_t = torch.asarray(P.copy())
    got = weight_update(P_t, torch.asarray(a), torch.asarray(grad_out), 1e-2)
    assert got is P_t and got.dtype == getattr(torch, dtype)
    assert_close(got.numpy(), want, 1e-6 if dtype == "float32" else 1e-14, what="P")
    np.testing.assert_array_equal(got.numpy()[0], P[0])


def test_asarray_copies(torch_backend):
    a = np.arange(6.0).reshape(2, 3)
    tensor = torch_backend.asarray(a)
    a[0, 0] = 99.0
    assert torch_backend.to_numpy(tensor)[0, 0] == 0.0


def test_device_and_gpu_info(torch_backend):
    import torch

    if torch.cuda.is_available():
        assert torch_backend.device == "cuda:0"
        assert set(torch_backend.gpu_info()) == {"name", "driver", "cuda"}
    else:
        assert torch_backend.device == "cpu"
        assert torch_backend.gpu_info() is None
