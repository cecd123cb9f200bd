"""Timing one point: warm-up, calibrated blocks ended by synchronize, and the matmul peak.

The core, ``time_blocks(run, synchronize, ...)``, knows nothing of the step: ``run(n)`` does
n iterations of anything. ``StepChain`` is a prepared training step as such a ``run`` (each
step's W and S feed the next); ``measure_step`` times one, ``peak_matmul_gflops`` a chain of
square matmuls. The gate's worker times its samples with ``StepChain`` and ``timed`` too
(loading this file by path: it imports nothing but the standard library at its top).

Time limits are not kept here: ``mlpbench.sweep`` runs each point in a worker process and
kills it past its limit, which also stops a native call that never returns.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable, NamedTuple

__all__ = ["Blocks", "Measurement", "StepChain", "calibrate", "measure_step",
           "peak_matmul_gflops", "per_step", "time_blocks", "timed", "warm_up"]

Clock = Callable[[], float]


def warm_up(run: Callable[[int], Any], synchronize: Callable[[], None], *,
            clock: Clock = time.perf_counter) -> float:
    """One iteration, synchronised; its seconds (where a JIT compiles): reported, never timed."""
    start = clock()
    run(1)
    synchronize()
    return clock() - start


def timed(run: Callable[[int], Any], synchronize: Callable[[], None], n: int,
          clock: Clock = time.perf_counter, device_timer: Any = None) -> tuple[float, float | None]:
    """(wall seconds, device seconds or None) of n iterations; synchronize is inside the timing."""
    start = clock()
    if device_timer is not None:
        device_timer.start()
    run(n)
    device_s = device_timer.stop() if device_timer is not None else None
    synchronize()
    return clock() - start, device_s


def calibrate(run: Callable[[int], Any], synchronize: Callable[[], None], *, min_time: float,
              clock: Clock = time.perf_counter) -> int:
    """The number of iterations that makes one block last at least ``min_time``."""
    n = 1
    while True:
        elapsed, _ = timed(run, synchronize, n, clock)
        if elapsed >= min_time:
            return n
        # Aim 10% past min_time; grow at least 2x, and at most 10x so that one fast first
        # block (a step's time varies on a busy machine) cannot make a block far too long.
        factor = 10.0 if elapsed <= 0 else min_time * 1.1 / elapsed
        n = max(n * 2, math.ceil(n * min(factor, 10.0)))


class Blocks(NamedTuple):
    """Timed blocks: n iterations each, their wall seconds, and device seconds where measured."""

    n: int
    seconds: list[float]
    device_seconds: list[float] | None


def time_blocks(run: Callable[[int], Any], synchronize: Callable[[], None], *, min_time: float,
                repeat: int, device_timer: Any = None,
                clock: Clock = time.perf_counter) -> Blocks:
    """Calibrate n, then time ``repeat`` blocks of n iterations.

    Call ``warm_up`` first. Each block ends with ``synchronize()`` inside its timed region;
    ``device_timer`` (``Backend.device_timer()``)
    also times each block on the device.
    """
    n = calibrate(run, synchronize, min_time=min_time, clock=clock)
    seconds, device_seconds = [], []
    for _ in range(repeat):
        wall, device = timed(run, synchronize, n, clock, device_timer)
        seconds.append(wall)
        device_seconds.append(device)
    return Blocks(n, seconds, device_seconds if device_timer is not None else None)


def per_step(seconds: list[float], n: int) -> dict[str, float]:
    """Seconds per iteration over blocks of n: median, min and max."""
    each = [s / n for s in seconds]
    return {"median": statistics.median(each), "min": min(each), "max": max(each)}


class StepChain:
    """A prepared step as ``run(n)``: n steps back to back, each step's W and S feeding the
    next, as in training; ``synchronize()`` waits for the last step's outputs.

    ``sync(W, S, loss)`` is the backend's synchronize on those outputs.
    """

    def __init__(self, step: Callable, arrays: dict[str, Any],
                 sync: Callable[..., Any]) -> None:
        self.step, self.sync = step, sync
        self.x, self.t, self.W, self.S = arrays["x"], arrays["t"], arrays["W"], arrays["S"]
        self.loss: Any = None

    def run(self, n: int) -> None:
        step, x, t, W, S, loss = self.step, self.x, self.t, self.W, self.S, self.loss
        for _ in range(n):
            W, S, loss = step(x, t, W, S)
        self.W, self.S, self.loss = W, S, loss

    def synchronize(self) -> None:
        self.sync(self.W, self.S, self.loss)


class Measurement(NamedTuple):
    """What timing one prepared step gave."""

    compile_s: float
    steps_per_block: int
    block_s: list[float]
    final_loss: float
    device_block_s: list[float] | None = None
    #: Why the run diverged (its loss or weights not finite, ``mlpbench.divergence``), or None.
    divergence: str | None = None

    @property
    def step_s(self) -> dict[str, float]:
        """Wall seconds per step over the blocks: median, min and max."""
        return per_step(self.block_s, self.steps_per_block)


def measure_step(backend: Any, step: Callable, arrays: dict[str, Any], *, min_time: float = 0.2,
                 repeat: int = 5,
                 clock: Clock = time.perf_counter) -> Measurement:
    """Warm up and time ``step`` (from ``backend.prepare``) on ``arrays`` (x, t, W, S, moved in).

    Each step's W and S feed the next, as in training. The loss and the weights of the last
    step are read (``backend.to_numpy``) after timing, outside the timed region.
    """
    from mlpbench.divergence import divergence

    chain = StepChain(step, arrays, backend.synchronize)
    compile_s = warm_up(chain.run, chain.synchronize, clock=clock)
    blocks = time_blocks(chain.run, chain.synchronize, min_time=min_time, repeat=repeat,
                         device_timer=backend.device_timer(), clock=clock)
    final_loss = float(backend.to_numpy(chain.loss))
    diverged = divergence(final_loss, W=backend.to_numpy(chain.W), S=backend.to_numpy(chain.S))
    return Measurement(compile_s, blocks.n, blocks.seconds, final_loss, blocks.device_seconds,
                       diverged)


def _orthogonal(n: int, dtype: str, seed: int) -> Any:
    """A dense orthogonal matrix (a Householder reflection): chained products keep their size."""
    import numpy as np

    v = np.random.default_rng(seed).standard_normal(n)
    return (np.eye(n) - (2.0 / (v @ v)) * np.outer(v, v)).astype(dtype)


def _matmul_chain(backend: Any, n: int, dtype: str, seed: int) -> tuple[Callable, Callable]:
    """run(k): c = a @ b @ ... @ b, k products, through ``backend.xp``; and a synchronize that waits.

    Every block starts again from ``a``: a lazy backend's chain then holds only this block's
    products (carrying c over would recompute all earlier blocks at each read).
    """
    import numpy as np

    a = backend.asarray(np.random.default_rng(seed).standard_normal((n, n)).astype(dtype))
    b = backend.asarray(_orthogonal(n, dtype, seed + 1))
    state = {"c": a}

    def run(k: int) -> None:
        c = a
        for _ in range(k):
            c = c @ b
        state["c"] = c

    def synchronize() -> None:
        backend.synchronize(state["c"])
        backend.to_numpy(backend.xp.sum(state["c"]))  # a lazy backend computes here

    return run, synchronize


def peak_matmul_gflops(backend: Any, dtype: str, *, min_time: float = 0.2, repeat: int = 5,
                       sizes: tuple[int, ...] = (1024, 2048, 4096, 8192),
                       max_product_s: float | None = None, seed: int = 0,
                       clock: Clock = time.perf_counter) -> dict[str, float]:
    """This machine's matmul throughput for ``backend`` and ``dtype``: {"gflops", "n"}.

    Square n x n matmuls chained through ``backend.xp`` (c = c @ b from c = a, b orthogonal
    so values stay finite). n grows while the rate still rises by 10% and the next size's product
    (8x the work) would take under ``max_product_s`` (default ``min_time``). Each block
    ends with ``synchronize()`` and the read of one scalar (``sum(c)``), so that lazy
    backends compute too. The best block gives the peak.
    """
    max_product_s = min_time if max_product_s is None else max_product_s
    best = 0.0
    for n in sizes:
        run, synchronize = _matmul_chain(backend, n, dtype, seed)
        warm_up(run, synchronize, clock=clock)
        one = timed(run, synchronize, 1, clock)[0]
        rate = 2.0 * n**3 / max(one, 1e-9)
        if rate < 1.1 * best or 8 * one > max_product_s:
            break
        best = rate
    blocks = time_blocks(run, synchronize, min_time=min_time, repeat=repeat,
                         clock=clock)
    return {"gflops": 2.0 * n**3 * blocks.n / min(blocks.seconds) / 1e9, "n": n}
