"""Finding and reading asv's results of the step, through asv's own reader (``asv.results``)."""
from __future__ import annotations

import ast
import itertools
import math
import platform
import sys
from pathlib import Path

from mlpbench.errors import UsageError
from mlpbench.history import BENCHMARK, PARAM_NAMES, Commit, Measurement

__all__ = ["find_results_dir", "load_history", "pick_machine"]


def _asv():
    try:
        from asv import results, util
    except ImportError:
        raise UsageError("history reads asv's results with asv, which is not installed; "
                         "pip install 'mlpbench[asv]'") from None
    return results, util


def _read_conf(path: Path) -> dict:
    """asv.conf.json, read as asv reads it (JSON with comments)."""
    _, util = _asv()
    try:
        return util.load_json(str(path), js_comments=True)
    except (util.UserError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {' '.join(str(exc).split())}") from None

def find_results_dir(results: str | None, cwd: Path) -> Path:
    """The results folder: ``results`` if given, else ./asv.conf.json's results_dir."""
    if results is None:
        conf = cwd / "asv.conf.json"
        if not conf.is_file():
            raise UsageError(f"no asv.conf.json in {cwd}: run in the repository, or pass "
                             "--results DIR")
        folder = cwd / _read_conf(conf).get("results_dir", "results")
    else:
        folder = Path(results)
    if not folder.is_dir():
        raise UsageError(f"no asv results folder at {folder} (asv run writes it)")
    return folder


def _machines(folder: Path) -> list[str]:
    """The machine folders: those holding asv's machine.json."""
    return sorted(p.name for p in folder.iterdir() if (p / "machine.json").is_file())


def pick_machine(folder: Path, name: str | None) -> Path:
    """The folder of machine ``name``; by default this machine's, or the only one."""
    machines = _machines(folder)
    if not machines:
        raise UsageError(f"no asv results in {folder}: no machine folder with a machine.json "
                         "(asv run writes them)")
    if name is None:
        name = platform.node() if platform.node() in machines else None
        if name is None and len(machines) == 1:
            name = machines[0]
        if name is None:
            raise UsageError(f"results of several machines in {folder} ({', '.join(machines)})"
                             "; choose one with --machine")
    if name not in machines:
        raise UsageError(f"no results for machine {name!r} in {folder}; machines there: "
                         f"{', '.join(machines)}")
    return folder / name


def _param_names(folder: Path) -> tuple[str, ...]:
    """The benchmark's parameter names as asv discovered them (benchmarks.json), if known."""
    _, util = _asv()
    try:
        known = util.load_json(str(folder / "benchmarks.json"))
        return tuple(known[BENCHMARK]["param_names"])
    except (OSError, ValueError, KeyError, TypeError, util.UserError):
        return PARAM_NAMES


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _measurements(loaded, names: tuple[str, ...]) -> list[Measurement]:
    """The measured points of ``BENCHMARK`` in one loaded asv ``Results``."""
    stored = loaded.get_result_params(BENCHMARK) or []
    params = [[ast.literal_eval(v) for v in values] for values in stored]
    if sorted(names) != sorted(PARAM_NAMES) or len(params) != len(names):
        raise ValueError(f"parameters {list(names)} are not {list(PARAM_NAMES)}")
    values = loaded.get_result_value(BENCHMARK, stored) or []
    stats = loaded.get_result_stats(BENCHMARK, stored) or []
    found = []
    # one value per parameter combination, in itertools.product order; None a failure, NaN a skip
    for combo, value, stat in zip(itertools.product(*params), values,
                                  itertools.chain(stats, itertools.repeat(None))):
        value = _number(value)
        if value is None or value <= 0:
            continue
        stat = stat or {}
        p = dict(zip(names, combo))
        lo, hi = _number(stat.get("ci_99_a")), _number(stat.get("ci_99_b"))
        found.append(Measurement(
            str(p["backend"]), int(p["batch_size"]), int(p["hidden"]), str(p["dtype"]),
            str(loaded.env_name), value, _number(stat.get("q_25")), _number(stat.get("q_75")),
            (lo, hi) if lo is not None and hi is not None else None))
    return found


def load_history(machine_dir: Path) -> dict[str, Commit]:
    """Commit hash -> Commit, from every results file of one machine folder.

    A file asv cannot read is skipped with one line on stderr; a folder with no results of
    ``BENCHMARK`` at all is a UsageError.
    """
    results, util = _asv()
    names = _param_names(machine_dir.parent)
    commits: dict[str, Commit] = {}
    files = sorted(p for p in machine_dir.glob("*.json") if p.name != "machine.json")
    for path in files:
        try:
            loaded = results.Results.load(str(path))
            if BENCHMARK not in loaded.get_all_result_keys():
                continue
            found = _measurements(loaded, names)
        except (util.UserError, OSError, ValueError, KeyError, TypeError, SyntaxError) as exc:
            message = " ".join(str(exc).split())
            print(f"mlpbench history: skipping {path}: {type(exc).__name__}: {message}",
                  file=sys.stderr)
            continue
        commit = commits.setdefault(loaded.commit_hash, Commit(loaded.commit_hash, loaded.date))
        commit.measurements.extend(found)
    if not commits:
        raise UsageError(f"no {BENCHMARK} results in {machine_dir} ({len(files)} results "
                         "files: none from mlpbench's asv suite)")
    return commits
