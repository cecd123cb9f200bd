"""Each side of the gate in an environment built from its own commit's declared dependencies.

When base and head declare different dependencies in ``pyproject.toml``, the gate builds one
virtual environment per side from what that commit declares (its core dependencies and the
extras of the backends gated), installs it once, and keeps it under the gate's cache keyed by
a hash of what it was built from: the Python, the requirements and the constraints. A
requirement that the running environment already satisfies is pinned to the version installed
here (a constraint), so two commits that declare the same thing get the same versions, and a
range never pulls a newer release (or a multi-GB CUDA build of torch) that nobody asked for;
a requirement this environment does not satisfy is resolved by pip from what the commit
declares. Each environment's exact versions (``pip freeze``) are recorded in the report.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Callable

from mlpbench.errors import UsageError
from mlpbench.gate import commits

__all__ = ["BUILD_TIMEOUT_S", "Plan", "build", "plan", "plans_if_they_differ"]

#: Seconds one environment may take to build (pip, from the package index or its cache).
BUILD_TIMEOUT_S = 1800.0
#: Extras a backend needs beyond the core dependencies, where its name is not an extra.
_EXTRAS = {"cupy": ("cuda13", "cuda12")}
_DONE = "mlpbench-environment.json"


class Plan(dict):
    """What one side's environment is built from: {"requirements", "constraints", "key"}."""


def _project(tree: Path) -> dict:
    import tomllib

    try:
        return tomllib.loads((tree / "pyproject.toml").read_text()).get("project", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {tree / 'pyproject.toml'}: {exc}") from None


def _expand(requirements: list[str], optional: dict[str, list[str]], name: str,
            seen: set[str]) -> list[str]:
    """``requirements`` with references to the project itself (``mlpbench[numba]``) replaced by
    what those extras list, recursively."""
    from packaging.requirements import Requirement

    out = []
    for text in requirements:
        req = Requirement(text)
        if req.name.lower() != name.lower():
            out.append(str(req))
            continue
        for extra in sorted(req.extras - seen):
            seen.add(extra)
            out += _expand(optional.get(extra, []), optional, name, seen)
    return out


def _extras(backends: list[str], optional: dict[str, list[str]]) -> list[str]:
    """The extras of ``optional`` that the gated ``backends`` need (for cupy: the extra whose
    CuPy is the one installed here)."""
    from packaging.requirements import Requirement

    chosen = []
    for backend in backends:
        for extra in _EXTRAS.get(backend, (backend,)):
            if extra not in optional:
                continue
            if backend in _EXTRAS and not all(_installed(Requirement(r).name)
                                               for r in optional[extra]):
                continue
            chosen.append(extra)
            break
    return chosen


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def plan(tree: Path, backends: list[str]) -> Plan:
    """The requirements of ``tree``'s commit for ``backends``, the constraints that pin those
    this environment satisfies, and the key of the environment they make."""
    from packaging.requirements import Requirement

    project = _project(tree)
    optional = project.get("optional-dependencies", {})
    name = project.get("name", "mlpbench")
    wanted = list(project.get("dependencies", []))
    for extra in _extras(backends, optional):
        wanted += optional[extra]
    requirements = sorted(set(_expand(wanted, optional, name, set())))
    constraints = []
    for text in requirements:
        req = Requirement(text)
        version = _installed(req.name)
        if version is not None and req.specifier.contains(version, prereleases=True):
            constraints.append(f"{req.name}=={version}")
    constraints = sorted(set(constraints))
    key = hashlib.sha256(json.dumps({"python": sys.version, "requirements": requirements,
                                     "constraints": constraints}).encode()).hexdigest()[:16]
    return Plan(requirements=requirements, constraints=constraints, key=key)


def plans_if_they_differ(trees: dict[str, Path], backends: list[str]) -> dict[str, Plan] | None:
    """Each side's plan when the commits' requirements for ``backends`` differ, else None: a
    change to what the gated backends do not use (a test or plotting extra) builds nothing.
    None too where a side's pyproject.toml cannot be read, or Python has no tomllib (3.10):
    nothing is known to differ."""
    try:
        import tomllib  # noqa: F401
    except ImportError:
        return None
    try:
        plans = {side: plan(tree, backends) for side, tree in trees.items()}
    except UsageError:
        return None
    return plans if len({tuple(p["requirements"]) for p in plans.values()}) > 1 else None


def _pip(python: Path, args: list[str], timeout: float) -> None:
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise UsageError(f"pip could not build the environment: {last}")


def build(side_plan: Plan, *, root: Path | None = None,
          log: Callable[[str], None] = print) -> tuple[Path, list[str]]:
    """The interpreter of the environment ``side_plan`` makes, built unless kept already, and
    its ``pip freeze``. UsageError (the gate could not measure) when pip fails."""
    from filelock import FileLock

    root = root or commits.cache_dir() / "environments"
    root.mkdir(parents=True, exist_ok=True)
    folder = root / side_plan["key"]
    python = folder / "bin" / "python"
    with FileLock(str(folder) + ".lock"):
        done = folder / _DONE
        if done.is_file():
            log(f"mlpbench regress: environment {side_plan['key']}: kept from an earlier run")
            return python, json.loads(done.read_text())["freeze"]
        shutil.rmtree(folder, ignore_errors=True)  # a build that died half way
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True,
                       capture_output=True, timeout=300)
        (folder / "requirements.txt").write_text("\n".join(side_plan["requirements"]) + "\n")
        (folder / "constraints.txt").write_text("\n".join(side_plan["constraints"]) + "\n")
        try:
            _pip(python, ["install", "-q", "-r", str(folder / "requirements.txt"),
                          "-c", str(folder / "constraints.txt")], BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UsageError(f"building environment {side_plan['key']} took over "
                             f"{BUILD_TIMEOUT_S:.0f} s") from None
        freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True,
                                text=True, timeout=120).stdout.split()
        done.write_text(json.dumps({**side_plan, "freeze": freeze}, indent=1))
        log(f"mlpbench regress: environment {side_plan['key']}: built in "
            f"{time.monotonic() - started:.0f} s")
        return python, freeze
