"""The regression gate: ``asv continuous`` between two commits, and what its output means.

asv's exit status alone cannot be trusted to tell a regression from a broken environment:
``asv continuous`` exits 1 on a significant slowdown, but also on any asv error (an unknown
commit, no machine information, a suite that no commit could build or import), and 2 when a
benchmark failed or a commit did not build, without printing a comparison. ``classify``
reads the output to tell these apart; it is a pure function so tests can feed it samples.
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mlpbench.errors import UsageError

__all__ = ["DEFAULT_FACTOR", "ERROR", "GATE_ROUNDS", "PASS", "REGRESSION", "TIME_BENCHMARKS",
           "Failure", "Row", "Verdict", "asv_command", "bench_regex", "classify", "default_base",
           "ensure_machine", "parse_failures", "parse_rows", "repository_root", "resolve_commit",
           "run_continuous"]

PASS, REGRESSION, ERROR = 0, 1, 2

#: A time_* benchmark slower than base by more than this fails. Chosen from measured noise on a
#: 2-core machine shared with other work: identical code never exceeded it (the worst significant
#: change seen was 1.32x; scripts/regress-noise.py measures it again).
DEFAULT_FACTOR = 1.5
#: Rounds per commit, interleaved base/head: a burst of load then hits both commits alike
#: (2 rounds let 1.6x noise through on a shared machine, 4 rounds 1.3x).
GATE_ROUNDS = 4

#: Only the time_* benchmarks gate: asv calls a higher track_* value worse, which for a rate is not.
TIME_BENCHMARKS = r"\.time_"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_COMMIT = re.compile(r"· For \S+ commit (?P<commit>[0-9a-f]+(?: <[^>]*>)?)")
_FAILED = re.compile(r"·{3} (?P<name>\S+)\s+(?:(?P<count>\d+/\d+) )?failed\s*$")
_SKIPPING_ENV = re.compile(r"·· Skipping (?P<env>\S+)\s*$")
_PROGRESS = re.compile(r"^\[\s*[\d.]+%\]\s+·{1,3}\s+(?!=)")  # a new step; "··· ===" is a table
_EXCEPTION = re.compile(r"^\s*[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b(?::.*)?$")
_TABLE_ROW = re.compile(r"^\|\s*(?P<mark>[+\-!*x ]?)\s*\|\s*(?P<before>[^|]*?)\s*\|"
                        r"\s*(?P<after>[^|]*?)\s*\|\s*(?P<ratio>[^|]*?)\s*\|"
                        r"\s*(?P<name>[^|]*?)\s*\|$")


@dataclass(frozen=True)
class Row:
    """One line of asv's comparison table."""

    mark: str  # '+' slower, '-' faster, '!' newly failing, ' ' not significantly changed
    before: str
    after: str
    ratio: float | None  # after / before; None where either side has no number
    name: str

    @property
    def measured(self) -> bool:
        return self.ratio is not None


@dataclass(frozen=True)
class Failure:
    """A commit that did not build, or a benchmark that failed on a commit."""

    commit: str
    what: str  # "build" or the benchmark's name
    reason: str

    def __str__(self) -> str:
        if self.what == "build":
            return f"commit {self.commit} did not build: {self.reason}"
        return f"{self.what} failed on commit {self.commit}: {self.reason}"


@dataclass
class Verdict:
    """The gate's decision: PASS, REGRESSION or ERROR, with the lines that explain it."""

    status: int
    message: str
    regressions: list[Row] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    compared: int = 0


def _ratio(text: str) -> float | None:
    try:
        return float(text.lstrip("~"))
    except ValueError:
        return None


def parse_rows(output: str) -> list[Row]:
    """The rows of asv's comparison table (github format), header and rule excluded."""
    rows = []
    for line in _ANSI.sub("", output).splitlines():
        m = _TABLE_ROW.match(line.strip())
        if not m or m["name"].startswith("Benchmark") or set(m["name"]) <= {"-"}:
            continue
        rows.append(Row(m["mark"] or " ", m["before"], m["after"], _ratio(m["ratio"]), m["name"]))
    return rows


def _block_error(lines: list[str], start: int) -> str:
    """The last exception line of the block after ``start`` (up to asv's next step)."""
    found = []
    for line in lines[start + 1:]:
        if _PROGRESS.match(line) or _COMMIT.search(line):
            break
        if _EXCEPTION.match(line) or "asv: benchmark timed out" in line:
            found.append(line.strip())
        elif line.strip().startswith("ERROR: ") and line.strip() != "ERROR: Exception:":
            found.append(line.strip())
    return found[-1] if found else "see asv's output above"


