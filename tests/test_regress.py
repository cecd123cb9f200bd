"""The regression gate end to end: bad input (fast), a scratch project whose step sleeps (fast),
and real commits of this tree (slow).

The scratch project is a fake, and says so: its ``backends`` is a few lines in the older API
(``backends.get``, ``synchronize()`` without arrays) whose "numpy" step sleeps for a committed
time, so that base and head differ by a known factor with no real library, in seconds.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import helpers
from helpers import ROOT
from scratch import FORWARD, SLOWER_FORWARD, commit, git, worktree_repository
from mlpbench.commands import regress
from mlpbench.gate import SETTINGS, commits

ONE_POINT = "b64 h100 float32"


def run_cli(argv: list[str], cwd: Path, capsys, monkeypatch) -> tuple[int, str, str]:
    """``mlpbench regress ARGV`` in ``cwd``: (exit status, stdout, stderr); argparse's exit too."""
    monkeypatch.chdir(cwd)
    return helpers.run_cli(capsys, "regress", *argv)


@pytest.fixture(autouse=True)
def gate_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPBENCH_GATE_CACHE", str(tmp_path / "gate-cache"))


# -- bad input: one line, exit 2, before any work ---------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--base", ""], "--base: must not be empty"),
    (["--head", " "], "--head: must not be empty"),
    (["--bench", ""], "--bench: must not be empty"),
    (["--output", ""], "--output: must be a file path"),
    (["--min-effect", "0"], "must be a finite positive number"),
    (["--min-effect", "1.5"], "must be a fraction below 1"),
    (["--budget", "-1"], "must be a finite positive number"),
    (["--backend", "nosuch"], "unknown backend 'nosuch'"),
    (["--backend", "numpy,"], "empty item in list"),
    (["--bench", "float("], "is not a regular expression"),
    (["--bench", "float16"], "no point to gate"),
    (["--output", "/no/such/dir/r.json"], "no directory '/no/such/dir'"),
    (["--base", "no-such-revision"], "unknown revision 'no-such-revision'"),
    (["--base", "HEAD", "--head", "HEAD"], "same commit"),
])
def test_bad_input(argv, message, capsys, monkeypatch):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and the repository's history")
    status, _, err = run_cli(["--backend", "numpy", *argv], ROOT, capsys, monkeypatch)
    assert status == 2 and err.count("\n") == 1 and message in err, err


def test_outside_a_git_repository(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    status, _, err = run_cli(["--backend", "numpy"], tmp_path, capsys, monkeypatch)
    assert status == 2 and err.count("\n") == 1 and "not in a git repository" in err


# -- a scratch project whose step sleeps (fake backend, real workers, real statistics) ---

FAKE_KERNELS = '''\
"""A fake project's kernels: the problem only (the fake step does not use make_step)."""
def make_problem(rng, batch_size, n_in, hidden, n_out, *, init="normal"):
    shapes = {"x": (batch_size, n_in), "t": (batch_size, n_out), "W": (n_in, hidden),
              "S": (hidden, n_out)}
    return {k: rng.standard_normal(s) for k, s in shapes.items()}

def make_step(xp):
    return None
'''

FAKE_BACKENDS = '''\
"""A fake project's backends, in the older API: get() and synchronize() without arrays."""
import contextlib
import time

import numpy as np

STEP_S = {step_s!r}

class Sleepy:
    version = "0"
    def available(self):
        return True, ""
    def _import(self):
        {hang}
        return np
    def threads(self, n):
        return contextlib.nullcontext({{}})
    def asarray(self, array):
        return array
    def to_numpy(self, array):
        return np.asarray(array)
    def synchronize(self):
        pass
    def prepare(self, make_step, *, lr, dtype):
        def step(x, t, W, S):
            time.sleep(STEP_S)
            return W, S, np.float64(1.0)
        return step

def get(name):
    return Sleepy()
'''

#: The gate's settings, made small for a step of a few ms.
FAST = replace(SETTINGS, process_pairs=3, more_process_pairs=2, max_process_pairs=6,
               sample_pairs=12, warmup_pairs=2, sample_s=0.006, min_steps=2, budget_s=20.0,
               start_timeout_s=30.0, prepare_timeout_s=30.0, sample_timeout_s=5.0)


def fake_backends(step_s: float, hang: bool = False) -> dict[str, str]:
    return {"backends/__init__.py": FAKE_BACKENDS.format(
        step_s=step_s, hang="time.sleep(3600)" if hang else "pass")}


@pytest.fixture(scope="module")
def fake_project(tmp_path_factory):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path_factory.mktemp("fake-project")
    git(repo, "init", "-q", "-b", "main")
    c = {"base": commit(repo, {"kernels/__init__.py": FAKE_KERNELS, **fake_backends(0.002)},
                        "base: a 2 ms step")}
    c["identical"] = commit(repo, {}, "identical code")
    c["slower"] = commit(repo, fake_backends(0.004), "a 4 ms step")
    c["broken"] = commit(repo, {"backends/__init__.py": "def get(name:\n"}, "a syntax error")
    c["hangs"] = commit(repo, fake_backends(0.002, hang=True), "a backend that never loads")
    return repo, c


def gate(repo, commits_, base, head, capsys, monkeypatch, *extra):
    monkeypatch.setattr(regress, "SETTINGS", FAST)
    return run_cli(["--base", commits_[base], "--head", commits_[head], "--backend", "numpy",
                    "--bench", ONE_POINT, *extra], repo, capsys, monkeypatch)


def test_identical_code_passes(fake_project, capsys, monkeypatch, tmp_path):
    repo, c = fake_project
    status, out, err = gate(repo, c, "base", "identical", capsys, monkeypatch,
                            "--output", str(tmp_path / "r.json"))
    assert status == 0, out + err
    assert f"numpy {ONE_POINT}" in out and "mlpbench regress: pass" in out
    report = json.loads((tmp_path / "r.json").read_text())
    (point,) = report["points"]
    assert report["status"] == 0 and report["base"] == c["base"]
    assert point["verdict"] in ("pass", "inconclusive") and point["process_pairs"] >= 3
    assert 0.9 < point["ratio"] < 1.1


def test_a_slower_step_fails_naming_the_point(fake_project, capsys, monkeypatch):
    repo, c = fake_project
    status, out, err = gate(repo, c, "base", "slower", capsys, monkeypatch)
    assert status == 1, out + err
    assert f"mlpbench regress: SLOWER: numpy {ONE_POINT}" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"numpy {ONE_POINT}"))
    ratio = float(line.split("ratio ")[1].split()[0])
    assert 1.7 < ratio < 2.3 and line.endswith("slower (3 process pairs)")


