"""Checking a backend against numpy: the same problem, k steps, errors relative to the reference."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

import backends
from kernels import make_step
from mlpbench.problem import make_inputs, to_backend

__all__ = ["CHECK_SHAPES", "CHECK_STEPS", "Comparison", "TOLERANCES", "compare", "run_steps",
           "tolerance"]

# rtol by (dtype, steps), as in docs/design.md; atol = rtol * max|reference|.
TOLERANCES = {("float64", 1): 1e-10, ("float64", 50): 1e-8,
              ("float32", 1): 1e-4, ("float32", 50): 2e-3}
CHECK_STEPS = (1, 50)
# (batch, n_in, hidden, n_out): batch 1, odd sizes, the seed's sizes.
CHECK_SHAPES = ((1, 16, 8, 3), (3, 7, 5, 2), (64, 1000, 100, 10))
CHECK_LR = 1e-4


def tolerance(dtype: str, steps: int) -> float:
    """The rtol for ``steps`` steps: the 1-step value for one step, the 50-step value beyond."""
    return TOLERANCES[(dtype, 1 if steps <= 1 else 50)]


def run_steps(backend: backends.Backend, inputs: dict[str, np.ndarray], steps: int, *,
              lr: float, dtype: str) -> dict[str, np.ndarray]:
    """Run ``steps`` training steps on ``backend``; return W, S and the losses as numpy arrays."""
    dev = to_backend(backend, inputs)
    step = backend.prepare(make_step, lr=lr, dtype=dtype)
    W, S = dev["W"], dev["S"]
    losses = []
    for _ in range(steps):
        W, S, loss = step(dev["x"], dev["t"], W, S)
        losses.append(loss)
    backend.synchronize(W, S, *losses)
    return {"W": backend.to_numpy(W), "S": backend.to_numpy(S),
            "loss": np.array([float(backend.to_numpy(v)) for v in losses])}


class Comparison(NamedTuple):
    """Largest error of each output, relative to max|reference|, against the tolerance."""

    errors: dict[str, float]
    rtol: float
    dtypes_ok: bool

    @property
    def ok(self) -> bool:
        return self.dtypes_ok and all(e <= self.rtol for e in self.errors.values())


def relative_error(value: np.ndarray, reference: np.ndarray) -> float:
    """max|value - reference| / max|reference| (inf on shape mismatch or non-finite values)."""
    value, reference = np.asarray(value, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if value.shape != reference.shape or not np.all(np.isfinite(value)):
        return float("inf")
    scale = float(np.max(np.abs(reference))) or 1.0
    return float(np.max(np.abs(value - reference))) / scale


def compare(result: dict[str, Any], reference: dict[str, Any], *, dtype: str,
            steps: int) -> Comparison:
    """Compare W, S and the losses of ``result`` to ``reference``; W and S must keep ``dtype``."""
    errors = {k: relative_error(result[k], reference[k]) for k in ("loss", "W", "S")}
    dtypes_ok = all(np.asarray(result[k]).dtype == np.dtype(dtype) for k in ("W", "S"))
    return Comparison(errors, tolerance(dtype, steps), dtypes_ok)


def check_backend(backend: backends.Backend, shape: tuple[int, int, int, int], *, dtype: str,
                  steps: int, seed: int = 0, lr: float = CHECK_LR) -> Comparison:
    """Run ``backend`` and numpy on the same problem (exact zeros at the relu) and compare."""
    inputs = make_inputs(*shape, dtype=dtype, seed=seed, init="scaled", relu_zeros=True)
    reference = run_steps(backends.create(backends.REFERENCE), inputs, steps, lr=lr, dtype=dtype)
    result = run_steps(backend, inputs, steps, lr=lr, dtype=dtype)
    return compare(result, reference, dtype=dtype, steps=steps)
