"""Which BLAS numba's products call: the setting, the CPU maker's library, and the pick by measuring.

``MLPBENCH_NUMBA_BLAS`` chooses (``requested``, ``choose``): ``auto`` (default: the CPU
maker's library where it loads, MKL on Intel's, AOCL-BLAS on AMD's, measured against SciPy's
for each product at the step's sizes by ``pick``; else ``scipy``), ``mkl``, ``aocl``,
``scipy`` (SciPy's BLAS by CBLAS gemm, the update fused), ``matmul`` (Numba's own ``@`` on
SciPy's BLAS), or a pair ``FORWARD,UPDATE`` (``aocl,scipy``: the forward products on one,
the weight updates on the other), which is what ``auto`` records it picked.

A pick is measured in the process that runs it and recorded in its result; nothing is kept
unless ``MLPBENCH_NUMBA_BLAS_FILE`` names a file: then picks are read from it, and one it
lacks is measured and added, under a lock, so every process naming the file (the two sides
of a regression gate) runs the same pick. docs/numba-blas.md says why.
"""
from __future__ import annotations

import ctypes
import functools
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from backends.numba.libraries import LABELS, NO_TRANS, ROW_MAJOR, TRANS, Library, load

__all__ = ["CHOICES", "FILE_SETTING", "MARGIN", "SETTING", "Products", "choose", "kept_file",
           "pick", "requested", "warn"]

SETTING = "MLPBENCH_NUMBA_BLAS"
FILE_SETTING = "MLPBENCH_NUMBA_BLAS_FILE"
CHOICES = ("auto", "mkl", "aocl", "scipy", "matmul")
#: The libraries a product can be forced onto by name (``matmul`` is the whole step's).
_CBLAS = ("mkl", "aocl", "scipy")
_FORMAT = "mlpbench.numba-blas/1"


def requested() -> str:
    """The setting's value (``auto`` when unset); ValueError naming the choices when unknown."""
    raw = os.environ.get(SETTING, "")
    value = raw.strip().lower().replace(" ", "") or "auto"
    pair = value.split(",")
    if value in CHOICES or (len(pair) == 2 and set(pair) <= set(_CBLAS)):
        return value
    raise ValueError(f"{SETTING}={raw!r} is not one of {', '.join(CHOICES)}, or a pair "
                     f"FORWARD,UPDATE of {', '.join(_CBLAS)}")


def kept_file() -> str | None:
    """The file ``MLPBENCH_NUMBA_BLAS_FILE`` names, None when unset; ValueError when it cannot
    serve: a folder, a missing folder, or an existing file that is not one of ours."""
    path = os.environ.get(FILE_SETTING, "").strip()
    if not path:
        return None
    if os.path.isdir(path) or not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ValueError(f"{FILE_SETTING}={path!r}: not a file in an existing folder")
    if os.path.exists(path):
        _read(path)
    return path


def _read(path: str) -> list[dict]:
    try:
        with open(path) as f:
            document = json.load(f)
        if document.get("format") != _FORMAT or not isinstance(document.get("picks"), list):
            raise ValueError(f"no {_FORMAT!r} format")
    except (OSError, ValueError, AttributeError) as exc:
        raise ValueError(f"{FILE_SETTING}={path!r} is not a file of numba's BLAS picks "
                         f"({exc})") from None
    return document["picks"]


def _cpu_vendor() -> str:
    """The CPU's maker ("GenuineIntel", "AuthenticAMD"), or "" (``backends.cpu``)."""
    from backends.cpu import cpu_facts

    return cpu_facts()["vendor"]


