"""The BLAS the numba backend's products call from nopython code: MKL (the ``mkl`` package) or SciPy's.

Each library's ``cblas_sgemm``/``cblas_dgemm`` is found with ctypes and registered with
LLVM under a name of ours (``llvmlite.binding.add_symbol``); compiled code calls that name
through ``numba.types.ExternalFunction``. The name, not the address, is what compiled code
holds (a ctypes pointer would be frozen into the code) and each process binds it to the
library it loaded. That function pickles as its name and signature (``_ExternalFunction``),
so the step built on it is found in Numba's disk cache by the next process, as the rest.
Transposes are BLAS flags on the stored C-contiguous arrays: nothing is copied.

``MLPBENCH_NUMBA_BLAS`` chooses (``choose``): ``auto`` (default: MKL on an Intel CPU where
it loads, else ``scipy``), ``mkl``, ``scipy`` (SciPy's BLAS by CBLAS gemm, the update
fused) or ``matmul`` (Numba's own ``@`` on SciPy's BLAS).
``MLPBENCH_MKL_LIBRARY`` names the ``mkl_rt`` library file to load instead of the ``mkl``
package's.
This module imports numba at the top: import it only through ``backends.numba_backend``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

import llvmlite.binding
import numpy as np
from numba import types
from numba.core.datamodel import models, register_default

from backends._numba_pieces import stable_njit

__all__ = ["CHOICES", "MKL_SETTING", "SETTING", "Library", "choose", "facts", "gemm_for",
           "load", "requested", "warn"]

SETTING = "MLPBENCH_NUMBA_BLAS"
MKL_SETTING = "MLPBENCH_MKL_LIBRARY"
CHOICES = ("auto", "mkl", "scipy", "matmul")
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

_GEMMS = {("mkl", "float32"): _mkl_sgemm, ("mkl", "float64"): _mkl_dgemm,
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


def _mkl_path() -> str | None:
    """The mkl_rt library: the setting's, else the ``mkl`` package's, else the system's."""
    if os.environ.get(MKL_SETTING):
        return os.environ[MKL_SETTING]
    from importlib import metadata

    try:
        files = metadata.files("mkl") or []
    except metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name.startswith(("libmkl_rt.so", "libmkl_rt.dylib", "mkl_rt")):
            return str(file.locate().resolve())
    return ctypes.util.find_library("mkl_rt")


def _load_mkl() -> tuple[Library | None, str]:
    """(MKL, "") when it loads; (None, why) when it is missing or broken."""
    path = _mkl_path()
    if path is None:
        return None, "MKL is not installed (pip install 'mlpbench[mkl]')"
    try:
        handle = ctypes.CDLL(path)
    except OSError as exc:
        return None, f"MKL at {path} does not load ({exc})"
    sgemm, dgemm = _address(handle, "cblas_sgemm"), _address(handle, "cblas_dgemm")
    if sgemm is None or dgemm is None:
        return None, f"{path} has no cblas_sgemm/cblas_dgemm"
    return Library("mkl", path, sgemm, dgemm, handle), ""


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


@functools.lru_cache(maxsize=None)
def load(name: str) -> tuple[Library | None, str]:
    """Library ``name`` ("mkl" or "scipy") loaded and registered once per process, or (None, why)."""
    library, why = {"mkl": _load_mkl, "scipy": _load_scipy}[name]()
    if library is not None:
        library.register()
    return library, why


def _intel_cpu() -> bool:
    """Whether the CPU is Intel's (MKL runs its generic code elsewhere: measured slower than
    OpenBLAS on an AMD EPYC, docs/numba-blas.md)."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("vendor_id") and "GenuineIntel" in line for line in f)
    except OSError:
        return False


def choose() -> tuple[str, str]:
    """The products' library for this process, and a warning line or "".

    ``matmul`` is Numba's own ``@`` (SciPy's BLAS); ``scipy`` and ``mkl`` call that library's
    CBLAS gemm directly, the SGD update fused into it; all are cached on disk. ``auto`` takes
    MKL on an Intel CPU where it loads, else SciPy's BLAS by its CBLAS gemm, else ``matmul``
    (docs/numba-blas.md: measured). A library that does not load where it was asked for, or
    an installed MKL that is broken, falls back with one warning line.
    """
    choice = requested()
    if choice == "matmul":
        return "matmul", ""
    if choice != "auto":
        library, why = load(choice)
        return (choice, "") if library is not None else (
            "matmul", f"mlpbench: numba uses Numba's @ on SciPy's BLAS: {why}")
    warning = ""
    if _intel_cpu():
        library, why = load("mkl")
        if library is not None:
            return "mkl", ""
        if not why.startswith("MKL is not installed"):  # unasked, absent MKL is no news
            warning = f"mlpbench: numba does not use MKL: {why}"
    return ("scipy" if load("scipy")[0] is not None else "matmul"), warning


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
