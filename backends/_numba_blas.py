"""The BLAS the numba backend's products call from nopython code: MKL, AMD's AOCL-BLAS or SciPy's.

Each library's ``cblas_sgemm``/``cblas_dgemm`` is found with ctypes and registered with
LLVM under a name of ours (``llvmlite.binding.add_symbol``); compiled code calls that name
through ``numba.types.ExternalFunction``. The name, not the address, is what compiled code
holds (a ctypes pointer would be frozen into the code) and each process binds it to the
library it loaded. That function pickles as its name and signature (``_ExternalFunction``),
so the step built on it is found in Numba's disk cache by the next process, as the rest.
Transposes are BLAS flags on the stored C-contiguous arrays: nothing is copied.

``MLPBENCH_NUMBA_BLAS`` chooses (``choose``): ``auto`` (default: the CPU maker's library where
it loads, MKL on Intel's, AOCL-BLAS on AMD's, measured against SciPy's for each product at
the step's sizes by ``pick``; else ``scipy``), ``mkl``, ``aocl``, ``scipy`` (SciPy's BLAS by
CBLAS gemm, the update fused) or ``matmul`` (Numba's own ``@`` on SciPy's BLAS).
``MLPBENCH_MKL_LIBRARY`` and ``MLPBENCH_AOCL_LIBRARY`` name the library file to load instead
of the ``mkl`` or ``aoclda`` package's.
This module imports numba at the top: import it only through ``backends.numba_backend``.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import functools
import glob
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import llvmlite.binding
import numpy as np
from numba import types
from numba.core.datamodel import models, register_default

from backends._numba_pieces import stable_njit

__all__ = ["AOCL_SETTING", "CHOICES", "MKL_SETTING", "SETTING", "Library", "Products", "choose",
           "facts", "gemm_for", "load", "pick", "requested", "warn"]

SETTING = "MLPBENCH_NUMBA_BLAS"
MKL_SETTING = "MLPBENCH_MKL_LIBRARY"
AOCL_SETTING = "MLPBENCH_AOCL_LIBRARY"
CHOICES = ("auto", "mkl", "aocl", "scipy", "matmul")
#: The CPU makers' own BLAS, by the names messages give them.
_LABELS = {"mkl": "MKL", "aocl": "AOCL-BLAS"}
#: CBLAS constants (cblas.h).
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _signature(real):
    i = types.intc  # LP64: the 32-bit integer interface, mkl_rt's default and SciPy's
    pointer = types.CPointer(real)
    return types.void(i, i, i, i, i, i, real, pointer, i, pointer, i, real, pointer, i)


class _ExternalFunction(types.ExternalFunction):
    """``types.ExternalFunction`` that pickles as its name and signature.

    Numba keys a closure's disk-cache entry on the pickle of what it calls; the base type's
    pickle holds a typing template class made at run time, which cloudpickle names with a
    random id, so code calling it was keyed anew (compiled again) in every process.
    """

    def __reduce__(self):
        return (_ExternalFunction, (self.symbol, self.sig))


register_default(_ExternalFunction)(models.OpaqueModel)  # as Numba's own ExternalFunction


# Module globals: compiled code names them; each process binds the names (``Library.register``).
_MKL_SGEMM = _ExternalFunction("mlpbench_mkl_cblas_sgemm", _signature(types.float32))
_MKL_DGEMM = _ExternalFunction("mlpbench_mkl_cblas_dgemm", _signature(types.float64))
_SCIPY_SGEMM = _ExternalFunction("mlpbench_scipy_cblas_sgemm", _signature(types.float32))
_SCIPY_DGEMM = _ExternalFunction("mlpbench_scipy_cblas_dgemm", _signature(types.float64))
_AOCL_SGEMM = _ExternalFunction("mlpbench_aocl_cblas_sgemm", _signature(types.float32))
_AOCL_DGEMM = _ExternalFunction("mlpbench_aocl_cblas_dgemm", _signature(types.float64))


@stable_njit
def _operands(a, trans_a, b, trans_b, c):
    """CBLAS's flags and sizes for c = op(a) @ op(b), and the arrays as BLAS reads them: C-contiguous.

    The step's arrays all are; others are copied (c too, written back by ``_written``).
    """
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    return (_TRANS if trans_a else _NO_TRANS, _TRANS if trans_b else _NO_TRANS, m, n, k,
            np.ascontiguousarray(a), np.ascontiguousarray(b), np.ascontiguousarray(c))


@stable_njit
def _written(out, c):
    if out is not c:
        c[:, :] = out
    return c


def _gemm(external: _ExternalFunction) -> Callable:
    """The compiled ``gemm(alpha, a, trans_a, b, trans_b, beta, c)`` over CBLAS function ``external``.

    Cached on disk as a module-level function would be: ``_ExternalFunction`` pickles the same
    in every process, and ``stable_njit`` keys the closure on its symbol's name.
    """

    def gemm(alpha, a, trans_a, b, trans_b, beta, c):
        ta, tb, m, n, k, a, b, out = _operands(a, trans_a, b, trans_b, c)
        external(_ROW_MAJOR, ta, tb, m, n, k, alpha, a.ctypes, max(1, a.shape[1]), b.ctypes,
                 max(1, b.shape[1]), beta, out.ctypes, max(1, out.shape[1]))
        return _written(out, c)

    return stable_njit(gemm)


_mkl_sgemm, _mkl_dgemm = _gemm(_MKL_SGEMM), _gemm(_MKL_DGEMM)
_scipy_sgemm, _scipy_dgemm = _gemm(_SCIPY_SGEMM), _gemm(_SCIPY_DGEMM)
_aocl_sgemm, _aocl_dgemm = _gemm(_AOCL_SGEMM), _gemm(_AOCL_DGEMM)

_GEMMS = {("mkl", "float32"): _mkl_sgemm, ("mkl", "float64"): _mkl_dgemm,
          ("aocl", "float32"): _aocl_sgemm, ("aocl", "float64"): _aocl_dgemm,
          ("scipy", "float32"): _scipy_sgemm, ("scipy", "float64"): _scipy_dgemm}


@functools.lru_cache(maxsize=None)
def gemm_for(name: str, dtype: str) -> Callable:
    """The compiled ``gemm(alpha, a, trans_a, b, trans_b, beta, c)`` of library ``name`` in ``dtype``.

    Loads the library first: compiled code calling a name LLVM does not know aborts the process.
    """
    library, why = load(name)
    if library is None:
        raise RuntimeError(why)
    return _GEMMS[name, dtype]


@dataclass
class Library:
    """A loaded BLAS: its name here, its file, and where its two products are."""

    name: str
    path: str
    sgemm: int
    dgemm: int
    handle: ctypes.CDLL = field(repr=False)

    def register(self) -> None:
        llvmlite.binding.add_symbol(f"mlpbench_{self.name}_cblas_sgemm", self.sgemm)
        llvmlite.binding.add_symbol(f"mlpbench_{self.name}_cblas_dgemm", self.dgemm)


def requested() -> str:
    """The setting's value (``auto`` when unset); ValueError naming the choices when unknown."""
    value = os.environ.get(SETTING, "").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"{SETTING}={os.environ[SETTING]!r} is not one of {', '.join(CHOICES)}")
    return value


