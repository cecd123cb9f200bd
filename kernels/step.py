"""The training step: forward, squared loss, hand-derived gradients and the SGD update.

u = x @ W ; h = relu(u) ; y = h @ S ; loss = sum((y - t)^2)
grad_y = 2 (y - t) ; grad_S = h.T @ grad_y ; grad_h = grad_y @ S.T
grad_u = where(u > 0, grad_h, 0) ; grad_W = x.T @ grad_u
W -= lr grad_W ; S -= lr grad_S

The step is built by ``make_step(xp)`` as closures over the namespace, using ``@`` and
``.T`` only, so that Numba can compile it with plain numpy bound as ``xp``. Python
scalars are avoided (``d + d`` rather than ``2 * d``) because Numba would promote
float32 to float64; ``lr`` is passed in by the caller in the arrays' dtype.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

__all__ = ["PIECES", "Step", "compose_weight_update", "make_pieces", "make_step",
           "resolve_pieces"]

#: Named pieces of the step a backend may replace by a faster equivalent.
PIECES = ("forward", "loss_and_grad", "grad_h", "relu_backward", "weight_gradient",
          "sgd_update", "weight_update")


def make_pieces(xp: Any) -> dict[str, Callable]:
    """The reference pieces of the step, as closures over the namespace ``xp``."""

    def forward(x, W, S):
        u = x @ W
        h = xp.maximum(u, xp.zeros_like(u))
        y = h @ S
        return u, h, y

    def loss_and_grad(y, t):
        d = y - t
        return xp.sum(d * d), d + d

    def grad_h(grad_y, S):
        # A piece of its own so that a backend can put it where it wants (a CUDA graph
        # needs every product written to a buffer captured with it).
        return grad_y @ S.T

    def relu_backward(u, grad_h):
        return xp.where(u > 0, grad_h, xp.zeros_like(grad_h))

    def weight_gradient(a, grad_out):
        # A layer's weight gradient from its input and its output's gradient.
        return a.T @ grad_out

    def sgd_update(P, grad, lr):
        return P - lr * grad

    return {
        "forward": forward,
        "loss_and_grad": loss_and_grad,
        "grad_h": grad_h,
        "relu_backward": relu_backward,
        "weight_gradient": weight_gradient,
        "sgd_update": sgd_update,
        "weight_update": compose_weight_update(sgd_update, weight_gradient),
    }


def compose_weight_update(sgd_update: Callable, weight_gradient: Callable) -> Callable:
    """A layer's SGD update from its input and its output's gradient, from the two pieces.

    Replacing ``weight_update`` lets a backend update P without writing the gradient out.
    """

    def weight_update(P, a, grad_out, lr):
        return sgd_update(P, weight_gradient(a, grad_out), lr)

    return weight_update


class Step(NamedTuple):
    """The step's two entry points: gradients alone, and one SGD training step."""

    gradients: Callable  # (x, t, W, S) -> (loss, grad_W, grad_S)
    train_step: Callable  # (x, t, W, S, lr) -> (W, S, loss); loss is before the update


def _identity(f: Callable) -> Callable:
    return f


def resolve_pieces(xp: Any, *, jit: Callable = _identity, **replace: Callable) -> dict[str, Callable]:
    """The pieces ``make_step(xp, jit=jit, **replace)`` runs, by name.

    Every name of ``PIECES`` (a replacement as given, else the reference under ``jit``;
    ``weight_update`` is, unless replaced, ``sgd_update`` of ``weight_gradient`` with the
    pieces in use; ``grad_h`` is ``grad_y @ S.T``).
    """
    unknown = set(replace) - set(PIECES)
    if unknown:
        raise ValueError(f"unknown step pieces {sorted(unknown)!r}; known: {PIECES!r}")
    reference = make_pieces(xp)
    pieces = {name: replace.get(name) or jit(reference[name])
              for name in PIECES if name != "weight_update"}
    weight_gradient = pieces["weight_gradient"]
    sgd_update = pieces["sgd_update"]

    # The composition of this step's pieces, replaced or not.
    pieces["weight_update"] = (replace.get("weight_update")
                               or jit(compose_weight_update(sgd_update, weight_gradient)))
    return pieces


def make_step(xp: Any, *, jit: Callable = _identity, **replace: Callable) -> Step:
    """Build the step for namespace ``xp``.

    ``jit`` wraps each reference piece and the step functions (``numba.njit``, say).
    ``replace`` maps piece names from ``PIECES`` to faster equivalents, used as given;
    the sequence of the step stays the one written here (``resolve_pieces`` gives the
    pieces it runs).
    """
    pieces = resolve_pieces(xp, jit=jit, **replace)
    forward = pieces["forward"]
    loss_and_grad = pieces["loss_and_grad"]
    grad_h_of = pieces["grad_h"]
    relu_backward = pieces["relu_backward"]
    weight_gradient = pieces["weight_gradient"]
    weight_update = pieces["weight_update"]

    def backward(x, t, W, S):
        # The loss and the two layers' (input, output gradient) pairs.
        u, h, y = forward(x, W, S)
        loss, grad_y = loss_and_grad(y, t)
        grad_u = relu_backward(u, grad_h_of(grad_y, S))
        return loss, grad_u, h, grad_y

    backward = jit(backward)

    def gradients(x, t, W, S):
        loss, grad_u, h, grad_y = backward(x, t, W, S)
        return loss, weight_gradient(x, grad_u), weight_gradient(h, grad_y)

    def train_step(x, t, W, S, lr):
        loss, grad_u, h, grad_y = backward(x, t, W, S)
        return weight_update(W, x, grad_u, lr), weight_update(S, h, grad_y, lr), loss

    return Step(jit(gradients), jit(train_step))
