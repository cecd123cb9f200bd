"""The regression gate: how asv's output is read (fast), and real asv runs between commits (slow).

The slow tests copy the working tree into a temporary git repository, commit it, then commit a
deliberately slower step, an identical tree and a broken build, and run ``mlpbench regress``
between them with real asv. They share asv's environments with other runs (see ENV_DIR).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlpbench import asv_gate
from mlpbench.cli import main
from mlpbench.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
NAME = "bench_step.TrainStep.time_train_step"

# -- samples of asv continuous's output (asv 0.6.6; trimmed real runs) ---------------------

HEADER = """\
· Creating environments
· Discovering benchmarks
·· Uninstalling from virtualenv-py3.11
·· Building 9ff22c4f <main> for virtualenv-py3.11
·· Installing 9ff22c4f <main> into virtualenv-py3.11
· Running 2 total benchmarks (2 commits * 1 environments * 1 benchmarks)
[ 0.00%] · For mlpbench commit ba612b22 <main~1> (round 1/2):
[ 0.00%] ·· Building for virtualenv-py3.11
[ 0.00%] ·· Benchmarking virtualenv-py3.11
[25.00%] ··· Running (bench_step.TrainStep.time_train_step--).
"""


def table(*rows: str, verdict: str) -> str:
    return HEADER + f"""
All benchmarks:

| Change   | Before [ba612b22] <main~1>   | After [9ff22c4f] <main>   |   Ratio | Benchmark (Parameter)                                             |
|----------|------------------------------|---------------------------|---------|-------------------------------------------------------------------|
{chr(10).join(rows)}

{verdict}
"""


PASSED = table(
    f"|          | 464±100μs                    | 496±100μs                 |    1.07 | {NAME}('numpy', 1, 100, 'float64')  |",
    f"|          | 161±20μs                     | 160±0.5μs                 |    1    | {NAME}('numpy', 1, 100, 'float32')  |",
    f"|          | 338±2μs                      | 339±4μs                   |    1    | {NAME}('numpy', 64, 100, 'float32') |",
    verdict="BENCHMARKS NOT SIGNIFICANTLY CHANGED.")

SLOWER = table(
    f"| +        | 987±400μs                    | 1.70±0.4ms                |    1.72 | {NAME}('numpy', 64, 100, 'float64') |",
    f"| +        | 355±40μs                     | 514±50μs                  |    1.45 | {NAME}('numpy', 64, 100, 'float32') |",
    f"|          | 161±4μs                      | 171±10μs                  |    1.06 | {NAME}('numpy', 1, 100, 'float32')  |",
    verdict="SOME BENCHMARKS HAVE CHANGED SIGNIFICANTLY.\nPERFORMANCE DECREASED.")

ALL_SKIPPED = table(
    f"|          | n/a                          | n/a                       |     n/a | {NAME}('cupy', 1, 100, 'float32')   |",
    verdict="BENCHMARKS NOT SIGNIFICANTLY CHANGED.")

BUILD_FAILED = """\
· Creating environments
· Discovering benchmarks
·· Building 3f63dc7e <broken> for virtualenv-py3.11
·· Error running /tmp/r/.asv/env/2bc1/bin/python -m pip wheel --no-deps --no-build-isolation -w /tmp/r/.asv/env/2bc1/asv-build-cache/3f63 /tmp/r/.asv/env/2bc1/project (exit status 2)
   STDERR -------->
   ERROR: Exception:
   Traceback (most recent call last):
   tomllib.TOMLDecodeError: Expected '=' after a key in a key/value pair (at line 43, column 6)

·· Failed: trying different commit/environment
·· Installing ba612b22 <main> into virtualenv-py3.11
· Running 2 total benchmarks (2 commits * 1 environments * 1 benchmarks)
[ 0.00%] · For mlpbench commit ba612b22 <main> (round 1/2):
[ 0.00%] ·· Benchmarking virtualenv-py3.11
[25.00%] ··· Running (bench_step.TrainStep.time_train_step--).
[25.00%] · For mlpbench commit 3f63dc7e <broken> (round 1/2):
[25.00%] ·· Building for virtualenv-py3.11
[25.00%] ··· Error running /tmp/r/.asv/env/2bc1/bin/python -m pip wheel --no-deps --no-build-isolation -w /tmp/r/.asv/env/2bc1/asv-build-cache/3f63 /tmp/r/.asv/env/2bc1/project (exit status 2)
             STDOUT -------->
             Processing /tmp/r/.asv/env/2bc1/project
             STDERR -------->
             ERROR: Exception:
             Traceback (most recent call last):
               File "/tmp/r/.asv/env/2bc1/lib/python3.11/site-packages/pip/_internal/pyproject.py", line 64, in load_pyproject_toml
             tomllib.TOMLDecodeError: Expected '=' after a key in a key/value pair (at line 43, column 6)

