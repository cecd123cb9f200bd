"""The problem a step runs on: seeded data and weights, its operation count and its size."""
from __future__ import annotations

import math
from typing import Any

__all__ = ["INITS", "array_elements", "make_problem", "problem_bytes", "step_flops"]

INITS = ("normal", "scaled")


def make_problem(rng: Any, batch_size: int, n_in: int, hidden: int, n_out: int,
                 *, init: str = "normal") -> dict[str, Any]:
    """Draw x, t, W, S from ``rng`` (anything with ``standard_normal(shape)``), in that order.

    ``init="normal"`` is the original loop's standard normal weights; ``"scaled"`` draws
    W ~ N(0, 2/n_in) and S ~ N(0, 1/hidden) so that large problems stay finite.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; known: {INITS!r}")
    x = rng.standard_normal((batch_size, n_in))
    t = rng.standard_normal((batch_size, n_out))
    W = rng.standard_normal((n_in, hidden))
    S = rng.standard_normal((hidden, n_out))
    if init == "scaled":
        W = W * math.sqrt(2.0 / n_in)
        S = S * math.sqrt(1.0 / hidden)
    return {"x": x, "t": t, "W": W, "S": S}


def step_flops(batch_size: int, n_in: int, hidden: int, n_out: int) -> int:
    """Floating-point operations of one step, matmuls only: 2·B·hidden·(2·n_in + 3·n_out)."""
    return 2 * batch_size * hidden * (2 * n_in + 3 * n_out)


def array_elements(batch_size: int, n_in: int, hidden: int, n_out: int) -> int:
    """Elements alive at the peak of one run: data, weights and a copy, activations, gradients."""
    data = batch_size * (n_in + n_out)
    weights = n_in * hidden + hidden * n_out
    activations = 4 * batch_size * hidden + 2 * batch_size * n_out  # u, h, grad_h, grad_u; y, grad_y
    return data + 4 * weights + activations  # weights: initial, current, gradient, updated


def problem_bytes(batch_size: int, n_in: int, hidden: int, n_out: int, itemsize: int) -> int:
    """Bytes a run needs at its peak, for arrays of ``itemsize`` bytes; the data is drawn in
    float64 (8 bytes) before the cast."""
    elements = array_elements(batch_size, n_in, hidden, n_out)
    drawn = batch_size * (n_in + n_out) + n_in * hidden + hidden * n_out
    return elements * itemsize + drawn * 8
