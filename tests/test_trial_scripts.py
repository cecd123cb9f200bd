"""scripts/numba-blas-table.py: the issue's counts and the seed's line from results files."""
from __future__ import annotations

import json
import subprocess
import sys

from helpers import ROOT


def _result(backend, batch, hidden, dtype, seconds, status="ok"):
    return {"backend": backend, "batch_size": batch, "hidden": hidden, "dtype": dtype,
            "status": status, "step_s": {"median": seconds} if status == "ok" else None,
            "flops_per_step": 26_000_000}


def test_the_table_counts_leads_and_a_failed_numba_point_as_lost(tmp_path):
    results = [
        _result("numba", 64, 100, "float64", 400e-6), _result("numpy", 64, 100, "float64", 800e-6),
        _result("jax", 64, 100, "float64", 500e-6),
        _result("numba", 1, 100, "float64", 40e-6), _result("jax", 1, 100, "float64", 39e-6),
        _result("numpy", 1, 100, "float64", 200e-6),
        _result("numba", 1024, 1024, "float32", None, status="error"),
        _result("numpy", 1024, 1024, "float32", 30e-3),
    ]
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"results": results, "peak_gflops": {"numpy/float64": 52.0,
                                                                    "numba/float64": 50.0}}))
    proc = subprocess.run([sys.executable, "scripts/numba-blas-table.py", path], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    # 3 points: a lead (64), a loss within 0.97 (39/40 = 0.975), the failed one lost
    assert "numba fastest at 1 of 3, >= 0.97x the best at 2 of 3" in first
    # seed: 800/400 = 2.00x; a step at 52 GFLOP/s takes 500 us: 800/500 = 1.60x
    assert "float64 2.00x (1.60x at the best matmul rate)" in first
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| 64, 100, 64")]
    assert rows == ["| 64, 100, 64 | 400.0 µs | jax 500.0 µs | 1.25 | 2.00× |"]
    assert "| 1024, 1024, 32 | no result | | | |" in proc.stdout.splitlines()
