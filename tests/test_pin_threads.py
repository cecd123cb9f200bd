"""``mlpbench pin-threads N``: the export lines a shell evals, and its bad input."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import assert_one_line_error, run_cli
from mlpbench.settings import THREAD_VARIABLES


def test_a_shell_that_evals_it_has_every_pool_pinned():
    script = f'eval "$("{sys.executable}" -m mlpbench pin-threads 3)" && env'
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                          check=True)
    pinned = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert {name: pinned.get(name) for name in THREAD_VARIABLES} == \
        {name: "3" for name in THREAD_VARIABLES}


@pytest.mark.parametrize("argv, message", [
    ([], "required: N"), (["0"], "at most 1024"), (["1025"], "at most 1024"),
    (["two"], "positive integer"), (["1", "2"], "unrecognized arguments")])
def test_bad_input(capsys, argv, message):
    code, out, err = run_cli(capsys, "pin-threads", *argv)
    assert_one_line_error(code, err, message)
    assert out == ""
