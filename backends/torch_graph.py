"""PyTorch's CUDA step as one CUDA graph (``torch.cuda.CUDAGraph``), captured once per point."""
from __future__ import annotations

from typing import Any, Callable

from backends.torch_backend import TorchBackend, weight_update

__all__ = ["TorchGraphBackend", "TorchGraphStep"]


class TorchGraphStep:
    """(x, t, W, S) -> (W, S, loss): the torch step replayed from a CUDA graph.

    Captured at the first call for given x and t (and again when they change), after three
    eager steps on a side stream (PyTorch's recipe: its allocator and cuBLAS settle first),
    into PyTorch's private graph memory pool. W and S are the graph's own, updated in place
    (``addmm_``); the caller's are copied in and stay as they were. The loss is cloned out
    of the graph's buffer after each replay, so that every step's loss stays its own.
    """

    def __init__(self, torch: Any, train_step: Callable, lr: float) -> None:
        self._torch = torch
        self._train_step = train_step
        self._lr = lr
        self._key: tuple | None = None
        self._graph = self._loss = self._W = self._S = None

    def _capture(self, x, t, W, S) -> None:
        torch = self._torch
        with torch.inference_mode():
            self._W, self._S = W.detach().clone(), S.detach().clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    self._train_step(x, t, self._W, self._S, self._lr)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                _, _, self._loss = self._train_step(x, t, self._W, self._S, self._lr)
        self._graph = graph
        self._key = _key(x, t, W, S)

    def __call__(self, x, t, W, S):
        if _key(x, t, W, S) != self._key:
            self._capture(x, t, W, S)
        with self._torch.inference_mode():
            if W is not self._W:
                self._W.copy_(W)
            if S is not self._S:
                self._S.copy_(S)
            self._graph.replay()
            return self._W, self._S, self._loss.clone()


def _key(x, t, W, S) -> tuple:
    return (x.data_ptr(), t.data_ptr(), tuple(x.shape), tuple(t.shape), tuple(W.shape),
            tuple(S.shape), x.dtype)


class TorchGraphBackend(TorchBackend):
    """The torch backend's CUDA step replayed as one CUDA graph; needs a CUDA GPU.

    Two launches from the host per step: the graph, and the clone of its loss.
    """

    name = "torch-graph"
    launches_per_step = 2

    def available(self) -> tuple[bool, str]:
        ok, why = super().available()
        if ok and not self._on_cuda:
            return False, "torch-graph needs a CUDA GPU (torch.cuda.is_available() is False)"
        return ok, why

    def prepare(self, make_step: Callable, *, lr: float, dtype: str):
        self.configure(dtype)
        train_step = make_step(self.xp, weight_update=weight_update).train_step
        return TorchGraphStep(self._import(), train_step, float(lr))
