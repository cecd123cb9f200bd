"""JAX: the shared step through jax.numpy, compiled once with jax.jit, waited on by synchronize().

Three of JAX's habits shape this module:

- It dispatches asynchronously, on the CPU too: a step returns before its work is done.
  ``synchronize(*arrays)`` blocks until the arrays it is given are ready.
- Without ``jax_enable_x64`` it silently makes float64 arrays float32. The flag is turned
  on (for the whole process) when a float64 array is moved in or a float64 step is
  prepared. float32 steps stay float32 with it on: ``lr`` is a weakly typed Python float.
- XLA's CPU thread pool is sized once per process, when JAX starts, from the cores the
  starting thread may run on. ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
  intra_op_parallelism_threads=1`` no longer limits it (jaxlib 0.10, measured: both cores
  stay busy in a matmul). So when JAX starts inside ``threads(n)`` (at the first
  ``asarray``, ``prepare`` or ``xp``) the backend starts it with the calling thread pinned
  to n cores, which gives the pool n threads pinned to those cores, and then unpins the
  calling thread. Once started the pool cannot change: ``threads(m)`` then reports the
  size in effect and warns if m differs. Enter ``threads(n)`` before anything else
  starts JAX (``device`` and ``gpu_info`` do not, on a machine without a JAX GPU plugin).
"""
from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any, Callable, Iterator

from backends.base import Backend, OwnOutputs, PreparedStep

__all__ = ["JaxBackend"]


def _client_started() -> bool:
    """Whether JAX has started its runtime clients (True when it cannot tell)."""
    try:
        from jax._src import xla_bridge  # private: JAX has no public way to ask

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):
        return True


def _usable_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no affinity control
        return list(range(os.cpu_count() or 1))


def _gpu_plugin_installed() -> bool:
    """Whether JAX may find a GPU here (a plugin is installed and JAX_PLATFORMS allows it)."""
    from importlib import metadata, util

    if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
        return False
    return (bool(metadata.entry_points(group="jax_plugins"))
            or util.find_spec("jax_plugins") is not None)


#: XLA's CPU pool as started in this process: {"threads", "cores", "set_by"}; None before it
#: starts. A fact of the process, not of a backend instance: JAX starts once per process.
_PROCESS: dict[str, dict | None] = {"pool": None}

_SET_BY = {True: "this backend, pinned to these cores", False: "default: all usable cores"}


def _pool_plan(cores: list[int], n: int | None) -> tuple[list[int], bool]:
    """The cores XLA's pool gets for ``n`` threads, and whether that needs pinning."""
    chosen = cores if n is None else cores[:max(1, min(n, len(cores)))]
    return chosen, len(chosen) < len(cores) and hasattr(os, "sched_setaffinity")


