#!/usr/bin/env python3
"""How often does the regression gate fail when nothing changed? Run it N times on identical code.

Copies the working tree (tracked and untracked-not-ignored files) into a temporary git
repository with two commits of identical code, runs ``mlpbench regress`` between them
``--runs`` times, and prints each run's exit status and ratios, then how many runs failed at
the chosen factor and, for comparison, at other factors. Usage, from the repository root:

    python scripts/regress-noise.py --runs 10            # the gate's subset, default factor
    python scripts/regress-noise.py --runs 10 --factor 1.2 --bench 'float64'

Unless set already, it pins BLAS threads to 1 and measures what CI's gate measures
(MLPBENCH_BACKENDS=numpy, MLPBENCH_GRID=quick). asv's environments are shared with other
runs through --env-dir, so only the first run installs anything.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlpbench import asv_gate  # noqa: E402  (after the path is set)

GATE_ENVIRONMENT = asv_gate.CI_GATE_ENVIRONMENT
OTHER_FACTORS = (1.1, 1.2, 1.3, 1.5, 2.0)


def short(name: str) -> str:
    """A benchmark's parameters alone: "('numpy', 64, 100, 'float32')"."""
    return name[name.find("("):] if "(" in name else name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--factor", type=float, default=asv_gate.DEFAULT_FACTOR)
    parser.add_argument("--bench", default=None, metavar="REGEX",
                        help="passed to mlpbench regress --bench")
    parser.add_argument("--env-dir", type=Path, default=asv_gate.shared_env_dir(),
                        help="asv's env_dir, shared between runs (default %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repository")
    args = parser.parse_args()

    env = dict(os.environ)
    for key, value in GATE_ENVIRONMENT.items():
        env.setdefault(key, value)
    shown = " ".join(f"{k}={env[k]}" for k in GATE_ENVIRONMENT)
    print(f"{args.runs} runs, factor {args.factor:g}, bench {args.bench!r}; {shown}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)

    target = Path(tempfile.mkdtemp(prefix="mlpbench-noise-"))
    asv_gate.snapshot_repository(ROOT, target, args.env_dir)
    command = [sys.executable, "-m", "mlpbench", "regress", "--base", "HEAD~1", "--head", "HEAD",
               "--factor", str(args.factor)]
    if args.bench:
        command += ["--bench", args.bench]
    regex = asv_gate.bench_regex(args.bench)
    statuses, worst = [], {}
    ratios_by_run = []
    try:
        for run in range(1, args.runs + 1):
            started = time.perf_counter()
            done = subprocess.run(command, cwd=target, env=env, capture_output=True, text=True)
            rows = [r for r in asv_gate.parse_rows(done.stdout) if r.measured
                    and re.search(regex, r.name)]
            statuses.append(done.returncode)
            ratios_by_run.append(rows)
            for r in rows:
                worst[r.name] = max(worst.get(r.name, 0.0), r.ratio)
            shown = ", ".join(f"{short(r.name)} {r.ratio:.2f}{r.mark.strip()}" for r in rows)
            print(f"run {run}/{args.runs}: exit {done.returncode} in "
                  f"{time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f}; "
                  f"ratios {shown}", flush=True)
            if done.returncode == 2:
                print("  " + done.stderr.strip().splitlines()[-1], flush=True)
    finally:
        if args.keep:
            print(f"kept {target}")
        else:
            shutil.rmtree(target, ignore_errors=True)

    failed = statuses.count(1)
    print(f"\nfactor {args.factor:g}: {failed} of {len(statuses)} identical-code runs failed "
          f"(exit 1), {statuses.count(2)} could not measure (exit 2)")
    for name, ratio in sorted(worst.items()):
        print(f"  worst ratio {ratio:.2f}  {name}")
    # asv fails a row when its ratio exceeds the factor AND the difference is significant;
    # for a lower factor than the one run, significance is unknown: counted as failing.
    for f in OTHER_FACTORS:
        n = sum(any(r.ratio > f and (f < args.factor or r.mark == "+") for r in rows)
                for rows in ratios_by_run)
        bound = " (at most)" if f < args.factor else ""
        print(f"  factor {f:g}: {n}{bound} of {len(statuses)} would have failed")
    # Noise is symmetric: a significant speed-up of identical code is the same size of noise.
    significant = [max(r.ratio, 1 / r.ratio) for rows in ratios_by_run for r in rows
                   if r.mark in "+-" and r.mark.strip() and r.ratio > 0]
    if significant:
        print(f"  largest significant change either way: {max(significant):.2f}x "
              f"({len(significant)} significant rows); a factor below it can fail")
    return 0


if __name__ == "__main__":
    sys.exit(main())