def parse_failures(output: str) -> list[Failure]:
    """Builds that failed and benchmarks that failed, each with the commit it happened on."""
    lines = _ANSI.sub("", output).splitlines()
    failures: list[Failure] = []
    commit = "?"
    build_error_at = None
    for i, line in enumerate(lines):
        if m := _COMMIT.search(line):
            commit, build_error_at = m["commit"], None
        elif "·· Error running" in line and "[" in line:
            build_error_at = i
        elif _SKIPPING_ENV.search(line):
            reason = _block_error(lines, build_error_at) if build_error_at is not None else \
                "asv could not build or install it"
            failure = Failure(commit, "build", reason)
            if failure not in failures:
                failures.append(failure)
        elif (m := _FAILED.search(line)) and " skipped" not in line:
            name = m["name"] + (f" ({m['count']} parameter sets)" if m["count"] else "")
            failures.append(Failure(commit, name, _block_error(lines, i)))
    return failures


def _asv_errors(output: str) -> str:
    """What asv said before giving up, as one line: its last message, and the last exception."""
    lines = [ln.strip() for ln in _ANSI.sub("", output).splitlines() if ln.strip()]
    said = [ln.lstrip("· ") for ln in lines if ln.startswith("·")]
    last = said[-1] if said else (lines[-1] if lines else "asv printed nothing")
    exceptions = [ln for ln in lines if _EXCEPTION.match(ln)]
    if exceptions and exceptions[-1] not in last:
        return f"{last} ({exceptions[-1]})"
    return last


def classify(returncode: int, output: str, factor: float, regex: str = TIME_BENCHMARKS) -> Verdict:
    """Turn ``asv continuous``'s exit status and output into the gate's verdict.

    Only the table rows matching ``regex`` (asv's -b) count: asv also shows, and counts in its
    exit status, results kept from earlier runs of benchmarks this run did not select.
    """
    failures = parse_failures(output)
    rows = [r for r in parse_rows(output) if re.search(regex, r.name)]
    compared = sum(r.measured for r in rows)
    slower = [r for r in rows if r.mark == "+"]
    if returncode == 2 or failures:
        if not failures:
            return Verdict(ERROR, f"asv could not run the benchmarks: {_asv_errors(output)}")
        more = f" (and {len(failures) - 1} more failures)" if len(failures) > 1 else ""
        return Verdict(ERROR, f"{failures[0]}{more}", failures=failures)
    table_done = ("PERFORMANCE DECREASED." in output or "PERFORMANCE INCREASED." in output
                  or "BENCHMARKS NOT SIGNIFICANTLY CHANGED." in output)
    if returncode not in (0, 1) or not table_done:
        return Verdict(ERROR, f"asv continuous failed (exit status {returncode}): "
                              f"{_asv_errors(output)}")
    if slower:
        return Verdict(REGRESSION, f"{len(slower)} time_* benchmark(s) slower than base by "
                                   f"more than {factor:g}x", regressions=slower, compared=compared)
    if compared == 0:
        return Verdict(ERROR, "no time_* benchmark was measured on both commits (all skipped? "
                              "check MLPBENCH_BACKENDS and --bench)")
    return Verdict(PASS, f"no time_* benchmark slower than base by more than {factor:g}x "
                         f"({compared} compared)", compared=compared)


# -- running asv ------------------------------------------------------------------------


def asv_command() -> list[str]:
    """How to run the asv installed beside mlpbench (one line and exit 2 when it is missing)."""
    for module in ("asv", "virtualenv"):
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"{module} is not installed in {sys.prefix}; "
                             "pip install 'mlpbench[asv]'")
    return [sys.executable, "-m", "asv"]


