"""mlpbench compare: per-point ratios of two results files; other files, and files with a bad
value, refused."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from factories import DOC, ENVIRONMENT, bench_doc, bench_result, corrupted
from helpers import assert_one_line_error, run_cli


def result(backend, dtype, batch_size, steps_per_s, *, status="ok", threads=1, hidden=16):
    return bench_result(backend, dtype, batch_size, 1 / steps_per_s, status=status,
                        threads=threads, hidden=hidden)


def write(path, results):
    path.write_text(json.dumps(bench_doc(results)))
    return path


def row(out, *cells):
    """The table line whose leading cells are ``cells``."""
    pattern = r"^" + r"\s+".join(re.escape(str(c)) for c in cells) + r"\s"
    lines = [line for line in out.splitlines() if re.match(pattern, line)]
    assert len(lines) == 1, (cells, out)
    return lines[0].split()


def test_ratios_are_b_over_a_at_matched_points(capsys, tmp_path):
    a = write(tmp_path / "a.json", [
        result("numpy", "float64", 64, 400.0),
        result("numba", "float64", 64, 1000.0),
        result("numpy", "float32", 1, 20000.0),
        result("numpy", "float64", 1, 5000.0, threads=2),  # other threads: another point
        result("jax", "float64", 64, 800.0, status="timeout"),
        result("torch", "float64", 64, 300.0),  # only in A
    ])
    b = write(tmp_path / "b.json", [
        result("numba", "float64", 64, 1500.0),
        result("numpy", "float64", 64, 200.0),
        result("numpy", "float32", 1, 25000.0),
        result("numpy", "float64", 1, 5000.0, threads=1),  # only in B (threads differ)
        result("jax", "float64", 64, 900.0),
        result("dask", "float32", 16, 10.0),  # only in B
    ])
    code, out, err = run_cli(capsys, "compare", a, b)
    assert code == 0 and err == ""
    assert row(out, "numpy", "float64", 64)[-1] == "0.50"
    assert row(out, "numba", "float64", 64)[-1] == "1.50"
    assert row(out, "numpy", "float32", 1)[-1] == "1.25"
    assert "A timeout, B ok" in " ".join(row(out, "jax", "float64", 64))
    assert "only in A: torch float64 batch 64" in out
    assert "only in A: numpy float64 batch 1 n_in 1000 hidden 16 n_out 10 threads 2" in out
    assert "only in B: numpy float64 batch 1 n_in 1000 hidden 16 n_out 10 threads 1" in out
    assert "only in B: dask float32 batch 16" in out
    geomean = (0.5 * 1.5 * 1.25) ** (1 / 3)
    assert f"over 3 points ok in both: {geomean:.3f}" in out


@pytest.mark.parametrize("content, fragment", [
    ('{"schema": "mlpbench.bench/0", "results": []}', "schema is 'mlpbench.bench/0'"),
    ("[]", "not a JSON object"),
    ("{not json", "not JSON"),
    ('{"schema": "mlpbench.bench/1", "environment": {}, "peak_gflops": {}, "results": []}',
     "environment lacks"),
])
def test_a_file_that_is_not_a_results_file_is_one_line_exit_2(capsys, tmp_path, content, fragment):
    good = write(tmp_path / "a.json", [result("numpy", "float64", 64, 400.0)])
    bad = tmp_path / "b.json"
    bad.write_text(content)
    code, out, err = run_cli(capsys, "compare", good, bad)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(bad) in err and fragment in err


def test_a_result_missing_a_key_is_refused(capsys, tmp_path):
    broken = result("numpy", "float64", 64, 400.0)
    del broken["steps_per_s"]
    a = write(tmp_path / "a.json", [broken])
    code, _, err = run_cli(capsys, "compare", a, a)
    assert code == 2 and "result 0 lacks steps_per_s" in err


def test_a_missing_file_is_one_line_exit_2(capsys, tmp_path):
    good = write(tmp_path / "a.json", [])
    code, _, err = run_cli(capsys, "compare", good, tmp_path / "missing.json")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_a_point_present_twice_counts_its_last_entry(capsys, tmp_path):
    a = write(tmp_path / "a.json", [result("numpy", "float64", 64, 100.0),
                                    result("numpy", "float64", 64, 400.0)])  # redone by hand
    b = write(tmp_path / "b.json", [result("numpy", "float64", 64, 800.0)])
    code, out, _ = run_cli(capsys, "compare", a, b)
    assert code == 0
    cells = row(out, "numpy", "float64", 64)
    assert cells[-3:] == ["400", "800", "2.00"]  # not 100 -> 800 (8x), and one row only


def test_runs_on_other_blas_kernels_are_named(capsys, tmp_path):
    """Two runs whose BLAS ran other kernels (one forced by OPENBLAS_CORETYPE) compare BLASes too:
    compare says so; runs on the same kernels get no such lines."""
    blas = {"internal_api": "openblas", "version": "0.3.30", "architecture": "SkylakeX",
            "filepath": "/site-packages/scipy.libs/libscipy_openblas.so"}
    a = write(tmp_path / "a.json", [result("numpy", "float64", 64, 400.0)])
    doc = json.loads(a.read_text())
    doc["environment"] = {**ENVIRONMENT, "blas": [{**blas, "architecture": "Haswell"}],
                          "kernel_variables": {"OPENBLAS_CORETYPE": "Haswell"}}
    a.write_text(json.dumps(doc))
    b = write(tmp_path / "b.json", [result("numpy", "float64", 64, 600.0)])
    doc["environment"] = {**ENVIRONMENT, "blas": [blas], "kernel_variables": {}}
    b.write_text(json.dumps(doc))
    code, out, _ = run_cli(capsys, "compare", a, b)
    assert code == 0
    assert ("A's BLAS kernels: openblas 0.3.30 Haswell (scipy.libs); chosen by the environment, "
            "not the libraries: OPENBLAS_CORETYPE=Haswell") in out
    assert "B's BLAS kernels: openblas 0.3.30 SkylakeX (scipy.libs)\n" in out
    code, out, _ = run_cli(capsys, "compare", b, b)
    assert code == 0 and "BLAS kernels" not in out


# -- bad input: a results file checked value by value before any work ---------------------

# (where in the document, the bad value, what the message names)
CORRUPTIONS = [
    (("results", 0, "steps_per_s"), float("nan"), "'steps_per_s' is NaN"),
    (("results", 0, "steps_per_s"), float("inf"), "'steps_per_s' is Infinity"),
    (("results", 0, "steps_per_s"), "fast", "'steps_per_s'"),
    (("results", 0, "steps_per_s"), -1.0, "'steps_per_s' is -1.0"),
    (("results", 0, "steps_per_s"), None, "'steps_per_s' is null"),
    (("results", 0, "samples_per_s"), 0, "'samples_per_s'"),
    (("results", 0, "gflops"), [1], "'gflops'"),
    (("results", 0, "batch_size"), "2", "'batch_size'"),
    (("results", 0, "batch_size"), 2.5, "'batch_size'"),
    (("results", 0, "hidden"), 0, "'hidden'"),
    (("results", 0, "n_in"), True, "'n_in'"),
    (("results", 0, "threads"), -2, "'threads'"),
    (("results", 0, "dtype"), "float16", "'dtype'"),
    (("results", 0, "backend"), "", "'backend'"),
    (("results", 0, "backend"), 7, "'backend'"),
    (("results", 0, "step_s"), {"median": 1e-5, "min": 3e-5, "max": 2e-5}, "'step_s'"),
    (("results", 0, "step_s"), 1e-5, "'step_s'"),
    (("results", 0, "blocks"), 0, "'blocks'"),
    (("results", 0, "final_loss"), float("nan"), "'final_loss'"),
    (("results", 0, "compile_s"), -1, "'compile_s'"),
    (("results", 0, "error"), 3, "'error'"),
    (("results", 0, "peak_fraction"), "high", "'peak_fraction'"),
    (("results", 0, "flops_per_step"), float("nan"), "'flops_per_step'"),
    (("results", 0, "steps_per_s"), 10 ** 400, "'steps_per_s'"),
    (("peak_gflops", "numpy/float64"), float("nan"), "peak_gflops 'numpy/float64'"),
    (("environment", "gpu"), "a GPU", "'gpu'"),
    (("environment", "command"), "mlpbench bench", "'command'"),
    (("environment", "started"), 5, "'started'"),
    (("environment", "earlier_runs"), {}, "'earlier_runs'"),
    (("peak_errors",), ["x"], "'peak_errors'"),
]


@pytest.mark.parametrize("where, value, named", CORRUPTIONS,
                         ids=[f"{'.'.join(map(str, w))}={v!r}"[:60] for w, v, _ in CORRUPTIONS])
def test_compare_refuses_a_bad_value_naming_file_point_and_field(capsys, tmp_path, where, value,
                                                                 named):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(DOC))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(corrupted(where, value)))  # NaN and Infinity as Python writes them
    code, out, err = run_cli(capsys, "compare", good, bad)
    assert_one_line_error(code, err, str(bad), named)
    if where[0] == "results" and where[2] not in ("backend", "dtype", "batch_size", "hidden"):
        assert "result 0 (numpy float64 batch 2 hidden 4)" in err
    assert out == ""  # refused before the table starts


def test_the_valid_document_is_accepted(capsys, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(DOC))
    code, out, err = run_cli(capsys, "compare", good, good)
    assert code == 0 and "geometric mean of B/A over 1 points" in out, err


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_results_file_that_is_a_pipe_or_a_device_is_refused_not_read(capsys, tmp_path, kind):
    # Reading a FIFO with no writer, or /dev/zero, would never end.
    if kind == "fifo":
        path = tmp_path / "r.json"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(DOC))
    code, out, err = run_cli(capsys, "compare", good, path)
    assert_one_line_error(code, err, str(path), "not a regular file")
    assert out == ""
