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
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

import helpers
from helpers import ROOT
from scratch import FORWARD, SLOWER_FORWARD, commit, git, worktree_repository
from mlpbench.commands import regress
from mlpbench.gate import SETTINGS, commits

ONE_POINT = "b64 h100 float32"


def run_regress(argv: list[str], cwd: Path, capsys) -> tuple[int, str, str]:
    """``mlpbench regress ARGV`` in ``cwd``: (exit status, stdout, stderr)."""
    return helpers.run_cli(capsys, "regress", *argv, cwd=cwd)


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
    (["--output", "/no/such/dir/r.json"], "folder '/no/such/dir' does not exist"),
    (["--base", "no-such-revision"], "unknown revision 'no-such-revision'"),
    (["--base", "HEAD", "--head", "HEAD"], "same commit"),
])
def test_bad_input(argv, message, capsys, monkeypatch):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and the repository's history")
    status, _, err = run_regress(["--backend", "numpy", *argv], ROOT, capsys)
    assert status == 2 and err.count("\n") == 1 and message in err, err


def test_without_scipy_the_gate_says_what_to_install(tmp_path):
    # scipy made unimportable in that process alone, as where the gate extra is not installed
    code = ("import sys; sys.modules['scipy'] = None; from mlpbench.cli import main; "
            "sys.exit(main(['regress', '--backend', 'numpy', '--output', 'r.json']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    helpers.assert_one_line_error(done.returncode, done.stderr, "needs SciPy",
                                  "pip install 'mlpbench[gate]'")
    assert done.stdout == "" and not (ROOT / "r.json").exists()