[25.00%] ·· Skipping virtualenv-py3.11
[50.00%] ··· bench_step.TrainStep.time_train_step skipped
[75.00%] · For mlpbench commit ba612b22 <main> (round 2/2):
[75.00%] ·· Benchmarking virtualenv-py3.11
[100.00%] ··· bench_step.TrainStep.time_train_step                            ok
"""

BENCHMARK_FAILED = HEADER + """\
[50.00%] · For mlpbench commit e4115fae <failing> (round 2/2):
[50.00%] ·· Benchmarking virtualenv-py3.11
[75.00%] ··· bench_step.TrainStep.time_train_step                    2/4 failed
[75.00%] ··· ========= ============ =============== ===============
               numpy        1          160±0.7μs       461±200μs
               numpy        64           failed          failed
             ========= ============ =============== ===============
             For parameters: 'numpy', 64, 100, 'float32'
             Traceback (most recent call last):
               File "/tmp/r/benchmarks/common.py", line 86, in __init__
                 self.train_step()  # the warm-up: a JIT compiles here, never inside a timed call
               File "/tmp/r/.asv/env/2bc1/lib/python3.11/site-packages/kernels/step.py", line 91, in train_step
                 raise RuntimeError('deliberately broken step')
             RuntimeError: deliberately broken step
             asv: benchmark failed (exit status 1)

[75.00%] · For mlpbench commit ba612b22 <main~1> (round 2/2):
[75.00%] ·· Benchmarking virtualenv-py3.11
[100.00%] ··· bench_step.TrainStep.time_train_step                            ok
"""

UNKNOWN_COMMIT = "· Unknown commit nosuch\n"

SUITE_BROKEN = """\
· Creating environments
· Discovering benchmarks
·· Error running /tmp/r/.asv/env/2bc1/bin/python asv/benchmark.py discover /tmp/r/benchmarks /tmp/x/result.json (exit status 1)
   STDERR -------->
   Traceback (most recent call last):
       raise ImportError('suite broken')
   ImportError: suite broken

