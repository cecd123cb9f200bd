"""backends/numba/choice.py: the setting, the pick by measuring, and a choice kept or shared only
through a file named."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backends
from helpers import ROOT
from mlpbench.problem import make_inputs
from mlpbench.verify import run_steps

from numba_common import (  # noqa: F401  (fixtures: pytest collects them from here)
    DTYPES, uses_numba, numba_backend, no_named_choice, close, other_library)


@uses_numba
@pytest.mark.parametrize("vendor,maker", [("GenuineIntel", "mkl"), ("AuthenticAMD", "aocl"),
                                          ("HygonGenuine", None)])
def test_auto_offers_the_cpu_makers_library_beside_scipys(monkeypatch, vendor, maker):
    from backends.numba import choice

    monkeypatch.setattr(choice, "_cpu_vendor", lambda: vendor)
    scipy_cblas = "scipy" if choice.load("scipy")[0] is not None else "matmul"
    library, why = choice.load(maker) if maker else (None, "")
    offered = (((maker, "scipy") if scipy_cblas == "scipy" else (maker,)) if library
               else (scipy_cblas,))
    # an absent library is no news; one that is there and does not load says why
    label = {"mkl": "MKL", "aocl": "AOCL-BLAS"}.get(maker)
    warning = "" if library or not why or "is not installed" in why else (
        f"mlpbench: numba does not use {label}: {why}")
    assert choice.choose() == (offered, warning)
    blas = backends.create("numba").describe("float64")["blas"]
    assert blas["name"] == offered[0] and blas["setting"] == "auto"
    assert blas["api"] == ("numba @" if offered == ("matmul",) else "cblas")


@uses_numba
@pytest.mark.parametrize("library", ["matmul", "scipy"])
def test_pieces_are_the_steps_own_on_the_chosen_blas(numba_backend, monkeypatch, library):
    """`mlpbench pieces` times what the step runs: the pieces on the BLAS the step chose."""
    from kernels import resolve_pieces

    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS", library)
    pieces = numba_backend.prepare_pieces(resolve_pieces, lr=1e-3, dtype="float64")
    expected = "forward" if library == "matmul" else "_blas_forward.<locals>.blas_forward"
    assert pieces["forward"].py_func.__qualname__ == expected


@uses_numba
def test_auto_on_intel_with_a_broken_mkl_takes_scipys_blas_with_one_line(monkeypatch):
    from backends.numba import choice

    real_load = choice.load
    monkeypatch.setattr(choice, "_cpu_vendor", lambda: "GenuineIntel")
    monkeypatch.setattr(choice, "load", lambda name: (
        (None, "MKL at /x/libmkl_rt.so does not load (bad ELF)") if name == "mkl"
        else real_load(name)))
    expected = ("scipy",) if real_load("scipy")[0] is not None else ("matmul",)
    assert choice.choose() == (
        expected, "mlpbench: numba does not use MKL: MKL at /x/libmkl_rt.so does not load (bad ELF)")
    monkeypatch.setattr(choice, "load", lambda name: (
        (None, "MKL is not installed (pip install 'mlpbench[mkl]')") if name == "mkl"
        else real_load(name)))
    assert choice.choose() == (expected, "")  # unasked, absent MKL is no news


def test_unknown_setting_makes_numba_unavailable_with_one_line(numba_backend, monkeypatch):
    pytest.importorskip("numba", reason="numba is not installed")
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS", "openblas")
    ok, why = numba_backend.available()
    assert not ok and "MLPBENCH_NUMBA_BLAS='openblas'" in why
    assert "auto, mkl, aocl, scipy, matmul" in why
    assert "\n" not in why


@uses_numba
def test_pick_with_one_library_or_a_batch_of_one_measures_nothing():
    from backends.numba import choice

    assert choice.pick(("scipy",), "float64", 64, 50, 20) == choice.Products(
        "scipy", "scipy", (64, 50, 20), {})
    assert choice.pick(("aocl", "scipy"), "float32", 1, 50, 20) == choice.Products(
        "aocl", "aocl", (1, 50, 20), {})


@uses_numba
@pytest.mark.parametrize("times,expected", [
    # harness test: the libraries' times are given, not measured
    ({"maker": 1.00, "scipy": 0.97}, "maker"),   # within the margin: the preferred one
    ({"maker": 1.00, "scipy": 0.90}, "scipy"),   # the other 10% faster
    ({"maker": 0.80, "scipy": 1.00}, "maker"),
])
def test_pick_keeps_the_preferred_library_unless_another_is_a_margin_faster(monkeypatch, times,
                                                                          expected):
    from backends.numba import choice

    other = other_library()
    given = {other if k == "maker" else k: v for k, v in times.items()}
    monkeypatch.setattr(choice, "_least_seconds", lambda calls: {
        name: given[name] for name in calls})
    products = choice.pick((other, "scipy"), "float64", 8, 30, 9)
    want = other if expected == "maker" else "scipy"
    assert (products.forward, products.update) == (want, want)
    assert products.seconds == {"forward": given, "update": given}


@uses_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_pick_times_each_product_on_each_library(dtype):
    from backends.numba import choice

    other = other_library()
    products = choice.pick((other, "scipy"), dtype, 16, 40, 12)
    for product in ("forward", "update"):
        seconds = products.seconds[product]
        assert set(seconds) == {other, "scipy"} and all(0 < v < 1 for v in seconds.values())
        best = min(seconds, key=seconds.get)
        margin = 1 + choice.MARGIN
        assert getattr(products, product) == (other if seconds[other] <= seconds[best] * margin
                                              else best)


_PICK_SCRIPT = """
import json, sys
from backends.numba import choice
products = choice.pick(tuple(sys.argv[1].split(",")), "float64", 16, 40, 12)
print(json.dumps(products.record()))
"""


def _picks_in(path):
    return json.loads(Path(path).read_text())["picks"]


@uses_numba
def test_no_file_is_written_unless_one_is_named(tmp_path):
    """A pick is measured in the process that runs it and recorded in the result; nothing is
    kept anywhere (home, cache folders, working folder) for a later process to run instead."""
    other = other_library()
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
           "PYTHONPATH": str(ROOT)}
    records = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _PICK_SCRIPT, f"{other},scipy"], cwd=cwd,
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        records.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for record in records:  # each process measured its own
        assert record["kept"] is None and set(record["seconds"]["forward"]) == {other, "scipy"}
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@uses_numba
def test_a_named_file_keeps_each_pick_for_the_processes_naming_it(tmp_path, monkeypatch):
    from backends.numba import choice

    other = other_library()
    path = tmp_path / "picks.json"
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(path))
    first = choice.pick((other, "scipy"), "float64", 16, 40, 12)
    assert first.kept is None and first.seconds  # measured, then written
    (entry,) = _picks_in(path)
    assert (entry["forward"], entry["update"], entry["dtype"], entry["sizes"]) == (
        first.forward, first.update, "float64", [16, 40, 12])
    assert [name for name, *_ in entry["libraries"]] == [other, "scipy"]
    monkeypatch.setattr(choice, "_measure", lambda *a: pytest.fail("measured again"))
    again = choice.pick((other, "scipy"), "float64", 16, 40, 12)
    assert again == choice.Products(first.forward, first.update, (16, 40, 12), first.seconds,
                                    str(path))
    monkeypatch.undo()
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(path))
    choice.pick((other, "scipy"), "float32", 16, 40, 12)  # another dtype: measured and added
    assert [e["dtype"] for e in _picks_in(path)] == ["float64", "float32"]


@uses_numba
def test_two_processes_started_together_on_one_file_run_one_pick(tmp_path):
    """The second waits for the first's measuring and runs what it picked (as a gate's sides)."""
    other = other_library()
    path = tmp_path / "picks.json"
    env = {**os.environ, "MLPBENCH_NUMBA_BLAS_FILE": str(path)}
    procs = [subprocess.Popen([sys.executable, "-c", _PICK_SCRIPT, f"{other},scipy"], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    records = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sorted(str(r["kept"]) for r in records) == sorted(["None", str(path)])
    assert len({(r["forward"], r["update"]) for r in records}) == 1
    assert len(_picks_in(path)) == 1


@uses_numba
@pytest.mark.parametrize("content", ["{not json", '{"picks": []}', '["a list"]'])
def test_a_named_file_that_is_not_ours_makes_numba_unavailable_and_stays(numba_backend, tmp_path,
                                                                       monkeypatch, content):
    path = tmp_path / "picks.json"
    path.write_text(content)
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(path))
    ok, why = numba_backend.available()
    assert not ok and f"MLPBENCH_NUMBA_BLAS_FILE={str(path)!r}" in why and "\n" not in why
    assert path.read_text() == content
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(tmp_path))  # a folder
    assert numba_backend.available()[0] is False
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(tmp_path / "no" / "picks.json"))
    assert numba_backend.available()[0] is False


@uses_numba
def test_a_forced_pair_wins_over_the_pick_and_any_file(numba_backend, tmp_path, monkeypatch):
    """``MLPBENCH_NUMBA_BLAS=FORWARD,UPDATE`` runs what a result says ``auto`` picked; nothing is
    measured, and a file named is neither read nor written."""
    from backends.numba import choice

    other = other_library()
    path = tmp_path / "picks.json"
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS", f"scipy,{other}")
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(path))
    monkeypatch.setattr(choice, "_measure", lambda *a: pytest.fail("measured"))
    inputs = make_inputs(17, 30, 9, 4, dtype="float64", seed=3, relu_zeros=True)
    reference = run_steps(backends.create("numpy"), inputs, 3, lr=1e-3, dtype="float64")
    result = run_steps(numba_backend, inputs, 3, lr=1e-3, dtype="float64")
    for name in ("W", "S", "loss"):
        close(result[name], reference[name], "float64", steps=3)
    blas = numba_backend.describe("float64")["blas"]
    assert blas["setting"] == f"scipy,{other}" and blas["name"] == "scipy"
    assert (blas["products"]["forward"], blas["products"]["update"]) == ("scipy", other)
    assert blas["products"]["seconds"] == {} and not path.exists()


@uses_numba
def test_the_gate_runs_one_pick_on_both_sides(tmp_path):
    """``mlpbench regress``'s workers share one file of picks, named by the gate for its run
    and removed after: base and head run the same libraries, in every process pair."""
    from dataclasses import replace

    from mlpbench.gate import SETTINGS, runner

    other = other_library()
    point = runner.Point("numba", 16, 9, "float64", n_in=30, n_out=4)
    fast = replace(SETTINGS, process_pairs=2, more_process_pairs=0, max_process_pairs=2,
                   sample_pairs=2, warmup_pairs=1, budget_s=1.0)
    runner.run([point], {"base": ROOT, "head": ROOT}, {"base": "a" * 40, "head": "b" * 40},
               fast, seed=1, log=lambda line: None)
    products = {side: point.blas[side]["products"] for side in ("base", "head")}
    assert {(p["forward"], p["update"]) for p in products.values()} <= {
        (f, u) for f in (other, "scipy") for u in (other, "scipy")}
    assert products["base"]["forward"] == products["head"]["forward"]
    assert products["base"]["update"] == products["head"]["update"]
    kept = {p["kept"] for p in products.values()}  # the last pair read what the first measured
    assert len(kept) == 1 and "mlpbench-gate-" in kept.pop()
    assert point.report()["blas"]["head"]["products"] == products["head"]


def test_the_gate_takes_the_users_file_of_picks_where_one_is_named(tmp_path, monkeypatch):
    from mlpbench.gate import runner

    assert runner.shared_choices(str(tmp_path)) == {
        "MLPBENCH_NUMBA_BLAS_FILE": str(tmp_path / "numba-blas.json")}
    monkeypatch.setenv("MLPBENCH_NUMBA_BLAS_FILE", str(tmp_path / "mine.json"))
    assert runner.shared_choices(str(tmp_path)) == {}  # the workers inherit the user's


@uses_numba
def test_auto_with_two_libraries_picks_per_size_and_records_it(numba_backend, monkeypatch):
    from backends.numba import choice

    other = other_library()
    monkeypatch.setattr(choice, "choose", lambda: ((other, "scipy"), ""))
    for batch_size in (5, 9):
        inputs = make_inputs(batch_size, 30, 9, 4, dtype="float64", seed=3, relu_zeros=True)
        reference = run_steps(backends.create("numpy"), inputs, 3, lr=1e-3, dtype="float64")
        result = run_steps(numba_backend, inputs, 3, lr=1e-3, dtype="float64")
        for name in ("W", "S", "loss"):
            close(result[name], reference[name], "float64", steps=3)
        products = numba_backend.describe("float64")["blas"]["products"]
        assert products["sizes"] == [batch_size, 30, 9]
        assert {products["forward"], products["update"]} <= {other, "scipy"}
        assert set(products["seconds"]["forward"]) == {other, "scipy"}


@uses_numba
def test_pieces_follow_the_pick_of_their_forward_call(numba_backend, monkeypatch):
    from backends.numba import choice
    from kernels import resolve_pieces

    other = other_library()
    monkeypatch.setattr(choice, "choose", lambda: ((other, "scipy"), ""))
    monkeypatch.setattr(choice, "pick", lambda offered, dtype, *sizes: choice.Products(
        "scipy", other, sizes))  # harness test: the pick is given
    pieces = numba_backend.prepare_pieces(resolve_pieces, lr=1e-3, dtype="float64")
    inputs = make_inputs(6, 30, 9, 4, dtype="float64", seed=3)
    u, h, y = pieces["forward"](inputs["x"], inputs["W"], inputs["S"])
    close(u, inputs["x"] @ inputs["W"], "float64")
    W = np.copy(inputs["W"])
    grad_u = np.ones_like(u)
    got = pieces["weight_update"](W, inputs["x"], grad_u)
    close(got, inputs["W"] - 1e-3 * (inputs["x"].T @ grad_u), "float64")
    assert numba_backend.describe("float64")["blas"]["products"]["update"] == other
