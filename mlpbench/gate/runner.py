"""Measuring the gate's points: base and head workers side by side, process pair after process pair.

For each backend, a fresh pair of workers (one on base's snapshot, one on head's, started
at once) prepares each of its points in turn and times it in short samples, alternated in a
random order within each pair of samples. Each process pair gives each point one effect
(``stats.process_pair_effect``); rounds of process pairs go on for the points still
undecided while the budget lasts. A choice a backend makes by measuring is made once for
the whole run and shared by both sides: numba's BLAS picks go to one file the gate names
(``MLPBENCH_NUMBA_BLAS_FILE``, unless the user named one), so base and head run the same
libraries, and each prepared point's reply says which ran.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from backends.numba.choice import FILE_SETTING as NUMBA_BLAS_FILE
from mlpbench import settings as common
from mlpbench.gate import Settings, stats
from mlpbench.workers import WorkerError, WorkerProcess

__all__ = ["GateError", "Point", "SIDES", "WORKER", "Workers", "lacking", "plan", "run",
           "shared_choices"]

SIDES = ("base", "head")
#: The worker program, from this tree (see its docstring).
WORKER = Path(__file__).resolve().parent / "worker.py"


class GateError(Exception):
    """The gate could not measure: a commit that does not import, a backend erring on one side,
    a worker that died or hung. Exit status 2, never a pass."""


@dataclass
class Point:
    """One point gated, and what was measured of it so far."""

    backend: str
    batch_size: int
    hidden: int
    dtype: str
    n_in: int = common.N_IN
    n_out: int = common.N_OUT
    steps: int | None = None  # steps per sample, fixed at the first process pair
    effects: list[float] = field(default_factory=list)
    step_s: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SIDES})
    estimate: stats.Estimate | None = None
    verdict: str = stats.INCONCLUSIVE
    #: The least slowdown the gate would catch at this point's noise (a fraction).
    detectable: float = math.nan
    #: For a point found slower: each piece's times on both sides (``pieces.attribute``).
    pieces: list[dict] | None = None
    blas: dict[str, dict] = field(default_factory=dict)  # per side: the BLAS numba's step ran

    @property
    def name(self) -> str:
        return f"{self.backend} b{self.batch_size} h{self.hidden} {self.dtype}"

    @property
    def sizes(self) -> dict:
        return {"batch_size": self.batch_size, "n_in": self.n_in, "hidden": self.hidden,
                "n_out": self.n_out, "dtype": self.dtype}

    def report(self) -> dict:
        e = self.estimate
        finite = e is not None and math.isfinite(e.low) and math.isfinite(e.high)
        return {"name": self.name, "backend": self.backend, **self.sizes,
                "verdict": self.verdict, "process_pairs": len(self.effects),
                "steps_per_sample": self.steps,
                "base_step_s": statistics.median(self.step_s["base"]) if self.effects else None,
                "head_step_s": statistics.median(self.step_s["head"]) if self.effects else None,
                "ratio": e.ratio if e and e.n else None,
                "ratio_interval": list(e.ratio_interval) if finite else None,
                "p_slower": e.p_slower if e else None,
                "min_detectable_effect": self.detectable, "effects": self.effects,
                "pieces": self.pieces, **({"blas": self.blas} if self.blas else {})}


def plan(backends: list[str], grid_name: str, bench: str | None) -> list[Point]:
    """The points of ``grid_name`` for ``backends``, those whose name matches ``bench``."""
    grid = common.grid(grid_name)
    points = [Point(b, B, H, d) for b in backends for B in grid["batch_size"]
              for H in grid["hidden"] for d in grid["dtype"]]
    return [p for p in points if bench is None or re.search(bench, p.name)]


def _environment(tree: Path, options: Settings) -> dict[str, str]:
    """A worker's environment: one thread, the allocator's settings, the snapshot to import
    first, then whatever the user's PYTHONPATH held (packages installed there, say)."""
    env = common.pinned_environment(options.threads, os.environ)
    env.update(options.allocator)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tree)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def lacking(backends: list[str], trees: dict[str, Path], options: Settings, *,
            pythons: dict[str, str] | None = None) -> dict[str, list[str]]:
    """For each side, the ``backends`` its snapshot does not know (one that head adds, or
    removes), asked before any timing. A snapshot that cannot tell (its ``backends`` does not
    import, the question timed out) lacks none here: its workers then fail saying why."""
    def ask(side: str) -> list[str]:
        try:
            python = (pythons or {}).get(side, sys.executable)
            done = subprocess.run([python, str(WORKER), "--lacks", ",".join(backends)],
                                  env=_environment(trees[side], options), cwd=str(trees[side]),
                                  capture_output=True, text=True,
                                  timeout=options.start_timeout_s)
            return list(json.loads(done.stdout.strip().splitlines()[-1])["lacks"]) \
                if done.returncode == 0 else []
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError, KeyError, TypeError):
            return []

    with ThreadPoolExecutor(len(SIDES)) as pool:
        return dict(zip(SIDES, pool.map(ask, SIDES)))


