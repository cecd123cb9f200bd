"""The reference backend: numpy."""
from __future__ import annotations

from typing import Any

import numpy as np

from backends.base import Backend


class NumpyBackend(Backend):
    name = "numpy"
    library = "numpy"
    install_hint = "pip install numpy"

    def _import(self) -> Any:
        return np

    def asarray(self, array: Any) -> Any:
        return np.array(array, copy=True)

    def scalar(self, value: float, dtype: str) -> Any:
        return np.dtype(dtype).type(value)