·· Last error: Command '/tmp/r/.asv/env/2bc1/bin/python asv/benchmark.py discover' returned non-zero exit status 1
·· Failed to build the project and import the benchmark suite.
"""


# -- classification (pure) --------------------------------------------------------------


def test_unchanged_benchmarks_pass():
    verdict = asv_gate.classify(0, PASSED, 1.5)
    assert verdict.status == asv_gate.PASS
    assert verdict.compared == 3 and "3 compared" in verdict.message


def test_significantly_slower_time_benchmarks_are_a_regression():
    verdict = asv_gate.classify(1, SLOWER, 1.3)
    assert verdict.status == asv_gate.REGRESSION
    assert [r.name for r in verdict.regressions] == [f"{NAME}('numpy', 64, 100, 'float64')",
                                                     f"{NAME}('numpy', 64, 100, 'float32')"]
    assert [r.ratio for r in verdict.regressions] == [1.72, 1.45]
    assert verdict.regressions[0].before == "987±400μs"


def test_rows_outside_the_selection_do_not_count():
    # asv also shows results kept from an earlier run, and counts them in its exit status.
    verdict = asv_gate.classify(1, SLOWER, 1.3, regex=r"^(?=.*\.time_)(?=.*(?:'numpy', 1,))")
    assert verdict.status == asv_gate.PASS and verdict.compared == 1


def test_a_commit_that_does_not_build_is_an_error_not_a_regression():
    verdict = asv_gate.classify(2, BUILD_FAILED, 1.5)
    assert verdict.status == asv_gate.ERROR
    assert len(verdict.failures) == 1  # both rounds name the same failure once
    assert "3f63dc7e <broken> did not build" in verdict.message
    assert "TOMLDecodeError: Expected '='" in verdict.message


def test_a_failing_benchmark_is_an_error_naming_it_and_its_commit():
    verdict = asv_gate.classify(2, BENCHMARK_FAILED, 1.5)
    assert verdict.status == asv_gate.ERROR
    assert verdict.message == (f"{NAME} (2/4 parameter sets) failed on commit e4115fae "
                               "<failing>: RuntimeError: deliberately broken step")


def test_a_failure_in_the_output_is_an_error_whatever_the_exit_status():
    assert asv_gate.classify(0, BENCHMARK_FAILED + PASSED, 1.5).status == asv_gate.ERROR


@pytest.mark.parametrize("output, expected", [
    (UNKNOWN_COMMIT, "Unknown commit nosuch"),
    (SUITE_BROKEN, "Failed to build the project and import the benchmark suite. "
                   "(ImportError: suite broken)"),
    ("", "asv printed nothing"),
])
def test_asv_exiting_1_without_a_comparison_is_an_error(output, expected):
    verdict = asv_gate.classify(1, output, 1.5)
    assert verdict.status == asv_gate.ERROR
    assert verdict.message == f"asv continuous failed (exit status 1): {expected}"


def test_nothing_measured_is_an_error_not_a_pass():
    verdict = asv_gate.classify(0, ALL_SKIPPED, 1.5)
    assert verdict.status == asv_gate.ERROR and "no time_* benchmark" in verdict.message


def test_bench_regex_keeps_to_time_benchmarks():
    import re

    regex = asv_gate.bench_regex("float32")
    assert re.search(regex, f"{NAME}('numpy', 1, 100, 'float32')")
    assert not re.search(regex, f"{NAME}('numpy', 1, 100, 'float64')")
    assert not re.search(regex, "bench_step.TrainStep.track_gflops('numpy', 1, 100, 'float32')")
    assert asv_gate.bench_regex(None) == asv_gate.TIME_BENCHMARKS
    with pytest.raises(UsageError, match="not a regular expression"):
        asv_gate.bench_regex("float(")


# -- the command's own errors: one line, exit 2 ----------------------------------------


def run_cli(argv, cwd, capsys, monkeypatch):
    monkeypatch.chdir(cwd)
    status = main(["regress", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_outside_a_git_repository(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    status, _, err = run_cli([], tmp_path, capsys, monkeypatch)
    assert status == 2 and err.count("\n") == 1 and "not in a git repository" in err


@pytest.mark.parametrize("argv, message", [
    (["--base", "no-such-revision"], "unknown revision 'no-such-revision'"),
    (["--factor", "0.5"], "--factor must be at least 1"),
    (["--bench", "time_("], "is not a regular expression"),
    (["--base", "HEAD", "--head", "HEAD"], "same commit"),
])
def test_bad_input(argv, message, capsys, monkeypatch):
    if not (ROOT / ".git").exists():
        pytest.skip("the repository's git history is not here")
    if importlib.util.find_spec("asv") is None:
        pytest.skip("asv is not installed (pip install 'mlpbench[asv]')")
    status, _, err = run_cli(argv, ROOT, capsys, monkeypatch)
    assert status == 2 and err.count("\n") == 1 and message in err


def test_asv_missing_is_one_line(monkeypatch):
    # Pretend asv is not installed: find_spec answers None for it.
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "asv" else real(name, *a))
    with pytest.raises(UsageError, match=r"asv is not installed .*pip install 'mlpbench\[asv\]'"):
        asv_gate.asv_command()


# -- real asv runs between commits (slow) ------------------------------------------------

ENV_DIR = asv_gate.shared_env_dir()
GATE_ENV = asv_gate.CI_GATE_ENVIRONMENT
GATE_BENCH = "float32"
FORWARD = "        u, h, y = forward(x, W, S)\n"
SLOWER_FORWARD = ("        for _ in range(5):  # deliberately slower: the forward pass five times\n"
                  "            u, h, y = forward(x, W, S)\n")


git = asv_gate.git


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A repository of the working tree: base, identical, slower step, broken build."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and the repository's working tree")
    for module in ("asv", "virtualenv"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install 'mlpbench[asv]')")
    repo = tmp_path_factory.mktemp("gate")
    commits = asv_gate.snapshot_repository(ROOT, repo, ENV_DIR)

    step = repo / "kernels" / "step.py"
    assert step.read_text().count(FORWARD) == 1, "kernels/step.py changed: update FORWARD"
    git(repo, "switch", "-q", "-c", "slower", "main")
    step.write_text(step.read_text().replace(FORWARD, SLOWER_FORWARD))
    git(repo, "commit", "-q", "-am", "a slower step")
    commits["slower"] = git(repo, "rev-parse", "HEAD").strip()

    git(repo, "switch", "-q", "-c", "broken", "main")
    with open(repo / "pyproject.toml", "a") as f:
        f.write("\nthis is not = [valid toml\n")
    git(repo, "commit", "-q", "-am", "a broken pyproject.toml")
    commits["broken"] = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "switch", "-q", "main")  # asv reads the working tree's pyproject.toml
    return repo, commits


def regress(repo: Path, base: str, head: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **GATE_ENV)
    return subprocess.run([sys.executable, "-m", "mlpbench", "regress", "--base", base,
                           "--head", head, "--bench", GATE_BENCH],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_gate_fails_a_slower_step(history):
    repo, commits = history
    done = regress(repo, commits["base"], commits["slower"])
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr
    verdict = done.stdout[done.stdout.index("mlpbench regress: REGRESSION"):]
    assert f"{NAME}('numpy', 64, 100, 'float32')" in verdict
    assert "x slower" in verdict


@pytest.mark.slow
def test_gate_passes_identical_code(history):
    repo, commits = history
    done = regress(repo, commits["base"], commits["identical"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "mlpbench regress: pass: no time_* benchmark slower" in done.stdout


@pytest.mark.slow
def test_gate_reports_a_broken_build_as_an_error(history):
    repo, commits = history
    done = regress(repo, commits["base"], commits["broken"])
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr
    assert done.stderr.count("\n") == 1
    assert f"commit {commits['broken'][:8]} <broken> did not build" in done.stderr
    assert "TOMLDecodeError" in done.stderr