def _address(handle: ctypes.CDLL, *names: str) -> int | None:
    for name in names:
        try:
            return ctypes.cast(getattr(handle, name), ctypes.c_void_p).value
        except AttributeError:
            continue
    return None


def _package_file(package: str, prefixes: tuple[str, ...]) -> str | None:
    """The file of installed ``package`` whose name starts with one of ``prefixes``."""
    from importlib import metadata

    try:
        files = metadata.files(package) or []
    except metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name.startswith(prefixes):
            return str(file.locate().resolve())
    return None


def _mkl_path() -> str | None:
    """The mkl_rt library: the setting's, else the ``mkl`` package's, else the system's."""
    if os.environ.get(MKL_SETTING):
        return os.environ[MKL_SETTING]
    return (_package_file("mkl", ("libmkl_rt.so", "libmkl_rt.dylib", "mkl_rt"))
            or ctypes.util.find_library("mkl_rt"))


def _cblas(name: str, path: str, handle: ctypes.CDLL) -> tuple[Library | None, str]:
    sgemm, dgemm = _address(handle, "cblas_sgemm"), _address(handle, "cblas_dgemm")
    if sgemm is None or dgemm is None:
        return None, f"{path} has no cblas_sgemm/cblas_dgemm"
    return Library(name, path, sgemm, dgemm, handle), ""


