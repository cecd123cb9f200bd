"""Whether a run diverged: its loss or its weights are no longer finite."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["divergence"]


def divergence(loss: float, **weights: Any) -> str | None:
    """Why the run diverged (``"loss is nan"``, ``"W holds inf"``), or None when all is finite.

    A finite loss does not make finite weights: one step of a huge rate in float32 gives a
    finite loss for the old weights and infinite new ones. ``weights`` are numpy arrays
    (``backend.to_numpy``), by name.
    """
    if not math.isfinite(loss):
        return f"loss is {loss}"
    for name, array in weights.items():
        array = np.asarray(array)
        if not np.isfinite(array).all():
            bad = "nan" if np.isnan(array).any() else "inf"
            return f"{name} holds {bad} (the loss {loss:g} was still finite)"
    return None