class Workers:
    """A base worker and a head worker of one backend, started at once; a context manager."""

    def __init__(self, backend: str, trees: dict[str, Path], commits: dict[str, str],
                 options: Settings, *, cpu: int | None = None, shared: dict[str, str] | None = None,
                 pythons: dict[str, str] | None = None) -> None:
        """``shared``: variables both sides get alike (a file of choices made once per run);
        ``pythons``: each side's interpreter (default: this one)."""
        self.backend, self.commits, self.trees, self.options = backend, commits, trees, options
        self.logs = {side: tempfile.TemporaryFile("w+b") for side in SIDES}
        self.workers: dict[str, WorkerProcess] = {}
        for side in SIDES:
            env = {**_environment(trees[side], options), **(shared or {})}
            python = (pythons or {}).get(side, sys.executable)
            self.workers[side] = WorkerProcess([python, str(WORKER), backend], env=env,
                                               cwd=str(trees[side]), stderr=self.logs[side])
            if cpu is not None:
                try:
                    os.sched_setaffinity(self.workers[side].pid, {cpu})
                except (AttributeError, OSError):  # not Linux, or the worker is gone already
                    pass
        self._pool = ThreadPoolExecutor(2)

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown()
        for side in SIDES:
            self.workers[side].close()
            self.logs[side].close()

    def _fail(self, side: str, what: str) -> GateError:
        return GateError(f"{side} {self.commits[side][:8]}, backend {self.backend}: {what}")

    def request(self, side: str, message: dict, timeout: float) -> dict:
        try:
            reply = self.workers[side].request(message, timeout=timeout)
        except WorkerError as exc:
            self.logs[side].seek(0)
            lines = self.logs[side].read().decode(errors="replace").strip().splitlines()
            raise self._fail(side, f"{exc}" + (f" ({lines[-1].strip()})" if lines else "")) \
                from None
        if "error" in reply:
            raise self._fail(side, reply["error"])
        return reply

    def both(self, message: dict, timeout: float) -> dict[str, dict]:
        """The same request to both workers at once (start, prepare: nothing is timed)."""
        futures = {side: self._pool.submit(self.request, side, message, timeout) for side in SIDES}
        return {side: future.result() for side, future in futures.items()}

    def start(self) -> dict[str, dict]:
        replies = self.both({"op": "start"}, self.options.start_timeout_s)
        for side, reply in replies.items():
            if Path(reply["origin"]) != self.trees[side].resolve():
                raise self._fail(side, f"imported backends from {reply['origin']}, not from the "
                                       f"commit's snapshot {self.trees[side]}")
        return replies

    def measure(self, point: Point, rng: random.Random) -> float:
        """One process pair's effect for ``point``; its samples' step times go to ``point``."""
        o = self.options
        lr = common.learning_rate(point.batch_size, point.n_in, point.hidden, point.n_out)
        prepared = self.both({"op": "prepare", "point": point.sizes, "lr": lr,
                              "seed": common.SEED, "threads": o.threads,
                              "probe_s": o.sample_s}, o.prepare_timeout_s)
        if point.steps is None:
            step_s = max(reply["step_s"] for reply in prepared.values())
            point.steps = max(o.min_steps, round(o.sample_s / step_s))
        for side, reply in prepared.items():
            if reply.get("blas"):
                point.blas[side] = reply["blas"]
        times: dict[str, list[float]] = {side: [] for side in SIDES}
        for i in range(o.warmup_pairs + o.sample_pairs):
            order = list(SIDES)
            rng.shuffle(order)
            request = {"op": "sample", "steps": point.steps,
                       "replace": replaces_before(i - o.warmup_pairs, o)}
            for side in order:
                seconds = self.request(side, request, o.sample_timeout_s)["seconds"]
                if i >= o.warmup_pairs:
                    times[side].append(seconds / point.steps)
        for side in SIDES:
            point.step_s[side].extend(times[side])
        effect = stats.process_pair_effect(times["base"], times["head"])
        point.effects.append(effect)
        return effect


