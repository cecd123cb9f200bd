"""Writing a user's files safely: checked before any work, locked in use, replaced atomically;
and where the project keeps its caches."""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

from mlpbench.errors import UsageError

__all__ = ["cache_dir", "check_distinct", "check_writable", "lock_output", "write_atomic"]

def cache_dir(*parts: str) -> Path:
    """The project's cache folder ``parts`` under the user's cache (``XDG_CACHE_HOME``, else
    ``~/.cache``): ``cache_dir("gate")`` is ``~/.cache/mlpbench/gate``. Not created here."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser().joinpath("mlpbench", *parts)


_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"))


def _not_regular(path: str) -> str | None:
    """What ``path`` (symlinks followed) is when it exists and is not a regular file, else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def check_writable(path: str, flag: str) -> None:
    """Fail before any work if ``path`` cannot be written (by trying, in its folder).

    A symlink is followed: its target is what gets written. An existing path that is not a
    regular file (a directory, a device such as /dev/null, a pipe) is refused rather than
    replaced by the rename that writes it.
    """
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    kind = _not_regular(target)
    if kind:
        raise UsageError(f"cannot write {flag} {path!r}: it is {kind}, not a regular file")
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write {flag} {path!r}: folder {folder!r} does not exist")
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise UsageError(f"cannot write {flag} {path!r}: permission denied")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".mlpbench-", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {flag} {path!r}: cannot create a file in {folder!r} "
                         f"({exc.strerror})") from None
    os.close(fd)
    os.unlink(tmp)


def check_distinct(paths: dict[str, str | None]) -> None:
    """Fail when two flags name the same file (``{flag: path}``; None: not given)."""
    seen: dict[str, str] = {}
    for flag, path in paths.items():
        if path is None:
            continue
        target = os.path.realpath(path)
        if target in seen:
            raise UsageError(f"{seen[target]} and {flag} name the same file {path!r}; "
                             "each needs its own")
        seen[target] = flag


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str, write: Callable[[IO], None], *, binary: bool = False) -> None:
    """Call ``write(file)`` on a temporary file in the same folder, then rename it over ``path``.

    A reader (or a run killed half-way) sees the old file or the new one, never a mix; the
    name is kept exactly as given, and the file gets the permissions of a plain new file. A
    symlink stays a symlink: the file it points to is the one replaced.
    """
    target = os.path.realpath(path)
    kind = _not_regular(target)
    if kind:  # checked before the run too; a path can change while it runs
        raise UsageError(f"cannot write {path!r}: it is {kind}, not a regular file")
    folder = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".mlpbench-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _holder(fd: int) -> str:
    """The pid written in a lock file, as text ("unknown" while its holder has not written it)."""
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        if text.isdigit():
            return text
    return "unknown"


@contextlib.contextmanager
def lock_output(path: str, flag: str) -> Iterator[str]:
    """Hold ``path``'s lock file (``path.lock``, holding our pid) while the block runs.

    Another run on the same file (through any name of it) is refused with one line naming
    the pid that holds it: two runs writing one file would each replace the other's points.
    The lock is ``flock`` on the lock file, so a killed run never leaves a stale lock; the
    file is removed when the run ends.
    """
    import fcntl

    lock_path = os.path.realpath(path) + ".lock"
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        except OSError as exc:
            raise UsageError(f"cannot lock {flag} {path!r}: cannot create {lock_path!r} "
                             f"({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UsageError(f"{flag} {path!r} is in use by another mlpbench run (pid {holder}); "
                             f"wait for it to end, or choose another file") from None
        # The holder before us may have removed the file between our open and our flock.
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(fd), os.stat(lock_path)):
                break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield lock_path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)  # while still held, so no one locks a file about to vanish
        os.close(fd)
