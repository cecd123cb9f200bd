"""The regression gate: head against base, timed side by side in worker processes, decided by a confidence interval.

Every setting of the gate lives in ``SETTINGS`` below: ``mlpbench regress``, CI
(``scripts/ci-benchmarks.sh``, ``.github/workflows/benchmarks.yml``) and the trials script
read them from here. docs/gate.md says how it measures and what it guarantees.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SETTINGS", "Settings"]


@dataclass(frozen=True)
class Settings:
    """How the gate measures and decides (``mlpbench regress`` overrides a few by flag)."""

    #: A point fails when head is slower than base by more than this fraction, with confidence.
    #: 3%: 5% slowdowns in numba and in numpy were found slower at 159 of their 160 points over
    #: 20 runs each, and no interval of identical code (20 runs, 320 points) had its lower bound
    #: above 1.002 (docs/gate.md, "What it catches").
    min_effect: float = 0.03
    #: Seconds the whole measurement may take: a point still undecided gets more process pairs
    #: only while the next round fits in this.
    budget_s: float = 240.0
    #: Family-wise false-alarm rate over all the points gated (Holm).
    alpha: float = 0.05
    #: The interval shown, and the one that must lie below 1 + min_effect for a pass.
    confidence: float = 0.95
    #: Fresh (base, head) process pairs per backend in the first round, and per later round.
    process_pairs: int = 5
    more_process_pairs: int = 3
    #: No point gets more process pairs than this: beyond, it stays inconclusive.
    max_process_pairs: int = 20
    #: Side-by-side sample pairs per point and process pair, after the warm-up pairs.
    sample_pairs: int = 60
    warmup_pairs: int = 8
    #: Placements of the point's arrays per process pair: both workers copy them to fresh
    #: memory at the same samples, evenly spread (60: before every sample). Where the arrays
    #: land moves numba's batch-1 float64 step between 35 and 42 µs (8 placements in each of 5
    #: processes, AMD EPYC Zen 2, 2026-12-04; docs/gate.md), which one placement per process
    #: made a process-level effect.
    placements: int = 60
    #: Seconds of back-to-back steps in one sample, and at least this many steps: a cost that
    #: comes every few steps (a collection, a cache flush, the allocator's bookkeeping) then
    #: falls in every sample, and the median of the pairs compares the average step.
    sample_s: float = 0.004
    min_steps: int = 20
    #: BLAS / OpenMP / Numba threads in both workers.
    threads: int = 1
    #: Both workers of a process pair pinned to one CPU, drawn at random per pair: they take
    #: turns, so they share its caches and whatever else runs on it, instead of one of them
    #: sharing a core with another job for its whole life (which looks like a process-level
    #: effect of 10-15% on a busy 2-core machine).
    same_cpu: bool = True
    #: glibc's allocator kept from returning memory to the system or mapping large arrays
    #: afresh, in both workers: otherwise whether a step's temporaries page-fault depends on
    #: the process's history, and float64 steps switch between two speeds from one process
    #: to the next (0.7 vs 1.4 ms at batch 64), which would hide a 10% change.
    allocator: tuple[tuple[str, str], ...] = (("MALLOC_MMAP_THRESHOLD_", "67108864"),
                                              ("MALLOC_TOP_PAD_", "67108864"))
    #: The backends gated when none is named (those available here), on this grid of
    #: ``mlpbench.settings``. Every backend with code of its own beyond the shared step.
    backends: tuple[str, ...] = ("numpy", "numba", "torch", "jax", "cupy")
    grid: str = "quick"
    #: Worker deadlines in seconds: import and start, prepare a point (a JIT compiles), a sample.
    start_timeout_s: float = 300.0
    prepare_timeout_s: float = 300.0
    sample_timeout_s: float = 30.0
    #: Commit snapshots kept in the cache (``commits.cache_dir``) after a run: the most recently
    #: used (each use touches its folder); the rest are removed, since each is a whole tree.
    cache_keep: int = 8
    #: Seconds within which a snapshot used, or a partial one being written, is never removed,
    #: even beyond ``cache_keep``: another run on this machine may be measuring or writing it.
    cache_grace_s: float = 3600.0


SETTINGS = Settings()
