"""The gate's worker in this process (numpy): placing a point's arrays afresh between samples."""
from __future__ import annotations

import importlib.util
from dataclasses import replace

import numpy as np

from helpers import ROOT
from mlpbench.gate import SETTINGS
from mlpbench.gate.runner import replaces_before

POINT = {"batch_size": 2, "n_in": 7, "hidden": 5, "n_out": 3, "dtype": "float64"}


def _worker():
    spec = importlib.util.spec_from_file_location("gate_worker_under_test",
                                                  ROOT / "mlpbench" / "gate" / "worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    worker = module.GateWorker("numpy")
    reply = worker.handle({"op": "prepare", "point": POINT, "lr": 1e-3, "seed": 0, "threads": 1,
                           "probe_s": 0.001})
    assert "error" not in reply, reply
    return worker


def test_a_replaced_sample_moves_the_arrays_and_keeps_training_the_same():
    worker = _worker()
    chain = worker.point
    for i in range(4):
        before = {k: getattr(chain, k) for k in ("x", "t", "W", "S")}
        x, t, W, S = (np.array(before[k], copy=True) for k in ("x", "t", "W", "S"))
        reply = worker.handle({"op": "sample", "steps": 3, "replace": True})
        assert reply["seconds"] > 0
        for name, old in before.items():
            assert not np.shares_memory(getattr(chain, name), old), f"{name} was not moved"
        for _ in range(6):  # 3 untimed steps after the placement, then the 3 timed ones
            W, S, _loss = chain.step(x, t, W, S)
        np.testing.assert_array_equal(chain.x, x)
        np.testing.assert_array_equal(chain.W, W)
        np.testing.assert_array_equal(chain.S, S)
    # Earlier placements stay allocated, the oldest let go: the allocator cannot reuse them.
    assert len(worker._placed) == 3
    x = chain.x
    worker.handle({"op": "sample", "steps": 3})
    assert chain.x is x  # a plain sample moves nothing


def test_placements_are_spread_evenly_over_the_samples_of_a_process_pair():
    six = replace(SETTINGS, placements=6)
    assert [i for i in range(-8, 60) if replaces_before(i, six)] == [10, 20, 30, 40, 50]
    assert [i for i in range(-8, 60) if replaces_before(i, SETTINGS)] == list(range(1, 60))
    assert not any(replaces_before(i, replace(SETTINGS, placements=1)) for i in range(-8, 60))
    four = replace(SETTINGS, placements=4, sample_pairs=20)
    assert [i for i in range(20) if replaces_before(i, four)] == [5, 10, 15]
