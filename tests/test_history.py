"""``mlpbench history``: hand-made asv results (fast), and results of a real asv run (slow).

The hand-made files follow asv's results format (version 2: ``result_columns``, one row per
benchmark, values in ``itertools.product`` order of the parameters); history reads them with
asv's own reader, so asv reads every one of them as written.
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlpbench import settings
from mlpbench import history
from scratch import FORWARD, SLOWER_FORWARD, asv_env_dir, git, worktree_repository

from helpers import ROOT, run_cli
BENCH = history.BENCHMARK
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
           "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_number", "stats_repeat",
           "samples", "profile"]
QUICK = settings.GRIDS["quick"]


def results_file(folder: Path, commit: str, date_ms: int, times: dict[tuple, float | None],
                 *, spread: float = 0.02, env: str = "virtualenv-py3.11",
                 params: list[list] | None = None, benchmark: str = BENCH) -> Path:
    """One asv results file: ``times`` maps (backend, batch, hidden, dtype) to a median in
    seconds (None: failed; absent: skipped, NaN). Quartiles and the 99% CI are median ± spread."""
    params = params or [sorted({k[0] for k in times}), QUICK["batch_size"], QUICK["hidden"],
                        QUICK["dtype"]]
    result, ci_a, ci_b, q_25, q_75 = [], [], [], [], []
    for combo in itertools.product(*params):
        value = times.get(combo, math.nan)
        result.append(value)
        ok = isinstance(value, float) and math.isfinite(value)
        for out, sign in ((ci_a, -1), (ci_b, 1), (q_25, -0.5), (q_75, 0.5)):
            out.append(value * (1 + sign * spread) if ok else None)
    row = [result, [[repr(v) for v in values] for values in params], "0" * 64, date_ms, 1.0,
           ci_a, ci_b, q_25, q_75, [1] * len(result), [50] * len(result)]
    doc = {"commit_hash": commit, "env_name": env, "date": date_ms, "params": {"machine": "box"},
           "python": "3.11", "requirements": {}, "env_vars": {}, "result_columns": COLUMNS,
           "results": {benchmark: row}, "durations": {}, "version": 2}
    path = folder / f"{commit[:8]}-{env}.json"
    path.write_text(json.dumps(doc))  # asv writes NaN as NaN too
    return path


def machine_folder(results: Path, name: str = "box") -> Path:
    folder = results / name
    folder.mkdir(parents=True)
    (folder / "machine.json").write_text(json.dumps({"machine": name, "version": 1}))
    return folder


def git_commits(repo: Path, n: int) -> list[str]:
    """A git repository with ``n`` empty commits, oldest first."""
    git(repo, "init", "-q", "-b", "main")
    for i in range(n):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"commit {i}")
    return git(repo, "rev-list", "--reverse", "HEAD").split()


def point(backend="numpy", batch=64, dtype="float32"):
    return backend, batch, 100, dtype


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A repository with asv.conf.json and three commits measured: numba's batch 64 float32
    step 2x slower at the second commit, numpy's 5% slower (within the threshold). Dates are
    in reverse, so only git's order is right."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    commits = git_commits(tmp_path, 3)
    (tmp_path / "asv.conf.json").write_text('// a comment, as asv allows\n'
                                            '{"results_dir": ".asv/results"}\n')
    folder = machine_folder(tmp_path / ".asv" / "results")
    base = {point(b, n, d): 1e-4 for b in ("numpy", "numba") for n in QUICK["batch_size"]
            for d in QUICK["dtype"]}
    slower = dict(base)
    slower[point("numba")] *= 2
    slower[point("numpy")] *= 1.05
    for i, times in enumerate([base, slower, slower]):
        results_file(folder, commits[i], 1_000_000 - i, times)
    monkeypatch.chdir(tmp_path)
    return tmp_path, commits


def run_history(capsys, *argv):
    return run_cli(capsys, "history", *argv)


def section(out: str, title: str) -> list[str]:
    """The rows of one point's table."""
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(title))
    rows = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        rows.append(line)
    return rows


