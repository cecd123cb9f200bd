"""Where the step runs: a registry of backends behind one small interface (see ``backends.base``).

``import backends`` needs numpy alone; each optional library is imported only when its
backend is asked for.
"""
from __future__ import annotations

import importlib
import os

from backends.base import Backend, PreparedStep

__all__ = ["Backend", "PreparedStep", "REFERENCE", "UnknownBackend", "PLUGINS_VARIABLE", "available", "create", "names"]

REFERENCE = "numpy"

# name -> "module:Class"; numpy first, the reference.
_REGISTRY = {
    "numpy": "backends.numpy_backend:NumpyBackend",
    "array-api-strict": "backends.strict_backend:StrictBackend",
    "numba": "backends.numba.backend:NumbaBackend",
    "cupy": "backends.cupy_backend:CupyBackend",
    "cupy-graph": "backends.cupy_graph:CupyGraphBackend",
    "torch": "backends.torch_backend:TorchBackend",
    "torch-graph": "backends.torch_graph:TorchGraphBackend",
    "jax": "backends.jax_backend:JaxBackend",
    "dask": "backends.dask_backend:DaskBackend",
}


class UnknownBackend(KeyError, ValueError):
    """A backend name that is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0])


#: Extra backends, "name=module:Class,...": a backend of one's own (or a test's fake) joins
#: the registry, in this process and in the worker processes it starts.
PLUGINS_VARIABLE = "MLPBENCH_BACKEND_PLUGINS"


def _registry() -> dict[str, str]:
    registry = dict(_REGISTRY)
    for entry in os.environ.get(PLUGINS_VARIABLE, "").split(","):
        name, _, target = entry.strip().partition("=")
        if name and ":" in target:
            registry[name] = target
    return registry


def names() -> list[str]:
    """Every known backend, available here or not, the reference first."""
    return list(_registry())


def create(name: str, *, allow_tf32: bool = False) -> Backend:
    """A new instance of the backend called ``name``, for one run (its library is imported
    when first used)."""
    registry = _registry()
    if name not in registry:
        raise UnknownBackend(f"unknown backend {name!r}; known: {', '.join(registry)}")
    module, cls = registry[name].split(":")
    return getattr(importlib.import_module(module), cls)(allow_tf32=allow_tf32)


def available() -> list[str]:
    """The names of the backends that can run on this machine."""
    return [name for name in _registry() if create(name).available()[0]]
