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
