#!/usr/bin/env python3
"""The issue's table from numba-blas trial files: per point numba's median step, the best other
backend's, their ratio, numba over numpy; and per file how many points numba leads, and at
the seed's sizes numba over numpy beside what a step running at the run's best large-matmul
rate (any backend's, that dtype) would be: a guide to what is in reach, not a hard bound (a
library's small gemm can beat another library's large one).

usage: python scripts/numba-blas-table.py FILE.json [FILE.json ...]
Each file is one `mlpbench bench` run (scripts/numba-blas-trials.sh writes them).
"""
from __future__ import annotations

import json
import statistics
import sys

OTHERS = ("numpy", "torch", "jax")


def points(run: dict) -> dict[tuple, dict[str, float]]:
    """{(batch, hidden, dtype): {backend: median seconds per step}} of one results file."""
    table: dict[tuple, dict[str, float]] = {}
    for r in run["results"]:
        if r["status"] == "ok":
            key = (r["batch_size"], r["hidden"], r["dtype"])
            table.setdefault(key, {})[r["backend"]] = r["step_s"]["median"]
    return table


def summary(table: dict) -> tuple[int, int, int]:
    """(points, numba strictly fastest, numba >= 0.97x the best other)."""
    fastest = within = 0
    for times in table.values():
        if "numba" not in times:  # numba's point failed: not a lead
            continue
        best = min(times[b] for b in OTHERS if b in times)
        fastest += times["numba"] < best
        within += best / times["numba"] >= 0.97
    return len(table), fastest, within


SEED_POINT = (64, 100)  # batch, hidden: the seed's sizes (n_in 1000, n_out 10)


def seed_line(run: dict) -> str:
    """At the seed's sizes, per dtype: numba over numpy, and a step at the best matmul rate."""
    found = {(r["backend"], r["dtype"]): r for r in run["results"] if r["status"] == "ok"
             and (r["batch_size"], r["hidden"]) == SEED_POINT}
    parts = []
    for dtype in ("float32", "float64"):
        numba, numpy = found.get(("numba", dtype)), found.get(("numpy", dtype))
        peaks = [v for k, v in run.get("peak_gflops", {}).items() if k.endswith("/" + dtype) and v]
        if numba is None or numpy is None or not peaks:
            continue
        at_peak = numba["flops_per_step"] / (max(peaks) * 1e9)
        parts.append(f"{dtype} {numpy['step_s']['median'] / numba['step_s']['median']:.2f}x "
                     f"({numpy['step_s']['median'] / at_peak:.2f}x at the best matmul rate)")
    return "seed: numba vs numpy " + ", ".join(parts) if parts else "seed: not in this run"


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    runs = [json.load(open(p)) for p in paths]
    tables = [points(run) for run in runs]
    for path, run, table in zip(paths, runs, tables):
        n, fastest, within = summary(table)
        print(f"{path}: numba fastest at {fastest} of {n}, >= 0.97x the best at {within} of {n}; "
              f"{seed_line(run)}")
    print("\n| batch, hidden, dtype | numba | best other | best / numba | numba vs numpy |")
    print("|---|---|---|---|---|")
    for key in sorted(tables[0]):
        runs = [t[key] for t in tables if key in t and "numba" in t[key]]
        if not runs:
            print(f"| {key[0]}, {key[1]}, {key[2][5:]} | no result | | | |")
            continue
        numba = statistics.median(t["numba"] for t in runs)
        ratios = [min(t[b] for b in OTHERS if b in t) / t["numba"] for t in runs]
        vs_numpy = [t["numpy"] / t["numba"] for t in runs]
        best_name = min(OTHERS, key=lambda b: statistics.median(t.get(b, float("inf")) for t in runs))
        best = statistics.median(t[best_name] for t in runs)
        spread = (f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(runs) > 1 else "")
        print(f"| {key[0]}, {key[1]}, {key[2][5:]} | {_time(numba)} | {best_name} {_time(best)} | "
              f"{statistics.median(ratios):.2f}{spread} | {statistics.median(vs_numpy):.2f}× |")
    return 0


def _time(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
