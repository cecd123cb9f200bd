"""Steps/s per commit from asv's results, offline: a table, a PNG, and the commits that moved."""
from __future__ import annotations

import argparse
import ast
import itertools
import json
import math
import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mlpbench import options, settings
from mlpbench.errors import UsageError
from mlpbench.files import check_writable, write_atomic
from mlpbench.gitinfo import commit_order
from mlpbench.report import backend_order, format_rate

__all__ = ["BENCHMARK", "Commit", "Measurement", "add_arguments", "find_results_dir",
           "flag_moves", "load_history", "order_commits", "pick_machine", "run"]

#: The benchmark read: steps/s is 1 / its median (asv keeps no higher-is-better benchmark).
BENCHMARK = "bench_step.TrainStep.time_train_step"
PARAM_NAMES = ("backend", "batch_size", "hidden", "dtype")
#: asv compare's default factor, as a percentage: a smaller change is never flagged.
DEFAULT_THRESHOLD = 10.0
#: asv's results file format (asv >= 0.5) that this reads.
RESULTS_API_VERSION = 2


@dataclass(frozen=True)
class Measurement:
    """One point on one commit: asv's median time per step and its spread, in seconds."""

    backend: str
    batch_size: int
    hidden: int
    dtype: str
    env: str
    seconds: float
    q_25: float | None = None
    q_75: float | None = None
    ci_99: tuple[float, float] | None = None

    @property
    def point(self) -> tuple[int, int, str]:
        return self.batch_size, self.hidden, self.dtype

    @property
    def series(self) -> tuple:
        return self.backend, self.env, self.point

    @property
    def steps_per_s(self) -> float:
        return 1.0 / self.seconds

    def rate_range(self) -> tuple[float, float] | None:
        """The interquartile range as steps/s (the spread asv shows as ±), low to high."""
        if self.q_25 is None or self.q_75 is None or self.q_25 <= 0:
            return None
        return 1.0 / self.q_75, 1.0 / self.q_25


@dataclass
class Commit:
    """A commit asv measured, with what it measured there."""

    hash: str
    date_ms: int | None
    subject: str = ""
    measurements: list[Measurement] = field(default_factory=list)

    def date_text(self) -> str:
        if self.date_ms is None:
            return "?"
        return datetime.fromtimestamp(self.date_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", metavar="DIR", default=None,
                   help="asv's results folder (default: results_dir of ./asv.conf.json)")
    p.add_argument("--machine", metavar="NAME", default=None,
                   help="the machine's results (default: this machine, or the only one there)")
    p.add_argument("--backend", type=options.comma_list(str), action="extend", metavar="A,B",
                   help="only these backends (default: every one with results)")
    p.add_argument("--batch-size", type=options.comma_list(options.positive_int),
                   action="extend", metavar="N,M", help="only these batch sizes")
    p.add_argument("--hidden", type=options.comma_list(options.positive_int), action="extend",
                   metavar="N,M", help="only these hidden widths")
    p.add_argument("--dtype", type=options.comma_list(options.dtype), action="extend",
                   metavar="D", help="only these dtypes")
    p.add_argument("--last", type=options.positive_int, metavar="N",
                   help="only the last N commits measured")
    p.add_argument("--threshold", type=options.positive_float, default=DEFAULT_THRESHOLD,
                   metavar="PCT", help="flag a change only above this many percent "
                                       f"(default {DEFAULT_THRESHOLD:g})")
    p.add_argument("--output", metavar="PNG", help="draw the history into this PNG file")
    p.epilog = (
        f"Reads {BENCHMARK} and shows 1/median as steps/s, with the interquartile range. Without "
        "--batch-size, --hidden or --dtype: the quick grid's points where measured, else all. A "
        "commit is flagged (*) at a point when its steps/s differs from the previous measured "
        "commit's by more than --threshold percent and the two medians' 99% confidence "
        "intervals (asv's) do not overlap: the rule asv compare applies without samples. "
        "Commits in git's order where git knows them all, else by date. Exit status 0, or 2 "
        "on bad input (no results, unknown machine, filters matching nothing).")


# -- finding and reading asv's results ---------------------------------------------------


def _read_conf(path: Path) -> dict:
    """asv.conf.json: JSON with whole-line // comments."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
             if not ln.lstrip().startswith("//")]
    try:
        return json.loads("\n".join(lines))
    except ValueError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def find_results_dir(results: str | None, cwd: Path) -> Path:
    """The results folder: ``results`` if given, else ./asv.conf.json's results_dir."""
    if results is None:
        conf = cwd / "asv.conf.json"
        if not conf.is_file():
            raise UsageError(f"no asv.conf.json in {cwd}: run in the repository, or pass "
                             "--results DIR")
        folder = cwd / _read_conf(conf).get("results_dir", "results")
    else:
        folder = Path(results)
    if not folder.is_dir():
        raise UsageError(f"no asv results folder at {folder} (asv run writes it)")
    return folder


