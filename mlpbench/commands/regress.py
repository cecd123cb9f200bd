"""Run asv continuous between two commits and fail on a slower step."""
from __future__ import annotations

import argparse
import os

from mlpbench import asv_gate
from mlpbench.errors import UsageError
from mlpbench.options import positive_float

__all__ = ["add_arguments", "run"]

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMBA_NUM_THREADS", "MLPBENCH_BACKENDS", "MLPBENCH_GRID")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default=None, metavar="REV",
                   help="the commit to compare against (default: merge base with main, else HEAD~1)")
    p.add_argument("--head", default="HEAD", metavar="REV", help="the commit measured (default HEAD)")
    p.add_argument("--factor", type=positive_float, default=None, metavar="F",
                   help="a benchmark slower than base by more than this factor fails "
                        f"(default {asv_gate.DEFAULT_FACTOR:g})")
    p.add_argument("--bench", default=None, metavar="REGEX",
                   help="only the time_* benchmarks matching REGEX")


def run(args: argparse.Namespace) -> int:
    factor = asv_gate.DEFAULT_FACTOR if args.factor is None else args.factor
    if factor < 1:
        raise UsageError(f"--factor must be at least 1 (a ratio of times), got {factor:g}")
    root = asv_gate.repository_root()
    asv = asv_gate.asv_command()
    head = asv_gate.resolve_commit(root, args.head)
    base = (asv_gate.resolve_commit(root, args.base) if args.base
            else asv_gate.default_base(root, head))
    if base == head:
        raise UsageError(f"base and head are the same commit {head[:8]}; nothing to compare")
    regex = asv_gate.bench_regex(args.bench)
    note = asv_gate.ensure_machine(asv, root)
    if note:
        print(f"mlpbench regress: {note}")
    settings = " ".join(f"{k}={os.environ[k]}" for k in _THREAD_VARIABLES if k in os.environ)
    print(f"mlpbench regress: base {base[:8]} vs head {head[:8]}, factor {factor:g}, "
          f"benchmarks {regex!r}; {settings or 'threads as the environment leaves them'}",
          flush=True)

    status, output = asv_gate.run_continuous(asv, root, base, head, factor=factor, regex=regex)
    verdict = asv_gate.classify(status, output, factor, regex)
    if verdict.status == asv_gate.ERROR:
        raise UsageError(f"could not measure (not a regression, not a pass): {verdict.message}")
    if verdict.status == asv_gate.REGRESSION:
        print(f"mlpbench regress: REGRESSION: {verdict.message}:")
        for row in verdict.regressions:
            print(f"  {row.name}: {row.before} -> {row.after}, {row.ratio:.2f}x slower")
        return 1
    print(f"mlpbench regress: pass: {verdict.message}")
    return 0
