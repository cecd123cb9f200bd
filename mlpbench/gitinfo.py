"""Every git call of the project: the repository, its commits and their order, and what differs."""
from __future__ import annotations

import subprocess
from pathlib import Path

from mlpbench.errors import UsageError

__all__ = ["MEASURED", "commit_order", "default_base", "git", "repository_root",
           "resolve_commit", "uncommitted_changes"]

#: The folders whose code the benchmarks measure.
MEASURED = ("kernels", "backends", "mlpbench", "benchmarks")


def git(root: Path | str | None, *args: str, text: bool = True,
        timeout: float | None = 300) -> subprocess.CompletedProcess:
    """``git ARGS`` in ``root`` (None: the current directory), output captured; UsageError
    (one line) when git is not installed or does not answer."""
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=text,
                              timeout=timeout)
    except FileNotFoundError:
        if root is not None and not Path(root).is_dir():
            raise UsageError(f"no folder {str(root)!r} to run git in") from None
        raise UsageError("git is not installed") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"cannot run git in {str(root or '.')!r}: {exc}") from None


def repository_root(start: Path | None = None) -> Path:
    """The top of the git repository around ``start`` (default: the current directory)."""
    done = git(start, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise UsageError(f"not in a git repository ({Path(start or '.').resolve()}); "
                         "the regression gate compares git commits")
    return Path(done.stdout.strip())


def resolve_commit(root: Path, rev: str) -> str:
    """The full hash of ``rev`` (one line and exit 2 when git does not know it)."""
    done = git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if done.returncode != 0:
        raise UsageError(f"unknown revision {rev!r} in {root}")
    return done.stdout.strip()


def default_base(root: Path, head: str, main: str = "main") -> str:
    """The merge base of ``head`` with the main branch, or ``head``'s parent when that is head."""
    for ref in (main, f"origin/{main}"):
        done = git(root, "merge-base", head, ref)
        if done.returncode == 0 and done.stdout.strip() and done.stdout.strip() != head:
            return done.stdout.strip()
    done = git(root, "rev-parse", "--verify", "--quiet", f"{head}~1^{{commit}}")
    if done.returncode != 0:
        raise UsageError(f"commit {head[:8]} has no parent to compare with; pass --base REV")
    return done.stdout.strip()


def commit_order(root: Path) -> dict[str, tuple[int, str]] | None:
    """Full hash -> (position, oldest first; subject) over every ref; None where git cannot
    say (not installed, not a repository)."""
    try:
        done = git(root, "log", "--all", "--topo-order", "--reverse", "--format=%H %s")
    except UsageError:
        return None
    if done.returncode != 0:
        return None
    order = {}
    for i, line in enumerate(done.stdout.splitlines()):
        commit, _, subject = line.partition(" ")
        order[commit] = (i, subject)
    return order


def uncommitted_changes(root: str) -> list[str]:
    """Paths (from the repository's top, sorted) under the measured folders that differ from HEAD.

    Staged, unstaged, deleted and untracked (not ignored) files all count: none of them is
    in the commits that ``regress`` compares. UsageError (one line) when git cannot say.
    """
    proc = git(None, "-C", root, "status", "--porcelain=v1", "-z", "--untracked-files=all",
               "--", *MEASURED, timeout=60)
    if proc.returncode != 0:
        message = " ".join(proc.stderr.split()) or f"exit status {proc.returncode}"
        raise UsageError(f"git status failed in {root!r}: {message}")
    paths, entries = set(), iter(proc.stdout.split("\0"))
    for entry in entries:
        if not entry:
            continue
        status, path = entry[:2], entry[3:]
        paths.add(path)
        if "R" in status or "C" in status:  # a rename's or copy's source follows
            paths.add(next(entries, ""))
    paths.discard("")
    return sorted(paths)
