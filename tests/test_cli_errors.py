"""Bad input gets one clear line on stderr and exit status 2; a diverged run exits 1."""
from __future__ import annotations

import subprocess
import sys

import pytest

import backends
from helpers import assert_one_line_error, run_cli


@pytest.fixture
def missing_backend(register_backend):
    return register_backend("MissingLibraryBackend")


@pytest.mark.parametrize("command", ["train", "check"])
def test_unknown_backend_lists_the_known_ones(capsys, command):
    code, _, err = run_cli(capsys, command, "--backend", "tensorflow")
    assert_one_line_error(code, err, "unknown backend 'tensorflow'", "numpy", "array-api-strict")


@pytest.mark.parametrize("command", ["train", "check"])
def test_unavailable_backend_says_why_and_how_to_install(capsys, missing_backend, command):
    code, _, err = run_cli(capsys, command, "--backend", missing_backend)
    assert_one_line_error(code, err, "not available", "fake_missing_lib",
                          "pip install 'mlpbench[fake]'")


def test_a_real_unavailable_backend_in_a_real_process():
    missing = [n for n in backends.names() if not backends.create(n).available()[0]]
    if not missing:
        pytest.skip("every backend is available on this machine: none to refuse")
    proc = subprocess.run([sys.executable, "-m", "mlpbench", "train", "--backend", missing[0]],
                          capture_output=True, text=True)
    assert_one_line_error(proc.returncode, proc.stderr, f"backend {missing[0]!r} is not available")


@pytest.mark.parametrize("flag", ["--batch-size", "--n-in", "--hidden", "--n-out", "--steps",
                                  "--print-every", "--threads"])
@pytest.mark.parametrize("value", ["0", "-3", "2.5", "many"])
def test_non_positive_sizes_and_steps(capsys, flag, value):
    code, _, err = run_cli(capsys, "train", flag, value)
    assert_one_line_error(code, err, flag, "positive integer", repr(value))


@pytest.mark.parametrize("value", ["float16", "int32", "bfloat16"])
def test_unsupported_dtype(capsys, value):
    code, _, err = run_cli(capsys, "train", "--dtype", value)
    assert_one_line_error(code, err, "unsupported dtype", value, "float32, float64")


@pytest.mark.parametrize("value", ["0", "-1e-3", "nan", "inf", "-inf", "fast"])
def test_learning_rate_must_be_finite_and_positive(capsys, value):
    code, _, err = run_cli(capsys, "train", f"--lr={value}")
    assert_one_line_error(code, err, "--lr", "finite positive", repr(value))


def test_a_problem_too_big_for_memory_is_refused_before_allocating(capsys):
    code, _, err = run_cli(capsys, "train", "--batch-size", "1000000", "--n-in", "1000000")
    assert_one_line_error(code, err, "needs about", "bytes", "available")


def test_unwritable_save_paths(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", "--steps", "1", "--save",
                             str(tmp_path / "missing" / "run.npz"))
    assert_one_line_error(code, err, "cannot write --save", "does not exist")
    assert out == ""  # refused before running
    code, _, err = run_cli(capsys, "train", "--steps", "1", "--save", str(tmp_path))
    assert_one_line_error(code, err, "is a directory")


def test_unknown_option_and_missing_command_are_one_line(capsys):
    code, _, err = run_cli(capsys, "train", "--batchsize", "3")
    assert_one_line_error(code, err, "unrecognized arguments")
    code, _, err = run_cli(capsys)
    assert_one_line_error(code, err, "required")


def test_diverged_run_exits_1_and_says_where(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mlpbench", "train", "--lr", "1", "--steps", "100"],
        capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "RuntimeWarning" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "diverged" in last and "--lr" in last
    step = int(last.split(" at step ")[1].split()[0])
    printed = proc.stdout.strip().splitlines()
    assert printed[-1].startswith(f"Iter: {step}\t")  # it stopped at that step
    assert step < 99


def _integer_flags():
    """(command, flag) for every flag of every command that takes an integer (or a list of them)."""
    from mlpbench.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and "train" in a.choices)
    for command, p in sub.choices.items():
        for action in p._actions:
            if not action.option_strings or action.nargs == 0 or action.type is None:
                continue
            try:
                parsed = action.type("7")
            except Exception:
                continue
            if parsed == 7 and type(parsed) is int or parsed == [7] and type(parsed[0]) is int:
                yield command, action.option_strings[0]


INTEGER_FLAGS = list(_integer_flags())


def test_the_integer_flags_are_found():
    assert ("train", "--threads") in INTEGER_FLAGS and ("bench", "--batch-size") in INTEGER_FLAGS
    assert ("bench", "--seed") in INTEGER_FLAGS and ("history", "--last") in INTEGER_FLAGS


def parse_error(capsys, *argv) -> tuple[int, str]:
    """(exit status, stderr) of parsing ``argv``: refused by the parser, so nothing runs."""
    from mlpbench.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(list(argv))
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("command,flag", INTEGER_FLAGS)
@pytest.mark.parametrize("value", ["99999999999999999999", "2147483648"])
def test_an_integer_too_large_for_the_libraries_is_refused(capsys, command, flag, value):
    code, err = parse_error(capsys, command, flag, value)
    assert_one_line_error(code, err, flag, "at most", repr(value))


@pytest.mark.parametrize("command", ["train", "check", "bench", "pieces"])
def test_threads_beyond_what_thread_pools_take_are_refused(capsys, command):
    code, err = parse_error(capsys, command, "--threads", "1025")
    assert_one_line_error(code, err, "--threads", "at most 1024", "'1025'")


def test_the_reported_threads_overflow_is_one_line_in_a_real_process():
    proc = subprocess.run([sys.executable, "-m", "mlpbench", "train", "--threads",
                           "99999999999999999999"], capture_output=True, text=True, timeout=60)
    assert_one_line_error(proc.returncode, proc.stderr, "--threads", "at most 1024")
    assert proc.stdout == ""


@pytest.mark.parametrize("command,flag", [("bench", "--min-time"), ("bench", "--timeout"),
                                          ("pieces", "--min-time"), ("regress", "--budget")])
def test_a_duration_beyond_any_run_is_refused(capsys, command, flag):
    code, err = parse_error(capsys, command, flag, "1e300")
    assert_one_line_error(code, err, flag, "at most", "seconds", "'1e300'")