def test_outside_a_git_repository(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    status, _, err = run_regress(["--backend", "numpy"], tmp_path, capsys)
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


def fake_backends(step_s: float, hang: bool = False, known: list[str] | None = None,
                  names_api: bool = False) -> dict[str, str]:
    """The fake ``backends``; with ``known``, one that knows those names alone: told by
    ``names()`` (``names_api``), or by ``get`` refusing the others as older commits did."""
    text = FAKE_BACKENDS.format(step_s=step_s, hang="time.sleep(3600)" if hang else "pass")
    if known is not None:
        text += f"\nKNOWN = {known!r}\n" + (
            "def names():\n    return list(KNOWN)\n" if names_api else
            "def get(name):\n    if name not in KNOWN:\n"
            "        raise KeyError(f'unknown backend {name!r}')\n    return Sleepy()\n")
    return {"backends/__init__.py": text}


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
    c["numpy only"] = commit(repo, fake_backends(0.002, known=["numpy"]),
                             "knows numpy alone (older API: get refuses the others)")
    c["numpy only, names()"] = commit(repo, fake_backends(0.002, known=["numpy"], names_api=True),
                                      "knows numpy alone (names())")
    return repo, c


def gate(repo, commits_, base, head, capsys, monkeypatch, *extra):
    monkeypatch.setattr(regress, "SETTINGS", FAST)
    return run_regress(["--base", commits_[base], "--head", commits_[head], "--backend", "numpy",
                        "--bench", ONE_POINT, *extra], repo, capsys)


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


@pytest.mark.parametrize("output, message", [
    (None, "is a directory"), ("/dev/null", "is a character device"),
    ("/proc/mlpbench-report.json", "cannot create a file in '/proc'")])
def test_an_output_that_cannot_be_written_is_refused_before_measuring(
        output, message, fake_project, capsys, monkeypatch, tmp_path):
    repo, c = fake_project
    status, out, err = gate(repo, c, "base", "identical", capsys, monkeypatch,
                            "--output", output or str(tmp_path))
    helpers.assert_one_line_error(status, err, "--output", message)
    assert out == ""  # nothing measured


def test_the_report_replaces_the_file_by_a_rename(fake_project, capsys, monkeypatch, tmp_path):
    """Written whole then renamed over the old one, as bench writes: a reader or a killed run
    sees the old report or the new, never a part."""
    repo, c = fake_project
    report = tmp_path / "out" / "r.json"
    report.parent.mkdir()
    report.write_text("the old report\n")
    before = report.stat().st_ino
    status, out, err = gate(repo, c, "base", "identical", capsys, monkeypatch,
                            "--output", str(report))
    assert status == 0, out + err
    assert report.stat().st_ino != before and json.loads(report.read_text())["status"] == 0
    assert [p.name for p in report.parent.iterdir()] == ["r.json"]  # no temporary file left


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
    status, out, err = run_regress(["--base", c["base"], "--head", c["hangs"], "--backend", "numpy",
                                "--bench", ONE_POINT], repo, capsys)
    assert status == 2 and err.count("\n") == 1, out + err
    assert f"head {c['hangs'][:8]}" in err and "no answer within 3 s" in err


def test_snapshots_are_kept_per_commit(fake_project, tmp_path):
    repo, c = fake_project
    tree = commits.snapshot(repo, c["slower"], into=tmp_path)
    assert tree == tmp_path / c["slower"] and "STEP_S = 0.004" in \
        (tree / "backends" / "__init__.py").read_text()
    assert commits.snapshot(repo, c["slower"], into=tmp_path) == tree


# -- the snapshot cache: pruned after each run -------------------------------------------

HOUR = 3600.0


def aged(path: Path, seconds: float) -> Path:
    """``path`` made to look last used ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_a_reused_snapshot_is_marked_used(fake_project, tmp_path):
    repo, c = fake_project
    tree = aged(commits.snapshot(repo, c["slower"], into=tmp_path), 5 * HOUR)
    assert commits.snapshot(repo, c["slower"], into=tmp_path) == tree
    assert time.time() - tree.stat().st_mtime < 60


def test_prune_keeps_the_most_recently_used(tmp_path):
    def snap(n: int, age: float) -> Path:
        (tmp_path / f"{n:040x}").mkdir()
        return aged(tmp_path / f"{n:040x}", age)

    young, recent = snap(1, 600), snap(2, 2 * HOUR)
    old = [snap(3, 3 * HOUR), snap(4, 4 * HOUR)]
    in_use = snap(5, 9 * HOUR)  # the current run's, whatever its mtime says
    dead_partial = aged(Path(tempfile.mkdtemp(prefix=".00000007-", dir=tmp_path)), 2 * HOUR)
    live_partial = aged(Path(tempfile.mkdtemp(prefix=".00000008-", dir=tmp_path)), 600)
    (tmp_path / "notes.txt").touch()
    (tmp_path / "not-a-snapshot").mkdir()
    others = [aged(tmp_path / "notes.txt", 9 * HOUR), aged(tmp_path / "not-a-snapshot", 9 * HOUR)]

    assert sorted(commits.prune(2, HOUR, using=[in_use], into=tmp_path)) == old
    assert sorted(tmp_path.iterdir()) == sorted([young, recent, in_use, live_partial, *others])
    assert not dead_partial.exists()
    # Beyond keep, one used within the grace period stays: another run may be measuring it.
    assert commits.prune(0, HOUR, using=[in_use], into=tmp_path) == [recent]
    assert young.is_dir() and in_use.is_dir() and live_partial.is_dir()


def test_a_snapshot_used_while_being_removed_is_put_back(tmp_path):
    tree = tmp_path / ("a" * 40)
    (tree / "backends").mkdir(parents=True)
    chosen_at = aged(tree, 5 * HOUR).stat().st_mtime
    os.utime(tree)  # a concurrent run reuses it after prune chose it
    assert not commits._remove(tree, chosen_at)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a" * 40]
    assert commits._remove(tree, tree.stat().st_mtime) and not list(tmp_path.iterdir())


def test_a_run_prunes_the_cache_to_the_most_recently_used(fake_project, capsys, monkeypatch):
    repo, c = fake_project
    cache = commits.cache_dir()
    for name, age in (("slower", 3), ("broken", 4), ("hangs", 5)):
        aged(commits.snapshot(repo, c[name]), age * HOUR)
    aged(commits.snapshot(repo, c["base"]), 6 * HOUR)  # the oldest, but this run uses it
    dead_partial = aged(Path(tempfile.mkdtemp(prefix=".0123abcd-", dir=cache)), 2 * HOUR)
    monkeypatch.setattr(regress, "SETTINGS", replace(FAST, cache_keep=3))
    status, out, err = run_regress(["--base", c["base"], "--head", c["identical"], "--backend",
                                "numpy", "--bench", ONE_POINT], repo, capsys)
    assert status == 0, out + err
    assert sorted(p.name for p in cache.iterdir()) == \
        sorted(c[name] for name in ("base", "identical", "slower"))
    assert f"removed 2 snapshot(s) used the least recently from {cache}" in out
    assert not dead_partial.exists()


# -- a backend one commit lacks ------------------------------------------------------------

@pytest.fixture
def default_fake(register_backend, monkeypatch):
    """The default backends are numpy and "fake" (known and available to the tree running)."""
    register_backend("FakeBackend")
    monkeypatch.setattr(regress, "SETTINGS", replace(FAST, backends=("numpy", "fake")))


@pytest.mark.parametrize("base, head, side", [("numpy only", "identical", "base"),
                                               ("identical", "numpy only, names()", "head")])
def test_a_default_backend_a_commit_lacks_is_skipped(base, head, side, fake_project, default_fake,
                                                     capsys, monkeypatch, tmp_path):
    repo, c = fake_project
    status, out, err = run_regress(["--base", c[base], "--head", c[head], "--bench", ONE_POINT,
                                "--output", str(tmp_path / "r.json")], repo, capsys)
    assert status == 0 and err.count("\n") == 1, out + err
    lacking = c[base] if side == "base" else c[head]
    assert f"backend 'fake' skipped: {side} {lacking[:8]} lacks it" in err
    assert f"numpy {ONE_POINT}" in out and f"fake {ONE_POINT}" not in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert [p["name"] for p in report["points"]] == [f"numpy {ONE_POINT}"]
    assert "lacks it" in report["skipped"]["fake"]


@pytest.mark.parametrize("base", ["numpy only", "numpy only, names()"])
def test_a_named_backend_base_lacks_is_bad_input(base, fake_project, default_fake, capsys,
                                                 monkeypatch):
    repo, c = fake_project
    status, out, err = run_regress(["--base", c[base], "--head", c["identical"], "--backend",
                                "numpy,fake", "--bench", ONE_POINT], repo, capsys)
    assert status == 2 and err.count("\n") == 1, out + err
    assert f"backend 'fake': base {c[base][:8]} lacks it (named with --backend" in err
    assert "process pairs" not in out  # nothing was timed


def test_no_backend_left_is_bad_input(fake_project, default_fake, capsys, monkeypatch):
    repo, c = fake_project
    monkeypatch.setattr(regress, "SETTINGS", replace(FAST, backends=("fake",)))
    status, out, err = run_regress(["--base", c["numpy only"], "--head", c["identical"]], repo,
                                   capsys)
    assert status == 2 and err.count("\n") == 1, out + err
    assert f"no point to gate: backend 'fake': base {c['numpy only'][:8]} lacks it" in err
    assert "process pairs" not in out


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


@pytest.mark.slow
def test_real_backend_head_adds_named_is_bad_input(history, tmp_path):
    """Head's registry has a backend base's does not; the gate runs from head's checkout."""
    repo, c = history
    registry = (repo / "backends" / "__init__.py").read_text()
    entry = '    "numpy": "backends.numpy_backend:NumpyBackend",\n'
    assert registry.count(entry) == 1, "backends/__init__.py changed: update entry"
    added = entry + '    "numpy-again": "backends.numpy_backend:NumpyBackend",\n'
    git(repo, "switch", "-q", "-c", "adds", "main")
    try:
        head = commit(repo, {"backends/__init__.py": registry.replace(entry, added)}, "adds one")
    finally:
        git(repo, "switch", "-q", "main")
    checkout = tmp_path / "head"
    git(repo, "worktree", "add", "-q", str(checkout), head)
    done = subprocess.run([sys.executable, "-m", "mlpbench", "regress", "--base", c["base"],
                           "--head", head, "--backend", "numpy,numpy-again", "--bench", ONE_POINT],
                          cwd=checkout, env=dict(os.environ, PYTHONPATH=str(checkout)),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stdout + done.stderr
    assert (f"backend 'numpy-again': base {c['base'][:8]} lacks it (named with --backend"
            in done.stderr)
    assert "process pairs" not in done.stdout


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


# -- what a run reports: the minimum detectable effect, Markdown, two environments -------

def test_a_slower_run_writes_its_verdict_as_markdown(fake_project, capsys, monkeypatch, tmp_path):
    repo, c = fake_project
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier steps' summary\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    status, out, err = gate(repo, c, "base", "slower", capsys, monkeypatch,
                            "--markdown", str(tmp_path / "gate.md"),
                            "--output", str(tmp_path / "r.json"))
    assert status == 1, out + err
    text = (tmp_path / "gate.md").read_text()
    assert text.startswith("## mlpbench regress: SLOWER\n")
    assert f"### Slower\n\n**numpy {ONE_POINT}**" in text
    assert f"| numpy {ONE_POINT} |" in text and "| slower |" in text
    # Appended to the job's summary, after what was there.
    assert summary.read_text() == "earlier steps' summary\n" + text
    (point,) = json.loads((tmp_path / "r.json").read_text())["points"]
    assert 0 < point["min_detectable_effect"] < 1
    line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"numpy {ONE_POINT}"))
    assert f"detects {point['min_detectable_effect']:.1%}" in line


