"""CBLAS gemm called from nopython code: ``gemm_for(library, dtype)``, compiled and cached on disk.

Each library's ``cblas_sgemm``/``cblas_dgemm`` is registered with LLVM under a name of ours
(``libraries.Library.register``); compiled code calls that name through
``numba.types.ExternalFunction``. The name, not the address, is what compiled code holds
(a ctypes pointer would be frozen into the code) and each process binds it to the library
it loaded. That function pickles as its name and signature (``_ExternalFunction``), so the
step built on it is found in Numba's disk cache by the next process, as the rest.
Transposes are BLAS flags on the stored C-contiguous arrays: nothing is copied.
This module imports numba at the top: import it only through ``backends.numba.backend``.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np
from numba import types
from numba.core.datamodel import models, register_default

from backends.numba.libraries import NO_TRANS, ROW_MAJOR, TRANS, load
from backends.numba.pieces import stable_njit

__all__ = ["gemm_for"]


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


@stable_njit
def _operands(a, trans_a, b, trans_b, c):
    """CBLAS's flags and sizes for c = op(a) @ op(b), and the arrays as BLAS reads them: C-contiguous.

    The step's arrays all are; others are copied (c too, written back by ``_written``).
    """
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    return (TRANS if trans_a else NO_TRANS, TRANS if trans_b else NO_TRANS, m, n, k,
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
        external(ROW_MAJOR, ta, tb, m, n, k, alpha, a.ctypes, max(1, a.shape[1]), b.ctypes,
                 max(1, b.shape[1]), beta, out.ctypes, max(1, out.shape[1]))
        return _written(out, c)

    return stable_njit(gemm)


# Module globals: compiled code names them; each process binds the names when it loads.
_GEMMS = {
    (library, dtype): _gemm(_ExternalFunction(f"mlpbench_{library}_cblas_{prefix}gemm",
                                              _signature(real)))
    for library in ("mkl", "aocl", "scipy")
    for dtype, prefix, real in (("float32", "s", types.float32), ("float64", "d", types.float64))
}


@functools.lru_cache(maxsize=None)
def gemm_for(name: str, dtype: str) -> Callable:
    """The compiled ``gemm(alpha, a, trans_a, b, trans_b, beta, c)`` of library ``name`` in ``dtype``.

    Loads the library first: compiled code calling a name LLVM does not know aborts the process.
    """
    library, why = load(name)
    if library is None:
        raise RuntimeError(why)
    return _GEMMS[name, dtype]
