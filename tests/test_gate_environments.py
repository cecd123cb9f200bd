"""Each side's environment from its own commit's declared dependencies: what it is built from.

The builds themselves are real pip installs (slow: tests/test_regress.py)."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from mlpbench.errors import UsageError
from mlpbench.gate.environments import plan, plans_if_they_differ

NUMPY = metadata.version("numpy")

PYPROJECT = """\
[project]
name = "mlpbench"
dependencies = [{core}]

[project.optional-dependencies]
numba = ["numba>=0.59", "scipy>=1.11"]
mkl = ["mlpbench[numba]", "mkl>=2024.0"]
torch = ["torch>=2.1"]
"""


def tree(tmp_path: Path, name: str, core: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "pyproject.toml").write_text(PYPROJECT.format(core=core))
    return folder


def test_the_same_declarations_make_the_same_environment(tmp_path):
    a = plan(tree(tmp_path, "a", '"numpy>=1.26", "tqdm>=4.60"'), ["numpy"])
    b = plan(tree(tmp_path, "b", '"tqdm>=4.60", "numpy>=1.26"'), ["numpy"])
    assert a == b and a["requirements"] == ["numpy>=1.26", "tqdm>=4.60"]
    # A range this environment satisfies is pinned to what is installed here.
    assert f"numpy=={NUMPY}" in a["constraints"]


def test_a_changed_declaration_makes_another_environment(tmp_path):
    a = plan(tree(tmp_path, "a", '"numpy>=1.26"'), ["numpy"])
    b = plan(tree(tmp_path, "b", '"numpy==1.26.4"'), ["numpy"])
    assert a["key"] != b["key"]
    # A pin this environment does not satisfy is left to pip: no constraint on numpy.
    if NUMPY != "1.26.4":
        assert not any(c.startswith("numpy==") for c in b["constraints"])


def test_extras_of_the_gated_backends_are_expanded_through_self_references(tmp_path):
    t = tree(tmp_path, "t", '"numpy>=1.26"')
    assert plan(t, ["numpy"])["requirements"] == ["numpy>=1.26"]
    numba = plan(t, ["numpy", "numba"])["requirements"]
    assert numba == ["numba>=0.59", "numpy>=1.26", "scipy>=1.11"]
    assert plan(t, ["numba", "torch"])["requirements"] == sorted(numba + ["torch>=2.1"])
    assert plan(t, ["mkl"])["requirements"] == sorted(numba + ["mkl>=2024.0"])


def test_an_unreadable_pyproject_is_could_not_measure(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(UsageError, match="cannot read"):
        plan(tmp_path, ["numpy"])


def test_a_built_environment_is_kept_and_a_half_built_one_rebuilt(tmp_path, monkeypatch):
    import json

    from mlpbench.gate import environments

    side = plan(tree(tmp_path, "t", '"numpy>=1.26"'), ["numpy"])
    root = tmp_path / "environments"
    kept = root / side["key"]
    kept.mkdir(parents=True)
    (kept / "mlpbench-environment.json").write_text(json.dumps({"freeze": ["numpy==9.9"]}))
    said = []
    python, freeze = environments.build(side, root=root, log=said.append)
    assert python == kept / "bin" / "python" and freeze == ["numpy==9.9"]
    assert said == [f"mlpbench regress: environment {side['key']}: kept from an earlier run"]
    # Without the record of a finished build, the folder is a build that died: made anew.
    (kept / "mlpbench-environment.json").unlink()
    (kept / "left-over").write_text("")
    calls = []
    def run(args, **kwargs):  # python -m venv FOLDER makes the folder; pip freeze answers
        calls.append(args)
        if "venv" in args:
            Path(args[-1]).mkdir(parents=True)
        return _Done()

    monkeypatch.setattr(environments.subprocess, "run", run)
    monkeypatch.setattr(environments, "_pip", lambda python, args, timeout: calls.append(args))
    environments.build(side, root=root, log=said.append)
    assert not (kept / "left-over").exists()
    assert calls[0][1:3] == ["-m", "venv"] and calls[1][:2] == ["install", "-q"]
    assert json.loads((kept / "mlpbench-environment.json").read_text())["freeze"] == ["numpy==2.0"]


class _Done:
    returncode, stdout, stderr = 0, "numpy==2.0\n", ""


def test_only_what_the_gated_backends_use_makes_the_sides_differ(tmp_path):
    """A change to an extra no gated backend uses (a test runner, say) builds nothing: CI's
    gate built an environment of the same key for both sides before this was asked once."""
    base = tree(tmp_path, "base", '"numpy>=1.26"')
    head = tmp_path / "head"
    head.mkdir()
    (head / "pyproject.toml").write_text(
        PYPROJECT.format(core='"numpy>=1.26"') + 'test = ["pytest>=7.4", "pytest-xdist>=3.5"]\n')
    assert plans_if_they_differ({"base": base, "head": head}, ["numpy", "numba"]) is None
    bumped = tree(tmp_path, "bumped", '"numpy>=2.0"')
    plans = plans_if_they_differ({"base": base, "head": bumped}, ["numpy"])
    assert plans and plans["base"]["key"] != plans["head"]["key"]
    assert plans["head"]["requirements"] == ["numpy>=2.0"]
    # A side that cannot tell (no pyproject.toml) is not known to differ.
    assert plans_if_they_differ({"base": base, "head": tmp_path}, ["numpy"]) is None
