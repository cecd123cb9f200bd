"""Which piece of the step moved: a slower point's pieces timed on both sides, as its steps were.

For a point the gate found slower, fresh process pairs prepare the point's pieces on base and
head (each commit's own ``Backend.prepare_pieces``) and time each piece in short samples,
base and head alternated in a random order, as ``runner`` times whole steps. Each process
pair gives each piece one effect (the median log ratio of its sample pairs); the pieces are
then ranked by the time they added to the step.
"""
from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

from mlpbench import settings as common
from mlpbench.gate import Settings, stats
from mlpbench.gate.runner import SIDES, Point, Workers, shared_choices

__all__ = ["PROCESS_PAIRS", "attribute", "ranked"]

#: Process pairs per slower point, and sample pairs per piece in each (after two warm-up pairs).
PROCESS_PAIRS = 3
SAMPLE_PAIRS = 20
WARMUP_PAIRS = 2


def _one_pair(workers: Workers, point: Point, options: Settings, rng: random.Random,
              seconds: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    """Each piece's effect in this process pair; its per-call seconds go to ``seconds``."""
    lr = common.learning_rate(point.batch_size, point.n_in, point.hidden, point.n_out)
    probes = workers.both({"op": "pieces", "point": point.sizes, "lr": lr, "seed": common.SEED,
                           "threads": options.threads}, options.prepare_timeout_s)
    effects = {}
    names = list(probes["base"]["piece_s"])
    rng.shuffle(names)
    for name in names:
        one = max(probes[side]["piece_s"][name] for side in SIDES)
        calls = max(options.min_steps, round(options.sample_s / max(one, 1e-9)))
        request = {"op": "piece_sample", "piece": name, "calls": calls}
        times: dict[str, list[float]] = {side: [] for side in SIDES}
        for i in range(WARMUP_PAIRS + SAMPLE_PAIRS):
            order = list(SIDES)
            rng.shuffle(order)
            for side in order:
                s = workers.request(side, request, options.sample_timeout_s)["seconds"] / calls
                if i >= WARMUP_PAIRS:
                    times[side].append(s)
        for side in SIDES:
            seconds.setdefault(name, {s: [] for s in SIDES})[side].extend(times[side])
        effects[name] = stats.process_pair_effect(times["base"], times["head"])
    return effects


def ranked(effects: dict[str, list[float]], seconds: dict[str, dict[str, list[float]]],
           options: Settings) -> list[dict]:
    """Each piece's base and head seconds (medians), head/base with its interval, and its share
    of the time the pieces added together; the piece that added the most first."""
    rows = []
    for name, pair_effects in effects.items():
        e = stats.estimate(pair_effects, min_effect=options.min_effect,
                           confidence=options.confidence)
        base_s = statistics.median(seconds[name]["base"])
        head_s = statistics.median(seconds[name]["head"])
        rows.append({"piece": name, "base_s": base_s, "head_s": head_s, "ratio": e.ratio,
                     "ratio_interval": list(e.ratio_interval)
                     if math.isfinite(e.low) and math.isfinite(e.high) else None,
                     "added_s": head_s - base_s})
    added = sum(max(0.0, r["added_s"]) for r in rows)
    for r in rows:
        r["share"] = r["added_s"] / added if added > 0 else None
    return sorted(rows, key=lambda r: r["added_s"], reverse=True)


def attribute(point: Point, trees: dict[str, Path], commits: dict[str, str], options: Settings,
              *, seed: int | None = None, pythons: dict[str, str] | None = None,
              pairs: int = PROCESS_PAIRS) -> list[dict]:
    """``ranked`` pieces of ``point`` over ``pairs`` fresh process pairs (GateError when a side
    cannot time its pieces: a commit without ``prepare_pieces``, say)."""
    import tempfile

    rng = random.Random(seed)
    effects: dict[str, list[float]] = {}
    seconds: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="mlpbench-gate-") as folder:
        shared = shared_choices(folder)  # both sides' numba on the same BLAS picks
        for _ in range(pairs):
            with Workers(point.backend, trees, commits, options, shared=shared,
                         pythons=pythons) as workers:
                workers.start()
                for name, effect in _one_pair(workers, point, options, rng, seconds).items():
                    effects.setdefault(name, []).append(effect)
    return ranked(effects, seconds, options)
