"""`mlpbench check` and `mlpbench backends`: every backend against numpy, and what is known of each."""
from __future__ import annotations

import json

import numpy as np
import pytest

import backends
from mlpbench.cli import main
from mlpbench.verify import CHECK_SHAPES, CHECK_STEPS


@pytest.mark.uses_backend("array-api-strict")
def test_check_prints_a_row_per_case_and_passes(capsys):
    # Every backend's agreement is the contract's (test_backends_contract.py); this is the command.
    name = "array-api-strict"
    assert main(["check", "--backend", name]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith(name + " ")]
    assert len(rows) == 2 * len(CHECK_SHAPES) * len(CHECK_STEPS)
    assert all(row.endswith(" ok") for row in rows)


@pytest.mark.parametrize("fake, verdict", [("WrongStepBackend", "FAIL"),
                                           ("WideningBackend", "FAIL (dtype)")])
def test_check_fails_on_a_mismatch(register_backend, capsys, fake, verdict):
    name = register_backend(fake)
    assert main(["check", "--backend", name]) == 1
    out = capsys.readouterr().out
    assert verdict in out
    assert "0 mismatches" not in out


def test_backends_json_lists_every_known_backend(capsys):
    assert main(["backends", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == backends.names()
    numpy_row = rows[0]
    assert numpy_row["available"] is True and numpy_row["version"] == np.__version__
    assert numpy_row["device"] == "cpu"
    for row in rows:
        assert set(row) == {"name", "available", "reason", "version", "device"}
        assert row["available"] or row["reason"]  # a missing backend always says why


def test_backends_table_has_a_row_per_backend(capsys):
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == backends.names()


def test_check_takes_several_backends(capsys):
    assert main(["check", "--backend", "numpy", "array-api-strict", "--threads", "1"]) == 0
    names = {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert names == {"numpy", "array-api-strict"}
