"""The piece timer: a fake backend whose pieces take known times, each backend's pieces against
its step, and ``mlpbench pieces``."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from backends.base import Backend
from helpers import assert_one_line_error
from kernels import make_step, resolve_pieces
from mlpbench import cli
from mlpbench.pieces import TIMED, format_pieces, measure_pieces, piece_runs
from mlpbench.problem import make_inputs, to_backend

MS = 1e-3
#: The fake backend's seconds per call of each timed piece, and of its whole step.
SLEEPS = {"forward": 2 * MS, "loss_and_grad": 1 * MS, "grad_h": 3 * MS, "relu_backward": 1 * MS,
          "weight_update": 5 * MS}
STEP_S = 8 * MS


class SleepingBackend(Backend):
    """A fake backend (for testing the timer only): each piece sleeps a known time; its work is
    finished by synchronize, whose calls are counted."""

    name = "sleeping"

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.synchronized = 0

    @property
    def xp(self):
        return np

    def synchronize(self, *arrays) -> None:
        self.synchronized += 1

    def prepare_pieces(self, make_pieces, *, lr, dtype):
        real = super().prepare_pieces(make_pieces, lr=lr, dtype=dtype)

        def sleeping(name):
            def piece(*args):
                time.sleep(SLEEPS[name])
                return real[name](*args)
            return piece

        return {name: sleeping(name) for name in SLEEPS}

    def prepare(self, make_step, *, lr, dtype):
        step = super().prepare(make_step, lr=lr, dtype=dtype)

        def sleeping_step(*args):
            time.sleep(STEP_S)
            return step(*args)

        return sleeping_step


def test_known_piece_times_are_reported_with_their_sum_beside_the_step():
    backend = SleepingBackend()
    point = measure_pieces(backend, 2, 4, "float64", n_in=3, n_out=2, min_time=0.02, repeat=2)
    expected = {**{name: SLEEPS[name] for name in TIMED if name in SLEEPS},
                "weight_update_W": SLEEPS["weight_update"],
                "weight_update_S": SLEEPS["weight_update"]}
    assert list(point["pieces"]) == list(TIMED)
    for name, seconds in expected.items():
        # a sleep never ends early; on a busy machine it may end late
        assert seconds <= point["pieces"][name]["median"] < seconds + 2 * MS, name
    assert point["pieces_sum_s"] == pytest.approx(sum(t["median"] for t in point["pieces"].values()))
    assert STEP_S <= point["step_s"]["median"] < STEP_S + 2 * MS
    assert point["sum_over_step"] == pytest.approx(point["pieces_sum_s"] / point["step_s"]["median"])
    # every timed block (2 per piece and the step) and every warm-up ends with synchronize
    assert backend.synchronized >= 7 * 3
    table = format_pieces(point)
    assert "grad_h" in table and "sum of pieces" in table and "whole step" in table
    assert f"{point['pieces']['grad_h']['median'] / point['step_s']['median']:.1%}" in table


def test_pieces_run_on_one_steps_arrays():
    calls = []

    def recording(name, result):
        def piece(*args):
            calls.append((name, tuple(a.shape for a in args)))
            return result(*args)
        return piece

    real = Backend.prepare_pieces(SleepingBackend(), resolve_pieces, lr=1e-3, dtype="float64")
    pieces = {name: recording(name, real[name]) for name in SLEEPS}
    arrays = make_inputs(2, 3, 4, 1, dtype="float64", seed=0)
    runs = piece_runs(pieces, arrays)
    assert set(runs) == set(TIMED)
    assert [name for name, _ in calls] == ["forward", "loss_and_grad", "grad_h", "relu_backward",
                                           "weight_update", "weight_update"] * 2
    calls.clear()
    runs["weight_update_S"](3)
    assert calls == [("weight_update", ((4, 1), (2, 4), (2, 1)))] * 3


def test_weight_update_feeds_its_output_back():
    seen = []

    def weight_update(P, a, grad_out):
        seen.append(P)
        return P + 1.0  # a new array each call, as a functional backend returns

    real = Backend.prepare_pieces(SleepingBackend(), resolve_pieces, lr=1e-3, dtype="float64")
    runs = piece_runs({**real, "weight_update": weight_update},
                      make_inputs(2, 3, 4, 1, dtype="float64", seed=0))
    seen.clear()
    runs["weight_update_W"](3)
    assert seen[1][0, 0] == seen[0][0, 0] + 1.0 and seen[2][0, 0] == seen[0][0, 0] + 2.0


def test_each_backends_pieces_make_its_step(backend):
    """One step of a backend's pieces gives the W and S of one step of its prepared step."""
    arrays = make_inputs(3, 5, 4, 2, dtype="float64", seed=1)
    lr = 1e-2
    step = backend.prepare(make_step, lr=lr, dtype="float64")
    W_step, S_step, _ = step(*to_backend(backend, arrays).values())
    backend.synchronize(W_step, S_step)
    pieces = backend.prepare_pieces(resolve_pieces, lr=lr, dtype="float64")
    x, t, W, S = to_backend(backend, arrays).values()
    u, h, y = pieces["forward"](x, W, S)
    _, grad_y = pieces["loss_and_grad"](y, t)
    grad_u = pieces["relu_backward"](u, pieces["grad_h"](grad_y, S))
    W_new, S_new = pieces["weight_update"](W, x, grad_u), pieces["weight_update"](S, h, grad_y)
    backend.synchronize(W_new, S_new)
    np.testing.assert_allclose(backend.to_numpy(W_new), backend.to_numpy(W_step), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(S_new), backend.to_numpy(S_step), rtol=1e-12)


def test_pieces_command_writes_a_table_and_json(tmp_path, capsys):
    out = tmp_path / "pieces.json"
    code = cli.main(["pieces", "--backend", "numpy", "--batch-size", "2", "--hidden", "4",
                     "--dtype", "float32", "--threads", "1", "--min-time", "0.002",
                     "--repeat", "1", "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "numpy float32: batch 2" in printed and "whole step" in printed
    doc = json.loads(out.read_text())
    assert doc["schema"] == "mlpbench.pieces/1" and doc["environment"]["cpu"]
    (point,) = doc["points"]
    assert list(point["pieces"]) == list(TIMED) and point["threads"] == 1


@pytest.mark.parametrize("argv, fragment", [
    (["--backend", "nope"], "unknown backend 'nope'"),
    (["--backend", "all"], "not 'all'"),
    (["--hidden", "0"], "must be a positive integer"),
    (["--dtype", "float16"], "unsupported dtype"),
    (["--output", "/no/such/folder/p.json"], "does not exist"),
])
def test_pieces_command_refuses_bad_input(argv, fragment, capsys):
    try:
        code = cli.main(["pieces", *argv])
    except SystemExit as exit_:
        code = exit_.code
    assert_one_line_error(code, capsys.readouterr().err, fragment)
