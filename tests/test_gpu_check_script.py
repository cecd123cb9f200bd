"""scripts/gpu-check.sh without a GPU: usage errors, the early stop, the dry run, the summary.

On a machine with a GPU the script itself is the check (docs/gpu.md).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

SCRIPT = ROOT / "scripts" / "gpu-check.sh"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize(("args", "message"), [
    ((), "usage: scripts/gpu-check.sh"),
    (("--bogus", "out"), "unknown option --bogus"),
    (("--cuda", "11", "out"), "--cuda must be 12 or 13, got '11'"),
    (("a", "b"), "one OUTDIR only"),
    (("--wheels", "/nonexistent/wheels", "out"), "--wheels: no folder"),
    (("--only", "bench,foo", "out"), "--only: no step 'foo'"),
], ids=["no-outdir", "unknown-option", "bad-cuda", "two-outdirs", "no-wheels-folder",
        "unknown-step"])
def test_usage_errors_exit_2_with_one_line(args, message):
    proc = run(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: error: ")
    assert message in lines[0]


def _has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or any(Path("/dev").glob("nvidia[0-9]*"))


def test_without_a_gpu_it_stops_at_once(tmp_path):
    if _has_gpu():
        pytest.skip("an NVIDIA GPU is present: the script would run for minutes")
    proc = run(str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "gpu-check: error: no NVIDIA GPU here" in proc.stdout + proc.stderr
    log = (tmp_path / "out" / "gpu-check.log").read_text()
    assert "no NVIDIA GPU here" in log
    assert not (tmp_path / "out" / "gpu-bench.json").exists()


def test_dry_run_lists_every_step_and_their_limits(tmp_path):
    proc = run("--dry-run", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    steps = re.findall(r"^=== (.+?) \(limit (\d+)s\): (.*)$", proc.stdout, flags=re.M)
    names = [name for name, _, _ in steps]
    assert names == ["probe", "check", "bench", "jax", "tf32", "gate", "numpy", "scaling", "pytest"]
    commands = {name: command.replace("\\", "") for name, _, command in steps}
    for backend in ("cupy", "cupy-graph", "torch", "torch-graph", "jax"):
        assert f"--backend {backend}" in commands["pytest"]
        assert backend in commands["check"].split()
    for flag in ("--backend cupy,cupy-graph,torch,torch-graph ",
                 "--batch-size 1,64,1024,4096", "--hidden 100,1024,4096"):
        assert flag in commands["bench"]
    assert "--backend jax " in commands["jax"] and "--resume" in commands["jax"]
    assert "--allow-tf32" in commands["tf32"] and "--dtype float32" in commands["tf32"]
    assert "dry run finished; nothing was run" in proc.stdout


def test_a_step_past_the_budget_is_skipped_saying_so(tmp_path):
    # The budget is checked before a step starts: with a 5 s budget spent, nothing runs.
    script = (f"source <(sed -n '/^step() {{/,/^}}/p' {SCRIPT}); BUDGET=5; START=$((SECONDS - 5)); "
              "DRY_RUN=0; ONLY=late; FAILED=(); step late 60 echo ran; echo \"rc=$? ${FAILED[*]}\"")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert "=== late: skipped, 0s of the 5s budget left" in proc.stdout
    assert "rc=1 late (skipped: out of time)" in proc.stdout
    assert "\nran\n" not in proc.stdout


def _result(backend, batch, hidden, steps_per_s, peak_fraction, dtype="float32", **extra):
    median = 1 / steps_per_s
    return {"backend": backend, "dtype": dtype, "batch_size": batch, "n_in": 1000,
            "hidden": hidden, "n_out": 10, "threads": 1, "status": "ok", "error": None,
            "compile_s": 0.5, "step_s": {"median": median, "min": median, "max": median},
            "blocks": 3, "steps_per_block": 10, "samples_per_s": batch * steps_per_s,
            "gflops": 1.0, "final_loss": 1.0,
            "steps_per_s": steps_per_s, "peak_fraction": peak_fraction, **extra}


def _doc(results, **env):
    return {"schema": "mlpbench.bench/1",
            "environment": {"gpu": {"name": "Test GPU", "driver": "1.0 (CUDA 13.0)", "cuda": "13.0",
                                    "compute_capability": "9.0"},
                            "libraries": {"numpy": "2.0", "cupy-cuda13x": "14.2.0"},
                            "cores": 16, "cpu": "Test CPU", "python": "3.12", "platform": "Linux",
                            "blas": [], "command": ["mlpbench", "bench"],
                            "started": "2026-12-02T10:00:00+00:00",
                            "finished": "2026-12-02T10:01:00+00:00", **env},
            "peak_gflops": {"cupy/float32": 50000.0}, "results": results}


def test_summarize_checks_the_targets_on_made_up_results(tmp_path):
    # Made-up results in the bench schema: this tests the summary, not a GPU.
    floor = {"empty_kernel_s": 2e-6, "empty_graph_s": 3e-6}
    roofs = {"bandwidth": [{"working_set_bytes": 2**31, "gb_per_s": 4000.0}], "launch_floor": floor}
    bench = _doc([
        _result("cupy", 4096, 4096, 300.0, 0.72, tf32=False, bound="compute",
                device_step_s={"median": 1 / 300.0 / 1.02}, launches_per_step=11),
        _result("cupy-graph", 4096, 4096, 295.0, 0.71, graph={"nodes": 11}, launches_per_step=2),
        _result("torch", 4096, 4096, 320.0, 0.75),
        _result("cupy", 64, 100, 20000.0, 0.01, launches_per_step=11),
        _result("cupy-graph", 64, 100, 60000.0, 0.03, graph={"nodes": 11}, launches_per_step=2),
        _result("jax", 64, 100, 40000.0, 0.02)],
        device_roofs={"cupy": roofs, "cupy-graph": roofs})
    out = tmp_path / "out"
    out.mkdir()
    (out / "gpu-bench.json").write_text(json.dumps(bench))
    scaling = _doc([_result("numba", 64, 100, 1000.0, None, threads=1),
                    _result("numba", 64, 100, 800.0, None, threads=2)])
    (out / "cpu-scaling.json").write_text(json.dumps(scaling))
    proc = run("--summarize", str(out))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "GPU: Test GPU (compute capability 9.0, driver 1.0 (CUDA 13.0), CUDA runtime 13.0)" in text
    assert "cupy: bandwidth 4,000 GB/s at 2,048 MiB; launch floor: empty kernel 2.0 µs" in text
    assert "cupy b4096 h4096 float32: 72% of its matmul peak (TF32 off; target 70%): met" in text
    assert "cupy b4096 h4096 float32: 0.938x torch (target >= 0.9): met" in text
    assert ("cupy b4096 h4096 float32 (compute-bound): wall/events 1.020 (target within 5%): met"
            in text)
    assert "cupy-graph b64 h100 float32: 3.00x cupy (target >= 2.5x): met; fastest other: jax 1.50x" in text
    assert "cupy-graph b4096 h4096 float32: 0.98x cupy (target within 3%): met" in text
    row = next(line.split() for line in text.splitlines() if line.startswith("cupy ")
               and " 64 " in line)
    assert row[4:6] == ["50.0", "-"] and row[-2:] == ["11.0", "22.0"]  # 11 launches x 2 µs
    assert "numba    float32     64    100     1,000       800  1->2" in text


def test_summarize_without_results_fails(tmp_path):
    proc = run("--summarize", str(tmp_path))
    assert proc.returncode != 0
    assert "does not exist" in proc.stderr


def test_summarize_a_resumed_bench_keeps_the_earlier_runs_roofs(tmp_path):
    # gpu-check.sh benches jax apart, with --resume into the same file: the earlier run's
    # device roofs and GPU facts must still reach the summary (made-up results).
    roofs = {"bandwidth": [{"working_set_bytes": 2**31, "gb_per_s": 1700.0}],
             "launch_floor": {"empty_kernel_s": 5e-6, "empty_graph_s": 2e-6}}
    earlier = _doc([], device_roofs={"cupy": roofs})["environment"]
    bench = _doc([_result("cupy", 64, 100, 3000.0, 0.01, launches_per_step=11),
                  _result("jax", 64, 100, 15000.0, 0.02)],
                 device_roofs={"jax": {"bandwidth": [], "launch_floor": None}},
                 gpu={"name": "Test GPU", "driver": "13.0", "cuda": "13.0"},
                 earlier_runs=[earlier], finished=None)
    out = tmp_path / "out"
    out.mkdir()
    (out / "gpu-bench.json").write_text(json.dumps(bench))
    proc = run("--summarize", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "compute capability 9.0" in proc.stdout
    assert "cupy: bandwidth 1,700 GB/s at 2,048 MiB; launch floor: empty kernel 5.0 µs" in proc.stdout
    row = next(line.split() for line in proc.stdout.splitlines() if line.startswith("cupy "))
    assert row[-2:] == ["11.0", "55.0"]  # 11 launches x 5 µs, from the earlier run's floor
    assert "to None" in proc.stdout  # the resumed run did not finish: not the earlier one's end
