"""Making a problem for a run: sizes checked against memory, seeded numpy data, moved to a backend."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from kernels import make_problem, problem_bytes
from mlpbench.errors import UsageError

__all__ = ["check_memory", "make_inputs", "memory_available", "to_backend"]


def memory_available() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_memory(batch_size: int, n_in: int, hidden: int, n_out: int, dtype: str) -> int:
    """Raise UsageError before allocating anything if the problem cannot fit in memory."""
    need = problem_bytes(batch_size, n_in, hidden, n_out, np.dtype(dtype).itemsize)
    have = memory_available()
    if have is not None and need > have:
        raise UsageError(
            f"batch {batch_size} x n_in {n_in} x hidden {hidden} x n_out {n_out} in {dtype} needs "
            f"about {need:,} bytes ({_gib(need)}) but only {have:,} bytes ({_gib(have)}) are "
            f"available; use smaller sizes")
    return need


def make_inputs(batch_size: int, n_in: int, hidden: int, n_out: int, *, dtype: str,
                seed: int, init: str = "scaled", relu_zeros: bool = False) -> dict[str, Any]:
    """Seeded numpy arrays x, t, W, S in ``dtype``; the same seed gives the same arrays everywhere.

    ``relu_zeros`` zeroes the first column of W, so that u has exact zeros at the relu on
    every step (that column's gradient is masked to zero, so it stays zero).
    """
    arrays = make_problem(np.random.default_rng(seed), batch_size, n_in, hidden, n_out, init=init)
    arrays = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in arrays.items()}
    if relu_zeros and hidden > 1:
        arrays["W"][:, 0] = 0
    return arrays


def to_backend(backend: Any, arrays: dict[str, Any]) -> dict[str, Any]:
    """The same arrays, moved to ``backend``."""
    return {name: backend.asarray(a) for name, a in arrays.items()}
