"""Where the step runs: a registry of backends behind one small interface (see ``backends.base``).

``import backends`` needs numpy alone; each optional library is imported only when its
backend is asked for.
"""
from __future__ import annotations

import importlib

from backends.base import Backend, PreparedStep

__all__ = ["Backend", "PreparedStep", "REFERENCE", "UnknownBackend", "available", "get", "names"]

REFERENCE = "numpy"

# name -> "module:Class"; numpy first, the reference.
_REGISTRY = {
    "numpy": "backends.numpy_backend:NumpyBackend",
    "array-api-strict": "backends.strict_backend:StrictBackend",
    "numba": "backends.numba_backend:NumbaBackend",
    "cupy": "backends.cupy_backend:CupyBackend",
    "torch": "backends.torch_backend:TorchBackend",
    "jax": "backends.jax_backend:JaxBackend",
    "dask": "backends.dask_backend:DaskBackend",
}
_instances: dict[str, Backend] = {}


class UnknownBackend(KeyError, ValueError):
    """A backend name that is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0])


def names() -> list[str]:
    """Every known backend, available here or not, the reference first."""
    return list(_REGISTRY)


def get(name: str) -> Backend:
    """The backend called ``name`` (its library is not imported until used)."""
    if name not in _REGISTRY:
        raise UnknownBackend(f"unknown backend {name!r}; known: {', '.join(_REGISTRY)}")
    if name not in _instances:
        module, cls = _REGISTRY[name].split(":")
        _instances[name] = getattr(importlib.import_module(module), cls)()
    return _instances[name]


def available() -> list[str]:
    """The names of the backends that can run on this machine."""
    return [name for name in _REGISTRY if get(name).available()[0]]