def _load_mkl() -> tuple[Library | None, str]:
    """(MKL, "") when it loads; (None, why) when it is missing or broken."""
    path = _mkl_path()
    if path is None:
        return None, "MKL is not installed (pip install 'mlpbench[mkl]')"
    try:
        handle = ctypes.CDLL(path)
    except OSError as exc:
        return None, f"MKL at {path} does not load ({exc})"
    return _cblas("mkl", path, handle)


def _aocl_path() -> str | None:
    """AOCL-BLAS (libblis-mt): the setting's, else the ``aoclda`` package's, else the system's."""
    if os.environ.get(AOCL_SETTING):
        return os.environ[AOCL_SETTING]
    return _package_file("aoclda", ("libblis-mt",)) or ctypes.util.find_library("blis-mt")


def _load_aocl() -> tuple[Library | None, str]:
    """(AOCL-BLAS, "") when it loads; (None, why) when it is missing or broken.

    The ``aoclda`` wheel's libblis-mt needs the LLVM OpenMP runtime beside it and has no
    search path of its own: that runtime is loaded first, from the same folder.
    """
    path = _aocl_path()
    if path is None:
        return None, "AOCL-BLAS is not installed (pip install 'mlpbench[aocl]')"
    try:
        for runtime in sorted(glob.glob(os.path.join(os.path.dirname(path), "libomp*.so*"))):
            ctypes.CDLL(runtime, mode=ctypes.RTLD_GLOBAL)
        handle = ctypes.CDLL(path)
    except OSError as exc:
        return None, f"AOCL-BLAS at {path} does not load ({exc})"
    return _cblas("aocl", path, handle)


def _file_of(address: int) -> str | None:
    """The shared library file that holds ``address`` (dladdr)."""

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    dladdr = ctypes.CDLL(None).dladdr
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
    info = DlInfo()
    if not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.fsdecode(info.dli_fname)


def _load_scipy() -> tuple[Library | None, str]:
    """The BLAS SciPy's ``cython_blas`` links (Numba's ``@`` calls it too), by its CBLAS products.

    Symbols are looked up through ``cython_blas``'s own dependencies; scipy-openblas, the
    BLAS of SciPy's wheels, prefixes them with ``scipy_``.
    """
    try:
        from scipy.linalg import cython_blas

        handle = ctypes.CDLL(cython_blas.__file__)
    except (ImportError, OSError) as exc:
        return None, f"SciPy's BLAS could not be loaded ({exc})"
    sgemm = _address(handle, "scipy_cblas_sgemm", "cblas_sgemm")
    dgemm = _address(handle, "scipy_cblas_dgemm", "cblas_dgemm")
    if sgemm is None or dgemm is None:
        return None, "SciPy's BLAS has no CBLAS gemm"
    path = _file_of(dgemm) or cython_blas.__file__
    return Library("scipy", path, sgemm, dgemm, handle), ""


#: The OpenMP runtime each library threads with, by the file names it is mapped under. Intel's
#: and LLVM's deadlock in one process (at exit, here): a library whose runtime would meet the
#: other one is not loaded.
_OPENMP = {"mkl": ("Intel OpenMP", re.compile(r"libiomp5")),
           "aocl": ("LLVM OpenMP", re.compile(r"libomp(-[0-9a-f]+)?\.so"))}


def _openmp_clash(name: str) -> str:
    """Why library ``name`` must not be loaded here ("" where it may): the other OpenMP is in."""
    if name not in _OPENMP:
        return ""
    try:
        with open("/proc/self/maps") as f:
            mapped = {os.path.basename(line.split()[-1]) for line in f if "/" in line}
    except OSError:
        return ""
    for other, (runtime, pattern) in _OPENMP.items():
        if other != name and any(pattern.match(file) for file in mapped):
            return (f"{_LABELS[name]} is not loaded: {runtime} ({_LABELS[other]}'s) is in this "
                    f"process, and {_OPENMP[name][0]} beside it deadlocks")
    return ""


@functools.lru_cache(maxsize=None)
def load(name: str) -> tuple[Library | None, str]:
    """Library ``name`` ("mkl", "aocl" or "scipy") loaded and registered once per process, or (None, why)."""
    clash = _openmp_clash(name)
    if clash:
        return None, clash
    library, why = {"mkl": _load_mkl, "aocl": _load_aocl, "scipy": _load_scipy}[name]()
    if library is not None:
        library.register()
    return library, why


