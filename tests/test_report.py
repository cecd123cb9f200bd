"""bench's table (report.format_bench) on a hand-written results document."""
from __future__ import annotations

from factories import bench_doc, bench_result
from mlpbench import report


def result(backend, dtype, batch_size, median, *, status="ok", error=None, hidden=16):
    return bench_result(backend, dtype, batch_size, median, status=status, error=error,
                        hidden=hidden, compile_s=0.25, flops_per_step=4_000_000,
                        peak_gflops=2 * 4_000_000 / median / 1e9 if median else None)


def doc(results, **extra):
    return bench_doc(results, peak_gflops={"numpy/float64": 40.0, "numba/float64": 42.5}, **extra)


def lines_with(text, *words):
    return [line for line in text.splitlines() if all(w in line.split() for w in words)]


def test_one_block_per_size_rows_by_dtype_then_backend_and_speedups_over_numpy():
    text = report.format_bench(doc([
        result("numba", "float64", 64, 1e-4),
        result("numpy", "float64", 64, 4e-4),
        result("numpy", "float32", 64, 2e-4),
        result("numpy", "float64", 1, 2e-5, hidden=100),
    ]))
    headers = [line for line in text.splitlines() if line.startswith("batch ")]
    assert headers == ["batch 1, hidden 100  (n_in 1000, n_out 10, threads 1; 4 MFLOP per step)",
                       "batch 64, hidden 16  (n_in 1000, n_out 10, threads 1; 4 MFLOP per step)"]
    block = text.split(headers[1])[1].split("\n\n")[0].splitlines()[2:]
    assert [line.split()[:2] for line in block] == [["numpy", "float32"], ["numpy", "float64"],
                                                   ["numba", "float64"]]
    numba = lines_with(text, "numba", "float64")[0]
    assert numba.split()[1:4] == ["float64", "100", "µs"] and numba.endswith("4.00x")
    assert "10,000" in numba  # steps/s with a thousands separator
    assert "50%" in numba and "250 ms" in numba
    assert lines_with(text, "numpy", "float32")[0].endswith("1.00x")


def test_failed_points_show_their_status_and_error_and_no_speed():
    text = report.format_bench(doc([
        result("numpy", "float64", 64, 4e-4),
        result("numba", "float64", 64, 0, status="error", error="worker 12 died: killed by SIGSEGV"),
        result("jax", "float64", 64, 0, status="timeout"),
    ]))
    assert lines_with(text, "numba")[0].split()[2:] == ["error:", "worker", "12", "died:",
                                                        "killed", "by", "SIGSEGV"]
    assert lines_with(text, "jax")[0].split()[2:] == ["timeout"]
    assert "3 points: 1 ok, 1 timeout, 1 error." in text


def test_peaks_resumed_points_and_peak_errors_are_summarised():
    text = report.format_bench(doc([result("numpy", "float64", 64, 4e-4)],
                                   peak_errors={"jax/float32": "WorkerTimeout: no answer"}),
                               skipped=3)
    assert "1 points (3 from the resumed file): 1 ok." in text
    assert "numpy/float64 40, numba/float64 42.5" in " ".join(text.split())  # wrapped
    assert text.splitlines()[-1] == "peak matmul jax/float32 failed: WorkerTimeout: no answer"


def test_nothing_measured():
    assert report.format_bench(doc([])) == "no points measured"
