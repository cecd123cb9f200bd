"""Ordering the commits, choosing the points shown, and flagging the moves beyond the noise."""
from __future__ import annotations

import itertools
from pathlib import Path

from mlpbench import settings
from mlpbench.errors import UsageError
from mlpbench.gitinfo import commit_order
from mlpbench.history import Commit, Measurement
from mlpbench.report import backend_order

__all__ = ["flag_moves", "order_commits", "select"]


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


def select(commits: list[Commit], *, backend=None, batch_size=None, hidden=None,
           dtype=None) -> list[Commit]:
    """Keep the chosen measurements (each filter a list, or None for all); without a size or
    dtype filter, the quick grid's points where measured. A filter value that matches
    nothing is a UsageError."""
    every = [m for c in commits for m in c.measurements]
    quick = settings.GRIDS["quick"]
    chosen = {"backend": backend, "batch_size": batch_size, "hidden": hidden, "dtype": dtype}
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
