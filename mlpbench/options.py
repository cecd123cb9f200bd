"""Flags shared by several commands, and their validators (each raises a one-line error)."""
from __future__ import annotations

import argparse
import math

import backends
from mlpbench import settings
from mlpbench.errors import UsageError

__all__ = [
    "DTYPES", "MAX_INT", "MAX_THREADS", "add_threads", "check_learning_rate", "comma_list", "dtype", "file_path",
    "format_threads", "learning_rate", "non_empty", "non_negative_int", "positive_float",
    "positive_int", "resolve_backend", "resolve_backends", "seconds", "threads",
]

DTYPES = settings.DTYPES


def non_empty(value: str) -> str:
    """Any text but an empty one: an empty value is a mistake, never "not given"."""
    if not value.strip():
        raise argparse.ArgumentTypeError(f"must not be empty, got {value!r}")
    return value


def file_path(value: str) -> str:
    """A file's path: not empty (an empty path is a mistake, never "no file")."""
    if not value.strip():
        raise argparse.ArgumentTypeError(f"must be a file path, got {value!r}")
    return value


#: The largest integer a flag takes: the largest C int, what the libraries given sizes, seeds
#: and thread counts accept (a larger one fails inside them, or runs for ever).
MAX_INT = 2**31 - 1
#: The most threads ``--threads`` takes: thread pools allocate per thread (torch crashes at
#: 100000); far above any core count, so an oversubscribed run can still be asked for.
MAX_THREADS = 1024


def _integer(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be {what} at most {high}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer from 1 to MAX_INT."""
    return _integer(text, 1, MAX_INT, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer from 0 to MAX_INT."""
    return _integer(text, 0, MAX_INT, "an integer >= 0")


def threads(text: str) -> int:
    """A thread count: an integer from 1 to MAX_THREADS."""
    return _integer(text, 1, MAX_THREADS, "a positive integer")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite positive number, got {text!r}")
    return value


#: The longest duration a flag takes, in seconds (11.6 days): timers refuse far longer ones.
MAX_SECONDS = 1e6


def seconds(text: str) -> float:
    """A duration: a finite number of seconds above 0, at most MAX_SECONDS."""
    value = positive_float(text)
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_SECONDS:g} seconds, got {text!r}")
    return value


def learning_rate(text: str) -> float:
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"learning rate must be a finite positive number, got {text!r}") from None


def check_learning_rate(lr: float, dtype_: str, flag: str = "--lr") -> None:
    """UsageError unless ``lr`` is finite and above zero in ``dtype_`` (1e-50 is 0 in float32)."""
    import numpy as np

    with np.errstate(over="ignore", under="ignore"):
        in_dtype = float(np.dtype(dtype_).type(lr))
    if not (math.isfinite(in_dtype) and in_dtype > 0):
        info = np.finfo(dtype_)
        raise UsageError(
            f"{flag} {lr:g} is {in_dtype:g} in {dtype_}: the rate must be between "
            f"{float(info.smallest_subnormal):.3g} and {float(info.max):.3g} in {dtype_}")


def dtype(text: str) -> str:
    if text not in DTYPES:
        raise argparse.ArgumentTypeError(
            f"unsupported dtype {text!r}; choose from {', '.join(DTYPES)}")
    return text


def comma_list(item_type):
    """A validator for comma-separated values, each checked by ``item_type``; duplicates dropped."""

    def parse(text: str) -> list:
        items = [part.strip() for part in text.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(f"empty item in list {text!r}")
        values = [item_type(item) for item in items]
        return list(dict.fromkeys(values))

    parse.__name__ = f"list of {getattr(item_type, '__name__', 'values')}"
    return parse


def add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=threads, default=None, metavar="N",
        help="threads for BLAS and the backend's own pool (default: as the environment sets them)")


def format_threads(info: dict) -> str:
    """Threads in effect, as ``blas 1, numba 1``."""
    return ", ".join(f"{k} {','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                     for k, v in info.items()) or "unknown"


def resolve_backend(name: str, **options) -> backends.Backend:
    """A new backend ``name``, or a UsageError saying it is unknown or why it cannot run here."""
    try:
        backend = backends.create(name, **options)
    except backends.UnknownBackend as exc:
        raise UsageError(str(exc)) from None
    ok, why = backend.available()
    if not ok:
        raise UsageError(f"backend {name!r} is not available here: {why}")
    return backend


def resolve_backends(names: list[str] | None, **options) -> list[backends.Backend]:
    """New named backends (each must be available), or every available one when ``names`` is
    empty or ``all``."""
    if not names or names == ["all"]:
        names = backends.available()
    return [resolve_backend(n, **options) for n in names]
