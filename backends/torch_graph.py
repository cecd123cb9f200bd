"""PyTorch's CUDA step as one CUDA graph (``torch.cuda.CUDAGraph``), captured once per point."""
from __future__ import annotations

from typing import Any, Callable

from backends.base import CapturedStep
from backends.torch_backend import TorchBackend, weight_update

__all__ = ["TorchGraphBackend", "TorchGraphStep"]


class TorchGraphStep(CapturedStep):
    """(x, t, W, S) -> (W, S, loss): the torch step replayed from a CUDA graph (``CapturedStep``).

    Each capture, into PyTorch's private graph memory pool, follows three eager steps on
    scratch clones on a side stream (PyTorch's recipe); W and S are updated in place
    (``addmm_``). The loss is cloned out of the graph's buffer after each replay, so that
    every step's loss stays its own.
    """

    def __init__(self, torch: Any, train_step: Callable, lr: float) -> None:
        self._torch = torch
        self._train_step = train_step
        self._lr = lr

    def _capture(self, x, t, W, S) -> dict:
        torch = self._torch
        with torch.inference_mode():
            W, S = W.detach().clone(), S.detach().clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                W0, S0 = W.clone(), S.clone()
                for _ in range(3):
                    self._train_step(x, t, W0, S0, self._lr)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                _, _, loss = self._train_step(x, t, W, S, self._lr)
        return {"graph": graph, "loss": loss, "W": W, "S": S}

    @staticmethod
    def _key(x, t) -> tuple:
        return (x.data_ptr(), t.data_ptr(), tuple(x.shape), tuple(t.shape), x.dtype)

    def _replay(self, c: dict) -> tuple:
        with self._torch.inference_mode():
            c["graph"].replay()
            return c["W"], c["S"], c["loss"].clone()


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
