"""Measure head against base side by side and fail when a step is slower (the regression gate)."""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import sys
from dataclasses import asdict, replace
from pathlib import Path

import backends
from mlpbench import settings as common
from mlpbench.errors import UsageError
from mlpbench.files import check_writable, write_atomic
from mlpbench.gitinfo import default_base, repository_root, resolve_commit, uncommitted_changes
from mlpbench.gate import SETTINGS, commits, runner, stats
from mlpbench.options import comma_list, file_path, non_empty, positive_float, seconds

__all__ = ["add_arguments", "run"]

PASS, SLOWER, COULD_NOT_MEASURE = 0, 1, 2


def _fraction(text: str) -> float:
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction below 1 (0.05 for 5%%), got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    s = SETTINGS
    p.add_argument("--base", type=non_empty, default=None, metavar="REV",
                   help="the commit to compare against (default: merge base with main, else HEAD~1)")
    p.add_argument("--head", type=non_empty, default="HEAD", metavar="REV",
                   help="the commit measured (default HEAD)")
    p.add_argument("--backend", type=comma_list(str), default=None, metavar="NAME[,NAME]",
                   help=f"backends to gate (default: those available of {', '.join(s.backends)})")
    p.add_argument("--bench", type=non_empty, default=None, metavar="REGEX",
                   help="only the points whose name matches REGEX (names: 'numpy b64 h100 float32')")
    p.add_argument("--min-effect", type=_fraction, default=s.min_effect, metavar="F",
                   help=f"a point fails when head is slower by more than this fraction, with "
                        f"confidence (default {s.min_effect:g})")
    p.add_argument("--budget", type=seconds, default=s.budget_s, metavar="SECONDS",
                   help=f"undecided points get more process pairs while this lasts "
                        f"(default {s.budget_s:g})")
    p.add_argument("--output", type=file_path, default=None, metavar="FILE",
                   help="write the report as JSON to FILE")


