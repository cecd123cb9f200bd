"""Fake backends for testing the harness itself (not real libraries).

Registered for one test through ``MLPBENCH_BACKEND_PLUGINS`` (the ``register_backend``
fixture), so that worker processes see them too; a fake's behaviour comes from the
``MLPBENCH_FAKE`` variable (JSON), read when the fake is created.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import time

import numpy as np

from backends.base import Backend
from backends.numpy_backend import NumpyBackend

__all__ = ["CONFIG_VARIABLE", "FakeBackend", "MissingLibraryBackend", "WideningBackend",
           "WrongStepBackend"]

CONFIG_VARIABLE = "MLPBENCH_FAKE"


class FakeBackend(NumpyBackend):
    """numpy underneath, with hooks at chosen batch sizes: sleep, fail, crash, block in a
    native call, allocate, return a NaN loss or infinite weights, log its calls."""

    name = "fake"
    library = "numpy"

    def __init__(self, **options) -> None:
        super().__init__(**options)
        config = json.loads(os.environ.get(CONFIG_VARIABLE, "{}"))
        self.step_sleep = config.get("step_sleep", 0.0)
        self.first_call_sleep = config.get("first_call_sleep", 0.0)
        self.at_batch = config.get("at_batch")  # the batch size the hooks below act at
        # fail, fail_from, segv, abort, exit, native_sleep, allocate
        self.action = config.get("action")
        self.allocate_bytes = config.get("allocate_bytes", 0)
        self.nan_loss = config.get("nan_loss", False)
        self.inf_weights = config.get("inf_weights", False)
        self.log: list = []
        self.syncs = 0

    def synchronize(self, *arrays) -> None:
        self.syncs += 1
        self.log.append(("sync", time.perf_counter()))

    def _act(self) -> None:
        if self.action == "fail":
            raise RuntimeError(f"fake failure at batch {self.at_batch}")
        if self.action == "fail_from":  # as compiled code reports an error it left set
            try:
                {}["fake cause"]
            except KeyError as cause:
                raise SystemError("fake step returned a result with an exception set") from cause
        if self.action == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        if self.action == "abort":
            os.abort()
        if self.action == "exit":
            os._exit(3)
        if self.action == "native_sleep":  # a native call that never returns to Python
            ctypes.CDLL(None).sleep(3600)

    def prepare(self, make_step, *, lr, dtype):
        inner = super().prepare(make_step, lr=lr, dtype=dtype)
        calls = [0]
        held = []
        finite = {}  # inf_weights: the finite W behind the infinite one handed out

        def step(x, t, W, S):
            W = finite.get(id(W), W)
            self.log.append(("step", time.perf_counter()))
            if self.at_batch == x.shape[0]:
                self._act()
                if self.action == "allocate" and not held:
                    held.append(np.ones(self.allocate_bytes // 8))  # touched: resident
            calls[0] += 1
            time.sleep(self.first_call_sleep if calls[0] == 1 else self.step_sleep)
            W, S, loss = inner(x, t, W, S)
            if self.inf_weights:  # the loss stays finite: it is computed on the finite W
                shown = np.full_like(W, np.inf)
                finite.clear()
                finite[id(shown)] = W
                W = shown
            return W, S, (np.array(np.nan, dtype=dtype) if self.nan_loss else loss)

        return step


class WrongStepBackend(NumpyBackend):
    """A wrong update (lr doubled), for testing that check catches it."""

    name = "fake-wrong"

    def prepare(self, make_step, *, lr, dtype):
        return super().prepare(make_step, lr=2 * lr, dtype=dtype)


class WideningBackend(NumpyBackend):
    """Silently computes in float64, for testing the dtype check."""

    name = "fake-widening"

    def asarray(self, array):
        return np.array(array, dtype=np.float64)

    def scalar(self, value, dtype):
        return float(value)


class MissingLibraryBackend(Backend):
    """A backend whose library is never there, for testing how the harness refuses or skips it."""

    name = "fake-missing"
    library = "fake-missing-lib"
    install_hint = "pip install 'mlpbench[fake]'"

    def _import(self):
        raise ImportError(f"No module named {self.library.replace('-', '_')!r}")
