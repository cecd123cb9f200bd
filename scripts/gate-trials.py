#!/usr/bin/env python3
"""Trials of the regression gate: how often it fails identical code, how often it catches a known slowdown (docs/gate.md's table).

Copies the working tree (tracked files and untracked ones git does not ignore) into a scratch
git repository and commits, from the same base: the identical tree, and trees whose step is
slower by a known fraction of its own time, injected into numba's backend
(``backends/numba/backend.py``: every k-th step runs the prepared step once more) or into the
shared step as numpy runs it (``kernels/step.py``: every k-th call of the plain-Python
``train_step`` computes the step once more), k = 1 / fraction. Then it runs
``mlpbench regress`` with CI's settings (the defaults) between base and each head, and appends
every run to a JSON-lines file. Usage:

    python scripts/gate-trials.py identical --runs 10 --results T.jsonl            # default coverage
    python scripts/gate-trials.py numba --fraction 0.1 --runs 20 --results T.jsonl # narrowed to numba
    python scripts/gate-trials.py numpy --fraction 0.05 --runs 20 --results T.jsonl
    python scripts/gate-trials.py table --results T.jsonl                          # as markdown
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Fixed dates: the same tree gives the same commits, whose snapshots (and Numba's caches in
#: them) the gate keeps between runs.
DATES = {"GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}

NUMBA_RUN = ("    def prepare(self, make_step: Callable, *, lr: float, dtype: str) -> "
             "PreparedStep:\n")
# Around whatever prepare returns: one BLAS or a pick between two (AOCL or MKL installed).
NUMBA_SLOWER = """\
    def prepare(self, make_step, *, lr, dtype):  # injected by scripts/gate-trials.py
        step, calls = self._prepare_as_committed(make_step, lr=lr, dtype=dtype), [0]

        def slower(x, t, W, S):
            calls[0] += 1
            if calls[0] % {every} == 0:
                W, S, _ = step(x, t, W, S)
            return step(x, t, W, S)

        return slower

    def _prepare_as_committed(self, make_step: Callable, *, lr: float, dtype: str) -> PreparedStep:
"""
STEP_RETURN = "    return Step(jit(gradients), jit(train_step))\n"
STEP_SLOWER = """\
    if jit is _identity:  # injected by scripts/gate-trials.py: numpy's plain-Python step
        plain, calls = train_step, [0]

        def train_step(x, t, W, S, lr):
            calls[0] += 1
            if calls[0] % {every} == 0:
                plain(x, t, W, S, lr)
            return plain(x, t, W, S, lr)

    return Step(jit(gradients), jit(train_step))
