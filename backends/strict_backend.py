"""array-api-strict: proof that kernels/ uses nothing outside the array API standard."""
from __future__ import annotations

from typing import Any

from backends.base import Backend


class StrictBackend(Backend):
    name = "array-api-strict"
    library = "array-api-strict"
    install_hint = "pip install 'mlpbench[test]' (or: pip install array-api-strict)"

    def _import(self) -> Any:
        import array_api_strict

        return array_api_strict

    def to_numpy(self, array: Any) -> Any:
        import numpy as np

        # array-api-strict exposes the buffer protocol through DLPack only.
        return np.from_dlpack(array).copy()
