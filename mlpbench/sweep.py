"""The sweep engine: points planned and shuffled, measured in worker processes, saved as they come.

The parent process owns the sweep (order, results file, resume, progress); each backend's
points are measured in a worker of its own (``mlpbench.worker``), which imports only that
backend's library, with the thread variables set before any library starts its pools.
``isolate="backend"`` keeps one worker per backend for the whole sweep; ``"point"`` starts a
fresh one for every peak and point. A worker that dies makes its point ``error`` (naming how
it died); one that runs past ``timeout`` is killed and its point is ``timeout``; either way
the sweep goes on with a fresh worker.
"""
from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from mlpbench import settings
from mlpbench.results import make_result, point_key
from mlpbench.workers import WorkerError, WorkerProcess, WorkerTimeout

__all__ = ["ISOLATION", "Options", "Sweep", "pending", "plan_points", "run_points"]

ISOLATION = ("backend", "point")
#: Seconds a worker may take to start (import its library) on top of a point's --timeout.
START_TIMEOUT = 120.0


@dataclass(frozen=True)
class Options:
    """How each point is measured."""

    threads: int | None
    min_time: float
    repeat: int
    timeout: float | None
    seed: int
    allow_tf32: bool = False
    isolate: str = "backend"


def plan_points(backend_names: list[str], dtypes: list[str], batch_sizes: list[int],
                hiddens: list[int], n_in: int, n_out: int, seed: int) -> list[dict]:
    """Every point of the grid once, in an order shuffled by ``seed``."""
    points = [{"backend": b, "dtype": d, "batch_size": B, "n_in": n_in, "hidden": H, "n_out": n_out}
              for b in backend_names for d in dtypes for B in batch_sizes for H in hiddens]
    random.Random(seed).shuffle(points)
    return points


def pending(points: Iterable[dict], done: Iterable[dict], threads: dict[str, int | None]) -> list[dict]:
    """The points not yet among the ``done`` results (keyed with each backend's threads)."""
    keys = {point_key(r) for r in done}
    return [p for p in points if point_key({**p, "threads": threads[p["backend"]]}) not in keys]


def _worker_environment(threads: int | None) -> dict[str, str] | None:
    import os

    if threads is None:
        return None
    return settings.pinned_environment(threads, os.environ)


class Sweep:
    """Worker processes for a sweep's backends; use as a context manager (workers are killed
    on leaving, Ctrl-C included)."""

    def __init__(self, options: Options, *, python: str = sys.executable) -> None:
        if options.isolate not in ISOLATION:
            raise ValueError(f"isolate must be one of {ISOLATION}, got {options.isolate!r}")
        self.options = options
        self.python = python
        self.facts: dict[str, dict] = {}
        self._workers: dict[str, WorkerProcess] = {}

    def __enter__(self) -> "Sweep":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for name in list(self._workers):
            self._retire(name)

    def _retire(self, name: str) -> None:
        worker = self._workers.pop(name, None)
        if worker is not None:
            worker.close()

    def _worker(self, name: str) -> WorkerProcess:
        """The live worker of backend ``name``, started (and asked for its facts) if need be."""
        worker = self._workers.get(name)
        if worker is not None and worker.alive:
            return worker
        worker = WorkerProcess([self.python, "-m", "mlpbench.worker"],
                               env=_worker_environment(self.options.threads))
        self._workers[name] = worker
        try:
            reply = worker.request({"op": "start", "backend": name,
                                    "threads": self.options.threads,
                                    "allow_tf32": self.options.allow_tf32},
                                   timeout=START_TIMEOUT)
        except WorkerError:
            self._retire(name)
            raise
        if "error" in reply:
            self._retire(name)
            raise WorkerError(f"backend {name!r} could not start in its worker: {reply['error']}")
        self.facts[name] = reply
        return worker

    def start(self, name: str) -> dict:
        """Start backend ``name``'s worker; its facts (threads, device, version, pid)."""
        self._worker(name)
        if self.options.isolate == "point":
            self._retire(name)
        return self.facts[name]

    def _ask(self, name: str, message: dict) -> dict:
        worker = self._worker(name)
        try:
            return worker.request(message, timeout=self.options.timeout)
        except WorkerError:
            self._retire(name)
            raise
        finally:
            if self.options.isolate == "point":
                self._retire(name)

    def peak(self, name: str, dtype: str) -> float:
        """The matmul peak (GFLOP/s) of ``name`` at ``dtype``; WorkerError when it fails."""
        o = self.options
        reply = self._ask(name, {"op": "peak", "dtype": dtype, "min_time": o.min_time,
                                 "repeat": o.repeat})
        if "error" in reply:
            raise WorkerError(reply["error"])
        return reply["gflops"]

    def point(self, point: dict, peak_gflops: float | None) -> dict:
        """One point's result, whatever happened to its worker."""
        o, name = self.options, point["backend"]
        message = {"op": "point", "point": point, "min_time": o.min_time, "repeat": o.repeat,
                   "seed": o.seed, "peak_gflops": peak_gflops}
        try:
            reply = self._ask(name, message)
        except WorkerTimeout as exc:
            return self._failed(point, "timeout", f"ran past the --timeout of {o.timeout:g} s "
                                                  f"({exc})")
        except WorkerError as exc:  # died (how is in the message), or could not start
            return self._failed(point, "error", str(exc))
        if "error" in reply:
            return self._failed(point, "error", reply["error"])
        return reply["result"]

    def _failed(self, point: dict, status: str, error: str) -> dict:
        facts = self.facts.get(point["backend"], {})
        threads = self.options.threads
        if threads is None:
            threads = facts.get("threads")
        return make_result(point, threads=threads, status=status, error=error, seed=self.options.seed,
                           thread_info=facts.get("thread_info"), min_time=self.options.min_time)


def run_points(sweep: Sweep, todo: list[dict], peaks: dict, on_result: Callable[[dict], bool],
               describe: Callable[[str], None] = lambda text: None) -> bool:
    """Measure ``todo`` in order; ``on_result(result)`` after each returns True to stop early.

    Returns True when stopped early."""
    for point in todo:
        describe(f"{point['backend']} {point['dtype']} batch {point['batch_size']} "
                 f"hidden {point['hidden']}")
        result = sweep.point(point, peaks.get(f"{point['backend']}/{point['dtype']}"))
        if on_result(result):
            return True
    return False