def test_two_interpreters_on_one_commit_are_compared(fake_project, capsys, monkeypatch, tmp_path):
    # The same Python under two paths: two "environments" that differ in nothing but the path,
    # so the run must pass, with base defaulting to head and each side's Python reported.
    repo, c = fake_project
    other = tmp_path / "python-other"
    other.symlink_to(sys.executable)
    monkeypatch.setattr(regress, "SETTINGS", FAST)
    status, out, err = run_regress(["--head", c["base"], "--head-python", str(other),
                                    "--backend", "numpy", "--bench", ONE_POINT, "--output",
                                    str(tmp_path / "r.json")], repo, capsys)
    assert status == 0, out + err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["base"] == report["head"] == c["base"]
    assert report["environments"]["head"]["python"] == str(other)
    assert report["environments"]["base"]["python"] == sys.executable
    assert f"mlpbench regress: head: python {sys.version.split()[0]} ({other})" in out


@pytest.mark.parametrize("argv, message", [
    (["--base-python", "/no/such/python"], "--base-python '/no/such/python': no such executable"),
    (["--head-python", "/bin/true"], "--head-python '/bin/true' is not a Python 3 interpreter"),
    (["--markdown", "/no/such/dir/gate.md"], "folder '/no/such/dir' does not exist"),
    (["--markdown", "/tmp"], "cannot write --markdown '/tmp': it is a directory"),
])
def test_bad_environment_and_report_flags(argv, message, capsys, monkeypatch):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and the repository's history")
    status, _, err = run_regress(["--backend", "numpy", *argv], ROOT, capsys)
    assert status == 2 and err.count("\n") == 1 and message in err, err


