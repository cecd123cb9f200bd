"""Finding and loading the BLAS libraries numba's products may call: MKL, AMD's AOCL-BLAS, SciPy's.

Each is loaded with ctypes, once per process, and its ``cblas_sgemm``/``cblas_dgemm`` are
registered with LLVM under names of ours (``backends.numba.cblas`` binds compiled code to
them). A library whose OpenMP runtime would meet the other maker's in this process is not
loaded (Intel's and LLVM's OpenMP deadlock together). No numba import here.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os
import re
from dataclasses import dataclass, field

__all__ = ["AOCL_SETTING", "LABELS", "MKL_SETTING", "NO_TRANS", "ROW_MAJOR", "TRANS", "Library",
           "facts", "load"]

#: Library files to load instead of the ``mkl`` or ``aoclda`` package's.
MKL_SETTING = "MLPBENCH_MKL_LIBRARY"
AOCL_SETTING = "MLPBENCH_AOCL_LIBRARY"
#: The CPU makers' own BLAS, by the names messages give them.
LABELS = {"mkl": "MKL", "aocl": "AOCL-BLAS"}
#: CBLAS constants (cblas.h).
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


@dataclass
class Library:
    """A loaded BLAS: its name here, its file, and where its two products are."""

    name: str
    path: str
    sgemm: int
    dgemm: int
    handle: ctypes.CDLL = field(repr=False)

    def register(self) -> None:
        import llvmlite.binding

        llvmlite.binding.add_symbol(f"mlpbench_{self.name}_cblas_sgemm", self.sgemm)
        llvmlite.binding.add_symbol(f"mlpbench_{self.name}_cblas_dgemm", self.dgemm)


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


def _cblas(name: str, path: str, handle: ctypes.CDLL) -> tuple[Library | None, str]:
    sgemm, dgemm = _address(handle, "cblas_sgemm"), _address(handle, "cblas_dgemm")
    if sgemm is None or dgemm is None:
        return None, f"{path} has no cblas_sgemm/cblas_dgemm"
    return Library(name, path, sgemm, dgemm, handle), ""


def _mkl_path() -> str | None:
    """MKL's mkl_rt: the setting's file, else the ``mkl`` package's, else the system's."""
    return os.environ.get(MKL_SETTING) or (
        _package_file("mkl", ("libmkl_rt.so", "libmkl_rt.dylib", "mkl_rt"))
        or ctypes.util.find_library("mkl_rt"))


def _aocl_path() -> str | None:
    """AOCL-BLAS (libblis-mt): the setting's file, else the ``aoclda`` package's, else the system's."""
    return os.environ.get(AOCL_SETTING) or (
        _package_file("aoclda", ("libblis-mt",)) or ctypes.util.find_library("blis-mt"))


#: Where each maker's library is, and what to say when it is not installed.
_FILES = {"mkl": (_mkl_path, "MKL is not installed (pip install 'mlpbench[mkl]')"),
          "aocl": (_aocl_path, "AOCL-BLAS is not installed (pip install 'mlpbench[aocl]')")}


def _load_mkl(path: str) -> tuple[Library | None, str]:
    try:
        handle = ctypes.CDLL(path)
    except OSError as exc:
        return None, f"MKL at {path} does not load ({exc})"
    return _cblas("mkl", path, handle)


def _load_aocl(path: str) -> tuple[Library | None, str]:
    """The ``aoclda`` wheel's libblis-mt needs the LLVM OpenMP runtime beside it and has no
    search path of its own: that runtime is loaded first, from the same folder."""
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


#: The OpenMP runtime each library threads with, by the file names it is mapped under.
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
            return (f"{LABELS[name]} is not loaded: {runtime} ({LABELS[other]}'s) is in this "
                    f"process, and {_OPENMP[name][0]} beside it deadlocks")
    return ""


@functools.lru_cache(maxsize=None)
def load(name: str) -> tuple[Library | None, str]:
    """Library ``name`` ("mkl", "aocl" or "scipy") loaded and registered once per process, or (None, why)."""
    if name == "scipy":
        library, why = _load_scipy()
    else:
        find, missing = _FILES[name]
        path = find()
        if path is None:
            return None, missing
        clash = _openmp_clash(name)
        if clash:
            return None, clash
        library, why = {"mkl": _load_mkl, "aocl": _load_aocl}[name](path)
    if library is not None:
        library.register()
    return library, why


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