def test_commits_in_git_order_and_a_move_beyond_the_noise_is_flagged(project, capsys):
    _, commits = project
    status, out, err = run_history(capsys)
    assert status == 0, err
    listed = re.findall(r"^  ([0-9a-f]{8})  ", out, re.M)
    assert listed[:3] == [c[:8] for c in commits]  # git's order, though the dates run backwards
    header, first, second, third = section(out, "batch 64, hidden 100, float32")
    assert header.split() == ["commit", "numpy", "numba"]
    assert first.startswith(f"  {commits[0][:8]}  10,000 (")
    assert second.rstrip().endswith("5,000 (4,950-5,051) -50%*")  # numba: 2x slower
    assert "%*" not in second.split(")")[0] + ")"  # numpy: 5% is within the 10% threshold
    assert "*" not in third  # unchanged since the commit above
    assert "* moved beyond its noise" in out
    for title in ("batch 1, hidden 100, float32", "batch 64, hidden 100, float64"):
        assert not any("*" in row for row in section(out, title))


def test_a_large_change_within_the_confidence_intervals_is_not_flagged(tmp_path, capsys):
    folder = machine_folder(tmp_path)
    results_file(folder, "a" * 40, 1, {point(): 1e-4}, spread=0.5)
    results_file(folder, "b" * 40, 2, {point(): 1.3e-4}, spread=0.5)
    status, out, _ = run_history(capsys, "--results", str(tmp_path))
    assert status == 0 and "%*" not in out and "no point moved beyond its noise" in out
    status, out, _ = run_history(capsys, "--results", str(tmp_path), "--threshold", "50")
    assert status == 0 and "%*" not in out


