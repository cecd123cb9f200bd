"""Settings that several places must agree on: the grids, the learning rate, thread pinning.

Every command, asv suite, script and workflow reads these from here (scripts through
``mlpbench pin-threads``), so they cannot drift apart.
"""
from __future__ import annotations

from typing import Mapping

__all__ = ["DTYPES", "GRIDS", "KERNEL_VARIABLES", "N_IN", "N_OUT", "QUICK_BACKENDS", "SEED",
           "THREAD_VARIABLES", "TIMING", "grid", "learning_rate", "pin_this_process",
           "pinned_environment"]

DTYPES = ("float32", "float64")
#: The seed's input and output widths; bench and asv vary batch size and hidden width.
N_IN = 1000
N_OUT = 10
SEED = 0

#: The grids: ``full`` is bench's default and asv's; ``quick`` is ``bench --quick``, asv's
#: ``MLPBENCH_GRID=quick`` and the regression gate's. Batch 1 (streams the weights) and 64
#: (the seed's, BLAS-bound) at the seed's hidden width, both dtypes.
GRIDS = {
    "full": {"batch_size": [1, 16, 64, 256, 1024], "hidden": [16, 100, 1024],
             "dtype": list(DTYPES)},
    "quick": {"batch_size": [1, 64], "hidden": [100], "dtype": list(DTYPES)},
}

#: Timed blocks per grid: each block lasts at least ``min_time`` seconds, ``repeat`` of them.
TIMING = {"full": {"min_time": 0.2, "repeat": 5}, "quick": {"min_time": 0.05, "repeat": 3}}

#: --quick's backends when none is named: all but dask, whose 15-150 ms steps (tens of µs for
#: the others) would add about a fifth to a smoke run on 2 cores.
QUICK_BACKENDS = ("numpy", "array-api-strict", "numba", "cupy", "torch", "jax")

#: The variables that size the thread pools of the libraries the backends load, read when each
#: library starts its pool: set them (``pinned_environment``) before the library is imported.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")

#: The variables that choose a BLAS's kernels over its own pick (OpenBLAS's by CPU model, MKL's by
#: instruction set). Some machines set them to work around old builds; they can halve a product's
#: speed, so a run records them and its table names them (docs/numba-blas.md: measured).
KERNEL_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_ENABLE_INSTRUCTIONS",
                    "MKL_CBWR", "MKL_DEBUG_CPU_TYPE", "AOCL_ENABLE_INSTRUCTIONS", "BLIS_ARCH_TYPE",
                    "BLIS_MODEL_TYPE")


def grid(name: str) -> dict:
    """The grid called ``name`` (``full`` or ``quick``); ValueError naming the known ones."""
    if name not in GRIDS:
        raise ValueError(f"{name!r} is not a grid; known: {', '.join(GRIDS)}")
    return GRIDS[name]


def learning_rate(batch_size: int, n_in: int, hidden: int, n_out: int) -> float:
    """The rate of timed steps: small enough that no size diverges over a sweep's many steps.

    The loss is a sum over the batch, so its curvature grows with batch size and width; speed
    does not depend on the rate, only on the values staying finite (NaN changes speed on some
    CPUs).
    """
    return 1e-4 / (batch_size * (n_in + hidden + n_out))


def pinned_environment(threads: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: none) with every thread variable set to ``threads``."""
    env = dict(environ or {})
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


#: glibc's ``mallopt`` parameters for the allocator variables the gate sets (malloc.h).
_MALLOPT = {"MALLOC_TOP_PAD_": -2, "MALLOC_MMAP_THRESHOLD_": -3}


def pin_this_process(threads: int, allocator: tuple[tuple[str, str], ...]) -> dict[str, bool]:
    """Apply in the running process what the gate sets in its workers' environment.

    The thread variables go into ``os.environ`` (call this before any library starts its
    pool); the allocator's settings are applied with glibc's ``mallopt``, since glibc reads
    its variables only when a process starts, and also put in ``os.environ`` for child
    processes. Returns, per allocator variable, whether ``mallopt`` took it (False off glibc).
    """
    import ctypes
    import ctypes.util
    import os

    os.environ.update(pinned_environment(threads))
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        mallopt = None
    applied = {}
    for name, value in allocator:
        os.environ[name] = value
        param = _MALLOPT.get(name)
        applied[name] = bool(mallopt and param is not None and mallopt(param, int(value)) == 1)
    return applied

