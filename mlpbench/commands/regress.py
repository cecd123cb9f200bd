"""Measure head against base side by side and fail when a step is slower (the regression gate)."""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import backends
from mlpbench.errors import UsageError
from mlpbench.files import check_writable
from mlpbench.gitinfo import default_base, repository_root, resolve_commit, uncommitted_changes
from mlpbench.gate import SETTINGS, commits, report, runner, stats
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
    p.add_argument("--markdown", type=file_path, default=None, metavar="FILE",
                   help="write the verdict as Markdown to FILE (also appended to "
                        "$GITHUB_STEP_SUMMARY when that is set)")
    p.add_argument("--base-python", type=non_empty, default=None, metavar="PATH",
                   help="the Python (an environment) that runs base's side (default: this one)")
    p.add_argument("--head-python", type=non_empty, default=None, metavar="PATH",
                   help="the Python that runs head's side; with either, base defaults to head: "
                        "two environments compared on one commit")


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
                   options, pythons: dict[str, str] | None = None
                   ) -> tuple[list[str], dict[str, str]]:
    """``names`` less those a commit lacks (head adds a backend, or base's ``backends`` does not
    know it), and why each was skipped; UsageError when one was named with --backend."""
    lacking = runner.lacking(names, trees, options, pythons=pythons)
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


def _interpreter(flag: str, path: str) -> str:
    """``path`` as an absolute interpreter path, after checking that it runs Python 3."""
    import shutil
    import subprocess

    found = shutil.which(path) if os.sep not in path else (path if os.path.isfile(path) else None)
    if not found or not os.access(found, os.X_OK):
        raise UsageError(f"{flag} {path!r}: no such executable")
    try:
        done = subprocess.run([found, "-c", "import sys; print(sys.version_info[0])"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"{flag} {path!r} does not run: {exc}") from None
    if done.returncode != 0 or done.stdout.strip() != "3":
        raise UsageError(f"{flag} {path!r} is not a Python 3 interpreter")
    return os.path.abspath(found)


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
    markdown = Path(args.markdown) if args.markdown else None
    if markdown is not None:
        check_writable(args.markdown, "--markdown")
    pythons = {side: _interpreter(f"--{side}-python", path)
               for side, path in (("base", args.base_python), ("head", args.head_python)) if path}
    options = replace(SETTINGS, min_effect=args.min_effect, budget_s=args.budget)
    names, skipped = _backends(args.backend)
    points = runner.plan(names, options.grid, args.bench)
    if not points:
        raise UsageError(f"no point to gate: backends {', '.join(names) or '(none available)'}"
                         + (f", --bench {args.bench!r}" if args.bench else ""))
    root = repository_root()
    head = resolve_commit(root, args.head)
    if args.base:
        base = resolve_commit(root, args.base)
    else:
        base = head if pythons else default_base(root, head)
    sides_differ = pythons.get("base", sys.executable) != pythons.get("head", sys.executable)
    if base == head and not sides_differ:
        raise UsageError(f"base and head are the same commit {head[:8]} in the same Python; "
                         "nothing to compare (give --base-python or --head-python to compare "
                         "two environments)")
    trees = {"base": commits.snapshot(root, base), "head": commits.snapshot(root, head)}
    packages: dict[str, list[str]] = {}
    if not pythons:
        from mlpbench.gate import environments

        plans = environments.plans_if_they_differ(trees, names)
        if plans:
            pythons, packages = _own_environments(plans)
    try:
        return _gate(args, root, {"base": base, "head": head}, trees, options, names, skipped,
                     output, markdown, pythons, packages)
    finally:
        # After every run, so the cache stays bounded: two new snapshots per CI run otherwise.
        removed = commits.prune(options.cache_keep, options.cache_grace_s, using=trees.values())
        if removed:
            print(f"mlpbench regress: note: removed {len(removed)} snapshot(s) used the least "
                  f"recently from {removed[0].parent} (keeping {options.cache_keep})")


def _gate(args, root: Path, shas: dict[str, str], trees: dict[str, Path], options,
          names: list[str], skipped: dict[str, str], output: Path | None,
          markdown: Path | None = None, pythons: dict[str, str] | None = None,
          packages: dict[str, list[str]] | None = None) -> int:
    base, head = shas["base"], shas["head"]
    names, lacked = _known_to_both(names, bool(args.backend), trees, shas, options, pythons)
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
    facts: dict[str, dict] = {}
    try:
        elapsed = runner.run(points, trees, shas, options, pythons=pythons, facts=facts)
    except runner.GateError as exc:
        made = report.build(shas, options, points, math.nan, COULD_NOT_MEASURE,
                            {**skipped, **lacked}, report.environments(facts))
        made["error"] = str(exc)
        report.write(made, None, markdown)
        raise UsageError(f"could not measure (not a regression, not a pass): {exc}") from None

    environments = report.environments(facts)
    for side, frozen in (packages or {}).items():
        environments.setdefault(side, {})["packages"] = frozen
    if pythons:
        for side, env in environments.items():
            print(f"mlpbench regress: {side}: python {env['python_version']} ({env['python']}); "
                  + ", ".join(f"{k} {v}" for k, v in sorted(env["libraries"].items()))
                  + (f"; BLAS {', '.join(env['blas'])}" if env["blas"] else ""))
    for point in points:
        print(report.line(point))
    slower = [p for p in points if p.verdict == stats.SLOWER]
    for point in slower:
        report.pieces(point, trees, shas, options, pythons)
    undecided = [p for p in points if p.verdict == stats.INCONCLUSIVE]
    status = SLOWER if slower else PASS
    report.write(report.build(shas, options, points, elapsed, status, {**skipped, **lacked},
                              environments), output, markdown)
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


def _own_environments(plans: dict) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Each side's interpreter in an environment built from its commit's declared
    dependencies (kept between runs), and its ``pip freeze``."""
    from mlpbench.gate import environments

    print("mlpbench regress: the two commits declare different dependencies: each side runs in "
          "an environment built from its own (" + ", ".join(
              f"{side} {plans[side]['key']}" for side in runner.SIDES) + ")", flush=True)
    pythons, packages = {}, {}
    for side in runner.SIDES:
        python, packages[side] = environments.build(plans[side])
        pythons[side] = str(python)
    return pythons, packages