def _cpu_vendor() -> str:
    """The CPU's maker as /proc/cpuinfo names it ("GenuineIntel", "AuthenticAMD"), or ""."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _intel_cpu() -> bool:
    """Whether the CPU is Intel's (MKL runs its generic code elsewhere: measured slower than
    OpenBLAS on an AMD EPYC, docs/numba-blas.md)."""
    return _cpu_vendor() == "GenuineIntel"


def _amd_cpu() -> bool:
    return _cpu_vendor() == "AuthenticAMD"


def choose() -> tuple[tuple[str, ...], str]:
    """The libraries the products may call in this process, preferred first; a warning line or "".

    ``matmul`` is Numba's own ``@`` (SciPy's BLAS); the others call that library's CBLAS
    gemm directly, the SGD update fused into it; all are cached on disk. ``auto`` offers the
    CPU maker's library where it loads (MKL on Intel's, AOCL-BLAS on AMD's) and SciPy's BLAS
    by its CBLAS gemm, and ``pick`` measures which is faster for each product; without the
    maker's library, SciPy's alone, else ``matmul``. A library that does not load where it
    was asked for, or an installed maker's library that is broken, falls back with one line.
    """
    choice = requested()
    if choice == "matmul":
        return ("matmul",), ""
    if choice != "auto":
        library, why = load(choice)
        return ((choice,), "") if library is not None else (
            ("matmul",), f"mlpbench: numba uses Numba's @ on SciPy's BLAS: {why}")
    scipy = "scipy" if load("scipy")[0] is not None else "matmul"
    maker = "mkl" if _intel_cpu() else "aocl" if _amd_cpu() else None
    if maker is None:
        return (scipy,), ""
    library, why = load(maker)
    if library is None:
        # unasked, an absent library is no news
        warning = "" if "is not installed" in why else (
            f"mlpbench: numba does not use {_LABELS[maker]}: {why}")
        return (scipy,), warning
    return ((maker, scipy) if scipy == "scipy" else (maker,)), ""


@dataclass(frozen=True)
class Products:
    """The library of each of the step's products at one size, and what ``pick`` measured.

    ``forward`` computes ``x @ W`` and ``h @ S``; ``update`` the two fused weight updates.
    ``seconds``: {"forward"|"update": {library: least seconds of one product}}, empty where
    nothing was measured (one library offered, or a batch of one, which runs Numba's ``@``);
    where the pick was read back from disk, the times measured when it was made.
    """

    forward: str
    update: str
    sizes: tuple[int, int, int]
    seconds: dict = field(default_factory=dict)
    kept: str | None = None  # the file this pick was read from (picks_dir), None: measured now

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

    The least, not the median: what else runs on the machine only ever adds time, and a pick
    is kept for good (one round of a library slowed by another process's compile once made
    it look six times slower).
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


def picks_dir() -> Path:
    """Where picks are kept, one file each: the user's cache (``XDG_CACHE_HOME``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "mlpbench" / "numba-blas"


def _libraries(offered: tuple[str, ...]) -> list:
    """Each offered library's file as a pick depends on it: name, path, size, time, threads."""
    from threadpoolctl import threadpool_info

    libraries = []
    for name in offered:
        path = os.path.realpath(load(name)[0].path)
        stat = os.stat(path)
        threads = [p.get("num_threads") for p in threadpool_info()
                   if os.path.realpath(p["filepath"]) == path]
        libraries.append([name, path, stat.st_size, stat.st_mtime_ns, threads])
    return libraries


def _pick_file(libraries: list, dtype: str, sizes: tuple[int, int, int]) -> Path:
    """The file of one pick, named by what it depends on: the CPU, each offered library's file
    (``_libraries``: a new version is a new pick), dtype, sizes and threads."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    key = json.dumps([cpu, libraries, dtype, list(sizes), MARGIN])
    return picks_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def _recorded(file: Path, offered: tuple[str, ...], sizes: tuple) -> Products | None:
    try:
        record = json.loads(file.read_text())
        if {record["forward"], record["update"]} <= set(offered):
            return Products(record["forward"], record["update"], sizes, record["seconds"],
                            str(file))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _keep(file: Path, products: Products, libraries: list | None = None) -> None:
    """Write ``products`` to ``file`` whole or not at all (a temporary file renamed), with the
    ``libraries`` it was measured on; then remove the picks whose library files have changed
    or gone since (``_stale``: no process names them again)."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=file.parent, suffix=".tmp",
                                         delete=False) as out:
            json.dump({**products.record(), "libraries": libraries,
                       "host": socket.gethostname()}, out)
        os.replace(out.name, file)
    except OSError:  # an unwritable cache: the pick holds for this process only
        return
    for other in file.parent.glob("*.json"):
        if other != file and _stale(other):
            for path in (other, other.with_suffix(".lock")):
                path.unlink(missing_ok=True)


