"""The Backend interface: where the shared step runs, and how it is fed, synchronised and threaded."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

__all__ = ["Backend", "CapturedStep", "OwnOutputs", "PreparedStep"]

#: (x, t, W, S) -> (W, S, loss), loss as an array of the backend (0-d), before the update.
PreparedStep = Callable[[Any, Any, Any, Any], tuple]


class OwnOutputs:
    """A step that may update W and S in place, but only those it returned itself.

    As in a training loop, a step's outputs are fed back: W and S that are this step's own
    latest outputs are handed to ``run`` to write over; any other W and S (the caller's
    initial weights, say) are copied first, so the caller's arrays stay as they were.
    """

    def __init__(self, run: Callable, copy: Callable) -> None:
        self._run = run
        self._copy = copy
        self.latest: tuple | None = None

    def __call__(self, x, t, W, S):
        own = self.latest or (None, None)
        if W is not own[0]:
            W = self._copy(W)
        if S is not own[1]:
            S = self._copy(S)
        self.latest = self._run(x, t, W, S)
        return self.latest


class CapturedStep:
    """A step replayed from a graph, captured again for other x and t, or for W and S it did
    not return itself: into copies of them, updated in place at each replay. So, as with
    ``OwnOutputs``, only the W and S a step returned are written over, and only when fed back.

    A subclass gives ``_key(x, t)`` (what a capture depends on besides W and S),
    ``_capture(x, t, W, S)`` (a dict holding at least the copies "W" and "S") and
    ``_replay(captured) -> (W, S, loss)``.
    """

    _captured: dict | None = None

    def __call__(self, x, t, W, S):
        c, key = self._captured, self._key(x, t)
        if c is None or c["key"] != key or W is not c["W"] or S is not c["S"]:
            self._captured = None  # the old graph and its memory go first
            c = self._captured = {**self._capture(x, t, W, S), "key": key}
        return self._replay(c)


class Backend:
    """One place the step runs. Subclasses override what their library needs.

    Optional libraries are imported inside methods, never at module import, so that
    ``import backends`` works with numpy alone. An instance belongs to one run
    (``backends.create``): settings such as ``allow_tf32`` never leak into another.
    What a backend tells about itself goes through ``describe``; callers never probe for
    attributes.
    """

    #: Registry name, as given to ``--backend``.
    name: str = ""
    #: The distribution whose version is reported.
    library: str = ""
    #: How a user gets the library, shown when it is missing.
    install_hint: str = ""
    #: Whether the prepared step writes over W and S it returned itself (``OwnOutputs``).
    updates_in_place: bool = False
    #: Kernel launches per step on a device that counts them (None on a CPU).
    launches_per_step: int | None = None

    def __init__(self, *, allow_tf32: bool = False) -> None:
        #: Let float32 matmuls on a GPU use TF32 (only a backend that has TF32 reads it).
        self.allow_tf32 = bool(allow_tf32)

    # -- what and where -------------------------------------------------------
    def available(self) -> tuple[bool, str]:
        """(True, "") when the backend can run here, else (False, why and how to install)."""
        try:
            self._import()
        except ImportError as exc:
            return False, f"{self.library} is not installed ({exc}); {self.install_hint}"
        return True, ""

    def _import(self) -> Any:
        """Import and return the backend's library (raises ImportError when missing)."""
        raise NotImplementedError

    @property
    def version(self) -> str | None:
        from importlib import metadata

        try:
            return metadata.version(self.library)
        except metadata.PackageNotFoundError:
            return None

    @property
    def device(self) -> str:
        return "cpu"

    def gpu_info(self) -> dict | None:
        """{"name", "driver", "cuda", ...} of the GPU the step runs on, or None on a CPU."""
        return None

    def device_memory_peak(self) -> int | None:
        """Bytes of device memory the library holds at most so far (None on a CPU)."""
        return None

    def empty_launches(self) -> dict[str, Callable[[int], None]] | None:
        """On a GPU: ``run(n)`` functions that launch n empty kernels, and n replays of a graph
        of one empty kernel ({"empty_kernel", "empty_graph"}), for the launch floor; None elsewhere."""
        return None

    def tf32(self, dtype: str) -> bool | None:
        """Whether TF32 is in effect for ``dtype`` matmuls (None: this backend has no TF32)."""
        return None

    def describe(self, dtype: str) -> dict:
        """The facts recorded with each result of ``dtype``: where it ran and how.

        Ask inside ``threads(n)``: asking may start the library's runtime.
        """
        return {"device": self.device, "gpu": self.gpu_info(), "allow_tf32": self.allow_tf32,
                "tf32": self.tf32(dtype), "launches_per_step": self.launches_per_step,
                "updates_in_place": self.updates_in_place}

    # -- arrays ---------------------------------------------------------------
    @property
    def xp(self) -> Any:
        """The array API namespace the shared step runs with (by default the library itself)."""
        return self._import()

    def asarray(self, array: Any) -> Any:
        """Move a numpy array in, keeping its dtype."""
        return self.xp.asarray(array)

    def to_numpy(self, array: Any) -> Any:
        """Move an array of this backend out, as a numpy array of the same dtype."""
        import numpy as np

        return np.asarray(array)

    def scalar(self, value: float, dtype: str) -> Any:
        """A scalar in the arrays' dtype (keeps float32 steps float32)."""
        return float(value)

    def synchronize(self, *arrays: Any) -> None:
        """Wait until ``arrays`` (a step's outputs, say) and all work before them are done.

        A no-op on a synchronous CPU; a device waits for its queue, a lazy or asynchronous
        library for the arrays it is given.
        """

    def device_timer(self) -> Any:
        """A timer of device time for one timed block, or None where wall time is all there is.

        When not None: an object with ``start()`` and ``stop() -> seconds`` (CUDA events, say),
        started and stopped inside the wall-clock timed region.
        """
        return None

    # -- the step -------------------------------------------------------------
    def configure(self, dtype: str) -> None:
        """Apply the settings of ``dtype`` runs (64-bit mode, TF32); ``prepare`` calls it."""

    def prepare(self, make_step: Callable, *, lr: float, dtype: str) -> PreparedStep:
        """A callable for repeated steps; its first call may compile."""
        self.configure(dtype)
        train_step = make_step(self.xp).train_step
        lr_ = self.scalar(lr, dtype)

        def step(x, t, W, S):
            return train_step(x, t, W, S, lr_)

        return step

    def prepare_pieces(self, make_pieces: Callable, *, lr: float, dtype: str) -> dict[str, Callable]:
        """The pieces ``prepare``'s step runs, each callable alone, for timing them one by one.

        ``make_pieces`` is ``kernels.resolve_pieces``. The result holds at least
        ``forward(x, W, S) -> (u, h, y)``, ``loss_and_grad(y, t) -> (loss, grad_y)``,
        ``grad_h(grad_y, S)``, ``relu_backward(u, grad_h) -> grad_u`` and
        ``weight_update(P, a, grad_out) -> P`` (``lr`` bound; it may write over ``P``, and
        ``relu_backward`` over ``grad_h``, where the step does). Work a piece submits is
        finished by ``synchronize(*its outputs)``. A backend whose step replaces or compiles pieces
        overrides this to return those same pieces.
        """
        pieces = dict(make_pieces(self.xp))
        update, lr_ = pieces["weight_update"], self.scalar(lr, dtype)
        pieces["weight_update"] = lambda P, a, grad_out: update(P, a, grad_out, lr_)
        return pieces

    # -- threads --------------------------------------------------------------
    @contextlib.contextmanager
    def threads(self, n: int | None) -> Iterator[dict]:
        """Limit the threads the backend uses to ``n`` (None: leave as is); yields what is in effect."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=n):
            yield self.thread_info()

    def thread_info(self) -> dict:
        """The threads in effect: {"blas": [per-library counts], ...}."""
        from threadpoolctl import threadpool_info

        return {"blas": sorted({p["num_threads"] for p in threadpool_info()
                                if p.get("user_api") == "blas"})}

    def __repr__(self) -> str:
        return f"<backend {self.name!r}>"