"""
INJECTIONS = {"numba": ("backends/numba/backend.py", NUMBA_RUN, NUMBA_SLOWER),
              "numpy": ("kernels/step.py", STEP_RETURN, STEP_SLOWER)}


def git(cwd: Path, *args: str) -> str:
    env = dict(os.environ, **DATES)
    return subprocess.run(["git", "-c", "user.name=mlpbench", "-c", "user.email=mlpbench@localhost",
                           *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout


def scratch_repository(target: Path) -> str:
    """``target`` made a repository of the working tree, committed as base; its commit."""
    for name in filter(None, git(ROOT, "ls-files", "-co", "--exclude-standard", "-z").split("\0")):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    git(target, "init", "-q", "-b", "main")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "base")
    return git(target, "rev-parse", "HEAD").strip()


def head_commit(repo: Path, base: str, trial: str, fraction: float | None) -> str:
    """The head of a trial, committed on a branch from base."""
    git(repo, "switch", "-q", "-C", f"trial-{trial}-{fraction}", base)
    if trial == "identical":
        git(repo, "commit", "-q", "--allow-empty", "-m", "identical code")
    else:
        path, old, new = INJECTIONS[trial]
        text = (repo / path).read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{path} changed: update the injection of scripts/gate-trials.py")
        every = round(1 / fraction)
        (repo / path).write_text(text.replace(old, new.format(every=every)))
        git(repo, "commit", "-q", "-am", f"{trial}: {fraction:.0%} slower (every {every}th step twice)")
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "switch", "-q", "main")  # mlpbench itself runs from base's tree
    return head


def cpu_name() -> str:
    done = subprocess.run(["lscpu"], capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def run_trials(args: argparse.Namespace) -> int:
    repo = Path(tempfile.mkdtemp(prefix="mlpbench-gate-trials-"))
    try:
        base = scratch_repository(repo)
        head = head_commit(repo, base, args.trial, args.fraction)
        command = [sys.executable, "-m", "mlpbench", "regress", "--base", base, "--head", head]
        if args.trial != "identical":
            command += ["--backend", args.trial]
        for run in range(1, args.runs + 1):
            report = repo / f"report-{run}.json"
            started = time.monotonic()
            done = subprocess.run([*command, "--output", str(report)], cwd=repo,
                                  env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                  capture_output=True, text=True)
            record = {"trial": args.trial, "fraction": args.fraction, "run": run,
                      "status": done.returncode, "wall_s": time.monotonic() - started,
                      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                          timespec="seconds"),
                      "cpu": cpu_name(), "load_1min": os.getloadavg()[0]}
            if report.is_file():
                measured = json.loads(report.read_text())
                report.unlink()
                record["gate_s"] = measured["elapsed_s"]
                record["min_effect"] = measured["settings"]["min_effect"]
                record["points"] = [{k: p.get(k) for k in ("name", "verdict", "ratio",
                                                           "ratio_interval", "process_pairs",
                                                           "min_detectable_effect")}
                                    for p in measured["points"]]
            else:
                record["error"] = (done.stderr.strip().splitlines() or ["?"])[-1]
            slower = [p["name"] for p in record.get("points", []) if p["verdict"] == "slower"]
            print(f"{args.trial} {args.fraction}: run {run}/{args.runs}: exit {done.returncode} "
                  f"in {record['wall_s']:.0f} s; slower: {', '.join(slower) or '-'}", flush=True)
            with open(args.results, "a") as f:
                f.write(json.dumps(record) + "\n")
    finally:
        shutil.rmtree(repo, ignore_errors=True)
    return 0


def table(args: argparse.Namespace) -> int:
    """The results as a markdown table: per trial and minimum effect, runs failed (exit 1),
    errors, points slower and undecided, the ratios, the detectable effects and wall time."""
    records = [json.loads(line) for line in open(args.results) if line.strip()]
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["trial"], r["fraction"], r.get("min_effect")), []).append(r)
    print("| head | gated | min effect | runs | exit 1 (slower) | exit 2 | points slower "
          "| points inconclusive | least caught point | measured ratio, median (range) "
          "| detects, median (max) | time, median (max) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (trial, fraction, effect), runs in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2] or 0)):
        what = "identical code" if trial == "identical" else f"{trial} {fraction:.0%} slower"
        gated = "default coverage" if trial == "identical" else f"--backend {trial}"
        walls = [r["wall_s"] for r in runs]
        points = [p for r in runs for p in r.get("points", [])]
        ratios = sorted(p["ratio"] for p in points if p["ratio"] is not None)
        detects = sorted(p["min_detectable_effect"] for p in points
                         if p.get("min_detectable_effect") is not None)
        count = {v: sum(p["verdict"] == v for p in points) for v in ("slower", "inconclusive")}
        seen = Counter(p["name"] for p in points)
        caught = Counter(p["name"] for p in points if p["verdict"] == "slower")
        least = "-" if trial == "identical" or not seen else (
            "{1}: {0} of {2}".format(*min((caught[name], name, n) for name, n in seen.items())))
        print(f"| {what} | {gated} | {'-' if effect is None else f'{effect:.0%}'} | {len(runs)} "
              f"| {sum(r['status'] == 1 for r in runs)} "
              f"| {sum(r['status'] == 2 for r in runs)} | {count['slower']} of {len(points)} "
              f"| {count['inconclusive']} of {len(points)} | {least} "
              f"| {_spread(ratios, '.3f')} "
              f"| {_spread([100 * d for d in detects], '.1f', '%', median_max=True)} "
              f"| {_spread(walls, '.0f', ' s', median_max=True)} |")
    return 0


def _spread(values: list[float], spec: str, unit: str = "", median_max: bool = False) -> str:
    """"median (lowest-highest)", or "median (highest)"; "-" when there are none."""
    if not values:
        return "-"
    values = sorted(values)
    middle = f"{values[len(values) // 2]:{spec}}{unit}"
    if median_max:
        return f"{middle} ({values[-1]:{spec}}{unit})"
    return f"{middle} ({values[0]:{spec}}-{values[-1]:{spec}}{unit})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trial", choices=["identical", *INJECTIONS, "table"])
    parser.add_argument("--fraction", type=float, default=None,
                        help="the slowdown injected, a fraction of the step's time (0.1)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--results", type=Path, required=True,
                        help="JSON lines, appended to (trials) or read (table)")
    args = parser.parse_args()
    if args.trial == "table":
        return table(args)
    if (args.trial == "identical") != (args.fraction is None):
        parser.error("--fraction goes with numba or numpy, and only with them")
    if args.fraction is not None and not 0 < args.fraction <= 0.5:
        parser.error("--fraction must be in (0, 0.5]")
    return run_trials(args)


if __name__ == "__main__":
    sys.exit(main())