def choose() -> tuple[tuple, str]:
    """What the products may call in this process, and a warning line or "".

    One entry (a library, or a (forward, update) pair) is fixed; two libraries, the preferred
    first, are for ``pick`` to measure. ``auto`` offers the CPU maker's library where it
    loads (MKL on Intel's: elsewhere it runs generic code; AOCL-BLAS on AMD's) beside SciPy's
    BLAS by its CBLAS gemm; without the maker's, SciPy's alone, else ``matmul``. A library
    that does not load where it was asked for, or an installed maker's library that is
    broken, falls back with one line.
    """
    choice = requested()
    if choice == "matmul":
        return ("matmul",), ""
    if choice != "auto":
        names = tuple(choice.split(","))
        for name in dict.fromkeys(names):
            library, why = load(name)
            if library is None:
                return ("matmul",), f"mlpbench: numba uses Numba's @ on SciPy's BLAS: {why}"
        return ((names if len(names) == 2 else names[0]),), ""
    scipy = "scipy" if load("scipy")[0] is not None else "matmul"
    vendor = _cpu_vendor()
    maker = {"GenuineIntel": "mkl", "AuthenticAMD": "aocl"}.get(vendor)
    if maker is None:
        return (scipy,), ""
    library, why = load(maker)
    if library is None:
        # unasked, an absent library is no news
        warning = "" if "is not installed" in why else (
            f"mlpbench: numba does not use {LABELS[maker]}: {why}")
        return (scipy,), warning
    return ((maker, scipy) if scipy == "scipy" else (maker,)), ""


@dataclass(frozen=True)
class Products:
    """The library of each of the step's products at one size, and what ``pick`` measured.

    ``forward`` computes ``x @ W`` and ``h @ S``; ``update`` the two fused weight updates.
    ``seconds``: {"forward"|"update": {library: least seconds of one product}}, empty where
    nothing was measured (one library offered, or a batch of one, which runs Numba's ``@``);
    where the pick was read from the named file (``kept``), the times measured when it was made.
    """

    forward: str
    update: str
    sizes: tuple[int, int, int]
    seconds: dict = field(default_factory=dict)
    kept: str | None = None  # the file this pick was read from; None: measured now

    def record(self) -> dict:
        return {"forward": self.forward, "update": self.update, "sizes": list(self.sizes),
                "seconds": self.seconds, "kept": self.kept}


#: A library other than the preferred one is picked for a product only when it is this much
#: faster: within it the two are even, and the pick should not turn on the noise.
MARGIN = 0.05
#: Alternated rounds per product and library, and the least time one round runs for.
_ROUNDS, _MIN_ROUND_S = 5, 1e-3


def _cblas_caller(library: Library, dtype: str) -> Callable:
    real = ctypes.c_double if dtype == "float64" else ctypes.c_float
    prototype = ctypes.CFUNCTYPE(None, *[ctypes.c_int] * 6, real, ctypes.c_void_p, ctypes.c_int,
                                 ctypes.c_void_p, ctypes.c_int, real, ctypes.c_void_p, ctypes.c_int)
    return prototype(library.dgemm if dtype == "float64" else library.sgemm)