SLOW_PIECE = ("    def forward(x, W, S):\n        u = x @ W\n",
              "    def forward(x, W, S):\n        for _ in range(3):  # slower on purpose\n"
              "            u = x @ W\n")


@pytest.mark.slow
def test_real_slower_piece_is_named(history):
    repo, c = history
    step = (repo / "kernels" / "step.py").read_text()
    assert step.count(SLOW_PIECE[0]) == 1, "kernels/step.py changed: update SLOW_PIECE"
    git(repo, "switch", "-q", "-c", "slower-piece", "main")
    try:
        head = commit(repo, {"kernels/step.py": step.replace(*SLOW_PIECE)}, "a slower forward")
    finally:
        git(repo, "switch", "-q", "main")
    done = real_gate(repo, c["base"], head)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"numpy {ONE_POINT}: the piece that moved: forward (" in done.stdout


def test_pieces_are_ranked_by_the_time_they_added():
    from mlpbench.gate.attribution import ranked

    seconds = {"forward": {"base": [1.0, 1.0, 1.0], "head": [2.0, 2.0, 2.0]},
               "grad_h": {"base": [0.5] * 3, "head": [0.6] * 3},
               "loss_and_grad": {"base": [0.2] * 3, "head": [0.1] * 3}}
    effects = {"forward": [0.69, 0.70, 0.69], "grad_h": [0.18, 0.19, 0.18],
               "loss_and_grad": [-0.69, -0.70, -0.69]}
    rows = ranked(effects, seconds, SETTINGS)
    assert [r["piece"] for r in rows] == ["forward", "grad_h", "loss_and_grad"]
    assert rows[0]["added_s"] == 1.0 and abs(rows[0]["share"] - 1.0 / 1.1) < 1e-9
    assert abs(rows[2]["share"] + 0.1 / 1.1) < 1e-9  # a piece that got faster: a negative share
    assert 1.9 < rows[0]["ratio"] < 2.1 and rows[0]["ratio_interval"][0] < rows[0]["ratio"]


