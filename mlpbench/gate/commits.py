"""The commits the gate compares: resolved with git, and snapshotted as source trees to import from."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from mlpbench.errors import UsageError

__all__ = ["cache_dir", "default_base", "dependencies_differ", "repository_root",
           "resolve_commit", "snapshot"]


def _git(root: Path | None, *args: str, text: bool = True) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=text)
    except FileNotFoundError:
        raise UsageError("git is not installed (the regression gate compares git commits)") \
            from None


def repository_root(start: Path | None = None) -> Path:
    """The top of the git repository around ``start`` (default: the current directory)."""
    done = _git(start, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise UsageError(f"not in a git repository ({Path(start or '.').resolve()}); "
                         "the regression gate compares git commits")
    return Path(done.stdout.strip())


def resolve_commit(root: Path, rev: str) -> str:
    """The full hash of ``rev`` (one line and exit 2 when git does not know it)."""
    done = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if done.returncode != 0:
        raise UsageError(f"unknown revision {rev!r} in {root}")
    return done.stdout.strip()


def default_base(root: Path, head: str, main: str = "main") -> str:
    """The merge base of ``head`` with the main branch, or ``head``'s parent when that is head."""
    for ref in (main, f"origin/{main}"):
        done = _git(root, "merge-base", head, ref)
        if done.returncode == 0 and done.stdout.strip() and done.stdout.strip() != head:
            return done.stdout.strip()
    done = _git(root, "rev-parse", "--verify", "--quiet", f"{head}~1^{{commit}}")
    if done.returncode != 0:
        raise UsageError(f"commit {head[:8]} has no parent to compare with; pass --base REV")
    return done.stdout.strip()


def cache_dir() -> Path:
    """Where snapshots are kept between runs (``MLPBENCH_GATE_CACHE``, else the user's cache)."""
    return Path(os.environ.get("MLPBENCH_GATE_CACHE")
                or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
                / "mlpbench" / "gate")


def snapshot(root: Path, commit: str, into: Path | None = None) -> Path:
    """The tree of ``commit`` extracted (``git archive``) into ``into/<commit>``, once: a later
    call finds it there, with the caches (Numba's) that earlier runs left in it."""
    target = (into or cache_dir()) / commit
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    done = _git(root, "archive", "--format=tar", commit, text=False)
    if done.returncode != 0:
        raise UsageError(f"git archive {commit[:8]} failed: "
                         f"{done.stderr.decode(errors='replace').strip()}")
    partial = Path(tempfile.mkdtemp(prefix=f".{commit[:8]}-", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(partial, filter="data")
            else:
                archive.extractall(partial)
        partial.rename(target)  # atomic: a snapshot is whole or absent
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not target.is_dir():
            raise
    return target


def _dependencies(root: Path, commit: str) -> object:
    try:
        import tomllib
    except ImportError:  # Python 3.10: not compared
        return None
    done = _git(root, "show", f"{commit}:pyproject.toml")
    try:
        project = tomllib.loads(done.stdout).get("project", {})
    except tomllib.TOMLDecodeError:
        return None
    return project.get("dependencies"), project.get("optional-dependencies")


def dependencies_differ(root: Path, base: str, head: str) -> bool:
    """Whether the two commits' pyproject.toml ask for different dependencies (False where
    either cannot be read: nothing is known to differ)."""
    base_deps, head_deps = _dependencies(root, base), _dependencies(root, head)
    return None not in (base_deps, head_deps) and base_deps != head_deps
