"""Scratch git repositories for the tests that need commits: the gate's and asv's history's."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from helpers import ROOT
from mlpbench.files import cache_dir

__all__ = ["FORWARD", "SLOWER_FORWARD", "asv_env_dir", "commit", "git", "worktree_repository"]

#: A line of kernels/step.py, and a version of it that makes every step slower.
FORWARD = "        u, h, y = forward(x, W, S)\n"
SLOWER_FORWARD = ("        for _ in range(5):  # deliberately slower: the forward pass five times\n"
                  "            u, h, y = forward(x, W, S)\n")


def git(cwd: Path, *args: str) -> str:
    """git in ``cwd``, with an identity for commits; its stdout."""
    return subprocess.run(["git", "-c", "user.name=mlpbench", "-c", "user.email=mlpbench@localhost",
                           *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    """Write ``files`` (path -> text) and commit everything; the new commit."""
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def worktree_repository(target: Path) -> str:
    """``target`` made a git repository of this checkout's working tree (tracked files and the
    untracked ones git does not ignore), committed once as "base" on main; that commit."""
    files = git(ROOT, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    git(target, "init", "-q", "-b", "main")
    return commit(target, {}, "base")


def asv_env_dir() -> Path:
    """asv's environments shared by the tests' scratch repositories, so only the first installs."""
    return Path(os.environ.get("MLPBENCH_ASV_ENV_DIR") or cache_dir("asv-env"))