def _machines(folder: Path) -> list[str]:
    """The machine folders: those holding asv's machine.json."""
    return sorted(p.name for p in folder.iterdir() if (p / "machine.json").is_file())


def pick_machine(folder: Path, name: str | None) -> Path:
    """The folder of machine ``name``; by default this machine's, or the only one."""
    machines = _machines(folder)
    if not machines:
        raise UsageError(f"no asv results in {folder}: no machine folder with a machine.json "
                         "(asv run writes them)")
    if name is None:
        name = platform.node() if platform.node() in machines else None
        if name is None and len(machines) == 1:
            name = machines[0]
        if name is None:
            raise UsageError(f"results of several machines in {folder} ({', '.join(machines)})"
                             "; choose one with --machine")
    if name not in machines:
        raise UsageError(f"no results for machine {name!r} in {folder}; machines there: "
                         f"{', '.join(machines)}")
    return folder / name


def _param_names(folder: Path) -> tuple[str, ...]:
    """The benchmark's parameter names as asv discovered them (benchmarks.json), if known."""
    try:
        known = json.loads((folder / "benchmarks.json").read_text(encoding="utf-8"))
        return tuple(known[BENCHMARK]["param_names"])
    except (OSError, ValueError, KeyError, TypeError):
        return PARAM_NAMES


def _stat(stats: dict[str, list] | None, name: str, i: int) -> float | None:
    values = (stats or {}).get(name)
    value = values[i] if values is not None and i < len(values) else None
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _measurements(entry: dict, names: tuple[str, ...], env: str) -> list[Measurement]:
    """The measured points of one benchmark entry (its columns already named)."""
    params = [[ast.literal_eval(v) for v in values] for values in entry.get("params") or []]
    if sorted(names) != sorted(PARAM_NAMES) or len(params) != len(names):
        raise ValueError(f"parameters {list(names)} are not {list(PARAM_NAMES)}")
    stats = {k[len("stats_"):]: v for k, v in entry.items() if k.startswith("stats_") and v}
    found = []
    # asv stores one value per parameter combination, in itertools.product order;
    # None is a failure, NaN a skip.
    values = entry.get("result") or []
    for i, combo in enumerate(itertools.product(*params)):
        value = values[i] if i < len(values) else None
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            continue
        p = dict(zip(names, combo))
        lo, hi = _stat(stats, "ci_99_a", i), _stat(stats, "ci_99_b", i)
        found.append(Measurement(
            str(p["backend"]), int(p["batch_size"]), int(p["hidden"]), str(p["dtype"]), env,
            float(value), _stat(stats, "q_25", i), _stat(stats, "q_75", i),
            (lo, hi) if lo is not None and hi is not None else None))
    return found


