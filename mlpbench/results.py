"""Bench result files (schema "mlpbench.bench/1"): their fields, atomic writes, loading, checking.

What goes into ``environment`` is probed by ``mlpbench.environment``.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
from typing import Any

from mlpbench.errors import UsageError
from mlpbench.files import write_atomic

__all__ = [
    "ENVIRONMENT_KEYS", "KEY_FIELDS", "RESULT_KEYS", "SCHEMA", "STATUSES", "ResultsError",
    "load_results", "make_result", "new_results", "now", "point_key", "validate_results",
    "write_results",
]

SCHEMA = "mlpbench.bench/1"
ENVIRONMENT_KEYS = ("python", "platform", "cpu", "cores", "libraries", "blas", "gpu", "command",
                    "started", "finished")
RESULT_KEYS = ("backend", "dtype", "batch_size", "n_in", "hidden", "n_out", "threads", "status",
               "error", "compile_s", "step_s", "blocks", "steps_per_block", "steps_per_s",
               "samples_per_s", "gflops", "peak_fraction", "final_loss")
STATUSES = ("ok", "timeout", "error", "invalid")
#: What identifies a point: two results with the same key measure the same thing.
KEY_FIELDS = ("backend", "dtype", "batch_size", "n_in", "hidden", "n_out", "threads")


class ResultsError(UsageError):
    """A file that is not a bench results file of this schema."""


def point_key(result: dict) -> tuple:
    """The fields that identify a point, as a tuple (for matching and resuming)."""
    return tuple(result[k] for k in KEY_FIELDS)


def now() -> str:
    """The local time, ISO 8601 with its offset, to the second."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def new_results(env: dict) -> dict:
    """An empty results document."""
    return {"schema": SCHEMA, "environment": env, "peak_gflops": {}, "results": []}


def validate_results(data: Any, where: str) -> dict:
    """``data`` if it is a results document of this schema, else ResultsError (one line)."""
    def fail(why: str) -> ResultsError:
        return ResultsError(f"{where} is not an mlpbench bench results file ({why})")

    if not isinstance(data, dict):
        raise fail("not a JSON object")
    if data.get("schema") != SCHEMA:
        raise fail(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    for key, kind in (("environment", dict), ("peak_gflops", dict), ("results", list)):
        if not isinstance(data.get(key), kind):
            raise fail(f"{key!r} missing or not a {kind.__name__}")
    missing = [k for k in ENVIRONMENT_KEYS if k not in data["environment"]]
    if missing:
        raise fail(f"environment lacks {', '.join(missing)}")
    for i, result in enumerate(data["results"]):
        if not isinstance(result, dict):
            raise fail(f"result {i} is not an object")
        missing = [k for k in RESULT_KEYS if k not in result]
        if missing:
            raise fail(f"result {i} lacks {', '.join(missing)}")
        if result["status"] not in STATUSES:
            raise fail(f"result {i} has status {result['status']!r}")
    return data


def load_results(path: str) -> dict:
    """Read and check a results file; ResultsError (one line) if it is missing or not one."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ResultsError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ResultsError(f"{path} is a directory") from None
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(
            f"{path} is not an mlpbench bench results file (not JSON: {exc})") from None
    return validate_results(data, path)


def write_results(path: str, data: dict) -> None:
    """Write a results file atomically (see ``mlpbench.files.write_atomic``)."""

    def write(f) -> None:
        json.dump(data, f, indent=1, allow_nan=False)
        f.write("\n")

    write_atomic(path, write)


def make_result(point: dict, *, threads: int | None, status: str, error: str | None = None,
                measurement: Any = None, peak_gflops: float | None = None,
                flops_per_step: int | None = None, **extra: Any) -> dict:
    """One entry of "results": the point, its status and, when ok, the speeds from its times.

    steps/s is 1 / median seconds per step; GFLOP/s is ``flops_per_step`` over that median;
    the peak fraction is GFLOP/s over ``peak_gflops``. A point that is not ok has no speeds.
    """
    result = {**point, "threads": threads, "status": status, "error": error,
              "compile_s": None, "step_s": None, "blocks": None, "steps_per_block": None,
              "steps_per_s": None, "samples_per_s": None, "gflops": None, "peak_fraction": None,
              "final_loss": None}
    if measurement is not None:
        result["compile_s"] = measurement.compile_s
        if math.isfinite(measurement.final_loss):
            result["final_loss"] = measurement.final_loss
    if status == "ok":
        step_s = measurement.step_s
        median = step_s["median"]
        gflops = flops_per_step / median / 1e9
        result.update(
            step_s=step_s, blocks=len(measurement.block_s),
            steps_per_block=measurement.steps_per_block, steps_per_s=1.0 / median,
            samples_per_s=point["batch_size"] / median, gflops=gflops,
            peak_fraction=gflops / peak_gflops if peak_gflops else None,
            block_s=list(measurement.block_s))
    result.update(flops_per_step=flops_per_step, **extra)
    return result
