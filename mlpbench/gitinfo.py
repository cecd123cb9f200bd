"""What git says of the measured code: uncommitted changes that comparing commits misses."""
from __future__ import annotations

import subprocess

from mlpbench.errors import UsageError

__all__ = ["MEASURED", "uncommitted_changes"]

#: The folders whose code the benchmarks measure.
MEASURED = ("kernels", "backends", "mlpbench", "benchmarks")


def uncommitted_changes(root: str) -> list[str]:
    """Paths (from the repository's top, sorted) under the measured folders that differ from HEAD.

    Staged, unstaged, deleted and untracked (not ignored) files all count: none of them is
    in the commits that ``regress`` compares. UsageError (one line) when git cannot say.
    """
    try:
        proc = subprocess.run(
            ["git", "-C", root, "status", "--porcelain=v1", "-z", "--untracked-files=all",
             "--", *MEASURED],
            capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"cannot run git in {root!r}: {exc}") from None
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