class JaxBackend(Backend):
    """JAX on its default device (the CPU here; a GPU where jax[cuda12] is installed)."""

    name = "jax"
    updates_in_place = True
    library = "jax"
    install_hint = "pip install 'mlpbench[jax]'"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        #: The threads asked for by the enclosing ``threads(n)``, used if JAX starts in it.
        self._requested: int | None = None

    def _import(self) -> Any:
        import jax
        import jax.numpy  # noqa: F401

        return jax

    def available(self) -> tuple[bool, str]:
        """JAX imports, and where ``JAX_PLATFORMS`` names a platform other than the CPU,
        that platform starts (JAX says so only when first used, at times with an empty
        ``AssertionError``)."""
        ok, why = super().available()
        platforms = os.environ.get("JAX_PLATFORMS", "").strip().lower()
        if not ok or platforms in ("", "cpu"):
            return ok, why
        try:
            self._jax().devices()
        except Exception as exc:  # RuntimeError, AssertionError: whatever the plugin raises
            text = " ".join(str(exc).split())[:200] or "no message"
            return False, (f"JAX cannot start the platforms JAX_PLATFORMS={platforms!r} names "
                           f"({type(exc).__name__}: {text}); unset it or install their plugin")
        return True, ""

    def _jax(self) -> Any:
        """The jax module, with its runtime started (by ``threads`` if that came first)."""
        jax = self._import()
        if _PROCESS["pool"] is None:
            self._start(self._requested)
        return jax

    def _start(self, n: int | None) -> None:
        """Start JAX's clients; with ``n``, with XLA's CPU pool sized and pinned to n cores."""
        jax = self._import()
        cores = _usable_cores()
        if _client_started():
            _PROCESS["pool"] = {"threads": len(cores), "cores": cores,
                          "set_by": "started outside this backend (assumed: all usable cores)"}
            return
        chosen, pinned = _pool_plan(cores, n)
        if pinned:
            os.sched_setaffinity(0, chosen)  # this thread only; new threads inherit it
        try:
            jax.devices()
        finally:
            if pinned:
                os.sched_setaffinity(0, cores)
        _PROCESS["pool"] = {"threads": len(chosen), "cores": chosen, "set_by": _SET_BY[pinned]}

    @property
    def _device(self) -> Any:
        return self._jax().devices()[0]

    def _on_cpu_only(self) -> bool:
        """True when JAX can only use the CPU; answered without starting JAX if possible."""
        if _PROCESS["pool"] is None and not _gpu_plugin_installed():
            return True  # so that describing the backend leaves its threads to threads(n)
        return self._device.platform == "cpu"

    @property
    def device(self) -> str:
        if self._on_cpu_only():
            return "cpu"
        dev = self._device
        version = getattr(dev.client, "platform_version", "").lower()
        kind = "cuda" if "cuda" in version else dev.platform
        return f"{kind}:{dev.id}"

    def gpu_info(self) -> dict | None:
        """{"name", "driver", "cuda"} of the GPU used, or None on the CPU."""
        if self._on_cpu_only():
            return None
        dev = self._device
        from jax._src.lib import cuda_versions  # private; None without a CUDA plugin

        def version(getter: str) -> str | None:
            get = getattr(cuda_versions, getter, None)
            code = get() if get else None
            return f"{code // 1000}.{code % 1000 // 10}" if code else None

        return {"name": dev.device_kind, "driver": version("cuda_driver_get_version"),
                "cuda": version("cuda_runtime_get_version")}

    # -- arrays ---------------------------------------------------------------
    @property
    def xp(self) -> Any:
        return self._jax().numpy

    def configure(self, dtype: str) -> None:
        """64-bit types for float64; on a GPU, float32 products in full float32 unless
        ``allow_tf32`` (XLA's default there is TF32)."""
        self._dtype_ready(dtype)
        if not self._on_cpu_only():
            precision = "tensorfloat32" if self.allow_tf32 else "highest"
            self._import().config.update("jax_default_matmul_precision", precision)

    def tf32(self, dtype: str) -> bool | None:
        """On a GPU, whether float32 products may use TF32 (None on the CPU)."""
        if self._on_cpu_only():
            return None
        return (dtype == "float32" and self.allow_tf32
                and os.environ.get("NVIDIA_TF32_OVERRIDE") != "0")

    def _dtype_ready(self, dtype: Any) -> None:
        """Turn on 64-bit types before a 64-bit array is made (JAX would make it 32-bit)."""
        import numpy as np

        jax = self._import()
        if np.dtype(dtype).itemsize == 8 and not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)

    def asarray(self, array: Any) -> Any:
        import numpy as np

        array = np.asarray(array)
        self._dtype_ready(array.dtype)
        # A copy (on the CPU JAX may alias numpy's buffer), ready before it is used.
        return self._jax().numpy.array(array, copy=True).block_until_ready()

    def to_numpy(self, array: Any) -> Any:
        import numpy as np

        return np.array(array, copy=True)

    def synchronize(self, *arrays: Any) -> None:
        """Block until ``arrays`` are ready."""
        if arrays:
            self._import().block_until_ready(arrays)

    # -- the step -------------------------------------------------------------
    def prepare(self, make_step: Callable, *, lr: float, dtype: str) -> PreparedStep:
        """The shared step under ``jax.jit``: traced and compiled on the first call per shape.

        The returned step consumes (donates) W and S that it returned itself; keep a copy
        of an intermediate W or S if you need it later.
        """
        self.configure(dtype)
        jax = self._jax()
        train_step = make_step(jax.numpy).train_step
        lr_ = float(lr)  # weakly typed: float32 stays float32

        def step(x, t, W, S):
            return train_step(x, t, W, S, lr_)

        return OwnOutputs(jax.jit(step, donate_argnums=(2, 3)),
                          lambda a: jax.numpy.array(a, copy=True))

    def prepare_pieces(self, make_pieces: Callable, *, lr: float, dtype: str) -> dict[str, Callable]:
        """The step's pieces, each under a ``jax.jit`` of its own (the step is one); none donates."""
        self._dtype_ready(dtype)
        jax = self._jax()
        pieces = super().prepare_pieces(make_pieces, lr=lr, dtype=dtype)
        return {name: jax.jit(piece) for name, piece in pieces.items()}

    # -- threads --------------------------------------------------------------
    @contextlib.contextmanager
    def threads(self, n: int | None) -> Iterator[dict]:
        """XLA's CPU pool gets ``n`` threads if JAX starts inside this block; restored after.

        Once JAX has started, the pool stays as it started (reported, with a warning when
        ``n`` differs). Any BLAS threadpoolctl finds is limited too (the step calls none).
        """
        from threadpoolctl import threadpool_limits

        if _PROCESS["pool"] is None and _client_started():
            self._start(None)  # someone else started JAX: record what is in effect
        if _PROCESS["pool"] is not None and n is not None and n != _PROCESS["pool"]["threads"]:
            warnings.warn(
                f"jax: XLA's CPU pool already runs {_PROCESS['pool']['threads']} threads and cannot be "
                f"resized in a running process; {n} requested (use a new process)",
                RuntimeWarning, stacklevel=3)
        before = self._requested
        with threadpool_limits(limits=n):
            self._requested = n
            try:
                yield self.thread_info()
            finally:
                self._requested = before

    def thread_info(self) -> dict:
        """BLAS threads, and XLA's CPU pool: as started, or as it would start now."""
        info = super().thread_info()
        if _PROCESS["pool"] is not None:
            pool = _PROCESS["pool"]
        else:
            cores, pinned = _pool_plan(_usable_cores(), self._requested)
            pool = {"threads": len(cores), "cores": cores,
                    "set_by": _SET_BY[pinned] + ", when JAX starts"}
        info["xla_cpu"] = pool["threads"]
        info["xla_cpu_cores"] = pool["cores"]
        info["xla_cpu_set_by"] = pool["set_by"]
        return info
