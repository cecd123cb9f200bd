"""Steps/s per commit from asv's results, offline: a table, a PNG, and the commits that moved."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from mlpbench import options
from mlpbench.errors import UsageError
from mlpbench.files import check_writable
from mlpbench.history import BENCHMARK, DEFAULT_THRESHOLD
from mlpbench.history.flag import flag_moves, order_commits, select
from mlpbench.history.read import find_results_dir, load_history, pick_machine
from mlpbench.history.show import draw, format_table

__all__ = ["add_arguments", "run"]


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
    commits = select(commits, backend=args.backend, batch_size=args.batch_size,
                     hidden=args.hidden, dtype=args.dtype)
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
