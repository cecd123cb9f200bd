"""The gate's verdict as Markdown, for a pull request's page ($GITHUB_STEP_SUMMARY) or a file.

Made from the report that ``mlpbench regress --output`` writes: the slower points and the
pieces that moved first, then every point in a compact table, then what a pass means (each
point's minimum detectable effect at the run's noise).
"""
from __future__ import annotations

import math

__all__ = ["summary"]

_VERDICT = {0: "pass", 1: "SLOWER", 2: "could not measure"}


def _time(seconds) -> str:
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "–"
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def _ratio(point: dict) -> str:
    return "–" if point.get("ratio") is None else f"{point['ratio']:.3f}"


def _interval(point: dict) -> str:
    low_high = point.get("ratio_interval")
    return "–" if not low_high else f"[{low_high[0]:.3f}, {low_high[1]:.3f}]"


def _percent(fraction) -> str:
    if not isinstance(fraction, (int, float)) or not math.isfinite(fraction):
        return "–"
    return f"{fraction:.1%}"


def _pieces(point: dict) -> list[str]:
    pieces = point.get("pieces") or []
    if not pieces:
        return []
    lines = ["", "| piece | base | head | head/base | share of the added time |",
             "|---|---:|---:|---:|---:|"]
    for piece in pieces:
        lines.append(f"| {piece['piece']} | {_time(piece['base_s'])} | {_time(piece['head_s'])} "
                     f"| {piece['ratio']:.3f} | {_percent(piece.get('share'))} |")
    return lines


def _environments(report: dict) -> list[str]:
    sides = report.get("environments") or {}
    if not sides:
        return []
    lines = ["", "| side | commit | Python | libraries | BLAS |", "|---|---|---|---|---|"]
    for side in ("base", "head"):
        env = sides.get(side) or {}
        libraries = ", ".join(f"{k} {v}" for k, v in sorted((env.get("libraries") or {}).items()))
        lines.append(f"| {side} | `{report[side][:8]}` | {env.get('python_version', '–')} "
                     f"| {libraries or '–'} | {', '.join(env.get('blas') or []) or '–'} |")
    return lines


def summary(report: dict) -> str:
    """The Markdown summary of one gate run's report (``regress --output``'s JSON, as a dict)."""
    settings = report.get("settings", {})
    effect = settings.get("min_effect", math.nan)
    points = report.get("points", [])
    slower = [p for p in points if p.get("verdict") == "slower"]
    undecided = [p for p in points if p.get("verdict") == "inconclusive"]
    lines = [f"## mlpbench regress: {_VERDICT.get(report.get('status'), report.get('status'))}",
             "",
             f"Head `{report['head'][:8]}` against base `{report['base'][:8]}`: "
             f"{len(points)} point(s); a point is slower when head takes more than "
             f"{_percent(effect)} longer at {1 - settings.get('alpha', 0.05):.0%} confidence "
             f"over all points ({settings.get('threads')} thread(s), "
             f"{report.get('elapsed_s', math.nan):.0f} s)."]
    if report.get("error"):
        lines += ["", f"Could not measure: {report['error']}"]
    if slower:
        lines += ["", "### Slower"]
        for p in slower:
            lines += ["", f"**{p['name']}**: {_time(p.get('base_step_s'))} → "
                          f"{_time(p.get('head_step_s'))} per step, ratio {_ratio(p)} "
                          f"{_interval(p)}"]
            moved = p.get("pieces") or []
            if moved:
                top = max(moved, key=lambda piece: piece.get("share") or -math.inf)
                lines += ["", f"The piece that moved: **{top['piece']}**, {top['ratio']:.3f}× "
                              f"({_percent(top.get('share'))} of the added time)."]
            lines += _pieces(p)
    if undecided:
        lines += ["", "Inconclusive within the budget (too noisy to tell; not failed): "
                  + ", ".join(p["name"] for p in undecided) + "."]
    lines += ["", "### Points", "",
              "| point | base | head | head/base | 95% interval | verdict | detects |",
              "|---|---:|---:|---:|---|---|---:|"]
    for p in points:
        lines.append(f"| {p['name']} | {_time(p.get('base_step_s'))} | "
                     f"{_time(p.get('head_step_s'))} | {_ratio(p)} | {_interval(p)} | "
                     f"{p.get('verdict')} | {_percent(p.get('min_detectable_effect'))} |")
    lines += _environments(report)
    lines += ["", "*detects*: the least slowdown this run's noise at that point lets the gate "
                  "catch 4 times in 5. A pass says the point is not slower by more than "
                  f"{_percent(effect)}, as far as that resolution allows."]
    return "\n".join(lines) + "\n"
