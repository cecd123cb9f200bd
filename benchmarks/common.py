"""The grid asv measures and the base class of the step benchmarks (after SciPy's XPBenchmark).

Environment variables choose the grid at import, so asv's discovery and every benchmark
process agree on it:

- ``MLPBENCH_BACKENDS=numpy,numba``: the backends (default: every registered one; those that
  cannot run here are skipped);
- ``MLPBENCH_GRID=quick``: the small grid (default ``full``, the grid of ``mlpbench bench``).
"""
from __future__ import annotations

import os
import time
from typing import Any, Mapping

import backends
from kernels import make_step
from mlpbench import settings
from mlpbench.problem import make_inputs, to_backend

__all__ = ["GRIDS", "N_IN", "N_OUT", "Point", "StepBenchmark", "backend_names",
           "grid_name", "grid_params", "prepared_point", "require_backend"]

N_IN, N_OUT, SEED, GRIDS = settings.N_IN, settings.N_OUT, settings.SEED, settings.GRIDS


def grid_name(environ: Mapping[str, str] = os.environ) -> str:
    """``MLPBENCH_GRID``, ``full`` when unset; an unknown name is an error."""
    name = environ.get("MLPBENCH_GRID", "").strip() or "full"
    if name not in GRIDS:
        raise ValueError(f"MLPBENCH_GRID={name!r} is not a grid; known: {', '.join(GRIDS)}")
    return name


def backend_names(environ: Mapping[str, str] = os.environ) -> list[str]:
    """``MLPBENCH_BACKENDS`` as a list, every registered backend when unset, empty or ``all``.

    Unknown names are kept: their setup fails loudly, since a typo is not an unavailable backend.
    """
    text = environ.get("MLPBENCH_BACKENDS", "").strip()
    if not text or text == "all":
        return backends.names()
    return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def grid_params(environ: Mapping[str, str] = os.environ) -> list[list]:
    """asv ``params``: backend x batch size x hidden width x dtype."""
    grid = GRIDS[grid_name(environ)]
    return [backend_names(environ), grid["batch_size"], grid["hidden"], grid["dtype"]]


def require_backend(name: str) -> backends.Backend:
    """The backend ``name``; NotImplementedError (asv's skip) when it cannot run here."""
    try:
        # asv runs this suite against older commits too: before ab9b95a, backends.get.
        create = getattr(backends, "create", None) or backends.get
        backend = create(name)
    except ImportError as exc:  # its module or library is missing: unavailable, not broken
        raise NotImplementedError(f"backend {name!r} cannot be imported: {exc}") from None
    ok, why = backend.available()
    if not ok:
        raise NotImplementedError(f"backend {name!r} unavailable: {why}")
    return backend


class Point:
    """One point of the grid on one backend: data, parameters and the prepared step."""

    def __init__(self, backend: backends.Backend, batch_size: int, hidden: int, dtype: str):
        inputs = make_inputs(batch_size, N_IN, hidden, N_OUT, dtype=dtype, seed=SEED,
                             init="scaled")
        arrays = to_backend(backend, inputs)
        self.backend = backend
        self.x, self.t, self.W, self.S = arrays["x"], arrays["t"], arrays["W"], arrays["S"]
        self.step = backend.prepare(
            make_step, lr=settings.learning_rate(batch_size, N_IN, hidden, N_OUT), dtype=dtype)
        self.loss: Any = None
        started = time.perf_counter()
        self.train_step()  # the warm-up: a JIT compiles here, never inside a timed call
        self.synchronize()
        self.compile_s = time.perf_counter() - started

    def synchronize(self) -> None:
        """Wait for the latest step's outputs (before ab9b95a: synchronize() took none)."""
        try:
            self.backend.synchronize(self.W, self.S, self.loss)
        except TypeError:
            self.backend.synchronize()

    def train_step(self) -> None:
        """One step; its output feeds the next (real training: nothing can be cached away)."""
        self.W, self.S, self.loss = self.step(self.x, self.t, self.W, self.S)


# The last point set up in this process. asv_runner >= 0.3 reruns setup before every sample;
# keeping the point makes that cheap (no new data, no recompile) and lets W, S go on training.
_points: dict[tuple, Point] = {}


def prepared_point(backend: backends.Backend, batch_size: int, hidden: int, dtype: str) -> Point:
    """The point for these parameters, made (and warmed up) once per process."""
    key = (backend.name, batch_size, hidden, dtype)
    if key not in _points:
        _points.clear()
        _points[key] = Point(backend, batch_size, hidden, dtype)
    return _points[key]


class StepBenchmark:
    """Base of the step benchmarks: the backend is the first parameter; setup skips the
    backends that cannot run here, builds the data and warms up outside the timed region."""

    param_names = ["backend", "batch_size", "hidden", "dtype"]
    params = grid_params()
    timeout = 300.0  # seconds for one point, setup (and a JIT compile) included

    def setup(self, backend: str, batch_size: int, hidden: int, dtype: str) -> None:
        self.backend = require_backend(backend)
        self.point = prepared_point(self.backend, batch_size, hidden, dtype)