def _backends(names: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """The backends to gate, and why each default one skipped was (UsageError for a named one
    that is unknown or not available)."""
    if names:
        for name in names:
            try:
                backend = backends.create(name)
            except backends.UnknownBackend as exc:
                raise UsageError(str(exc)) from None
            ok, why = backend.available()
            if not ok:
                raise UsageError(f"backend {name!r} is not available here: {why}")
        return names, {}
    chosen, skipped = [], {}
    for name in SETTINGS.backends:
        ok, why = backends.create(name).available()
        if ok:
            chosen.append(name)
        else:
            skipped[name] = why.split(';')[0]
    return chosen, skipped


def _known_to_both(names: list[str], named: bool, trees: dict[str, Path], shas: dict[str, str],
                   options) -> tuple[list[str], dict[str, str]]:
    """``names`` less those a commit lacks (head adds a backend, or base's ``backends`` does not
    know it), and why each was skipped; UsageError when one was named with --backend."""
    lacking = runner.lacking(names, trees, options)
    skipped = {}
    for name in names:
        sides = [side for side in runner.SIDES if name in lacking[side]]
        if sides:
            skipped[name] = (" and ".join(f"{side} {shas[side][:8]}" for side in sides)
                             + (" lacks it" if len(sides) == 1 else " lack it"))
    if named and skipped:
        raise UsageError("; ".join(f"backend {name!r}: {why}" for name, why in skipped.items())
                         + " (named with --backend; nothing measured)")
    return [name for name in names if name not in skipped], skipped


def _times(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def _line(point: runner.Point) -> str:
    r = point.report()
    shown = "ratio -" if r["ratio"] is None else f"ratio {r['ratio']:.3f}"
    if r["ratio_interval"]:
        shown += " [{:.3f}, {:.3f}]".format(*r["ratio_interval"])
    return (f"  {point.name:<26} base {_times(r['base_step_s']):>10}  head "
            f"{_times(r['head_step_s']):>10}  {shown}  {point.verdict} "
            f"({r['process_pairs']} process pairs)")


def run(args: argparse.Namespace) -> int:
    try:
        import scipy.stats  # noqa: F401  (the gate's statistics)
    except ImportError as exc:
        raise UsageError(f"the gate needs SciPy ({exc}); pip install 'mlpbench[gate]'") from None
    if args.bench is not None:
        try:
            re.compile(args.bench)
        except re.error as exc:
            raise UsageError(f"--bench {args.bench!r} is not a regular expression: {exc}") \
                from None
    output = Path(args.output) if args.output else None
    if output is not None:
        check_writable(args.output, "--output")
    options = replace(SETTINGS, min_effect=args.min_effect, budget_s=args.budget)
    names, skipped = _backends(args.backend)
    points = runner.plan(names, options.grid, args.bench)
    if not points:
        raise UsageError(f"no point to gate: backends {', '.join(names) or '(none available)'}"
                         + (f", --bench {args.bench!r}" if args.bench else ""))
    root = repository_root()
    head = resolve_commit(root, args.head)
    base = resolve_commit(root, args.base) if args.base else default_base(root, head)
    if base == head:
        raise UsageError(f"base and head are the same commit {head[:8]}; nothing to compare")
    trees = {"base": commits.snapshot(root, base), "head": commits.snapshot(root, head)}
    try:
        return _gate(args, root, {"base": base, "head": head}, trees, options, names, skipped,
                     output)
    finally:
        # After every run, so the cache stays bounded: two new snapshots per CI run otherwise.
        removed = commits.prune(options.cache_keep, options.cache_grace_s, using=trees.values())
        if removed:
            print(f"mlpbench regress: note: removed {len(removed)} snapshot(s) used the least "
                  f"recently from {removed[0].parent} (keeping {options.cache_keep})")


def _gate(args, root: Path, shas: dict[str, str], trees: dict[str, Path], options,
          names: list[str], skipped: dict[str, str], output: Path | None) -> int:
    base, head = shas["base"], shas["head"]
    names, lacked = _known_to_both(names, bool(args.backend), trees, shas, options)
    points = runner.plan(names, options.grid, args.bench)
    if not points:
        raise UsageError("no point to gate: " + "; ".join(
            [f"backend {name!r}: {why}" for name, why in lacked.items()]
            + ([f"backends {', '.join(names)}, --bench {args.bench!r}"] if names else [])))
    for name, why in lacked.items():
        print(f"mlpbench regress: backend {name!r} skipped: {why} (measuring the others)",
              file=sys.stderr)
    print(f"mlpbench regress: base {base[:8]} vs head {head[:8]}: {len(points)} point(s) of "
          f"{', '.join(names)}; slower means by more than {options.min_effect:.0%} at "
          f"{1 - options.alpha:.0%} confidence over all points; {options.threads} thread(s), "
          f"budget {options.budget_s:g} s", flush=True)
    for name, why in skipped.items():
        print(f"mlpbench regress: note: {name} skipped: {why}")
    dirty = uncommitted_changes(str(root))
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        print(f"mlpbench regress: note: not measured: uncommitted changes in {shown} "
              "(the gate compares commits)")
    if commits.dependencies_differ(root, base, head):
        print("mlpbench regress: note: the two commits' pyproject.toml dependencies differ; "
              "both run with this environment's libraries (the gate compares the code)")
    try:
        elapsed = runner.run(points, trees, shas, options)
    except runner.GateError as exc:
        raise UsageError(f"could not measure (not a regression, not a pass): {exc}") from None

    for point in points:
        print(_line(point))
    slower = [p for p in points if p.verdict == stats.SLOWER]
    undecided = [p for p in points if p.verdict == stats.INCONCLUSIVE]
    status = SLOWER if slower else PASS
    if output is not None:
        _write_report(output, shas, options, points, elapsed, status, {**skipped, **lacked})
    if undecided:
        print(f"mlpbench regress: warning: {len(undecided)} point(s) inconclusive within the "
              f"budget (too noisy to tell): {', '.join(p.name for p in undecided)}; not failed")
    if slower:
        print(f"mlpbench regress: SLOWER: {', '.join(p.name for p in slower)} "
              f"(by more than {options.min_effect:.0%}; {elapsed:.0f} s)")
        return SLOWER
    print(f"mlpbench regress: pass: {len(points) - len(undecided)} of {len(points)} point(s) "
          f"shown not slower by {options.min_effect:.0%} ({elapsed:.0f} s)")
    return PASS


def _write_report(path: Path, shas: dict, options, points, elapsed: float, status: int,
                  skipped: dict[str, str]) -> None:
    def finite(value):
        return value if not isinstance(value, float) or math.isfinite(value) else None

    report = {"base": shas["base"], "head": shas["head"], "status": status,
              "elapsed_s": elapsed, "settings": asdict(options),
              "python": sys.version.split()[0], "machine": platform.machine(),
              "cpu_count": os.cpu_count(), "grid": common.grid(options.grid),
              "skipped": skipped,
              "points": [{k: finite(v) for k, v in p.report().items()} for p in points]}
    write_atomic(str(path), lambda f: f.write(json.dumps(report, indent=1) + "\n"))
