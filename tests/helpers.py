"""Shared pieces of the tests: the repository root, running the command line, the one-line-error
assertion, strict JSON."""
from __future__ import annotations

import json
import os
from pathlib import Path

from mlpbench.cli import main

__all__ = ["ROOT", "assert_close", "assert_one_line_error", "import_benchmarks", "run_cli",
           "strict_json", "untouched"]

#: The repository's root folder.
ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv, cwd=None) -> tuple[int, str, str]:
    """``mlpbench argv...`` in this process, in folder ``cwd`` (default: where it is):
    (exit status, stdout, stderr)."""
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own exits
        code = exc.code
    finally:
        os.chdir(here)
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


def assert_close(value, reference, rtol, *, what="value", same_dtype=True):
    """The project's closeness (docs/design.md): max|value - reference| <= rtol * max|reference|
    (the relu makes exact zeros, so the tolerance scales with the largest entry), same shape,
    and the same dtype unless ``same_dtype`` is False."""
    import numpy as np

    value, reference = np.asarray(value), np.asarray(reference)
    if same_dtype:
        assert value.dtype == reference.dtype, f"{what}: dtype {value.dtype} != {reference.dtype}"
    assert value.shape == reference.shape, f"{what}: shape {value.shape} != {reference.shape}"
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    error = float(np.max(np.abs(value.astype(np.float64) - reference.astype(np.float64)))) \
        if value.size else 0.0
    assert error <= rtol * (scale or 1.0), (
        f"{what}: differs by {error:.2e}, above {rtol:g} x max|reference| ({scale:.2e})")


def strict_json(path):
    """Load JSON, refusing NaN and Infinity (which are not JSON)."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


def import_benchmarks(module: str):
    """``benchmarks.<module>`` imported as asv does: that package alone, from this repository."""
    import importlib
    import importlib.util
    import sys

    if "benchmarks" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "benchmarks", ROOT / "benchmarks" / "__init__.py",
            submodule_search_locations=[str(ROOT / "benchmarks")])
        sys.modules["benchmarks"] = package = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(package)
    return importlib.import_module(f"benchmarks.{module}")


def untouched(path):
    """What must not change in a file: its bytes and its modification time."""
    path = Path(path)
    return path.read_bytes(), path.stat().st_mtime_ns
