"""Dask: the shared step on dask.array chunked along the batch axis, on local threads or a cluster.

The command line's flags are fixed by the command line's contract (docs/cli.md), so this
backend is configured by environment variables:

``MLPBENCH_DASK_CHUNK``
    Rows per chunk of x and t (a positive integer). Default: one chunk per core,
    ``ceil(batch / cores)``, cores being ``os.cpu_count()`` locally or the cluster's
    worker threads.
``MLPBENCH_DASK_SCHEDULER``
    Address of a dask.distributed scheduler (``tcp://host:8786``). If set, the backend
    connects a ``distributed.Client`` to it and runs every step there; if not, it uses
    dask's local threaded scheduler.

Each step builds its graph from the previous step's persisted W and S and persists the
new W, S and loss together, so the graph does not grow from step to step. W and S are
kept whole (one chunk): every batch chunk needs all of them, and ``x.T @ grad_u`` sums
the chunks' partial gradients.
"""
from __future__ import annotations

import contextlib
import math
import os
import socket
import warnings
from typing import Any, Callable, Iterator

from backends.base import Backend, PreparedStep

__all__ = ["CHUNK_ENV", "SCHEDULER_ENV", "DaskBackend"]

CHUNK_ENV = "MLPBENCH_DASK_CHUNK"
SCHEDULER_ENV = "MLPBENCH_DASK_SCHEDULER"


def _chunk_setting() -> int | None:
    """MLPBENCH_DASK_CHUNK as a positive int, None when unset; ValueError when malformed."""
    text = os.environ.get(CHUNK_ENV, "").strip()
    if not text:
        return None
    try:
        rows = int(text)
    except ValueError:
        rows = 0
    if rows < 1:
        raise ValueError(f"{CHUNK_ENV} must be a positive integer (rows per chunk), got {text!r}")
    return rows


def _probe_scheduler(address: str, timeout: float = 5.0) -> None:
    """ValueError or OSError, quickly, for an address no scheduler can be at.

    Checked before ``distributed.Client``: a Client that fails to start spends 20 s more
    closing itself when collected, then prints a traceback.
    """
    from distributed.comm import get_address_host_port, parse_address

    scheme, _ = parse_address(address)
    if scheme == "inproc":
        raise ValueError(f"{address!r} is an in-process address; a scheduler here needs "
                         "tcp://host:port")
    if scheme not in ("tcp", "tls"):
        return  # no host and port to try (ucx://, ws://): the Client says
    host, port = get_address_host_port(address)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range in address {address!r}")
    socket.create_connection((host or "127.0.0.1", port), timeout=timeout).close()


def _persisted(run: Callable, persist: Callable) -> Callable:
    """``run`` whose outputs are persisted (computed, or submitted to a cluster) when called."""

    def call(*args):
        out = run(*args)
        return persist(*out) if isinstance(out, tuple) else persist(out)[0]

    return call