def test_a_commit_that_does_not_import_could_not_be_measured(fake_project, capsys, monkeypatch):
    repo, c = fake_project
    status, out, err = gate(repo, c, "base", "broken", capsys, monkeypatch)
    assert status == 2 and err.count("\n") == 1, out + err
    assert f"head {c['broken'][:8]}, backend numpy: could not load backend" in err
    assert "SyntaxError" in err


def test_a_hung_side_is_killed_and_could_not_be_measured(fake_project, capsys, monkeypatch):
    repo, c = fake_project
    monkeypatch.setattr(regress, "SETTINGS", replace(FAST, start_timeout_s=3.0))
    status, out, err = run_cli(["--base", c["base"], "--head", c["hangs"], "--backend", "numpy",
                                "--bench", ONE_POINT], repo, capsys, monkeypatch)
    assert status == 2 and err.count("\n") == 1, out + err
    assert f"head {c['hangs'][:8]}" in err and "no answer within 3 s" in err


def test_snapshots_are_kept_per_commit(fake_project, tmp_path):
    repo, c = fake_project
    tree = commits.snapshot(repo, c["slower"], into=tmp_path)
    assert tree == tmp_path / c["slower"] and "STEP_S = 0.004" in \
        (tree / "backends" / "__init__.py").read_text()
    assert commits.snapshot(repo, c["slower"], into=tmp_path) == tree
    assert not commits.dependencies_differ(repo, c["base"], c["slower"])


# -- real commits of this tree (slow) ----------------------------------------------------

@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A repository of the working tree: base, identical code, a slower step, a broken step."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and the repository's working tree")
    repo = tmp_path_factory.mktemp("history")
    c = {"base": worktree_repository(repo)}
    c["identical"] = commit(repo, {}, "identical code")
    step = (repo / "kernels" / "step.py").read_text()
    assert step.count(FORWARD) == 1, "kernels/step.py changed: update FORWARD"
    git(repo, "switch", "-q", "-c", "slower")
    c["slower"] = commit(repo, {"kernels/step.py": step.replace(FORWARD, SLOWER_FORWARD)},
                         "a slower step")
    git(repo, "switch", "-q", "-c", "broken", "main")
    c["broken"] = commit(repo, {"kernels/step.py": step + "\ndef broken(:\n"}, "a broken step")
    git(repo, "switch", "-q", "main")  # the command itself runs from this tree
    return repo, c


def real_gate(repo: Path, base: str, head: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "mlpbench", "regress", "--base", base,
                           "--head", head, "--backend", "numpy", "--bench", ONE_POINT,
                           "--budget", "30"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_real_identical_code_passes(history):
    repo, c = history
    done = real_gate(repo, c["base"], c["identical"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mlpbench regress: pass" in done.stdout


@pytest.mark.slow
def test_real_slower_step_fails(history):
    repo, c = history
    done = real_gate(repo, c["base"], c["slower"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"mlpbench regress: SLOWER: numpy {ONE_POINT}" in done.stdout


@pytest.mark.slow
def test_real_broken_commit_could_not_be_measured(history):
    repo, c = history
    done = real_gate(repo, c["base"], c["broken"])
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stdout + done.stderr
    assert f"head {c['broken'][:8]}" in done.stderr and "SyntaxError" in done.stderr


def test_uncommitted_changes_to_measured_code_are_named(fake_project, capsys, monkeypatch):
    """The gate compares commits: what is not committed is not measured, and it says so."""
    repo, c = fake_project
    edited = repo / "kernels" / "scratch_edit.py"
    edited.write_text("x = 1\n")
    try:
        status, out, err = gate(repo, c, "base", "identical", capsys, monkeypatch)
    finally:
        edited.unlink()
    assert status == 0, out + err
    assert "not measured: uncommitted changes in kernels/scratch_edit.py" in out
    status, out, _ = gate(repo, c, "base", "identical", capsys, monkeypatch)
    assert "uncommitted" not in out