def _stale(file: Path) -> bool:
    """Whether a kept pick was measured on this host on a library file since changed or
    removed. A pick without its libraries, unreadable, or of another host (a home folder
    shared by machines whose libraries live elsewhere) is left alone."""
    try:
        record = json.loads(file.read_text())
        if record.get("host") != socket.gethostname():
            return False
        for _name, path, size, mtime_ns, _threads in record.get("libraries") or []:
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                return True
            if (stat.st_size, stat.st_mtime_ns) != (size, mtime_ns):
                return True
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return False


def pick(offered: tuple[str, ...], dtype: str, batch: int, n_in: int, hidden: int) -> Products:
    """Which of the ``offered`` libraries computes each product of the step at these sizes.

    Each product is timed as the step runs it (``x @ W``; ``W -= a x.T @ g``, fused), by the
    libraries' CBLAS gemm on arrays of the step's sizes, in this process's threads; the
    preferred library (first) keeps a product unless another is ``MARGIN`` faster. The pick is
    kept on disk (``picks_dir``) and reused by every later process on this machine with the
    same libraries, dtype, sizes and threads: two processes (a regression gate's base and
    head) never run different libraries where the two were nearly even.
    """
    sizes = (batch, n_in, hidden)
    if len(offered) == 1 or batch == 1:
        return Products(offered[0], offered[0], sizes)
    libraries = _libraries(offered)
    file = _pick_file(libraries, dtype, sizes)
    recorded = _recorded(file, offered, sizes)
    if recorded is not None:
        return recorded
    with _lock(file):  # two processes starting together: the second reads the first's pick
        recorded = _recorded(file, offered, sizes)
        if recorded is not None:
            return recorded
        products = _measure(offered, dtype, sizes)
        _keep(file, products, libraries)
    return products


@contextlib.contextmanager
def _lock(file: Path):
    """Hold an exclusive lock beside ``file`` (none where the folder cannot be written)."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        handle = open(file.with_suffix(".lock"), "a")
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


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
            gemm, _ROW_MAJOR, _NO_TRANS, _NO_TRANS, batch, hidden, n_in, 1.0, x.ctypes.data,
            n_in, W.ctypes.data, hidden, 0.0, u.ctypes.data, hidden)
        update[name] = functools.partial(  # a small step: W stays near where it was
            gemm, _ROW_MAJOR, _TRANS, _NO_TRANS, n_in, hidden, batch, -1e-6, x.ctypes.data, n_in,
            g.ctypes.data, hidden, 1.0, W.ctypes.data, hidden)
    seconds = {"forward": _least_seconds(forward), "update": _least_seconds(update)}

    def fastest(times: dict[str, float]) -> str:
        best = min(times, key=times.get)
        return offered[0] if times[offered[0]] <= times[best] * (1 + MARGIN) else best

    return Products(fastest(seconds["forward"]), fastest(seconds["update"]), sizes, seconds)


def facts(name: str) -> dict:
    """What a result records of library ``name``: its file, version and threads (threadpoolctl's)."""
    from threadpoolctl import threadpool_info

    library, _ = load("scipy" if name == "matmul" else name)
    api = "numba @" if name == "matmul" else "cblas"  # matmul: Numba's own @, on SciPy's BLAS
    if library is None:
        return {"name": name, "api": api, "version": None, "threads": None}
    path = os.path.realpath(library.path)
    for pool in threadpool_info():
        if os.path.realpath(pool["filepath"]) == path:
            return {"name": name, "api": api, "filepath": path,
                    "internal_api": pool.get("internal_api"), "version": pool.get("version"),
                    "threads": pool.get("num_threads"),
                    "threading_layer": pool.get("threading_layer"),
                    "architecture": pool.get("architecture")}
    return {"name": name, "api": api, "filepath": path, "version": None, "threads": None}


@functools.lru_cache(maxsize=None)
def warn(message: str) -> None:
    """``message`` as one line on stderr, once per process."""
    if message:
        print(message, file=sys.stderr)
