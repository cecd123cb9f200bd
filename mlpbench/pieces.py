"""Where a step's time goes: each named piece of the step timed alone on one step's arrays.

The pieces are those the backend's own step runs (``Backend.prepare_pieces``): a piece a
backend replaces or compiles is timed as replaced or compiled. Each is timed as the whole
step is (``mlpbench.measure``: a warm-up, then blocks of calls each ended by the backend's
``synchronize``), on the arrays of one training step: the data, W and S after two steps
of the pieces (so that a lazy backend's W and S are its step's own), and the intermediates
of the second. ``weight_update`` feeds its output back, as training does. The sum of the
pieces is set beside the whole step's time: a step compiled whole (jax) or fused may take
less than its pieces apart, a step whose pieces each pay a dispatch more.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kernels import make_step, resolve_pieces
from mlpbench import settings
from mlpbench.measure import measure_step, per_step, time_blocks, warm_up
from mlpbench.problem import make_inputs, to_backend

__all__ = ["TIMED", "format_pieces", "measure_pieces", "piece_runs"]

#: The timed pieces, in the step's order; weight_update is timed for W and for S.
TIMED = ("forward", "loss_and_grad", "grad_h", "relu_backward", "weight_update_W",
         "weight_update_S")


def piece_runs(pieces: dict[str, Callable], arrays: dict[str, Any],
               latest: dict[str, tuple] | None = None) -> dict[str, Callable]:
    """``run(n)`` for each name of ``TIMED``: n calls of that piece on one step's arrays.

    ``pieces`` is from ``Backend.prepare_pieces``; ``arrays`` (x, t, W, S, moved to the
    backend) are the caller's no longer: W and S may be written over. Each run leaves its
    last call's outputs in ``latest[name]`` (a tuple), for the backend's synchronize.
    """
    latest = {} if latest is None else latest
    x, t = arrays["x"], arrays["t"]
    weights = {"W": arrays["W"], "S": arrays["S"]}
    forward, loss_and_grad, grad_h_of, relu_backward, update = (
        pieces["forward"], pieces["loss_and_grad"], pieces["grad_h"], pieces["relu_backward"],
        pieces["weight_update"])

    def one_step() -> tuple:
        W, S = weights["W"], weights["S"]
        u, h, y = forward(x, W, S)
        _, grad_y = loss_and_grad(y, t)
        grad_h = grad_h_of(grad_y, S)
        grad_u = relu_backward(u, grad_h)
        weights["W"], weights["S"] = update(W, x, grad_u), update(S, h, grad_y)
        return u, h, y, grad_y, grad_h, grad_u

    one_step()
    u, h, y, grad_y, grad_h, grad_u = one_step()

    def repeat(name: str, call: Callable[[], Any]) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                out = call()
            latest[name] = out if isinstance(out, tuple) else (out,)
        return run

    def update_W() -> Any:
        weights["W"] = update(weights["W"], x, grad_u)
        return weights["W"]

    def update_S() -> Any:
        weights["S"] = update(weights["S"], h, grad_y)
        return weights["S"]

    return {
        "forward": repeat("forward", lambda: forward(x, weights["W"], weights["S"])),
        "loss_and_grad": repeat("loss_and_grad", lambda: loss_and_grad(y, t)),
        "grad_h": repeat("grad_h", lambda: grad_h_of(grad_y, weights["S"])),
        "relu_backward": repeat("relu_backward", lambda: relu_backward(u, grad_h)),
        "weight_update_W": repeat("weight_update_W", update_W),
        "weight_update_S": repeat("weight_update_S", update_S),
    }


def measure_pieces(backend: Any, batch_size: int, hidden: int, dtype: str, *,
                   n_in: int = settings.N_IN, n_out: int = settings.N_OUT,
                   threads: int | None = None, min_time: float = 0.05, repeat: int = 3,
                   seed: int = settings.SEED) -> dict:
    """Seconds per call of each piece (median, min, max over ``repeat`` blocks), their sum of
    medians, and the whole step's seconds, all on the same seeded data and threads."""
    sizes = (batch_size, n_in, hidden, n_out)
    lr = settings.learning_rate(*sizes)
    inputs = make_inputs(*sizes, dtype=dtype, seed=seed, init="scaled")
    with backend.threads(threads) as info, np.errstate(all="ignore"):
        pieces = backend.prepare_pieces(resolve_pieces, lr=lr, dtype=dtype)
        latest: dict[str, tuple] = {}
        runs = piece_runs(pieces, to_backend(backend, inputs), latest)
        times = {}
        for name in TIMED:
            def synchronize(name: str = name) -> None:
                backend.synchronize(*latest.get(name, ()))

            warm_up(runs[name], synchronize)
            blocks = time_blocks(runs[name], synchronize, min_time=min_time, repeat=repeat)
            times[name] = per_step(blocks.seconds, blocks.n)
        step = backend.prepare(make_step, lr=lr, dtype=dtype)
        whole = measure_step(backend, step, to_backend(backend, inputs), min_time=min_time,
                             repeat=repeat)
    total = sum(t["median"] for t in times.values())
    return {"backend": backend.name, "dtype": dtype, "batch_size": batch_size, "n_in": n_in,
            "hidden": hidden, "n_out": n_out, "threads": threads, "thread_info": info,
            "min_time": min_time, "repeat": repeat, "pieces": times, "pieces_sum_s": total,
            "step_s": whole.step_s, "sum_over_step": total / whole.step_s["median"]}


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:8.2f} {unit}"
    return f"{seconds / 1e-9:8.0f} ns"


def format_pieces(point: dict) -> str:
    """A table: piece, seconds per call, share of the whole step; then their sum and the step."""
    step = point["step_s"]["median"]
    title = (f"{point['backend']} {point['dtype']}: batch {point['batch_size']} x n_in "
             f"{point['n_in']} x hidden {point['hidden']} x n_out {point['n_out']}, threads "
             f"{point['threads'] if point['threads'] is not None else 'as set'}")
    lines = [title, f"{'piece':<18} {'time':>11} {'share of step':>14}"]
    for name, t in point["pieces"].items():
        lines.append(f"{name:<18} {_time(t['median'])} {t['median'] / step:>13.1%}")
    lines.append(f"{'sum of pieces':<18} {_time(point['pieces_sum_s'])} "
                 f"{point['sum_over_step']:>13.1%}")
    lines.append(f"{'whole step':<18} {_time(step)} {1:>13.1%}")
    return "\n".join(lines)
