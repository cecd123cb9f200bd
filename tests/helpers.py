"""Shared pieces of the tests: the repository root, running the command line, the one-line-error
assertion, strict JSON."""
from __future__ import annotations

import json
from pathlib import Path

from mlpbench.cli import main

__all__ = ["ROOT", "assert_one_line_error", "run_cli", "strict_json"]

#: The repository's root folder.
ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``mlpbench argv...`` in this process: (exit status, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own exits
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments, status=2):
    """The command exited ``status`` with one line on stderr, no traceback, holding ``fragments``."""
    assert code == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def strict_json(path):
    """Load JSON, refusing NaN and Infinity (which are not JSON)."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(Path(path).read_text(), parse_constant=refuse)
