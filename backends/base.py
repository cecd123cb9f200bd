"""The Backend interface: where the shared step runs, and how it is fed, synchronised and threaded."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

__all__ = ["Backend", "LatestOutputs", "OwnOutputs", "PreparedStep"]

#: (x, t, W, S) -> (W, S, loss), loss as an array of the backend (0-d), before the update.
PreparedStep = Callable[[Any, Any, Any, Any], tuple]


class LatestOutputs:
    """A prepared step that keeps its latest outputs, for ``synchronize()`` to wait on."""

    def __init__(self, run: Callable) -> None:
        self._run = run
        self.latest: tuple | None = None

    def __call__(self, x, t, W, S):
        self.latest = self._run(x, t, W, S)
        return self.latest


class OwnOutputs(LatestOutputs):
    """A step that may update W and S in place, but only those it returned itself.

    As in a training loop, a step's outputs are fed back: W and S that are this step's own
    latest outputs are handed to ``run`` to write over; any other W and S (the caller's
    initial weights, say) are copied first, so the caller's arrays stay as they were.
    """

    def __init__(self, run: Callable, copy: Callable) -> None:
        super().__init__(run)
        self._copy = copy

    def __call__(self, x, t, W, S):
        own = self.latest or (None, None)
        if W is not own[0]:
            W = self._copy(W)
        if S is not own[1]:
            S = self._copy(S)
        return super().__call__(x, t, W, S)


class Backend:
    """One place the step runs. Subclasses override what their library needs.

    Optional libraries are imported inside methods, never at module import, so that
    ``import backends`` works with numpy alone.
    """

    #: Registry name, as given to ``--backend``.
    name: str = ""
    #: The distribution whose version is reported.
    library: str = ""
    #: How a user gets the library, shown when it is missing.
    install_hint: str = ""
    #: Whether the prepared step writes over W and S it returned itself (``OwnOutputs``).
    updates_in_place: bool = False

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

    # -- arrays ---------------------------------------------------------------
    @property
    def xp(self) -> Any:
        """The array API namespace the shared step runs with."""
        raise NotImplementedError

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

    def synchronize(self) -> None:
        """Wait until all work submitted so far has finished (no-op on a synchronous CPU)."""

    def device_timer(self) -> Any:
        """A timer of device time for one timed block, or None where wall time is all there is.

        When not None: an object with ``start()`` and ``stop() -> seconds`` (CUDA events, say),
        started and stopped inside the wall-clock timed region.
        """
        return None

    # -- the step -------------------------------------------------------------
    def prepare(self, make_step: Callable, *, lr: float, dtype: str) -> PreparedStep:
        """A callable for repeated steps; its first call may compile."""
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
        finished by ``synchronize()``. A backend whose step replaces or compiles pieces
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
