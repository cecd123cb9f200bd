#!/usr/bin/env python3
"""Bench results against this machine's roofs: roof_fraction per point, the chart, the slow points' pieces.

Merges one or more ``mlpbench bench --output`` files (their results and matmul peaks),
measures the memory bandwidth here (``mlpbench.roofline``) with the threads the bench ran
with, adds ``environment["roofs"]`` and each result's roof fields, and prints a markdown
table. With ``--pieces`` (an ``mlpbench pieces --output`` file), each point of
``--slow-backend`` below ``--slow-below`` of its roof gets the piece that takes the most time
there. Usage, from the repository root (run under the timing lock):

    python scripts/roofline-report.py numpy.json numba.json --threads 1 \\
        --output roofline.json --plot roofline.png --pieces pieces.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlpbench import roofline  # noqa: E402  (after the path is set)
from mlpbench.report import backend_order  # noqa: E402
from mlpbench.results import load_results, write_results  # noqa: E402

GRID = ("backend", "dtype", "hidden", "batch_size")


def merge(paths: list[str]) -> dict:
    docs = [load_results(p) for p in paths]
    doc = docs[0]
    for other in docs[1:]:
        doc["results"] += other["results"]
        doc["peak_gflops"].update(other["peak_gflops"])
        doc["environment"].setdefault("merged_runs", []).append(other["environment"])
    return doc


def add_roofs(doc: dict, roofs: dict) -> None:
    doc["environment"]["roofs"] = roofs
    for r in doc["results"]:
        if r["status"] == "ok":
            r.update(roofline.roof_fields(r, doc["peak_gflops"].get(f"{r['backend']}/{r['dtype']}"),
                                          roofs))


def largest_pieces(path: str) -> dict[tuple, tuple[str, float]]:
    """(backend, dtype, batch_size, hidden) -> (the piece taking most time, its share of the step)."""
    with open(path, encoding="utf-8") as f:
        points = json.load(f)["points"]
    largest = {}
    for p in points:
        name, t = max(p["pieces"].items(), key=lambda item: item[1]["median"])
        largest[(p["backend"], p["dtype"], p["batch_size"], p["hidden"])] = (
            name, t["median"] / p["step_s"]["median"])
    return largest


def table(doc: dict, slow: dict, slow_backend: str, below: float) -> str:
    rows = sorted((r for r in doc["results"] if r["status"] == "ok"),
                  key=lambda r: (backend_order(r["backend"]),) + tuple(r[k] for k in GRID[1:]))
    lines = ["| backend | dtype | hidden | batch | GFLOP/s | of peak | flop/B | attainable | bound "
             "| of roof | largest piece |", "|" + "---|" * 11]
    for r in rows:
        key = (r["backend"], r["dtype"], r["batch_size"], r["hidden"])
        piece = ""
        if r["backend"] == slow_backend and r["roof_fraction"] < below:
            name, share = slow.get(key, ("(not measured)", None))
            piece = name if share is None else f"{name} ({share:.0%})"
        peak = "" if r["peak_fraction"] is None else f"{r['peak_fraction']:.0%}"
        lines.append(f"| {r['backend']} | {r['dtype']} | {r['hidden']} | {r['batch_size']} | "
                     f"{r['gflops']:.2f} | {peak} | {r['intensity']:.2f} | "
                     f"{r['attainable_gflops']:.1f} | {r['bound']} | {r['roof_fraction']:.0%} | "
                     f"{piece} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bench", nargs="+", help="mlpbench bench --output files")
    p.add_argument("--threads", type=int, default=1, help="threads of the bandwidth timer (default 1)")
    p.add_argument("--roofs", help="a JSON file of roofs (measure_bandwidth's) instead of measuring")
    p.add_argument("--pieces", help="an mlpbench pieces --output file")
    p.add_argument("--slow-backend", default="numba")
    p.add_argument("--slow-below", type=float, default=0.5)
    p.add_argument("--output", help="write the merged results with their roof fields here")
    p.add_argument("--plot", help="draw the roofline chart here (PNG)")
    args = p.parse_args(argv)
    doc = merge(args.bench)
    if args.roofs:
        with open(args.roofs, encoding="utf-8") as f:
            roofs = json.load(f)
    else:
        sizes = roofline.default_sizes(roofline.cache_sizes(), args.threads)
        roofs = roofline.measure_bandwidth(sizes, threads=args.threads)
    add_roofs(doc, roofs)
    for row in roofs["bandwidth"]:
        print(f"bandwidth: {row['gb_per_s']:.1f} GB/s at a working set of "
              f"{row['working_set_bytes']:,} bytes ({roofs['threads']} thread(s))")
    print(table(doc, largest_pieces(args.pieces) if args.pieces else {}, args.slow_backend,
                args.slow_below))
    if args.output:
        write_results(args.output, doc)
    if args.plot:
        from mlpbench.roofline_plot import plot_roofline

        plot_roofline(doc, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
