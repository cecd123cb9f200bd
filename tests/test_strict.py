"""The shared step through array-api-strict equals numpy: kernels/ uses only the standard."""
from __future__ import annotations

import pytest

from mlpbench.verify import check_backend

pytestmark = pytest.mark.uses_backend("array-api-strict")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("steps", [1, 20])
@pytest.mark.parametrize("shape", [(1, 16, 8, 3), (3, 7, 5, 2), (64, 1000, 100, 10)])
def test_strict_matches_numpy(shape, steps, dtype):
    import backends

    c = check_backend(backends.create("array-api-strict"), shape, dtype=dtype, steps=steps)
    assert c.dtypes_ok, "array-api-strict changed the dtype"
    assert c.ok, f"errors {c.errors} above rtol {c.rtol}"


def test_strict_refuses_what_numpy_allows():
    """The check has teeth: a numpy-only call fails under array-api-strict."""
    import array_api_strict as xp

    a = xp.asarray([[1.0, 2.0]])
    with pytest.raises(AttributeError):
        a.dot(a.T)
