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
], ids=["no-outdir", "unknown-option", "bad-cuda", "two-outdirs", "no-wheels-folder"])
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


def test_dry_run_lists_every_step_within_eight_minutes(tmp_path):
    proc = run("--dry-run", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    steps = re.findall(r"^=== (.+?) \(limit (\d+)s\): (.*)$", proc.stdout, flags=re.M)
    names = [name for name, _, _ in steps]
    assert names[:4] == ["pytest --backend cupy", "mlpbench check --backend cupy",
                         "mlpbench bench", "mlpbench bench --allow-tf32"]
    commands = {name: command for name, _, command in steps}
    assert "--backend cupy" in commands["pytest --backend cupy"]
    bench = commands["mlpbench bench"].replace("\\", "")
    for flag in ("--backend numpy,cupy", "--batch-size 64,4096", "--hidden 100,4096"):
        assert flag in bench
    # The install step (60 s, not listed in a dry run) and the steps' own limits: under 8 minutes.
    assert 60 + sum(int(limit) for _, limit, _ in steps) < 8 * 60
    assert "dry run finished; nothing was run" in proc.stdout


def _result(backend, batch, hidden, steps_per_s, peak_fraction, **extra):
    median = 1 / steps_per_s
    return {"backend": backend, "dtype": "float32", "batch_size": batch, "n_in": 1000,
            "hidden": hidden, "n_out": 10, "threads": 1, "status": "ok", "error": None,
            "compile_s": 0.5, "step_s": {"median": median, "min": median, "max": median},
            "blocks": 3, "steps_per_block": 10, "samples_per_s": batch * steps_per_s,
            "gflops": 1.0, "final_loss": 1.0,
            "steps_per_s": steps_per_s, "peak_fraction": peak_fraction, **extra}


def test_summarize_reports_speed_up_and_the_peak_goal(tmp_path):
    # Made-up results in the bench schema: this tests the script's summary, not a GPU.
    doc = {"schema": "mlpbench.bench/1",
           "environment": {"gpu": {"name": "Test GPU", "driver": "1.0 (CUDA 13.0)", "cuda": "13.0",
                                   "compute_capability": "9.0"},
                           "libraries": {"numpy": "2.0", "cupy-cuda13x": "14.2.0"},
                           "cores": 16, "cpu": "Test CPU", "python": "3.12", "platform": "Linux",
                           "blas": [], "command": ["mlpbench", "bench"],
                           "started": "2026-12-02T10:00:00+00:00",
                           "finished": "2026-12-02T10:01:00+00:00"},
           "peak_gflops": {"cupy/float32": 50000.0, "numpy/float32": 1000.0},
           "results": [_result("numpy", 4096, 4096, 2.0, 0.5),
                       _result("cupy", 4096, 4096, 300.0, 0.62, tf32=False,
                               device_step_s={"median": 0.0031}),
                       _result("numpy", 64, 100, 4000.0, 0.6),
                       _result("cupy", 64, 100, 20000.0, 0.01)]}
    out = tmp_path / "out"
    out.mkdir()
    (out / "gpu-bench.json").write_text(json.dumps(doc))
    proc = run("--summarize", str(out))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert ("GPU: Test GPU (compute capability 9.0, driver 1.0 (CUDA 13.0), CUDA runtime 13.0)"
            in text)
    assert "CuPy 14.2.0" in text
    row = next(line.split() for line in text.splitlines()
               if line.startswith("float32") and "4096" in line)
    assert row == ["float32", "4096", "4096", "2.0", "300.0", "150.0", "0.62", "3.100"]
    assert ("largest size, float32 (TF32 off): the step reaches 62% of the measured matmul peak; "
            "meets the 50% goal") in text


def test_summarize_without_results_fails(tmp_path):
    proc = run("--summarize", str(tmp_path))
    assert proc.returncode != 0
    assert "does not exist" in proc.stderr
