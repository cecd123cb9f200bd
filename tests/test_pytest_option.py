"""`pytest --backend NAME` restricts the backend tests to that backend."""
from __future__ import annotations

import subprocess
import sys

from helpers import ROOT


def collect(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/test_backends_contract.py", "tests/test_torch.py", *args],
        capture_output=True, text=True, cwd=ROOT)
    return proc.returncode, [line for line in proc.stdout.splitlines() if "::" in line], proc


def test_without_the_option_every_backend_is_collected():
    _, ids, _ = collect()
    import backends

    for name in backends.names():
        assert f"test_updates_in_place_says_what_the_step_does[{name}]" in "\n".join(ids)
    assert any("test_torch.py" in i for i in ids)


def test_backend_option_keeps_one_backend():
    code, ids, proc = collect("--backend", "numpy")
    assert code == 0, proc.stderr
    parametrised = [i for i in ids if "test_updates_in_place_says_what_the_step_does[" in i]
    assert parametrised == [
        "tests/test_backends_contract.py::test_updates_in_place_says_what_the_step_does[numpy]"]
    assert not any("test_torch.py" in i for i in ids)  # torch tests deselected
    assert any("test_missing_library" in i for i in ids)  # tests of no one backend stay


def test_unknown_backend_option_is_a_usage_error():
    code, _, proc = collect("--backend", "tensorflow")
    assert code == 4
    assert "unknown --backend tensorflow" in proc.stderr