def _least_seconds(calls: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Least seconds of one call of each over the rounds, the calls alternated round by round.

    The least, not the median: what else runs on the machine only ever adds time.
    """
    repeats = {}
    for name, call in calls.items():
        call()  # the first call may set the library up
        start = time.perf_counter()
        call()
        repeats[name] = max(1, int(_MIN_ROUND_S / max(time.perf_counter() - start, 1e-9)) + 1)
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for round_ in range(_ROUNDS):
        for name in names if round_ % 2 == 0 else names[::-1]:
            call, n = calls[name], repeats[name]
            start = time.perf_counter()
            for _ in range(n):
                call()
            times[name].append((time.perf_counter() - start) / n)
    return {name: min(values) for name, values in times.items()}


def _measure(offered: tuple[str, ...], dtype: str, sizes: tuple[int, int, int]) -> Products:
    """Both products timed on each offered library; per product the faster, as ``pick`` says."""
    batch, n_in, hidden = sizes
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, n_in)).astype(dtype)
    g = rng.standard_normal((batch, hidden)).astype(dtype)
    W = rng.standard_normal((n_in, hidden)).astype(dtype)
    u = np.empty((batch, hidden), dtype)
    forward, update = {}, {}
    for name in offered:
        gemm = _cblas_caller(load(name)[0], dtype)
        forward[name] = functools.partial(
            gemm, ROW_MAJOR, NO_TRANS, NO_TRANS, batch, hidden, n_in, 1.0, x.ctypes.data,
            n_in, W.ctypes.data, hidden, 0.0, u.ctypes.data, hidden)
        update[name] = functools.partial(  # a small step: W stays near where it was
            gemm, ROW_MAJOR, TRANS, NO_TRANS, n_in, hidden, batch, -1e-6, x.ctypes.data, n_in,
            g.ctypes.data, hidden, 1.0, W.ctypes.data, hidden)
    seconds = {"forward": _least_seconds(forward), "update": _least_seconds(update)}

    def fastest(times: dict[str, float]) -> str:
        best = min(times, key=times.get)
        return offered[0] if times[offered[0]] <= times[best] * (1 + MARGIN) else best

    return Products(fastest(seconds["forward"]), fastest(seconds["update"]), sizes, seconds)


def _libraries(offered: tuple[str, ...]) -> list[list]:
    """What a kept pick depends on besides dtype and sizes: each library's file and threads."""
    from threadpoolctl import threadpool_info

    pools = threadpool_info()
    libraries = []
    for name in offered:
        path = os.path.realpath(load(name)[0].path)
        threads = [p.get("num_threads") for p in pools if os.path.realpath(p["filepath"]) == path]
        libraries.append([name, path, threads])
    return libraries


def _find(picks: list[dict], key: dict, sizes: tuple, path: str) -> Products | None:
    names = [library[0] for library in key["libraries"]]
    for entry in picks:
        if (isinstance(entry, dict) and all(entry.get(k) == v for k, v in key.items())
                and entry.get("forward") in names and entry.get("update") in names):
            return Products(entry["forward"], entry["update"], sizes, entry.get("seconds", {}),
                            path)
    return None


def _add(path: str, picks: list[dict]) -> None:
    """Write ``picks`` to ``path`` whole or not at all (a temporary file renamed over it)."""
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=folder, prefix=".numba-blas-", suffix=".tmp",
                                     delete=False) as out:
        json.dump({"format": _FORMAT, "picks": picks}, out, indent=1)
    os.replace(out.name, path)


def pick(offered: tuple[str, ...], dtype: str, batch: int, n_in: int, hidden: int) -> Products:
    """Which of the ``offered`` libraries computes each product of the step at these sizes.

    Each product is timed as the step runs it (``x @ W``; ``W -= a x.T @ g``, fused), by the
    libraries' CBLAS gemm on arrays of the step's sizes, in this process's threads; the
    preferred library (first) keeps a product unless another is ``MARGIN`` faster. Where
    ``MLPBENCH_NUMBA_BLAS_FILE`` names a file, a pick it holds for these libraries (files and
    threads), dtype and sizes is taken as it is; one it lacks is measured and added.
    """
    sizes = (batch, n_in, hidden)
    if len(offered) == 1 or batch == 1:
        return Products(offered[0], offered[0], sizes)
    path = kept_file()
    if path is None:
        return _measure(offered, dtype, sizes)
    from filelock import FileLock

    key = {"dtype": dtype, "sizes": list(sizes), "libraries": _libraries(offered)}
    found = _find(_read(path), key, sizes, path) if os.path.exists(path) else None
    if found is not None:
        return found
    with FileLock(path + ".lock"):  # two processes starting together: one measures
        picks = _read(path) if os.path.exists(path) else []
        found = _find(picks, key, sizes, path)
        if found is not None:
            return found
        products = _measure(offered, dtype, sizes)
        _add(path, picks + [{**key, "forward": products.forward, "update": products.update,
                             "seconds": products.seconds}])
    return products


@functools.lru_cache(maxsize=None)
def warn(message: str) -> None:
    """``message`` as one line on stderr, once per process."""
    if message:
        print(message, file=sys.stderr)
