"""Bad input, odd files, concurrent runs, closed pipes and broken environments (issue 15's cases).

The promise (docs/reliability.md): bad input gets one line on stderr and exit status 2 before
any work; finished points are never lost. Items about processes, pipes and signals run real
``mlpbench`` processes.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from factories import corrupted
from helpers import ROOT as REPO, assert_one_line_error, run_cli, untouched
from mlpbench.cli import main
from mlpbench.errors import UsageError
from mlpbench.files import lock_output
from mlpbench.gitinfo import uncommitted_changes
from mlpbench.options import check_learning_rate

MLPBENCH = [sys.executable, "-m", "mlpbench"]
TINY = ["--n-in", "8", "--hidden", "4", "--n-out", "2", "--batch-size", "2"]
BENCH_TINY = ["--backend", "numpy", *TINY, "--dtype", "float64", "--min-time", "0.01",
              "--repeat", "2"]


def run(*argv, **options):
    return subprocess.run([*MLPBENCH, *map(str, argv)], cwd=REPO, capture_output=True,
                          text=True, timeout=options.pop("timeout", 120), **options)


# -- 2: devices, pipes and symlinks ----------------------------------------------------------

@pytest.mark.parametrize("command, flag", [("bench", "--output"), ("train", "--save")])
def test_a_path_that_is_not_a_regular_file_is_refused_not_replaced(capsys, tmp_path, command,
                                                                   flag):
    # A named pipe stands for /dev/null and other devices: the rename would replace it.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    argv = BENCH_TINY if command == "bench" else [*TINY, "--steps", "1"]
    code, out, err = run_cli(capsys, command, *argv, flag, fifo)
    assert_one_line_error(code, err, flag, "named pipe", "not a regular file")
    assert out == "" and fifo.is_fifo()


def test_dev_null_is_refused_before_anything_is_written(capsys):
    # check_writable alone: no run is started, so a regression cannot replace /dev/null.
    from mlpbench.files import check_writable

    with pytest.raises(UsageError, match="character device"):
        check_writable(os.devnull, "--output")
    assert Path(os.devnull).is_char_device()


def test_a_symlink_stays_and_its_target_is_written(capsys, tmp_path):
    target = tmp_path / "real" / "r.json"
    target.parent.mkdir()
    link = tmp_path / "link.json"
    link.symlink_to(target)
    code, _, err = run_cli(capsys, "bench", *BENCH_TINY, "--output", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text())["results"]
    saved = tmp_path / "w.npz"
    link_npz = tmp_path / "link.npz"
    link_npz.symlink_to(saved)
    code, _, err = run_cli(capsys, "train", *TINY, "--steps", "1", "--save", link_npz)
    assert code == 0, err
    assert link_npz.is_symlink() and set(np.load(saved)) >= {"W", "S", "loss"}


# -- 3: two runs on one --output ----------------------------------------------------------------

def test_a_second_bench_on_the_same_output_is_refused_and_no_point_is_lost(tmp_path):
    out = tmp_path / "r.json"
    grid = ["--backend", "numpy", "--n-in", "8", "--hidden", "4,5", "--n-out", "2",
            "--batch-size", "1,2,3,4", "--dtype", "float64", "--min-time", "0.15",
            "--repeat", "3"]
    first = subprocess.Popen([*MLPBENCH, "bench", *grid, "--output", str(out)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{out}.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        # Another name of the same file: the lock follows the file, not the spelling.
        second = run("bench", *grid, "--output", tmp_path / "." / "r.json")
        assert first.poll() is None, "the first run ended before the second could be refused"
        assert_one_line_error(second.returncode, second.stderr, "in use by another mlpbench run",
                              f"pid {first.pid}")
        assert second.stdout == ""
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, err
    results = json.loads(out.read_text())["results"]
    assert len(results) == 8 and all(r["status"] == "ok" for r in results)
    assert json.loads(out.read_text())["environment"]["command"][-1] == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # the lock file is gone


def test_a_held_lock_refuses_and_a_left_lock_file_does_not(capsys, tmp_path):
    out = tmp_path / "r.json"
    with lock_output(str(out), "--output"):
        code, stdout, err = run_cli(capsys, "bench", *BENCH_TINY, "--output", out)
        assert_one_line_error(code, err, "in use", f"pid {os.getpid()}")
        assert stdout == "" and not out.exists()
    # A run killed with SIGKILL leaves its lock file, but not its lock.
    Path(f"{out}.lock").write_text("999999999\n")
    code, _, err = run_cli(capsys, "bench", *BENCH_TINY, "--output", out)
    assert code == 0, err
    assert not Path(f"{out}.lock").exists()


# -- 6: --plot's format (its bad input, and one path for --output and --plot: test_bench.py)

def test_a_plot_is_written_in_its_suffix_format_under_its_exact_name(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the 'plot' extra) is not installed")
    svg = tmp_path / "p.svg"
    code, stdout, _ = run_cli(capsys, "bench", *BENCH_TINY, "--plot", svg)
    assert code == 0
    assert b"<svg" in svg.read_bytes()[:500] and f"plot: {svg}" in stdout
    # The roofline chart beside it, in the same format; nothing else (no .png added).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p-roofline.svg", "p.svg"]
    assert b"<svg" in (tmp_path / "p-roofline.svg").read_bytes()[:500]


# -- 9: a bad results file given to --resume (compare's table of bad values: test_compare.py)

def test_resume_refuses_a_bad_value_before_measuring_and_leaves_the_file(capsys, tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps(corrupted(("results", 0, "steps_per_s"), float("nan"))))
    before = untouched(bad)
    code, out, err = run_cli(capsys, "bench", *BENCH_TINY, "--output", bad, "--resume")
    assert_one_line_error(code, err, str(bad), "result 0", "'steps_per_s' is NaN")
    assert out == "" and untouched(bad) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


# -- 10 and 11: divergence and the learning rate in the run's dtype -----------------------------

def test_train_with_finite_loss_but_infinite_weights_has_diverged(tmp_path):
    saved = tmp_path / "w.npz"
    proc = run("train", *TINY, "--steps", "1", "--dtype", "float32", "--lr", "1e38",
               "--save", saved)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "diverged" in last and "holds inf" in last and "--lr" in last
    assert "Traceback" not in proc.stderr and "RuntimeWarning" not in proc.stderr
    with np.load(saved) as run_:
        assert np.isfinite(run_["loss"]).all() and not np.isfinite(run_["W"]).all()


def test_a_bench_point_with_infinite_weights_is_invalid(capsys, tmp_path, register_backend):
    register_backend("FakeBackend", inf_weights=True)  # finite loss, infinite weights
    out = tmp_path / "r.json"
    code, _, _ = run_cli(capsys, "bench", *BENCH_TINY[2:], "--backend", "fake", "--output", out)
    (r,) = json.loads(out.read_text())["results"]
    assert r["status"] == "invalid" and "W holds inf" in r["error"]
    assert code == 1


@pytest.mark.parametrize("lr, dtype, shown", [("1e-50", "float32", "is 0 in float32"),
                                              ("1e39", "float32", "is inf in float32"),
                                              ("1e-330", "float64", "finite positive")])
def test_a_learning_rate_that_is_zero_or_infinite_in_the_dtype_is_refused(capsys, lr, dtype,
                                                                          shown):
    code, out, err = run_cli(capsys, "train", *TINY, "--dtype", dtype, "--lr", lr)
    assert_one_line_error(code, err, "--lr", shown)
    assert out == ""


def test_a_small_rate_that_the_dtype_holds_is_accepted():
    check_learning_rate(1e-50, "float64")
    check_learning_rate(1e-44, "float32")  # subnormal, not zero
    with pytest.raises(UsageError, match="is 0 in float32"):
        check_learning_rate(1e-46, "float32")


# -- 12: a bad dask scheduler address ----------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.uses_backend("dask")
@pytest.mark.parametrize("address", ["notaurl", "tcp://127.0.0.1:{port}", "inproc://x"])
def test_a_bad_dask_scheduler_address_is_one_line_and_quick(address):
    pytest.importorskip("distributed", reason="dask.distributed is not installed")
    env = {**os.environ, "MLPBENCH_DASK_SCHEDULER": address.format(port=_closed_port())}
    start = time.monotonic()
    proc = run("train", "--backend", "dask", *TINY, "--steps", "2", env=env, timeout=60)
    assert_one_line_error(proc.returncode, proc.stderr, "cannot connect to the dask scheduler")
    assert time.monotonic() - start < 10  # was 21 s: a half-made Client closing itself


# -- 8: numba where no cache folder can be written -------------------------------------------

@pytest.mark.slow
@pytest.mark.uses_backend("numba")
def test_numba_without_a_writable_cache_folder_runs_with_one_warning(tmp_path):
    # A checkout where no __pycache__ can be made (a file is in the way, which stops root
    # too) and a HOME that is a file: Numba finds no cache folder at all.
    tree = tmp_path / "tree"
    for package in ("kernels", "backends", "mlpbench"):
        shutil.copytree(REPO / package, tree / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
        for folder in [tree / package, *(p for p in (tree / package).rglob("*") if p.is_dir())]:
            (folder / "__pycache__").write_text("")
    home = tmp_path / "home"
    home.write_text("")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(HOME=str(home), PYTHONPATH=str(tree), XDG_CACHE_HOME=str(home / "cache"))
    listed = subprocess.run([*MLPBENCH, "backends", "--json"], cwd=tree, env=env,
                            capture_output=True, text=True, timeout=120)
    assert {r["name"]: r["available"] for r in json.loads(listed.stdout)}["numba"] is True
    proc = subprocess.run([*MLPBENCH, "train", "--backend", "numba", *TINY, "--steps", "2"],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    warnings_ = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings_) == 1 and "no writable cache folder" in warnings_[0], proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stdout.splitlines()) == 2


# -- 13: uncommitted changes to the measured code ------------------------------------------------

def _git(root, *argv):
    subprocess.run(["git", "-C", str(root), *argv], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


def test_uncommitted_changes_names_the_measured_files_only(tmp_path):
    for path in ("kernels/step.py", "backends/numpy_backend.py", "mlpbench/cli.py",
                 "benchmarks/bench_step.py", "README.md", "backends/old.py"):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("*.log\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    assert uncommitted_changes(str(tmp_path)) == []

    (tmp_path / "kernels/step.py").write_text("x = 2\n")          # modified
    (tmp_path / "mlpbench/new.py").write_text("y = 1\n")          # untracked
    (tmp_path / "benchmarks/bench_step.py").write_text("x = 3\n")
    _git(tmp_path, "add", "benchmarks/bench_step.py")              # staged
    (tmp_path / "backends/numpy_backend.py").unlink()              # deleted
    _git(tmp_path, "mv", "backends/old.py", "backends/renamed.py")  # renamed
    (tmp_path / "README.md").write_text("changed\n")               # not measured code
    (tmp_path / "mlpbench/run.log").write_text("ignored\n")        # ignored
    assert uncommitted_changes(str(tmp_path)) == [
        "backends/numpy_backend.py", "backends/old.py", "backends/renamed.py",
        "benchmarks/bench_step.py", "kernels/step.py", "mlpbench/new.py"]


def test_uncommitted_changes_outside_a_repository_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="git status failed") as exc:
        uncommitted_changes(str(tmp_path))
    assert "\n" not in str(exc.value)


# -- 14: --debug after the command ---------------------------------------------------------------

def test_debug_is_accepted_after_the_command_as_before_it(capsys):
    code, _, err = run_cli(capsys, "train", "--backend", "tensorflow")
    assert_one_line_error(code, err, "unknown backend")
    for argv in (["train", "--backend", "tensorflow", "--debug"],
                 ["--debug", "train", "--backend", "tensorflow"]):
        with pytest.raises(UsageError, match="unknown backend"):  # the traceback, not a line
            main(argv)
    code, out, err = run_cli(capsys, "train", *TINY, "--steps", "1", "--debug")
    assert code == 0 and out.startswith("Iter: 0"), err


# -- 15 and 16: a closed pipe; a terminal that cannot print µ --------------------------------

def test_a_reader_that_goes_away_ends_the_run_quietly():
    proc = subprocess.Popen([*MLPBENCH, "train", *TINY, "--steps", "10000000"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("Iter: 0")
        proc.stdout.close()  # as `| head -1` does
        err = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode in (0, 141) and err == "", (proc.returncode, err)


def test_a_shell_pipe_into_head(tmp_path):
    script = (f"{' '.join(map(repr, MLPBENCH))} train {' '.join(TINY)} --steps 10000000 | head -1;"
              " echo \"status ${PIPESTATUS[0]}\" >&2")
    proc = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.startswith("Iter: 0") and len(proc.stdout.splitlines()) == 1
    assert proc.stderr.strip() in ("status 0", "status 141"), proc.stderr


def test_an_ascii_terminal_gets_us_for_microseconds(tmp_path):
    out = tmp_path / "résultats.json"
    proc = run("bench", *BENCH_TINY, "--output", out,
               env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    assert " us " in proc.stdout and "µ" not in proc.stdout
    assert "r\\xe9sultats.json\n" in proc.stdout  # the path, printed as it can be
    assert json.loads(out.read_text(encoding="utf-8"))["results"]


def test_the_cache_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    from mlpbench.files import cache_dir
    from mlpbench.gate.commits import cache_dir as gate_cache

    monkeypatch.delenv("MLPBENCH_GATE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert gate_cache() == cache_dir("gate") == tmp_path / "mlpbench" / "gate"
    monkeypatch.setenv("XDG_CACHE_HOME", "")  # empty: unset, as the XDG rules say
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir("gate") == tmp_path / "home" / ".cache" / "mlpbench" / "gate"