class DaskBackend(Backend):
    """dask.array through ``array_api_compat.dask.array``; see the module's docstring."""

    name = "dask"
    library = "dask"
    install_hint = "pip install 'mlpbench[dask]'"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._client_: Any = None
        self._client_address = ""
        #: Threads of the local scheduler (None: dask's default, one per core).
        self._num_workers: int | None = None

    def _import(self) -> Any:
        import array_api_compat.dask.array  # noqa: F401  (the namespace the step runs with)
        import dask.array

        return dask

    def available(self) -> tuple[bool, str]:
        ok, why = super().available()
        if not ok:
            return ok, why
        try:
            _chunk_setting()
        except ValueError as exc:
            return False, str(exc)
        if os.environ.get(SCHEDULER_ENV, "").strip():
            try:
                self._client()
            except ImportError as exc:
                return False, (f"{SCHEDULER_ENV} is set but dask.distributed is not installed "
                               f"({exc}); {self.install_hint}")
            except (OSError, TimeoutError, ValueError) as exc:
                return False, (f"cannot connect to the dask scheduler at "
                               f"{os.environ[SCHEDULER_ENV]!r} ({SCHEDULER_ENV}): {exc}")
        return True, ""

    # -- the scheduler ----------------------------------------------------------
    def _client(self) -> Any:
        """The distributed Client for MLPBENCH_DASK_SCHEDULER, or None for local threads."""
        address = os.environ.get(SCHEDULER_ENV, "").strip()
        if not address:
            return None
        if self._client_ is None or self._client_address != address:
            from distributed import Client

            self.close()
            _probe_scheduler(address)
            # Not the default scheduler: other dask code in this process stays as it was.
            self._client_ = Client(address, set_as_default=False, timeout="10s")
            self._client_address = address
        return self._client_

    def close(self) -> None:
        """Disconnect from a distributed scheduler (the cluster itself keeps running)."""
        if self._client_ is not None:
            self._client_.close()
            self._client_, self._client_address = None, ""

    def _cores(self) -> int:
        client = self._client()
        if client is not None:
            return max(1, sum(client.nthreads().values()))
        return os.cpu_count() or 1

    def chunk_rows(self, batch_size: int) -> int:
        """Rows per batch chunk: MLPBENCH_DASK_CHUNK, else ceil(batch / cores)."""
        return _chunk_setting() or max(1, math.ceil(batch_size / self._cores()))

    def _persist(self, *arrays: Any) -> tuple:
        client = self._client()
        if client is not None:
            return tuple(client.persist(list(arrays)))  # returns at once; synchronize() waits
        import dask

        return dask.persist(*arrays, scheduler="threads", num_workers=self._num_workers)

    @property
    def device(self) -> str:
        client = self._client()
        return "cpu" if client is None else f"cpu (dask.distributed {self._client_address})"

    # -- arrays ---------------------------------------------------------------
    @property
    def xp(self) -> Any:
        import array_api_compat.dask.array as xp

        return xp

    def asarray(self, array: Any) -> Any:
        """A persisted dask array, chunked along its first axis (the batch axis of x and t)."""
        import dask.array as da
        import numpy as np

        array = np.array(array, copy=True)
        chunks = array.shape
        if array.ndim:
            chunks = (self.chunk_rows(array.shape[0]),) + array.shape[1:]
        (persisted,) = self._persist(da.from_array(array, chunks=chunks))
        return persisted

    def to_numpy(self, array: Any) -> Any:
        import numpy as np

        client = self._client()
        if client is not None:
            return np.asarray(client.compute(array, sync=True))
        return np.asarray(array.compute(scheduler="threads", num_workers=self._num_workers))

    def scalar(self, value: float, dtype: str) -> Any:
        import numpy as np

        return np.dtype(dtype).type(value)

    def synchronize(self, *arrays: Any) -> None:
        """Wait for ``arrays`` on a cluster (locally, persist has computed them already)."""
        client = self._client()
        if client is not None and arrays:
            from distributed import wait

            with client.as_current():  # wait() asks for the current client
                wait(list(arrays))

    # -- the step -------------------------------------------------------------
    def prepare(self, make_step: Callable, *, lr: float, dtype: str) -> PreparedStep:
        """The shared step; W, S and the loss of each call are computed together, once."""
        train_step = make_step(self.xp).train_step
        lr_ = self.scalar(lr, dtype)

        def run(x, t, W, S):
            # Whole W and S (a no-op after the first step, whose outputs are whole).
            W, S = W.rechunk(W.shape), S.rechunk(S.shape)
            return self._persist(*train_step(x, t, W, S, lr_))

        return run

    def prepare_pieces(self, make_pieces: Callable, *, lr: float, dtype: str) -> dict[str, Callable]:
        """The step's pieces, each computed (persisted) when called, as the step is; W and S
        made whole as the step makes them (a no-op once they are a weight_update's outputs)."""
        pieces = super().prepare_pieces(make_pieces, lr=lr, dtype=dtype)
        forward, update = pieces["forward"], pieces["weight_update"]
        pieces["forward"] = lambda x, W, S: forward(x, W.rechunk(W.shape), S.rechunk(S.shape))
        pieces["weight_update"] = lambda P, a, grad_out: update(P.rechunk(P.shape), a, grad_out)
        return {name: _persisted(piece, self._persist) for name, piece in pieces.items()}

    # -- threads --------------------------------------------------------------
    @contextlib.contextmanager
    def threads(self, n: int | None) -> Iterator[dict]:
        """Local scheduler: ``n`` dask threads, each calling a one-thread BLAS; restored after.

        On a distributed cluster the threads are the workers' own; ``n`` cannot change them.
        """
        from threadpoolctl import threadpool_limits

        if n is not None and self._client() is not None:
            warnings.warn(f"dask: the cluster's workers set their own threads ({self._cores()}); "
                          f"{n} requested applies to the local scheduler only",
                          RuntimeWarning, stacklevel=3)
            n = None
        before = self._num_workers
        # n dask threads beside an n-thread BLAS would oversubscribe the cores.
        with threadpool_limits(limits=None if n is None else 1):
            if n is not None:
                self._num_workers = n
            try:
                yield self.thread_info()
            finally:
                self._num_workers = before

    def thread_info(self) -> dict:
        info = super().thread_info()
        client = self._client()
        if client is None:
            info["dask"] = self._num_workers or os.cpu_count()
            info["dask_scheduler"] = "threads"
        else:
            info["dask"] = self._cores()
            info["dask_scheduler"] = self._client_address
        return info
