"""mlpbench bench: the timing core, the results file, the sweep's order, and its robustness.

Speeds are never asserted. Several tests use ``FakeBackend``: a fake backend for testing the
harness itself (numpy underneath, with hooks that sleep, fail, return NaN or log calls),
registered for the test only by monkeypatching the registry.
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fakes import FakeBackend
from helpers import ROOT, assert_one_line_error, run_cli, strict_json, untouched
from kernels import make_step
from mlpbench.measure import Measurement, measure_step
from mlpbench.problem import make_inputs, to_backend
from mlpbench.results import make_result
from mlpbench.sweep import plan_points

# The keys of the "mlpbench.bench/1" schema (docs/results.md), written out here so that the
# test fails if the module's own lists drift from the contract.
ENVIRONMENT_KEYS = {"python", "platform", "cpu", "cores", "libraries", "blas", "gpu", "command",
                    "started", "finished"}
RESULT_KEYS = {"backend", "dtype", "batch_size", "n_in", "hidden", "n_out", "threads", "status",
               "error", "compile_s", "step_s", "blocks", "steps_per_block", "steps_per_s",
               "samples_per_s", "gflops", "peak_fraction", "final_loss"}

# A tiny grid: each point takes well under a second.
TINY = ["--n-in", "8", "--n-out", "3", "--hidden", "4", "--min-time", "0.01", "--repeat", "2"]
BENCH_TINY = ["--backend", "numpy", *TINY, "--batch-size", "2", "--dtype", "float64"]


@pytest.fixture
def install_fake(register_backend):
    """Register tests/fakes.py's FakeBackend as 'fake' for this test only (workers too)."""
    def install(**config):
        return register_backend("FakeBackend", **config)

    return install


# -- the arithmetic -------------------------------------------------------------------------

def test_speeds_follow_from_the_median_step_time_and_the_operation_count():
    point = {"backend": "numpy", "dtype": "float32", "batch_size": 64, "n_in": 1000,
             "hidden": 100, "n_out": 10}
    flops = 2 * 64 * 100 * (2 * 1000 + 3 * 10)  # docs/design.md's operation count, written out
    # Three blocks of 50 steps: 0.1, 0.3 and 0.2 s -> 2, 6 and 4 ms per step.
    m = Measurement(compile_s=1.5, steps_per_block=50, block_s=[0.1, 0.3, 0.2], final_loss=3.0)
    r = make_result(point, threads=2, status="ok", measurement=m, peak_gflops=50.0,
                    flops_per_step=flops)
    assert r["step_s"] == pytest.approx({"median": 0.004, "min": 0.002, "max": 0.006})
    assert r["steps_per_s"] == pytest.approx(250.0)
    assert r["samples_per_s"] == pytest.approx(64 * 250.0)
    assert r["gflops"] == pytest.approx(flops * 250.0 / 1e9)
    assert r["peak_fraction"] == pytest.approx(flops * 250.0 / 1e9 / 50.0)
    assert (r["blocks"], r["steps_per_block"], r["compile_s"], r["final_loss"]) == (3, 50, 1.5, 3.0)
    assert RESULT_KEYS <= set(r)


@pytest.mark.parametrize("status", ["timeout", "error", "invalid"])
def test_a_point_that_is_not_ok_reports_no_speed(status):
    point = {"backend": "numpy", "dtype": "float64", "batch_size": 1, "n_in": 8, "hidden": 4,
             "n_out": 3}
    m = Measurement(0.1, 10, [0.1, 0.1], float("nan"))
    r = make_result(point, threads=1, status=status, error="why", measurement=m,
                    peak_gflops=1.0, flops_per_step=100)
    assert RESULT_KEYS <= set(r)
    assert all(r[k] is None for k in ("step_s", "steps_per_s", "samples_per_s", "gflops",
                                      "peak_fraction", "final_loss"))
    assert (r["status"], r["error"]) == (status, "why")


# -- the timing core ------------------------------------------------------------------------

