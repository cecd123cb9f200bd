"""CI has one definition, .ci/run: it runs the README's test command, and the workflow runs it."""
from __future__ import annotations

import re

from helpers import ROOT


def readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    after = text[text.index("**The tests**"):]
    return next(line.strip() for line in after.splitlines() if line.startswith("    "))


def test_ci_runs_the_readmes_test_command_exactly_then_the_slow_tests():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    command = readme_test_command()
    assert command.endswith(".venv/bin/python -m pytest") and command in lines
    assert lines.index(".venv/bin/python -m pytest -m slow -n 0") > lines.index(command)


def test_the_workflow_runs_ci_run_and_nothing_else():
    text = (ROOT / ".github" / "workflows" / "benchmarks.yml").read_text()
    runs = re.findall(r"^\s*run:\s*(.+)$", text, re.M)
    assert runs == [".ci/run"], runs
