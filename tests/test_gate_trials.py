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


def test_the_table_counts_each_trial_per_minimum_effect(tmp_path, capsys):
    """One row per trial, slowdown and minimum effect: runs at another minimum effect are
    another row, not mixed into the counts; runs from before it was recorded show "-". The
    point caught least often is named with its count."""
    import argparse
    import json

    def run(status, effect, verdicts, wall):
        record = {"trial": "numba", "fraction": 0.05, "status": status, "wall_s": wall,
                  "points": [{"name": f"numba p{i}", "verdict": v, "ratio": 1.04 + i / 100,
                              "ratio_interval": [1.0, 1.1], "process_pairs": 5,
                              "min_detectable_effect": 0.04 + i / 100}
                             for i, v in enumerate(verdicts)]}
        if effect is not None:
            record["min_effect"] = effect
        return json.dumps(record)

    results = tmp_path / "t.jsonl"
    results.write_text("\n".join([run(1, 0.03, ["slower", "slower"], 60.0),
                                  run(0, 0.03, ["slower", "inconclusive"], 80.0),
                                  run(1, 0.03, ["slower", "pass"], 70.0),
                                  run(0, 0.05, ["inconclusive", "pass"], 100.0),
                                  run(0, None, ["pass", "pass"], 90.0)]) + "\n")
    _script().table(argparse.Namespace(results=results))
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| numba")]
    assert rows == [
        "| numba 5% slower | --backend numba | - | 1 | 0 | 0 | 0 of 2 | 0 of 2 | numba p0: 0 of 1 "
        "| 1.050 (1.040-1.050) | 5.0% (5.0%) | 90 s (90 s) |",
        "| numba 5% slower | --backend numba | 3% | 3 | 2 | 0 | 4 of 6 | 1 of 6 | numba p1: 1 of 3 "
        "| 1.050 (1.040-1.050) | 5.0% (5.0%) | 70 s (80 s) |",
        "| numba 5% slower | --backend numba | 5% | 1 | 0 | 0 | 0 of 2 | 1 of 2 | numba p0: 0 of 1 "
        "| 1.050 (1.040-1.050) | 5.0% (5.0%) | 100 s (100 s) |"]