def replaces_before(sample: int, options: Settings) -> bool:
    """Whether both workers place the arrays afresh before sample number ``sample`` (0 the
    first after the warm-up pairs): ``options.placements`` placements, evenly spread."""
    every = max(1, options.sample_pairs // max(1, options.placements))
    return 0 < sample < options.sample_pairs and sample % every == 0 \
        and sample // every < options.placements


def _decide(points: list[Point], options: Settings) -> None:
    for p in points:
        p.estimate = stats.estimate(p.effects, min_effect=options.min_effect,
                                    confidence=options.confidence)
    for p, verdict in zip(points, stats.decide([p.estimate for p in points],
                                               min_effect=options.min_effect,
                                               alpha=options.alpha)):
        p.verdict = verdict
        p.detectable = stats.detectable(p.effects, min_effect=options.min_effect,
                                        alpha=options.alpha, points=len(points))


def _cpu(options: Settings, rng: random.Random) -> int | None:
    """The CPU a process pair is pinned to, or None (not pinned, or no affinity here)."""
    if not options.same_cpu or not hasattr(os, "sched_getaffinity"):
        return None
    return rng.choice(sorted(os.sched_getaffinity(0)))


def _round(points: list[Point], pairs: int, trees: dict[str, Path], commits: dict[str, str],
           options: Settings, rng: random.Random, cost: dict[str, float],
           shared: dict[str, str], pythons: dict[str, str] | None,
           facts: dict[str, dict]) -> None:
    """``pairs`` process pairs for each backend of ``points``, backends taking turns."""
    by_backend: dict[str, list[Point]] = {}
    for p in points:
        by_backend.setdefault(p.backend, []).append(p)
    for _ in range(pairs):
        names = list(by_backend)
        rng.shuffle(names)
        for name in names:
            started = time.monotonic()
            with Workers(name, trees, commits, options, cpu=_cpu(options, rng),
                         shared=shared, pythons=pythons) as workers:
                facts.setdefault(name, workers.start())
                todo = list(by_backend[name])
                rng.shuffle(todo)
                for point in todo:
                    workers.measure(point, rng)
            cost[name] = time.monotonic() - started


def run(points: list[Point], trees: dict[str, Path], commits: dict[str, str],
        options: Settings, *, seed: int | None = None,
        log: Callable[[str], None] = print, pythons: dict[str, str] | None = None,
        facts: dict[str, dict] | None = None) -> float:
    """Measure and decide ``points`` (their ``verdict`` and ``estimate`` are set); returns the
    seconds spent. GateError when a side could not be measured.

    ``pythons`` gives each side's interpreter (default: this one); ``facts`` receives, per
    backend, what each side's first worker said of itself (versions, BLAS, interpreter)."""
    with tempfile.TemporaryDirectory(prefix="mlpbench-gate-") as folder:
        return _run(points, trees, commits, options, random.Random(seed), log,
                    shared_choices(folder), pythons, {} if facts is None else facts)


def shared_choices(folder: str) -> dict[str, str]:
    """What both sides' workers get alike: numba's file of BLAS picks, the user's where they
    named one (inherited with the environment), else one in ``folder``, made for this run."""
    if os.environ.get(NUMBA_BLAS_FILE):
        return {}
    return {NUMBA_BLAS_FILE: os.path.join(folder, "numba-blas.json")}


def _run(points: list[Point], trees: dict[str, Path], commits: dict[str, str],
         options: Settings, rng: random.Random, log: Callable[[str], None],
         shared: dict[str, str], pythons: dict[str, str] | None,
         facts: dict[str, dict]) -> float:
    started = time.monotonic()
    cost: dict[str, float] = {}
    _round(points, options.process_pairs, trees, commits, options, rng, cost, shared, pythons,
           facts)
    _decide(points, options)
    log(f"  {options.process_pairs} process pairs per backend: "
        f"{time.monotonic() - started:.0f} s")
    while True:
        undecided = [p for p in points if p.verdict == stats.INCONCLUSIVE
                     and len(p.effects) < options.max_process_pairs]
        if not undecided:
            break
        backends = {p.backend for p in undecided}
        next_round = options.more_process_pairs * sum(cost[b] for b in backends)
        if time.monotonic() - started + next_round > options.budget_s:
            break
        _round(undecided, options.more_process_pairs, trees, commits, options, rng, cost, shared,
               pythons, facts)
        _decide(points, options)
        log(f"  {options.more_process_pairs} more process pairs for {len(undecided)} "
            f"undecided point(s): {time.monotonic() - started:.0f} s")
    return time.monotonic() - started