def test_synchronize_ends_every_timed_block_inside_the_timed_region():
    fake = FakeBackend()
    log = fake.log

    def clock():
        stamp = time.perf_counter()
        log.append(("clock", stamp))
        return stamp

    arrays = to_backend(fake, make_inputs(4, 8, 4, 3, dtype="float64", seed=0))
    step = fake.prepare(make_step, lr=1e-3, dtype="float64")
    m = measure_step(fake, step, arrays, min_time=0.005, repeat=3, clock=clock)

    clocks = [i for i, (what, _) in enumerate(log) if what == "clock"]
    assert len(clocks) % 2 == 0
    regions = list(zip(clocks[0::2], clocks[1::2]))  # (start, stop) of warm-up and every block
    assert fake.syncs == len(regions) >= 1 + 1 + 3  # warm-up, calibration, the timed blocks
    for start, stop in regions:
        inside = [what for what, _ in log[start + 1:stop]]
        assert inside[-1] == "sync" and inside.count("sync") == 1, inside
        assert set(inside[:-1]) == {"step"}
    # The last `repeat` regions are the reported blocks: n steps each, timed start to stop.
    for (start, stop), seconds in zip(regions[-3:], m.block_s):
        assert [what for what, _ in log[start + 1:stop]].count("step") == m.steps_per_block
        assert seconds == log[stop][1] - log[start][1]
        assert log[start][1] < log[stop - 1][1] < log[stop][1]  # the sync's own stamp
    assert math.isfinite(m.final_loss)


# -- the sweep's order ----------------------------------------------------------------------

def test_points_are_shuffled_by_the_seed_and_each_is_run_once():
    args = (["numpy", "numba"], ["float32", "float64"], [1, 16, 64], [16, 100], 1000, 10)
    grid = {(b, d, B, H) for b in args[0] for d in args[1] for B in args[2] for H in args[3]}
    first = plan_points(*args, seed=0)
    keys = [(p["backend"], p["dtype"], p["batch_size"], p["hidden"]) for p in first]
    assert sorted(keys) == sorted(grid) and len(keys) == len(grid) == 24
    assert keys != sorted(keys)
    assert plan_points(*args, seed=0) == first
    assert plan_points(*args, seed=1) != first


def test_the_command_runs_the_points_in_the_seeded_order(capsys, tmp_path, install_fake):
    install_fake()
    out = tmp_path / "r.json"
    code, _, _ = run_cli(capsys, "bench", "--backend", "fake,numpy", "--batch-size", "1,2,3",
                         *TINY, "--dtype", "float64", "--seed", "7", "--output", out)
    assert code == 0
    ran = [(r["backend"], r["batch_size"]) for r in strict_json(out)["results"]]
    planned = plan_points(["fake", "numpy"], ["float64"], [1, 2, 3], [4], 8, 3, seed=7)
    assert ran == [(p["backend"], p["batch_size"]) for p in planned]


# -- the results file -----------------------------------------------------------------------

def test_results_file_has_the_schema_and_consistent_figures(capsys, tmp_path):
    out = tmp_path / "r.json"
    code, stdout, _ = run_cli(capsys, "bench", "--backend", "numpy", "--batch-size", "1,5",
                              *TINY, "--output", out)
    assert code == 0
    data = strict_json(out)
    assert data["schema"] == "mlpbench.bench/1"
    assert ENVIRONMENT_KEYS <= set(data["environment"])
    env = data["environment"]
    assert env["libraries"]["numpy"] == np.__version__
    assert isinstance(env["blas"], list) and env["cores"] == os.cpu_count()
    assert env["gpu"] is None  # numpy runs on the CPU
    assert env["command"] and all(isinstance(a, str) for a in env["command"])
    assert env["finished"] >= env["started"]
    assert set(data["peak_gflops"]) == {"numpy/float32", "numpy/float64"}
    roofs = env["roofs"]
    assert roofs["threads"] >= 1 and len(roofs["bandwidth"]) >= 2
    assert all(b["gb_per_s"] > 0 for b in roofs["bandwidth"])
    assert all(v > 0 for v in data["peak_gflops"].values())
    assert len(data["results"]) == 4  # 2 batch sizes x 1 hidden x 2 dtypes
    for r in data["results"]:
        assert RESULT_KEYS <= set(r)
        assert r["status"] == "ok" and r["error"] is None
        step = r["step_s"]
        assert 0 < step["min"] <= step["median"] <= step["max"]
        flops = 2 * r["batch_size"] * 4 * (2 * 8 + 3 * 3)
        assert r["steps_per_s"] == pytest.approx(1 / step["median"])
        assert r["samples_per_s"] == pytest.approx(r["batch_size"] / step["median"])
        assert r["gflops"] == pytest.approx(flops / step["median"] / 1e9)
        peak = data["peak_gflops"][f"numpy/{r['dtype']}"]
        assert r["peak_fraction"] == pytest.approx(r["gflops"] / peak)
        assert r["blocks"] == 2 and r["steps_per_block"] >= 1
        assert r["threads"] >= 1 and r["allow_tf32"] is False
        assert r["updates_in_place"] is False  # numpy's step returns new W and S
        assert r["worker_pid"] not in (None, os.getpid())  # measured in a worker
        assert r["bound"] in ("memory", "compute") and r["roof_fraction"] > 0
        assert r["attainable_gflops"] == pytest.approx(r["gflops"] / r["roof_fraction"])
        assert r["compile_s"] >= 0 and math.isfinite(r["final_loss"])
    assert "batch 5, hidden 4" in stdout and "vs numpy" in stdout


