"""Bench result files (schema "mlpbench.bench/1"): their fields, atomic writes, loading, checking.

What goes into ``environment`` is probed by ``mlpbench.environment``.
"""
from __future__ import annotations

import datetime
import json
import math
import os
from typing import Any

from mlpbench.errors import UsageError
from mlpbench.files import write_atomic
from mlpbench.settings import DTYPES

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


def _number(value: Any, *, low: float = 0.0, strict: bool = True, whole: bool = False) -> bool:
    """Whether ``value`` is a finite number above ``low`` (or at least it), whole if asked."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if whole and not isinstance(value, int):
        return False
    try:
        if not math.isfinite(value):
            return False
    except OverflowError:  # an integer too large for a float
        return False
    return value > low if strict else value >= low


_POSITIVE = ("a finite number > 0", lambda v: _number(v))
_NON_NEGATIVE = ("a finite number >= 0", lambda v: _number(v, strict=False))
_COUNT = ("a whole number >= 1", lambda v: _number(v, low=1, strict=False, whole=True))
_TEXT = ("a string", lambda v: isinstance(v, str))


def _maybe(check: tuple) -> tuple:
    expected, test = check
    return f"null or {expected}", lambda v: v is None or test(v)


def _step_s(value: Any) -> bool:
    return (isinstance(value, dict) and all(_number(value.get(k)) for k in ("median", "min", "max"))
            and value["min"] <= value["median"] <= value["max"])


#: What every result's fields must hold; the speeds only when the point is ok.
_RESULT_FIELDS = {
    "backend": ("a backend name", lambda v: isinstance(v, str) and bool(v.strip())),
    "dtype": (f"one of {', '.join(DTYPES)}", lambda v: v in DTYPES),
    "batch_size": _COUNT, "n_in": _COUNT, "hidden": _COUNT, "n_out": _COUNT,
    "threads": _maybe(_COUNT),
    "status": (f"one of {', '.join(STATUSES)}", lambda v: v in STATUSES),
    "error": _maybe(_TEXT),
    "compile_s": _maybe(_NON_NEGATIVE),
    "final_loss": _maybe(_NON_NEGATIVE),
    "peak_fraction": _maybe(_POSITIVE),
}
_OK_FIELDS = {
    "step_s": ("{median, min, max}: finite numbers > 0, min <= median <= max", _step_s),
    "blocks": _COUNT, "steps_per_block": _COUNT,
    "steps_per_s": _POSITIVE, "samples_per_s": _POSITIVE, "gflops": _POSITIVE,
}
#: Optional fields that are read when there.
_OPTIONAL_FIELDS = {"flops_per_step": _maybe(_POSITIVE)}
_ENVIRONMENT_FIELDS = {
    "python": _maybe(_TEXT), "platform": _maybe(_TEXT), "cpu": _maybe(_TEXT),
    "cores": _maybe(_COUNT),
    "libraries": ("an object", lambda v: isinstance(v, dict)),
    "blas": ("a list", lambda v: isinstance(v, list)),
    "gpu": ("null or an object with a name",
            lambda v: v is None or (isinstance(v, dict) and isinstance(v.get("name"), str))),
    "command": ("a list of strings", lambda v: isinstance(v, list)
                and all(isinstance(a, str) for a in v)),
    "started": _TEXT, "finished": _maybe(_TEXT),
}


def _shown(value: Any) -> str:
    text = json.dumps(value, default=repr)  # as the file spells it: NaN, Infinity, null
    return text if len(text) <= 60 else text[:57] + "..."


def _point(result: dict) -> str:
    parts = [str(result.get(k)) for k in ("backend", "dtype")]
    parts += [f"{k.replace('_size', '')} {result.get(k)}" for k in ("batch_size", "hidden")]
    return " ".join(parts)


def _check_environment(env: dict, fail) -> None:
    missing = [k for k in ENVIRONMENT_KEYS if k not in env]
    if missing:
        raise fail(f"environment lacks {', '.join(missing)}")
    for key, (expected, test) in _ENVIRONMENT_FIELDS.items():
        if not test(env[key]):
            raise fail(f"environment's {key!r} is {_shown(env[key])}; expected {expected}")
    earlier = env.get("earlier_runs", [])
    if not (isinstance(earlier, list) and all(isinstance(e, dict) for e in earlier)):
        raise fail(f"environment's 'earlier_runs' is {_shown(earlier)}; expected a list of objects")


def validate_results(data: Any, where: str) -> dict:
    """``data`` if it is a results document of this schema, else ResultsError (one line).

    Every value the commands read is checked (types, finiteness, ranges) before any of them
    is used, so a bad file is refused before any work, naming the file, the point and the field.
    """
    def fail(why: str) -> ResultsError:
        return ResultsError(f"{where} is not an mlpbench bench results file ({why})")

    if not isinstance(data, dict):
        raise fail("not a JSON object")
    if data.get("schema") != SCHEMA:
        raise fail(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    for key, kind in (("environment", dict), ("peak_gflops", dict), ("results", list)):
        if not isinstance(data.get(key), kind):
            raise fail(f"{key!r} missing or not a {kind.__name__}")
    _check_environment(data["environment"], fail)
    for key, value in data["peak_gflops"].items():
        if not _number(value):
            raise ResultsError(f"{where}: peak_gflops {key!r} is {_shown(value)}; "
                               "expected a finite number > 0")
    errors = data.get("peak_errors", {})
    if not (isinstance(errors, dict) and all(isinstance(v, str) for v in errors.values())):
        raise fail(f"'peak_errors' is {_shown(errors)}; expected an object of strings")
    for i, result in enumerate(data["results"]):
        if not isinstance(result, dict):
            raise fail(f"result {i} is not an object")
        missing = [k for k in RESULT_KEYS if k not in result]
        if missing:
            raise fail(f"result {i} lacks {', '.join(missing)}")
        checks = dict(_RESULT_FIELDS)
        checks.update({k: _OPTIONAL_FIELDS[k] for k in _OPTIONAL_FIELDS if k in result})
        if result["status"] == "ok":
            checks.update(_OK_FIELDS)
        for key, (expected, test) in checks.items():
            if not test(result[key]):
                raise ResultsError(f"{where}: result {i} ({_point(result)}): {key!r} is "
                                   f"{_shown(result[key])}; expected {expected}")
    return data


def load_results(path: str) -> dict:
    """Read and check a results file; ResultsError (one line) if it is missing or not one."""
    try:
        if os.path.exists(path) and not os.path.isdir(path) and not os.path.isfile(path):
            # a device or a pipe: reading /dev/zero or a FIFO would never end
            raise ResultsError(f"{path} is not a regular file")
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
