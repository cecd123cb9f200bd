"""bench's worker processes: a crash, a hung native call, memory, and the parent's signals.

The misbehaving steps come from tests/fakes.py's FakeBackend (a fake for testing the harness),
which acts at one batch size; the other points must still be measured.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, run_cli, strict_json
from mlpbench.workers import WorkerDied, WorkerProcess, WorkerTimeout, how_it_ended

TINY = ["--n-in", "8", "--n-out", "3", "--hidden", "4", "--min-time", "0.01", "--repeat", "2",
        "--dtype", "float64"]


def by_batch(path):
    return {r["batch_size"]: r for r in strict_json(path)["results"]}


@pytest.mark.parametrize("isolate", ["backend", "point"])
@pytest.mark.parametrize("action, words", [("segv", "SIGSEGV"), ("abort", "SIGABRT"),
                                           ("exit", "exit status 3")])
def test_a_worker_that_dies_makes_its_point_an_error_and_the_sweep_goes_on(
        capsys, tmp_path, register_backend, action, words, isolate):
    register_backend("FakeBackend", at_batch=2, action=action)
    out = tmp_path / "r.json"
    code, stdout, err = run_cli(capsys, "bench", "--backend", "fake", "--batch-size", "1,2,3",
                                *TINY, "--isolate", isolate, "--output", out)
    assert code == 1, err
    results = by_batch(out)
    assert results[2]["status"] == "error" and words in results[2]["error"]
    assert "died" in results[2]["error"]
    assert results[1]["status"] == results[3]["status"] == "ok"
    assert "Traceback" not in err


def test_a_native_call_that_never_returns_is_a_timeout_within_a_second(
        capsys, tmp_path, register_backend):
    register_backend("FakeBackend", at_batch=2, action="native_sleep")
    out = tmp_path / "r.json"
    started = time.monotonic()
    code, _, err = run_cli(capsys, "bench", "--backend", "fake", "--batch-size", "2,3", *TINY,
                           "--timeout", "2", "--seed", "1", "--output", out)
    assert code == 0, err  # a timeout alone is not a failure
    results = by_batch(out)
    assert results[2]["status"] == "timeout" and "2 s" in results[2]["error"]
    assert results[3]["status"] == "ok"
    # The hung point ends at 2 s (+1 s allowed); the rest (worker starts, the other point, the
    # peaks) takes a few seconds more on a busy 2-core machine.
    assert time.monotonic() - started < 2 + 1 + 20


def test_a_hung_point_is_killed_at_most_a_second_past_its_limit():
    """The runner itself: a request whose answer never comes is cut at its timeout."""
    code = "import os, time; os.read(0, 100); time.sleep(3600)"
    with WorkerProcess([sys.executable, "-c", code]) as worker:
        started = time.monotonic()
        with pytest.raises(WorkerTimeout, match="killed"):
            worker.request({"op": "anything"}, timeout=0.5)
        assert time.monotonic() - started < 0.5 + 1
        assert not worker.alive


def test_how_a_process_ended_is_named():
    assert how_it_ended(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert "OOM" in how_it_ended(-signal.SIGKILL)
    assert how_it_ended(3) == "exit status 3"
    with WorkerProcess([sys.executable, "-c", "import os; os._exit(5)"]) as worker:
        with pytest.raises(WorkerDied, match="exit status 5"):
            worker.request({"op": "anything"}, timeout=30)


def test_each_point_records_its_own_peak_memory(capsys, tmp_path, register_backend):
    gib = 2**30
    register_backend("FakeBackend", at_batch=2, action="allocate", allocate_bytes=gib)
    out = tmp_path / "r.json"
    code, _, err = run_cli(capsys, "bench", "--backend", "fake", "--batch-size", "1,2", *TINY,
                           "--output", out)
    assert code == 0, err
    results = by_batch(out)
    assert results[2]["peak_rss_bytes"] == pytest.approx(gib, rel=0.10)
    assert results[1]["peak_rss_bytes"] < 0.1 * gib  # the other point: not the big one's memory
    assert results[1]["worker_pid"] == results[2]["worker_pid"]  # one worker per backend


def test_isolate_point_gives_every_point_a_fresh_worker(capsys, tmp_path):
    out = tmp_path / "r.json"
    code, _, err = run_cli(capsys, "bench", "--backend", "numpy", "--batch-size", "1,2,3", *TINY,
                           "--isolate", "point", "--output", out)
    assert code == 0, err
    pids = [r["worker_pid"] for r in strict_json(out)["results"]]
    assert len(set(pids)) == 3 and os.getpid() not in pids


def test_a_killed_parent_leaves_no_worker_measuring(tmp_path):
    """SIGKILL of the parent mid-point: its worker dies with it (no orphan measuring on)."""
    env = dict(os.environ, MLPBENCH_BACKEND_PLUGINS="fake=fakes:FakeBackend",
               MLPBENCH_FAKE='{"step_sleep": 0.2}',
               PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "mlpbench", "bench", "--backend", "fake",
                             "--batch-size", "1", *TINY, "--min-time", "30", "--output", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and not workers:
            if out.exists():
                workers = [w["pid"] for w in strict_json(out)["environment"]["workers"].values()]
            time.sleep(0.05)
        assert workers, "the sweep never started its worker"
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in workers)
    finally:
        proc.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.slow  # a real first compile of numba's step: 12 s
@pytest.mark.uses_backend("numba")
def test_a_timeout_during_numbas_first_compile_is_a_clean_timeout(tmp_path):
    """Issue 15, item 1: the SIGALRM handler once raised inside Numba's callbacks (segfaults,
    false errors, "Exception ignored"). Now the parent kills the worker: timeouts only."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))  # a cold cache
    out = tmp_path / "x.json"
    done = subprocess.run(
        [sys.executable, "-m", "mlpbench", "bench", "--backend", "numba", "--batch-size",
         "1,2,3,4", "--hidden", "4", "--n-in", "8", "--n-out", "2", "--dtype", "float64,float32",
         "--threads", "1", "--min-time", "0.05", "--repeat", "2", "--timeout", "0.7",
         "--seed", "4", "--output", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr  # no error point, no crash (139 was a segfault)
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr
    results = strict_json(out)["results"]
    assert len(results) == 8
    assert {r["status"] for r in results} <= {"ok", "timeout"}
    for r in results:
        if r["status"] == "ok":
            assert r["elapsed_s"] < 0.7 + 1


@pytest.mark.uses_backend("jax")
def test_a_timed_out_jax_point_stops_computing(capsys, tmp_path):
    """Issue 15, item 5: a timed-out JAX point kept computing beside the next one; now its
    worker is killed at the limit."""
    out = tmp_path / "r.json"
    code, _, err = run_cli(capsys, "bench", "--backend", "jax", "--batch-size", "4096",
                           "--hidden", "4096", "--n-in", "4096", "--dtype", "float32",
                           "--threads", "1", "--min-time", "5", "--repeat", "3",
                           "--timeout", "1", "--output", out)
    assert code == 0, err
    (r,) = strict_json(out)["results"]
    assert r["status"] == "timeout"
    killed = int(r["error"].split("worker ")[1].split()[0])
    assert not _alive(killed)