def test_markdown_of_a_run_that_could_not_measure():
    from mlpbench.gate.markdown import summary

    report = {"base": "a" * 40, "head": "b" * 40, "status": 2, "elapsed_s": float("nan"),
              "settings": {"min_effect": 0.05, "alpha": 0.05, "threads": 1},
              "error": "head bbbbbbbb, backend numpy: could not load backend",
              "points": [{"name": "numpy b64 h100 float32", "verdict": "inconclusive"}]}
    text = summary(report)
    assert text.startswith("## mlpbench regress: could not measure\n")
    assert "Could not measure: head bbbbbbbb, backend numpy: could not load backend" in text
    assert "| numpy b64 h100 float32 | – | – | – | – | inconclusive | – |" in text


@pytest.mark.slow
def test_real_dependency_change_runs_each_side_in_its_own_environment(history, tmp_path):
    """Head pins another numpy: each side gets an environment of its own declarations, and the
    report names each side's numpy. Real pip installs (the package index, or pip's cache)."""
    import re as regex
    from importlib import metadata

    repo, c = history
    other = "2.3.5" if metadata.version("numpy") != "2.3.5" else "2.3.4"
    pyproject = (repo / "pyproject.toml").read_text()
    assert pyproject.count('"numpy>=1.26"') == 1, "pyproject.toml changed: update the pin"
    git(repo, "switch", "-q", "-c", "pins-numpy", "main")
    try:
        head = commit(repo, {"pyproject.toml": pyproject.replace('"numpy>=1.26"',
                                                                 f'"numpy=={other}"')},
                      f"numpy {other}")
    finally:
        git(repo, "switch", "-q", "main")
    env = dict(os.environ, PYTHONPATH=str(ROOT), MLPBENCH_GATE_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "mlpbench", "regress", "--base", c["base"],
                           "--head", head, "--backend", "numpy", "--bench", ONE_POINT,
                           "--budget", "20", "--output", str(tmp_path / "r.json")],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "each side runs in an environment built from its own" in done.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    sides = report["environments"]
    assert sides["head"]["libraries"]["numpy"] == other
    assert sides["base"]["libraries"]["numpy"] == metadata.version("numpy")
    assert f"numpy=={other}" in sides["head"]["packages"]
    assert regex.search(rf"head: python \S+ \(.*environments/\w+/bin/python\); .*numpy {other}",
                        done.stdout)


def test_workers_import_what_the_users_pythonpath_holds(tmp_path, monkeypatch):
    """A package reachable only through the user's PYTHONPATH (wheels unpacked into a folder,
    as on a machine without pip) imports in the gate's workers; the snapshot still comes first."""
    from mlpbench.gate import runner

    site, tree = tmp_path / "site", tmp_path / "tree"
    (site / "only_here").mkdir(parents=True)
    (site / "only_here" / "__init__.py").write_text("WHERE = 'site'\n")
    (tree / "only_here").mkdir(parents=True)
    (tree / "only_here" / "__init__.py").write_text("WHERE = 'tree'\n")
    (site / "beside").mkdir()
    (site / "beside" / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(site))
    env = runner._environment(tree, SETTINGS)
    done = subprocess.run([sys.executable, "-c", "import beside, only_here; print(only_here.WHERE)"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tree"