def load_history(machine_dir: Path) -> dict[str, Commit]:
    """Commit hash -> Commit, from every results file of one machine folder.

    A file asv could not have written, or of another format, is skipped with one line on
    stderr; a folder with no results of ``BENCHMARK`` at all is a UsageError.
    """
    names = _param_names(machine_dir.parent)
    commits: dict[str, Commit] = {}
    files = sorted(p for p in machine_dir.glob("*.json") if p.name != "machine.json")
    for path in files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("version") != RESULTS_API_VERSION:
                raise ValueError(f"results format version {doc.get('version')!r}, "
                                 f"not {RESULTS_API_VERSION} (asv update converts old ones)")
            row = doc["results"].get(BENCHMARK)
            if row is None:
                continue
            entry = dict(zip(doc["result_columns"], row))
            found = _measurements(entry, names, str(doc.get("env_name", "?")))
            commit = commits.setdefault(doc["commit_hash"], Commit(doc["commit_hash"],
                                                                   doc.get("date")))
        except (OSError, ValueError, KeyError, TypeError, SyntaxError) as exc:
            print(f"mlpbench history: skipping {path}: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            continue
        commit.measurements.extend(found)
    if not commits:
        raise UsageError(f"no {BENCHMARK} results in {machine_dir} ({len(files)} results "
                         "files: none from mlpbench's asv suite)")
    return commits


# -- ordering, selecting and flagging ----------------------------------------------------


def order_commits(commits: dict[str, Commit], repo: Path | None) -> tuple[list[Commit], str]:
    """Oldest first: git's order when git knows every commit, else asv's commit dates."""
    known = commit_order(repo) if repo is not None else None
    if known is not None and all(h in known for h in commits):
        for h, commit in commits.items():
            commit.subject = known[h][1]
        return sorted(commits.values(), key=lambda c: known[c.hash][0]), "git order"
    return sorted(commits.values(), key=lambda c: (c.date_ms or 0, c.hash)), "by commit date"


def _moved(before: Measurement, after: Measurement, threshold: float) -> bool:
    ratio = max(before.seconds, after.seconds) / min(before.seconds, after.seconds)
    if ratio <= 1 + threshold / 100:
        return False
    if before.ci_99 is None or after.ci_99 is None:
        return False  # no spread recorded: nothing to tell noise from a move
    return before.ci_99[1] < after.ci_99[0] or after.ci_99[1] < before.ci_99[0]


def flag_moves(commits: list[Commit], threshold: float) -> dict[tuple, float]:
    """(commit hash, series) -> percent change in steps/s, where the point moved beyond its
    noise since the previous commit that measured it (see ``_moved``)."""
    previous: dict[tuple, Measurement] = {}
    flagged = {}
    for commit in commits:
        for m in commit.measurements:
            before = previous.get(m.series)
            if before is not None and _moved(before, m, threshold):
                flagged[(commit.hash, m.series)] = 100.0 * (before.seconds / m.seconds - 1)
            previous[m.series] = m
    return flagged


def _select(commits: list[Commit], args: argparse.Namespace) -> list[Commit]:
    """Keep the chosen measurements; a filter value that matches nothing is a UsageError."""
    every = [m for c in commits for m in c.measurements]
    quick = settings.GRIDS["quick"]
    chosen = {"backend": args.backend, "batch_size": args.batch_size, "hidden": args.hidden,
              "dtype": args.dtype}
    for name, wanted in chosen.items():
        recorded = sorted({getattr(m, name) for m in every},
                          key=backend_order if name == "backend" else None)
        missing = [v for v in wanted or [] if v not in recorded]
        if missing:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} {','.join(map(str, missing))}: not in the results; "
                             f"recorded: {', '.join(map(str, recorded))}")
    if not any(chosen[k] for k in ("batch_size", "hidden", "dtype")):
        if any(m.point in _quick_points(quick) for m in every):
            chosen.update(batch_size=quick["batch_size"], hidden=quick["hidden"],
                          dtype=quick["dtype"])
    for commit in commits:
        commit.measurements = [m for m in commit.measurements
                               if all(not v or getattr(m, k) in v for k, v in chosen.items())]
    kept = [c for c in commits if c.measurements]
    if not kept:
        raise UsageError("no measurement matches these filters")
    return kept


def _quick_points(quick: dict) -> set[tuple]:
    return set(itertools.product(quick["batch_size"], quick["hidden"], quick["dtype"]))


# -- showing -------------------------------------------------------------------------------


def _labels(commits: list[Commit]) -> dict[tuple, str]:
    """series -> its name: the backend, with asv's environment when there are several."""
    every = [m for c in commits for m in c.measurements]
    several_envs = len({m.env for m in every}) > 1
    return {m.series: f"{m.backend} ({m.env})" if several_envs else m.backend for m in every}


def _cell(m: Measurement | None, change: float | None) -> str:
    if m is None:
        return "-"
    spread = m.rate_range()
    text = format_rate(m.steps_per_s)
    if spread:
        text += f" ({format_rate(spread[0])}-{format_rate(spread[1])})"
    if change is not None:
        text += f" {change:+.0f}%*"
    return text


def format_table(commits: list[Commit], flagged: dict[tuple, float], header: str,
                 threshold: float) -> str:
    labels = _labels(commits)
    points = sorted({m.point for c in commits for m in c.measurements},
                    key=lambda p: (p[2], p[1], p[0]))
    out = [header, "", "commits, oldest first:"]
    out += [f"  {c.hash[:8]}  {c.date_text()}  {c.subject}".rstrip() for c in commits]
    for point in points:
        series = sorted({m.series for c in commits for m in c.measurements if m.point == point},
                        key=lambda s: (backend_order(s[0]), s[1]))
        rows = [["commit", *(labels[s] for s in series)]]
        for c in commits:
            by_series = {m.series: m for m in c.measurements}
            rows.append([c.hash[:8], *(_cell(by_series.get(s), flagged.get((c.hash, s)))
                                       for s in series)])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        out += ["", f"batch {point[0]}, hidden {point[1]}, {point[2]}: steps/s, median "
                    "(interquartile range)"]
        out += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
                for r in rows]
    out += ["", f"* moved beyond its noise since the commit above: more than {threshold:g}% "
                "and the 99% confidence intervals of the two medians do not overlap"
            if flagged else f"no point moved beyond its noise (more than {threshold:g}% with "
                            "non-overlapping 99% confidence intervals) between these commits"]
    return "\n".join(out)