def test_threads_and_tf32_flags_are_recorded(capsys, tmp_path, install_fake):
    install_fake()
    out = tmp_path / "r.json"
    code, _, _ = run_cli(capsys, "bench", "--backend", "fake", "--batch-size", "2", *TINY,
                         "--dtype", "float32", "--threads", "1", "--allow-tf32", "--output", out)
    assert code == 0
    (r,) = strict_json(out)["results"]
    assert r["threads"] == 1 and r["allow_tf32"] is True and r["tf32"] is None
    assert r["thread_info"]["blas"] == [1]


# -- robustness -----------------------------------------------------------------------------

def test_a_point_past_the_timeout_is_recorded_and_the_sweep_goes_on(capsys, tmp_path, install_fake):
    install_fake(step_sleep=0.05)
    out = tmp_path / "r.json"
    start = time.perf_counter()
    code, stdout, _ = run_cli(capsys, "bench", "--backend", "fake,numpy", "--batch-size", "1",
                              "--n-in", "8", "--n-out", "3", "--hidden", "4", "--dtype", "float64",
                              "--min-time", "2", "--repeat", "2", "--timeout", "0.5",
                              "--output", out)
    assert time.perf_counter() - start < 15  # the fake's point stopped near 0.5 s, not after 6
    by_backend = {r["backend"]: r for r in strict_json(out)["results"]}
    assert by_backend["fake"]["status"] == "timeout" and by_backend["fake"]["steps_per_s"] is None
    assert "0.5 s" in by_backend["fake"]["error"]
    assert by_backend["numpy"]["status"] == "timeout"  # 2 s blocks cannot fit in 0.5 s either
    assert code == 0  # timeouts alone are not a failure
    assert "timeout" in stdout


def test_a_long_warm_up_is_cut_by_the_timeout(capsys, tmp_path, install_fake):
    install_fake(first_call_sleep=30)  # a "compilation" far beyond the limit
    out = tmp_path / "r.json"
    start = time.perf_counter()
    code, _, _ = run_cli(capsys, "bench", "--backend", "fake", "--batch-size", "1", *TINY,
                         "--dtype", "float64", "--timeout", "0.5", "--output", out)
    assert time.perf_counter() - start < 10
    (r,) = strict_json(out)["results"]
    assert r["status"] == "timeout" and r["compile_s"] is None
    assert code == 0


def test_an_error_at_one_point_is_recorded_and_the_sweep_goes_on(capsys, tmp_path, install_fake):
    install_fake(at_batch=2, action="fail")
    out = tmp_path / "r.json"
    code, stdout, err = run_cli(capsys, "bench", "--backend", "fake", "--batch-size", "1,2,3",
                                *TINY, "--dtype", "float64", "--output", out)
    assert code == 1
    status = {r["batch_size"]: r for r in strict_json(out)["results"]}
    assert status[2]["status"] == "error"
    assert status[2]["error"] == "RuntimeError: fake failure at batch 2"
    assert status[1]["status"] == status[3]["status"] == "ok"
    assert "fake failure at batch 2" in stdout and "Traceback" not in err


def test_an_error_names_the_exception_it_was_raised_from(capsys, tmp_path, install_fake):
    """A SystemError from compiled code names only the call; its cause says what failed.
    (The fake backend stands in for such code: a harness test.)"""
    install_fake(at_batch=2, action="fail_from")
    out = tmp_path / "r.json"
    run_cli(capsys, "bench", "--backend", "fake", "--batch-size", "2", *TINY,
            "--dtype", "float64", "--output", out)
    (result,) = strict_json(out)["results"]
    assert result["error"] == ("SystemError: fake step returned a result with an exception set"
                               " <- from KeyError: 'fake cause'")


