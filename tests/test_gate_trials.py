"""scripts/gate-trials.py, which reproduces docs/gate.md's table: its slowdowns still apply."""
from __future__ import annotations

import importlib.util

import pytest

from helpers import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("gate_trials", ROOT / "scripts" / "gate-trials.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("trial", ["numba", "numpy"])
def test_each_injection_finds_its_one_place(trial):
    """The slowdown goes into the file once: a moved or renamed line would stop the trials."""
    path, old, new = _script().INJECTIONS[trial]
    text = (ROOT / path).read_text()
    assert text.count(old) == 1, f"{path} no longer has the line the {trial} trial replaces"
    injected = text.replace(old, new.format(every=10))
    compile(injected, path, "exec")
    assert "% 10 == 0" in injected


def test_the_numba_slowdown_wraps_whatever_prepare_returns(monkeypatch):
    """Every 10th call runs the prepared step twice, on either path of prepare (one BLAS, or
    a pick between two): an injection into one path measured nothing where AOCL is installed."""
    import sys
    import types

    path, old, new = _script().INJECTIONS["numba"]
    source = (ROOT / path).read_text().replace(old, new.format(every=10))
    module = types.ModuleType("backends.numba.injected_backend")
    module.__file__ = str(ROOT / path)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(source, path, "exec"), module.__dict__)
    calls = []

    def prepared(self, make_step, *, lr, dtype):
        def step(x, t, W, S):
            calls.append(1)
            return W, S, 0.0
        return step

    monkeypatch.setattr(module.NumbaBackend, "_prepare_as_committed", prepared)
    step = module.NumbaBackend().prepare(None, lr=0.1, dtype="float64")
    for _ in range(20):
        step(None, None, "W", "S")
    assert len(calls) == 22