def draw(commits: list[Commit], flagged: dict[tuple, float], title: str, path: str) -> None:
    """One panel per point: steps/s per commit, a line per backend, the IQR as a band."""
    from matplotlib.ticker import FuncFormatter

    from mlpbench.plot import pyplot

    plt = pyplot()

    labels = _labels(commits)
    rate = FuncFormatter(lambda v, _: format_rate(v))
    # minor ticks at 2x and 5x only: all nine crowd a panel that spans about one decade
    sparse = FuncFormatter(lambda v, _: format_rate(v) if _mantissa(v) in (2, 5) else "")
    points = sorted({m.point for c in commits for m in c.measurements},
                    key=lambda p: (p[2], p[1], p[0]))
    names = sorted(set(labels.values()), key=lambda n: backend_order(n.split(" ")[0]))
    colours = {n: f"C{i % 10}" for i, n in enumerate(names)}
    ncols = min(len(points), 2)
    nrows = math.ceil(len(points) / ncols)
    width = min(max(6.0, 0.5 * len(commits) + 3), 14.0)  # per panel
    fig = plt.figure(figsize=(width * ncols, 3.6 * nrows + 0.8),
                     layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    x = range(len(commits))
    for ax, point in zip(axes.flat, points):
        for s in sorted({m.series for c in commits for m in c.measurements if m.point == point},
                        key=lambda s: (backend_order(s[0]), s[1])):
            at = [(i, m) for i, c in enumerate(commits) for m in c.measurements if m.series == s]
            colour = colours[labels[s]]
            xs, ms = [i for i, _ in at], [m for _, m in at]
            ax.plot(xs, [m.steps_per_s for m in ms], marker="o", ms=4, color=colour)
            band = [(i, m.rate_range()) for i, m in at if m.rate_range()]
            if band:
                ax.fill_between([i for i, _ in band], [r[0] for _, r in band],
                                [r[1] for _, r in band], color=colour, alpha=0.2, lw=0)
            moved = [(i, m) for i, m in at if (commits[i].hash, s) in flagged]
            if moved:
                ax.plot([i for i, _ in moved], [m.steps_per_s for _, m in moved], ls="none",
                        marker="o", ms=11, mfc="none", mec="red", mew=1.5)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(rate)
        ax.yaxis.set_minor_formatter(sparse)
        ax.set_title(f"batch {point[0]}, hidden {point[1]}, {point[2]}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.set_ylabel("steps / s (higher is faster)")
        ax.set_xticks(list(x), [c.hash[:8] for c in commits], rotation=45, ha="right",
                      fontsize=8)
    for ax in list(axes.flat)[len(points):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], marker="o", color=colours[n], label=n) for n in names]
    handles.append(plt.Line2D([], [], ls="none", marker="o", ms=11, mfc="none", mec="red",
                              label="moved beyond its noise"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5),
               fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=10)
    try:
        write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110), binary=True)
    finally:
        plt.close(fig)


def _mantissa(value: float) -> int:
    return round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0


# -- the command -------------------------------------------------------------------------


def _check_output(path: str | None) -> None:
    if path is None:
        return
    if not path.lower().endswith(".png"):
        raise UsageError(f"--output {path!r}: the history is drawn as PNG; name a .png file")
    from mlpbench.plot import require_matplotlib

    require_matplotlib("--output")
    check_writable(path, "--output")


def run(args: argparse.Namespace) -> int:
    _check_output(args.output)
    cwd = Path.cwd()
    folder = find_results_dir(args.results, cwd)
    machine_dir = pick_machine(folder, args.machine)
    commits, order = order_commits(load_history(machine_dir), cwd)
    commits = _select(commits, args)
    flagged = flag_moves(commits, args.threshold)  # before --last: its first commit has a past
    commits = commits[-args.last:] if args.last else commits
    header = (f"mlpbench history: machine {machine_dir.name}, {os.path.relpath(folder, cwd)}, "
              f"{len(commits)} commits ({order}); {BENCHMARK} as steps/s = 1/median")
    print(format_table(commits, flagged, header, args.threshold))
    if args.output:
        draw(commits, flagged, f"{BENCHMARK} as steps/s, machine {machine_dir.name}",
             args.output)
        print(f"wrote {args.output}")
    return 0
