"""The commits the gate compares, snapshotted as source trees to import from (git: ``gitinfo``)."""
from __future__ import annotations

import io
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Iterable

from mlpbench import files
from mlpbench.errors import UsageError
from mlpbench.gitinfo import git

__all__ = ["cache_dir", "prune", "snapshot"]

#: A snapshot's folder (a commit's hash, SHA-1 or SHA-256), and a partial one: an extraction
#: under way, or a snapshot being removed (see ``snapshot`` and ``prune``).
_SNAPSHOT = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_PARTIAL = re.compile(r"\.[0-9a-f]{8}-.+")


def cache_dir() -> Path:
    """Where snapshots are kept between runs (``MLPBENCH_GATE_CACHE``, else the user's cache)."""
    return Path(os.environ.get("MLPBENCH_GATE_CACHE") or files.cache_dir("gate"))


def snapshot(root: Path, commit: str, into: Path | None = None) -> Path:
    """The tree of ``commit`` extracted (``git archive``) into ``into/<commit>``, once: a later
    call finds it there, with the caches (Numba's) that earlier runs left in it. Each call
    touches the folder: ``prune`` removes the least recently used."""
    target = (into or cache_dir()) / commit
    if target.is_dir():
        try:
            os.utime(target)
            return target
        except FileNotFoundError:  # a concurrent prune took it just now: extract it again
            pass
        except OSError:  # a cache we may read but not touch: used as it is
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    done = git(root, "archive", "--format=tar", commit, text=False)
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
        os.utime(target)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not target.is_dir():
            raise
    return target


def prune(keep: int, grace_s: float, using: Iterable[Path] = (),
          into: Path | None = None) -> list[Path]:
    """Remove the snapshots beyond the ``keep`` most recently used (their folders' mtime), except
    those in ``using`` and any used within ``grace_s`` seconds (another run may be measuring
    it); partial folders older than ``grace_s`` are left by a run that died, and go too. Other
    files are never touched. The snapshots removed."""
    folder = into or cache_dir()
    now = time.time()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    snapshots, stale = [], []
    for entry in entries:
        try:
            st = entry.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        if _SNAPSHOT.fullmatch(entry.name):
            snapshots.append((st.st_mtime, entry))
        elif _PARTIAL.fullmatch(entry.name) and now - st.st_mtime > grace_s:
            stale.append(entry)
    for entry in stale:
        shutil.rmtree(entry, ignore_errors=True)
    used = {Path(p).name for p in using}
    snapshots.sort(key=lambda item: item[0], reverse=True)
    return [entry for mtime, entry in snapshots[max(keep, 0):]
            if entry.name not in used and now - mtime > grace_s and _remove(entry, mtime)]


def _remove(entry: Path, mtime: float) -> bool:
    """Remove the snapshot ``entry``, chosen when its mtime was ``mtime``. Renamed out of the
    way first, so that no run finds it half removed; put back if a run touched it meanwhile."""
    trash = entry.with_name(f".{entry.name[:8]}-removed-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        entry.rename(trash)
    except OSError:  # gone already: a concurrent run pruned it
        return False
    try:
        if trash.stat().st_mtime != mtime:
            trash.rename(entry)
            return False
    except OSError:  # re-extracted meanwhile (this copy is not needed), or removed already
        pass
    shutil.rmtree(trash, ignore_errors=True)
    return True