def test_without_git_commits_are_ordered_by_date(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.chdir(tmp_path)
    folder = machine_folder(tmp_path / "results")
    results_file(folder, "b" * 40, 2, {point(): 1e-4})
    results_file(folder, "a" * 40, 3, {point(): 2e-4})
    results_file(folder, "c" * 40, 1, {point(): 1e-4})
    status, out, err = run_history(capsys, "--results", "results")
    assert status == 0, err
    assert "(by commit date)" in out
    assert re.findall(r"^  ([0-9a-f]{8})  ", out, re.M)[:3] == ["cccccccc", "bbbbbbbb",
                                                                "aaaaaaaa"]


def test_filters_choose_backends_and_points(project, capsys):
    status, out, _ = run_history(capsys, "--backend", "numba", "--batch-size", "64",
                                 "--dtype", "float32")
    assert status == 0
    assert re.findall(r"^batch .*$", out, re.M) == [
        "batch 64, hidden 100, float32: steps/s, median (interquartile range)"]
    assert section(out, "batch 64")[0].split() == ["commit", "numba"]


def test_default_points_are_the_quick_grids_where_measured(tmp_path, capsys):
    folder = machine_folder(tmp_path)
    full = settings.GRIDS["full"]
    params = [["numpy"], full["batch_size"], full["hidden"], full["dtype"]]
    times = {combo: 1e-4 for combo in itertools.product(*params)}
    results_file(folder, "a" * 40, 1, times, params=params)
    status, out, _ = run_history(capsys, "--results", str(tmp_path))
    assert status == 0
    shown = re.findall(r"^batch (\d+), hidden (\d+), (\w+):", out, re.M)
    assert sorted(shown) == sorted((str(b), str(h), d) for b, h, d in itertools.product(
        QUICK["batch_size"], QUICK["hidden"], QUICK["dtype"]))
    status, out, _ = run_history(capsys, "--results", str(tmp_path), "--hidden", "1024")
    assert len(re.findall(r"^batch \d+, hidden 1024,", out, re.M)) == \
        len(full["batch_size"]) * len(full["dtype"])


def test_skipped_and_failed_points_are_left_out(tmp_path, capsys):
    folder = machine_folder(tmp_path)
    results_file(folder, "a" * 40, 1, {point(): 1e-4, point("numba"): None},
                 params=[["numpy", "numba", "cupy"], [64], [100], ["float32"]])
    status, out, _ = run_history(capsys, "--results", str(tmp_path))
    assert status == 0
    assert section(out, "batch 64")[0].split() == ["commit", "numpy"]


def test_each_asv_environment_is_a_series_of_its_own(tmp_path, capsys):
    # --python=same files its results as another environment, with other libraries
    folder = machine_folder(tmp_path)
    results_file(folder, "a" * 40, 1, {point(): 1e-4})
    results_file(folder, "a" * 40, 1, {point(): 2e-4}, env="existing-py_venv_bin_python")
    results_file(folder, "b" * 40, 2, {point(): 2e-4})
    status, out, _ = run_history(capsys, "--results", str(tmp_path))
    assert status == 0
    header, first, second = section(out, "batch 64")
    assert header.split() == ["commit", "numpy", "(existing-py_venv_bin_python)", "numpy",
                              "(virtualenv-py3.11)"]
    assert first.split()[1:] == ["5,000", "(4,950-5,051)", "10,000", "(9,901-10,101)"]
    assert second.split()[1:] == ["-", "5,000", "(4,950-5,051)", "-50%*"]  # within its env


def test_last_keeps_the_flag_against_the_commit_before(project, capsys):
    _, commits = project
    status, out, _ = run_history(capsys, "--last", "2", "--backend", "numba")
    assert status == 0
    rows = section(out, "batch 64, hidden 100, float32")
    assert [r.split()[0] for r in rows] == ["commit", commits[1][:8], commits[2][:8]]
    assert rows[1].rstrip().endswith("-50%*")


def test_a_results_file_that_cannot_be_read_is_skipped_with_a_line(project, capsys):
    root, _ = project
    (root / ".asv" / "results" / "box" / "deadbeef-virtualenv-py3.11.json").write_text("{")
    status, out, err = run_history(capsys)
    assert status == 0 and "5,000" in out
    assert err.count("\n") == 1 and "skipping" in err and "deadbeef" in err


def test_draws_a_png(project, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (mlpbench[plot])")
    import matplotlib.image

    root, _ = project
    status, out, err = run_history(capsys, "--output", "h.png")
    assert status == 0, err
    assert out.rstrip().endswith("wrote h.png")
    image = matplotlib.image.imread(root / "h.png")
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300


# -- bad input: one line, exit 2, before any work -----------------------------------------


def other_project(tmp_path: Path) -> None:
    results_file(machine_folder(tmp_path), "a" * 40, 1, {point(): 1e-4},
                 benchmark="bench_io.Read.time_read")


@pytest.mark.parametrize("setup, argv, message", [
    (lambda p: None, ["--results", "nowhere"], "no asv results folder at nowhere"),
    (lambda p: None, [], "no asv.conf.json in"),
    (lambda p: None, ["--results", "."], "no machine folder with a machine.json"),
    (other_project, ["--results", "."], "no bench_step.TrainStep.time_train_step results"),
    (lambda p: machine_folder(p), ["--results", "."], "no bench_step.TrainStep"),
    (lambda p: machine_folder(p), ["--results", ".", "--machine", "other"],
     "no results for machine 'other'"),
    (lambda p: (machine_folder(p, "a"), machine_folder(p, "b")), ["--results", "."],
     "choose one with --machine"),
])
def test_bad_results(tmp_path, monkeypatch, capsys, setup, argv, message):
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    status, out, err = run_history(capsys, *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("argv, message", [
    (["--backend", "torch"], "--backend torch: not in the results; recorded: numpy, numba"),
    (["--batch-size", "16"], "--batch-size 16: not in the results; recorded: 1, 64"),
    (["--dtype", "float16"], "unsupported dtype 'float16'"),
    (["--hidden", "0"], "must be a positive integer"),
    (["--threshold", "-5"], "must be a finite positive number"),
    (["--output", "no/such/folder/h.png"], "folder"),
    (["--output", "h.svg"], "name a .png file"),
])
def test_bad_options(project, capsys, argv, message):
    root, _ = project
    status, out, err = run_history(capsys, *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err
    assert not list(root.glob("*.png")) and not list(root.glob("*.svg"))


# -- a real asv run over three commits (slow) ----------------------------------------------

def readme_asv_block() -> list[str]:
    """The README's asv commands, as a user pastes them."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## asv: "):]
    section = section[:section.index("\n## ")]
    return [line[4:].split("  #")[0].strip() for line in section.splitlines()
            if line.startswith("    ") and line.strip()]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The working tree as base, identical, a slower step, the step restored, with no results;
    then the README's asv block pasted there (it measures the last two commits, compares them
    and draws the history: each line's result is kept), and asv run over the one commit of the
    last three still unmeasured (time_train_step, one round). numpy alone, one thread."""
    lines = readme_asv_block()
    assert lines[0].startswith(". .venv/bin/activate && ") and len(lines) >= 3, lines
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and the repository's working tree")
    for module in ("asv", "virtualenv"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install 'mlpbench[asv]')")
    repo = tmp_path_factory.mktemp("history")
    worktree_repository(repo)
    git(repo, "commit", "-q", "--allow-empty", "-m", "identical code")
    (repo / ".asv").mkdir()
    asv_env_dir().mkdir(parents=True, exist_ok=True)
    (repo / ".asv" / "env").symlink_to(asv_env_dir(), target_is_directory=True)
    step = repo / "kernels" / "step.py"
    text = step.read_text()
    assert text.count(FORWARD) == 1, "kernels/step.py changed: update FORWARD"
    step.write_text(text.replace(FORWARD, SLOWER_FORWARD))
    git(repo, "commit", "-q", "-am", "a slower step")
    step.write_text(text)
    git(repo, "commit", "-q", "-am", "the step restored")
    commits = git(repo, "rev-list", "--reverse", "HEAD~3..HEAD").split()
    asv = [sys.executable, "-m", "asv"]
    # This checkout's environment stands for the clone's .venv.
    env = settings.pinned_environment(1, os.environ)
    env.update(MLPBENCH_BACKENDS="numpy", PYTHONPATH=str(ROOT))
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    pasted = [subprocess.run(["bash", "-c", line], cwd=repo, env=env, capture_output=True,
                             text=True, timeout=900)
              for line in [lines[0].removeprefix(". .venv/bin/activate && "), *lines[1:]]]
    env.update(MLPBENCH_GRID="quick")
    done = subprocess.run([*asv, "run", "--show-stderr", "--skip-existing", "-b",
                           "time_train_step", "-a", "rounds=1", "HEAD~3..HEAD"], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    return repo, commits, asv, env, list(zip(lines, pasted))


def run_in(repo: Path, *argv: str) -> subprocess.CompletedProcess:
    # -P: this checkout's mlpbench, not the copy in the scratch repository
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-P", "-m", "mlpbench", *argv], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_history_of_a_real_asv_run(measured):
    repo, commits, _, _, _ = measured
    done = run_in(repo, "history", "--output", "h.png")
    assert done.returncode == 0, done.stderr
    assert re.findall(r"^  ([0-9a-f]{8})  ", done.stdout, re.M)[:3] == [c[:8] for c in commits]
    rows = section(done.stdout, "batch 64, hidden 100, float32")
    assert rows[0].split() == ["commit", "numpy"]
    # five forward passes: the step at batch 64 is well over 10% slower, then fast again
    assert re.search(r" -\d+%\*$", rows[2]) and re.search(r" \+\d+%\*$", rows[3]), rows
    assert (repo / "h.png").stat().st_size > 10_000


@pytest.mark.slow
def test_the_readmes_asv_block_works_as_pasted(measured):
    """In a clone with no results: every line of the block exits 0 (asv compare failed when
    the block measured only the tip), and its history shows the two commits it measured."""
    repo, commits, _, _, pasted = measured
    for line, done in pasted:
        assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    assert (repo / "history.png").stat().st_size > 10_000
    shown = re.findall(r"^  ([0-9a-f]{8})  ", pasted[-1][1].stdout, re.M)
    assert shown[:2] == [c[:8] for c in commits[1:]]


def test_without_asv_history_says_what_to_install(project, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "asv", None)  # import asv -> ImportError, as uninstalled
    status, out, err = run_history(capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "pip install 'mlpbench[asv]'" in err, err
