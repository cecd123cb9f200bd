"""Worker processes: start one, send it a request, get its reply, kill it past a deadline.

A worker is any program that reads one JSON object per line on its stdin and answers each
with one JSON object per line on the file descriptor named by ``MLPBENCH_REPLY_FD`` (its
stdout is free for libraries that print). The parent owns the deadline: a worker that does
not answer in time is killed, so a native call that never returns cannot hang the parent;
a worker that dies (a signal, an exit, the OOM killer) is reported with how it died.
``bench`` (``mlpbench.worker``) and the regression gate both run their measurements here.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Any, Mapping, Sequence

__all__ = ["REPLY_FD_VARIABLE", "WorkerDied", "WorkerError", "WorkerProcess", "WorkerTimeout",
           "how_it_ended", "one_line", "serve"]

REPLY_FD_VARIABLE = "MLPBENCH_REPLY_FD"


class WorkerError(Exception):
    """A worker could not answer a request."""


class WorkerDied(WorkerError):
    """The worker process ended before it answered."""


class WorkerTimeout(WorkerError):
    """The worker did not answer before the deadline; it has been killed."""


def one_line(exc: BaseException) -> str:
    """An exception as one short line, for a worker's reply, with the exceptions it was raised
    from (a ``SystemError`` from compiled code names only the call; its cause says what failed)."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = " ".join(str(exc).split()) or "(no message)"
        parts.append(f"{type(exc).__name__}: {text}")
        exc = exc.__cause__
    return " <- from ".join(parts)[:700]


def how_it_ended(returncode: int | None) -> str:
    """A process's end in words: ``killed by signal SIGSEGV``, ``exit status 3``."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        why = " (the kernel's OOM killer, or a kill -9)" if -returncode == signal.SIGKILL else ""
        return f"killed by {name}{why}"
    return f"exit status {returncode}"


class WorkerProcess:
    """One worker: ``argv`` started with ``env``, talking JSON lines.

    Use as a context manager, or call ``close()``: the process is killed if still running.
    """

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: str | None = None, stderr: Any = None) -> None:
        read_fd, write_fd = os.pipe()
        environ = dict(os.environ if env is None else env)
        environ[REPLY_FD_VARIABLE] = str(write_fd)
        try:
            self.process = subprocess.Popen(
                list(argv), stdin=subprocess.PIPE, stdout=2 if stderr is None else stderr,
                env=environ, cwd=cwd, pass_fds=(write_fd,), start_new_session=False)
        finally:
            os.close(write_fd)
        self._replies = os.fdopen(read_fd, "rb", buffering=0)
        self._buffer = b""
        self.pid = self.process.pid

    def __enter__(self) -> "WorkerProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def request(self, message: dict, *, timeout: float | None = None) -> dict:
        """Send ``message``; its reply. WorkerTimeout (worker killed) past ``timeout`` seconds,
        WorkerDied when the worker ends first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerDied(self._death()) from None
        line = self._read_line(deadline)
        if line is None:
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                raise WorkerTimeout(f"no answer within {timeout:g} s; worker {self.pid} killed")
            raise WorkerDied(self._death())
        return json.loads(line)

    def _read_line(self, deadline: float | None) -> bytes | None:
        """The next reply line; None at end of file or past the deadline."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._replies, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                if not selector.select(left):
                    continue
                chunk = self._replies.read(1 << 16)
                if not chunk:
                    return None
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _death(self) -> str:
        try:
            returncode = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return "closed its reply channel without exiting (killed)"
        return f"worker {self.pid} died: {how_it_ended(returncode)}"

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        self.process.wait()

    def close(self) -> None:
        """End the worker: close its stdin (it exits), kill it if it lingers."""
        if self.alive:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        self._replies.close()


def serve(handle: Any) -> None:
    """The worker's side: answer each request line on stdin with ``handle(request)`` (a dict).

    Replies go to the descriptor in ``MLPBENCH_REPLY_FD``; SIGINT is left to the parent (a
    Ctrl-C in the terminal reaches the whole process group), and the worker dies with its
    parent (Linux), so a killed parent leaves no worker measuring on.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    replies = os.fdopen(int(os.environ[REPLY_FD_VARIABLE]), "w", buffering=1)
    for line in sys.stdin:
        if not line.strip():
            continue
        reply = handle(json.loads(line))
        replies.write(json.dumps(reply, allow_nan=False) + "\n")


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
