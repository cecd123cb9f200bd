"""What a gate run says: a point's line, a slower point's pieces, and the report (JSON, Markdown)."""
from __future__ import annotations

import json
import math
import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path

from mlpbench import settings as common
from mlpbench.files import write_atomic
from mlpbench.gate import runner

__all__ = ["build", "environments", "line", "pieces", "write"]


def _times(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def line(point: runner.Point) -> str:
    r = point.report()
    shown = "ratio -" if r["ratio"] is None else f"ratio {r['ratio']:.3f}"
    if r["ratio_interval"]:
        shown += " [{:.3f}, {:.3f}]".format(*r["ratio_interval"])
    mde = r["min_detectable_effect"]
    detects = f"detects {mde:.1%}" if isinstance(mde, float) and math.isfinite(mde) else "detects -"
    return (f"  {point.name:<26} base {_times(r['base_step_s']):>10}  head "
            f"{_times(r['head_step_s']):>10}  {shown}  {detects}  {point.verdict} "
            f"({r['process_pairs']} process pairs)")


def pieces(point: runner.Point, trees: dict[str, Path], shas: dict[str, str], options,
           pythons: dict[str, str] | None) -> None:
    """Time a slower point's pieces on both sides and print which moved (never a verdict)."""
    from mlpbench.gate import attribution

    try:
        point.pieces = attribution.attribute(point, trees, shas, options, pythons=pythons)
    except runner.GateError as exc:
        print(f"  {point.name}: its pieces could not be timed: {exc}")
        return
    print(f"  {point.name}: pieces, base -> head over {attribution.PROCESS_PAIRS} process pairs:")
    for piece in point.pieces:
        interval = piece["ratio_interval"]
        shown = f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
        share = f"{piece['share']:.0%} of the added time" if piece["share"] is not None else "-"
        print(f"    {piece['piece']:<16} {_times(piece['base_s']):>10} -> "
              f"{_times(piece['head_s']):>10}  {piece['ratio']:.3f}{shown}  {share}")
    top = point.pieces[0]
    print(f"  {point.name}: the piece that moved: {top['piece']} ({top['ratio']:.3f}x)")


def environments(facts: dict[str, dict]) -> dict[str, dict]:
    """Each side's interpreter, library versions and BLAS, from its workers' start replies."""
    sides: dict[str, dict] = {}
    for replies in facts.values():
        for side, reply in replies.items():
            env = sides.setdefault(side, {"python": reply.get("python"),
                                          "python_version": reply.get("python_version"),
                                          "libraries": {}, "blas": []})
            env["libraries"].update(reply.get("libraries") or {})
            env["blas"] = sorted(set(env["blas"]) | set(reply.get("blas") or []))
    return sides


def build(shas: dict, options, points, elapsed: float, status: int,
            skipped: dict[str, str], environments: dict[str, dict]) -> dict:
    def finite(value):
        return value if not isinstance(value, float) or math.isfinite(value) else None

    return {"base": shas["base"], "head": shas["head"], "status": status,
            "elapsed_s": elapsed, "settings": asdict(options),
            "python": sys.version.split()[0], "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "grid": common.grid(options.grid),
            "skipped": skipped, "environments": environments,
            "points": [{k: finite(v) for k, v in p.report().items()} for p in points]}


def write(report: dict, output: Path | None, markdown: Path | None) -> None:
    """The report as JSON to ``output``; the Markdown verdict to ``markdown`` and, in a GitHub
    Actions job, to its step summary."""
    if output is not None:
        write_atomic(str(output), lambda f: f.write(json.dumps(report, indent=1) + "\n"))
    from mlpbench.gate.markdown import summary

    text = summary(report)
    if markdown is not None:
        write_atomic(str(markdown), lambda f: f.write(text))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a") as f:
            f.write(text)