def _git(root: Path | None, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except FileNotFoundError:
        raise UsageError("git is not installed (the regression gate compares git commits)") \
            from None


def repository_root(start: Path | None = None) -> Path:
    """The top of the git repository around ``start``, which must hold asv.conf.json."""
    done = _git(start, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise UsageError(f"not in a git repository ({Path(start or '.').resolve()}); "
                         "the regression gate compares git commits")
    root = Path(done.stdout.strip())
    if not (root / "asv.conf.json").is_file():
        raise UsageError(f"no asv.conf.json at the top of the repository {root}")
    return root


def resolve_commit(root: Path, rev: str) -> str:
    """The full hash of ``rev`` (one line and exit 2 when git does not know it)."""
    done = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if done.returncode != 0:
        raise UsageError(f"unknown revision {rev!r} in {root}")
    return done.stdout.strip()


def default_base(root: Path, head: str, main: str = "main") -> str:
    """The merge base of ``head`` with the main branch, or ``head``'s parent when that is head."""
    for ref in (main, f"origin/{main}"):
        done = _git(root, "merge-base", head, ref)
        if done.returncode == 0 and done.stdout.strip() and done.stdout.strip() != head:
            return done.stdout.strip()
    done = _git(root, "rev-parse", "--verify", "--quiet", f"{head}~1^{{commit}}")
    if done.returncode != 0:
        raise UsageError(f"commit {head[:8]} has no parent to compare with; pass --base REV")
    return done.stdout.strip()


def ensure_machine(asv: list[str], root: Path) -> str | None:
    """Make sure asv knows this machine (else it asks questions, or exits 1 without a tty).

    Runs ``asv machine --yes`` only when ``~/.asv-machine.json`` has no entry asv would use,
    so a machine description the user wrote is kept. Returns what was done, or None.
    """
    path = Path("~/.asv-machine.json").expanduser()
    try:
        known = json.loads(path.read_text())
        known.pop("version", None)
    except (OSError, ValueError):
        known = {}
    if platform.uname().node in known or len(known) == 1:
        return None
    done = subprocess.run([*asv, "machine", "--yes"], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise UsageError(f"asv machine --yes failed: {_asv_errors(done.stdout + done.stderr)}")
    return f"described this machine to asv with defaults (asv machine --yes -> {path})"


def bench_regex(user: str | None) -> str:
    """asv's -b regex: the time_* benchmarks, narrowed by the user's regex if given."""
    if user is None:
        return TIME_BENCHMARKS
    try:
        re.compile(user)
    except re.error as exc:
        raise UsageError(f"--bench {user!r} is not a regular expression: {exc}") from None
    return rf"^(?=.*{TIME_BENCHMARKS})(?=.*(?:{user}))"


def run_continuous(asv: list[str], root: Path, base: str, head: str, *, factor: float,
                   regex: str) -> tuple[int, str]:
    """Run ``asv continuous`` with its output shown as it comes; return (status, output)."""
    command = [*asv, "continuous", "--factor", str(factor), "--bench", regex,
               "--attribute", f"rounds={GATE_ROUNDS}", "--interleave-rounds",
               "--no-only-changed", "--sort", "ratio", "--show-stderr", base, head]
    env = dict(os.environ)
    # asv looks up pythonX.Y on PATH for its virtualenv: make it this interpreter's.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    lines = []
    with subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
        sys.stdout.flush()
    return proc.returncode, "".join(lines)


# -- a scratch history of the working tree, for the gate's tests and its noise measurement ------

#: What CI's gate measures (scripts/ci-benchmarks.sh): numpy, the quick grid, one thread.
CI_GATE_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                       "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
                       "MLPBENCH_BACKENDS": "numpy", "MLPBENCH_GRID": "quick"}


def shared_env_dir() -> Path:
    """asv's environments shared between runs on this machine, so only the first installs."""
    return Path(os.environ.get("MLPBENCH_ASV_ENV_DIR")
                or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
                / "mlpbench" / "asv-env")


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` (with an identity for commits); its stdout."""
    return subprocess.run(["git", "-c", "user.name=mlpbench", "-c", "user.email=mlpbench@localhost",
                           *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def snapshot_repository(source: Path, target: Path, env_dir: Path) -> dict[str, str]:
    """Make ``target`` a git repository of ``source``'s working tree (tracked files and untracked
    ones git does not ignore), committed as "base" and again, unchanged, as "identical"; its
    ``.asv/env`` links to ``env_dir``. Returns the two commits."""
    files = git(source, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        if (source / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)
    git(target, "init", "-q", "-b", "main")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "base")
    git(target, "commit", "-q", "--allow-empty", "-m", "identical code")
    (target / ".asv").mkdir()
    env_dir.mkdir(parents=True, exist_ok=True)
    (target / ".asv" / "env").symlink_to(env_dir, target_is_directory=True)
    return {"base": git(target, "rev-parse", "HEAD~1").strip(),
            "identical": git(target, "rev-parse", "HEAD").strip()}
