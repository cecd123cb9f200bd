"""Writing a user's files safely: checked before any work, replaced atomically when done."""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Callable

from mlpbench.errors import UsageError

__all__ = ["check_writable", "write_atomic"]


def check_writable(path: str, flag: str) -> None:
    """Fail before any work if ``path`` cannot be written (by trying, in its folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"cannot write {flag} {path!r}: it is a directory")
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write {flag} {path!r}: folder {folder!r} does not exist")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError(f"cannot write {flag} {path!r}: permission denied")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".mlpbench-", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {flag} {path!r}: cannot create a file in {folder!r} "
                         f"({exc.strerror})") from None
    os.close(fd)
    os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str, write: Callable[[IO], None], *, binary: bool = False) -> None:
    """Call ``write(file)`` on a temporary file in the same folder, then rename it over ``path``.

    A reader (or a run killed half-way) sees the old file or the new one, never a mix; the
    name is kept exactly as given, and the file gets the permissions of a plain new file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".mlpbench-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
