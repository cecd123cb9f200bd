"""`mlpbench train`: the original loop's output, a replay of its saved run with plain numpy, and
its bad input."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from helpers import assert_one_line_error, run_cli
from mlpbench.cli import main


def mlpbench(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "mlpbench", *args], capture_output=True,
                          text=True, **kwargs)


def original_loop(x, t, W, S, learning_rate, steps):
    """The seed's numpy loop, as written there (losses recorded instead of printed)."""
    W, S = W.copy(), S.copy()
    losses = []
    for _ in range(steps):
        u = x.dot(W)
        h = np.maximum(u, 0)
        y = h.dot(S)
        losses.append(np.square(y - t).sum())
        grad_y = 2.0 * (y - t)
        grad_S = h.T.dot(grad_y)
        grad_h = grad_y.dot(S.T)
        grad_u = grad_h.copy()
        grad_u[u < 0] = 0
        grad_W = x.T.dot(grad_u)
        W -= learning_rate * grad_W
        S -= learning_rate * grad_S
    return np.array(losses), W, S


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("seed") / "run.npz"
    # One BLAS thread here and in the replay: the same summation order, so a tight tolerance.
    proc = mlpbench("train", "--preset", "seed", "--threads", "1", "--save", str(path))
    assert proc.returncode == 0, proc.stderr
    return proc, path


def test_seed_preset_prints_like_the_original_loop(seed_run):
    proc, path = seed_run
    lines = proc.stdout.splitlines()
    assert len(lines) == 500
    assert lines[0].startswith("Iter: 0\tLoss: ")
    assert lines[-1].startswith("Iter: 499\tLoss: ")
    printed = np.array([float(line.split("\tLoss: ")[1]) for line in lines])
    with np.load(path) as run:
        np.testing.assert_array_equal(printed, run["loss"])
    assert "compile" in proc.stderr and "ms/step" in proc.stderr


def test_replay_of_the_saved_run_gives_the_same_losses_and_weights(seed_run):
    _, path = seed_run
    with np.load(path, allow_pickle=False) as run:
        arrays = {k: run[k] for k in run.files}
    assert set(arrays) == {"x", "t", "W0", "S0", "W", "S", "loss", "lr"}
    assert arrays["x"].shape == (64, 1000) and arrays["W0"].shape == (1000, 100)
    assert arrays["S0"].shape == (100, 10) and arrays["loss"].shape == (500,)
    assert float(arrays["lr"]) == 1e-6 and arrays["W"].dtype == np.float64
    with threadpool_limits(limits=1):
        losses, W, S = original_loop(arrays["x"], arrays["t"], arrays["W0"], arrays["S0"],
                                     float(arrays["lr"]), 500)
    assert losses[-1] < losses[0] / 10  # it trains
    np.testing.assert_allclose(arrays["loss"], losses, rtol=1e-10)
    np.testing.assert_allclose(arrays["W"], W, rtol=0, atol=1e-10 * np.abs(W).max())
    np.testing.assert_allclose(arrays["S"], S, rtol=0, atol=1e-10 * np.abs(S).max())


def test_float32_run_saves_float32_and_print_every(tmp_path, capsys):
    path = tmp_path / "run.data"  # a name without .npz is kept as given
    assert main(["train", "--dtype", "float32", "--steps", "7", "--print-every", "3",
                 "--batch-size", "5", "--n-in", "6", "--hidden", "4", "--n-out", "2",
                 "--init", "scaled", "--lr", "1e-3", "--save", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in out] == ["Iter: 0", "Iter: 3", "Iter: 6", ]
    with np.load(path) as run:
        assert run["W"].dtype == np.float32 and run["x"].dtype == np.float32
        assert run["loss"].shape == (7,) and run["lr"].dtype == np.float32
    assert not (tmp_path / "run.data.npz").exists()


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    paths = [tmp_path / f"{i}.npz" for i in range(3)]
    for path, seed in zip(paths, ["1", "1", "2"]):
        assert main(["train", "--steps", "1", "--batch-size", "3", "--n-in", "4", "--hidden", "5",
                     "--n-out", "2", "--seed", seed, "--save", str(path)]) == 0
    a, b, c = (np.load(p) for p in paths)
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["W"], b["W"])
    assert not np.array_equal(a["x"], c["x"])


def test_threads_flag_is_applied_and_reported(capsys):
    assert main(["train", "--steps", "2", "--threads", "1", "--batch-size", "2"]) == 0
    assert "threads: blas 1" in capsys.readouterr().err


def test_saved_file_has_the_permissions_of_a_plain_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "run.npz"
        assert main(["train", "--steps", "1", "--batch-size", "2", "--save", str(path)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]  # no temporary left behind


# -- bad input: one line, exit 2, before any work; a diverged run exits 1 ----------------

@pytest.mark.parametrize("flag", ["--batch-size", "--n-in", "--hidden", "--n-out", "--steps",
                                  "--print-every", "--threads"])
@pytest.mark.parametrize("value", ["0", "-3", "2.5", "many"])
def test_non_positive_sizes_and_steps(capsys, flag, value):
    code, _, err = run_cli(capsys, "train", flag, value)
    assert_one_line_error(code, err, flag, "positive integer", repr(value))


@pytest.mark.parametrize("value", ["float16", "int32", "bfloat16"])
def test_unsupported_dtype(capsys, value):
    code, _, err = run_cli(capsys, "train", "--dtype", value)
    assert_one_line_error(code, err, "unsupported dtype", value, "float32, float64")


@pytest.mark.parametrize("value", ["0", "-1e-3", "nan", "inf", "-inf", "fast"])
def test_learning_rate_must_be_finite_and_positive(capsys, value):
    code, _, err = run_cli(capsys, "train", f"--lr={value}")
    assert_one_line_error(code, err, "--lr", "finite positive", repr(value))


def test_a_problem_too_big_for_memory_is_refused_before_allocating(capsys):
    code, _, err = run_cli(capsys, "train", "--batch-size", "1000000", "--n-in", "1000000")
    assert_one_line_error(code, err, "needs about", "bytes", "available")


def test_unwritable_save_paths(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", "--steps", "1", "--save",
                             str(tmp_path / "missing" / "run.npz"))
    assert_one_line_error(code, err, "cannot write --save", "does not exist")
    assert out == ""  # refused before running
    code, _, err = run_cli(capsys, "train", "--steps", "1", "--save", str(tmp_path))
    assert_one_line_error(code, err, "is a directory")


def test_diverged_run_exits_1_and_says_where(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mlpbench", "train", "--lr", "1", "--steps", "100"],
        capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "RuntimeWarning" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "diverged" in last and "--lr" in last
    step = int(last.split(" at step ")[1].split()[0])
    printed = proc.stdout.strip().splitlines()
    assert printed[-1].startswith(f"Iter: {step}\t")  # it stopped at that step
    assert step < 99