def test_fail_fast_stops_at_the_first_error(capsys, tmp_path, install_fake):
    install_fake(at_batch=2, action="fail")
    out = tmp_path / "r.json"
    batch_sizes = [1, 2, 3, 4, 5]
    # A seed that puts the failing point before the last, so stopping there is visible.
    seed = next(s for s in range(100) if [p["batch_size"] for p in plan_points(
        ["fake"], ["float64"], batch_sizes, [4], 8, 3, seed=s)][-1] != 2)
    planned = [p["batch_size"] for p in plan_points(["fake"], ["float64"], batch_sizes, [4], 8, 3,
                                                    seed=seed)]
    code, _, err = run_cli(capsys, "bench", "--backend", "fake", "--batch-size", "1,2,3,4,5",
                           *TINY, "--dtype", "float64", "--fail-fast", "--seed", seed,
                           "--output", out)
    assert code == 1
    results = strict_json(out)["results"]
    assert [r["batch_size"] for r in results] == planned[:planned.index(2) + 1]
    assert results[-1]["status"] == "error"
    assert all(r["status"] == "ok" for r in results[:-1])
    assert "--fail-fast" in err and "fake failure at batch 2" in err


def test_a_non_finite_loss_is_invalid_not_a_speed(capsys, tmp_path, install_fake):
    install_fake(nan_loss=True)
    out = tmp_path / "r.json"
    code, _, _ = run_cli(capsys, "bench", "--backend", "fake", "--batch-size", "1", *TINY,
                         "--dtype", "float32", "--output", out)
    assert code == 1
    (r,) = strict_json(out)["results"]  # strict: the NaN is not written as NaN
    assert r["status"] == "invalid" and "nan" in r["error"]
    assert r["steps_per_s"] is None and r["gflops"] is None and r["final_loss"] is None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_signal_mid_sweep_leaves_a_loadable_file_that_resume_completes(tmp_path, signum):
    out = tmp_path / "r.json"
    argv = [sys.executable, "-m", "mlpbench", "bench", "--backend", "numpy",
            "--batch-size", "1,2,3,4", "--hidden", "4,5", "--n-in", "8", "--n-out", "3",
            "--dtype", "float64", "--min-time", "0.1", "--repeat", "3", "--output", str(out)]
    # SIGINT as a terminal's foreground job has it: a background job of a shell without job
    # control (a CI runner's `... &`) starts with SIGINT ignored, and so would the sweep.
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and strict_json(out)["results"]:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    if signum == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "interrupted" in err and "--resume" in err and "Traceback" not in err
        assert not [p for p in tmp_path.iterdir() if p.name != "r.json"]  # no temporary file
    else:
        assert proc.returncode == -signal.SIGKILL
    first = strict_json(out)
    assert first["environment"]["command"][-2:] == ["--output", str(out)]
    assert 1 <= len(first["results"]) < 8
    assert first["environment"]["finished"] is None

    done = subprocess.run(argv + ["--resume"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar when stderr is not a terminal
    final = strict_json(out)
    assert len(final["results"]) == 8
    assert final["results"][:len(first["results"])] == first["results"]  # kept, not redone
    keys = {(r["batch_size"], r["hidden"]) for r in final["results"]}
    assert keys == {(b, h) for b in (1, 2, 3, 4) for h in (4, 5)}
    assert final["environment"]["earlier_runs"][0]["started"] == first["environment"]["started"]


@pytest.mark.parametrize("content", ['{"schema": "something.else/2", "results": []}\n',
                                     "not json at all\n", '[1, 2, 3]\n'])
def test_resume_refuses_a_foreign_file_and_leaves_it_untouched(capsys, tmp_path, content):
    foreign = tmp_path / "foreign.json"
    foreign.write_text(content)
    before = foreign.read_bytes(), foreign.stat().st_mtime_ns
    code, _, err = run_cli(capsys, "bench", "--backend", "numpy", "--batch-size", "1", *TINY,
                           "--output", foreign, "--resume")
    assert_one_line_error(code, err, str(foreign), "not an mlpbench bench results file")
    assert (foreign.read_bytes(), foreign.stat().st_mtime_ns) == before
    assert [p.name for p in tmp_path.iterdir()] == ["foreign.json"]


def test_resume_needs_output(capsys):
    code, _, err = run_cli(capsys, "bench", "--backend", "numpy", "--resume")
    assert_one_line_error(code, err, "--resume needs --output")


@pytest.mark.parametrize("argv, fragments", [
    (["--backend", "tensorflow"], ["unknown backend 'tensorflow'"]),
    (["--backend", "numpy", "--output", "/nonexistent-folder/r.json"],
     ["--output", "does not exist"]),
    (["--backend", "numpy", "--batch-size", "10000000", "--hidden", "10000000"],
     ["needs about", "available"]),
])
def test_bad_input_is_one_line_before_any_work(capsys, tmp_path, argv, fragments):
    start = time.perf_counter()
    code, out, err = run_cli(capsys, "bench", *argv)
    assert_one_line_error(code, err, *fragments)
    assert out == "" and time.perf_counter() - start < 5


def test_an_output_that_cannot_be_written_is_refused(capsys, tmp_path):
    code, _, err = run_cli(capsys, "bench", "--backend", "numpy", "--output", tmp_path)
    assert_one_line_error(code, err, "cannot write --output", "is a directory")
    if Path("/proc").is_dir():  # a folder where no file can be made, even by root
        code, _, err = run_cli(capsys, "bench", "--backend", "numpy", "--output", "/proc/r.json")
        assert_one_line_error(code, err, "cannot write --output", "cannot create a file")


@pytest.mark.parametrize("plot_name", ["r.json", "./r.json", "link.json", "r.json.lock"])
def test_one_path_for_output_and_plot_is_refused_before_any_work(capsys, tmp_path, plot_name,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.json"
    out.write_text("earlier results\n")
    (tmp_path / "link.json").symlink_to(out)
    before = untouched(out)
    code, stdout, err = run_cli(capsys, "bench", *BENCH_TINY, "--output", "r.json",
                                "--plot", plot_name)
    assert_one_line_error(code, err, "name the same file")
    assert stdout == "" and untouched(out) == before


@pytest.mark.parametrize("name, fragment", [("p.txt", "cannot write .txt"),
                                            ("p.json", "cannot write .json"),
                                            ("p", "no suffix"),
                                            ("p.pgf", "cannot write .pgf here")])
def test_a_plot_format_matplotlib_cannot_write_is_refused_before_the_sweep(capsys, tmp_path, name,
                                                                           fragment):
    pytest.importorskip("matplotlib", reason="matplotlib (the 'plot' extra) is not installed")
    if name.endswith(".pgf") and shutil.which("xelatex"):
        pytest.skip("xelatex is installed: .pgf files can be written here")
    out = tmp_path / "r.json"
    start = time.perf_counter()
    code, stdout, err = run_cli(capsys, "bench", *BENCH_TINY, "--output", out,
                                "--plot", tmp_path / name)
    assert_one_line_error(code, err, "--plot", fragment)
    assert stdout == "" and not out.exists() and time.perf_counter() - start < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_missing_matplotlib_is_refused_before_the_sweep(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "r.json"
    code, _, err = run_cli(capsys, "bench", "--backend", "numpy", "--batch-size", "1", *TINY,
                           "--output", out, "--plot", tmp_path / "p.png")
    assert_one_line_error(code, err, "--plot needs matplotlib", "mlpbench[plot]")
    assert not out.exists()


def test_plot_is_a_png(capsys, tmp_path, install_fake):
    pytest.importorskip("matplotlib", reason="matplotlib (the 'plot' extra) is not installed")
    install_fake()
    png = tmp_path / "p.png"
    code, stdout, _ = run_cli(capsys, "bench", "--backend", "numpy,fake", "--batch-size", "1,3",
                              *TINY, "--plot", png)
    assert code == 0
    roofline_png = tmp_path / "p-roofline.png"
    for path in (png, roofline_png):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000 and str(path) in stdout


def test_kernel_variables_are_recorded_and_named_under_the_table(capsys, tmp_path, monkeypatch):
    """A variable that picks a BLAS's kernels for it (here MKL's, harmless to numpy) is recorded
    with the run and named under the table, beside the kernels each BLAS runs."""
    from mlpbench.settings import KERNEL_VARIABLES

    monkeypatch.setenv("MKL_CBWR", "AUTO")
    out = tmp_path / "r.json"
    code, stdout, _ = run_cli(capsys, "bench", "--backend", "numpy", "--batch-size", "2",
                              *TINY, "--dtype", "float64", "--output", out)
    assert code == 0
    env = strict_json(out)["environment"]
    assert env["kernel_variables"]["MKL_CBWR"] == "AUTO"
    assert set(env["kernel_variables"]) == {n for n in KERNEL_VARIABLES if n in os.environ}
    last = " ".join(stdout[stdout.index("BLAS kernels:"):].split())  # its wrapped lines
    assert "chosen by the environment, not the libraries:" in last and "MKL_CBWR=AUTO" in last
    architectures = [b["architecture"] for b in env["blas"] if b.get("architecture")]
    assert all(a in last for a in architectures)
