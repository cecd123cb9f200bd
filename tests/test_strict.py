"""array-api-strict has teeth: what numpy allows beyond the standard fails there (its agreement
with numpy is the backend contract's, tests/test_backends_contract.py)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.uses_backend("array-api-strict")


def test_strict_refuses_what_numpy_allows():
    """The check has teeth: a numpy-only call fails under array-api-strict."""
    import array_api_strict as xp

    a = xp.asarray([[1.0, 2.0]])
    with pytest.raises(AttributeError):
        a.dot(a.T)
