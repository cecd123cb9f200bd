"""The asv suites without asv: their grid, their skips, and one real point on numpy."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import backends
from helpers import ROOT, import_benchmarks


common, bench_step = import_benchmarks("common"), import_benchmarks("bench_step")
TrainStep = bench_step.TrainStep
POINT = ("numpy", 4, 8, "float64")  # small: batch 4, hidden 8


@pytest.fixture
def numpy_step():
    bench = TrainStep()
    bench.setup(*POINT)
    return bench


def test_setup_warms_up_and_time_step_trains(numpy_step):
    point = numpy_step.point
    assert point.loss is not None  # the warm-up step ran in setup
    W, S = np.array(point.W), np.array(point.S)
    numpy_step.time_train_step(*POINT)
    assert not np.array_equal(point.W, W) and not np.array_equal(point.S, S)
    assert point.W.dtype == np.float64 and point.W.shape == (common.N_IN, 8)


def test_the_step_output_feeds_the_next_step(numpy_step):
    # asv reruns setup before every sample: the point (and its training) must carry over.
    numpy_step.time_train_step(*POINT)
    W_after_one = np.array(numpy_step.point.W)
    again = TrainStep()
    again.setup(*POINT)
    assert again.point is numpy_step.point
    np.testing.assert_array_equal(again.point.W, W_after_one)


def test_every_benchmark_is_lower_is_better():
    # asv reads every value as lower-is-better (track_* too): a rate would show a speed-up as a
    # regression in compare, continuous and the site. Discovered as asv discovers them.
    discovery = pytest.importorskip(
        "asv_runner.discovery", reason="asv is not installed (pip install 'mlpbench[asv]')")
    found = {b.name: b.type for b in discovery.disc_benchmarks(str(ROOT / "benchmarks"))}
    assert found == {"bench_step.TrainStep.time_train_step": "time",
                     "bench_step.TrainStep.peakmem_train_step": "peakmemory",
                     "bench_pieces.StepPiece.time_piece": "time"}


def test_peakmem_runs_a_step(numpy_step):
    W = np.array(numpy_step.point.W)
    numpy_step.peakmem_train_step(*POINT)
    assert not np.array_equal(numpy_step.point.W, W)


def test_timing_attributes_are_class_attributes():
    assert TrainStep.timeout > 0
    assert TrainStep.number == 1
    assert TrainStep.param_names == ["backend", "batch_size", "hidden", "dtype"]


def test_environment_chooses_backends_and_grid():
    assert common.grid_params({}) == [backends.names(), common.GRIDS["full"]["batch_size"],
                                      common.GRIDS["full"]["hidden"],
                                      common.GRIDS["full"]["dtype"]]
    quick = common.grid_params({"MLPBENCH_BACKENDS": "numpy, numba", "MLPBENCH_GRID": "quick"})
    assert quick[0] == ["numpy", "numba"]
    assert quick[1:] == [common.GRIDS["quick"][k] for k in ("batch_size", "hidden", "dtype")]
    assert len(quick[1]) < len(common.GRIDS["full"]["batch_size"])
    assert common.backend_names({"MLPBENCH_BACKENDS": "all"}) == backends.names()


def test_unknown_grid_is_an_error():
    with pytest.raises(ValueError, match="MLPBENCH_GRID='huge'"):
        common.grid_name({"MLPBENCH_GRID": "huge"})


def test_params_follow_the_environment_at_import():
    env = dict(os.environ, MLPBENCH_BACKENDS="numpy,array-api-strict", MLPBENCH_GRID="quick")
    done = subprocess.run(
        [sys.executable, "-c", "import json; from benchmarks.bench_step import TrainStep; "
                               "print(json.dumps(TrainStep.params))"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [["numpy", "array-api-strict"],
                                       *[common.GRIDS["quick"][k]
                                         for k in ("batch_size", "hidden", "dtype")]]


@pytest.fixture
def fake_registry(monkeypatch, register_backend):
    """Two fake entries: a backend whose module is not written, and one that is unavailable."""
    monkeypatch.setitem(backends._REGISTRY, "fake-missing-module",
                        "backends.fake_missing_backend:FakeBackend")
    register_backend("MissingLibraryBackend")


@pytest.mark.parametrize("name", ["fake-missing-module", "fake-missing"])
def test_unavailable_backend_is_skipped_in_setup(fake_registry, name):
    with pytest.raises(NotImplementedError, match=name):
        TrainStep().setup(name, 4, 8, "float64")


def test_unknown_backend_is_an_error_not_a_skip():
    with pytest.raises(backends.UnknownBackend):
        TrainStep().setup("nmupy", 4, 8, "float64")


@pytest.mark.skipif(shutil.which("git") is None, reason="asv check needs git")
def test_asv_check_accepts_the_suite():
    pytest.importorskip("asv", reason="asv is not installed (pip install 'mlpbench[asv]')")
    env = dict(os.environ, MLPBENCH_BACKENDS="numpy", MLPBENCH_GRID="quick")
    done = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No problems found" in done.stdout
