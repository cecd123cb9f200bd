"""What the numba test files share: the backend, the default choice of BLAS, closeness, the
libraries installed here."""
from __future__ import annotations

import numpy as np
import pytest

import backends
from helpers import assert_close
from mlpbench.verify import tolerance

DTYPES = ("float32", "float64")
uses_numba = pytest.mark.uses_backend("numba")


@pytest.fixture
def numba_backend():
    return backends.create("numba")


@pytest.fixture(autouse=True)
def no_named_choice(monkeypatch):
    """Each test starts from the default: no BLAS forced, no file of picks named."""
    monkeypatch.delenv("MLPBENCH_NUMBA_BLAS", raising=False)
    monkeypatch.delenv("MLPBENCH_NUMBA_BLAS_FILE", raising=False)


def close(value, reference, dtype, steps=1):
    """The project's closeness at the tolerance of ``dtype`` after ``steps`` steps."""
    assert np.asarray(reference).dtype == np.dtype(dtype)
    assert_close(value, reference, tolerance(dtype, steps))


def need(library):
    """Skip unless ``library`` loads here, saying why."""
    from backends.numba.libraries import load

    loaded, why = load(library)
    if loaded is None:
        pytest.skip(why)


def other_library():
    """A library to offer beside SciPy's: the CPU maker's where installed, else skip."""
    from backends.numba.libraries import load

    for name in ("aocl", "mkl"):
        if load(name)[0] is not None and load("scipy")[0] is not None:
            return name
    pytest.skip("neither AOCL-BLAS nor MKL is installed (pip install 'mlpbench[aocl]')")
