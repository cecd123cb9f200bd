"""Bad input of every command, class by class: one clear line on stderr and exit status 2
(each command's own bad input is in its file: test_train.py, test_regress.py, ...)."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import backends
from helpers import assert_one_line_error, run_cli
from mlpbench.cli import build_parser


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


def test_unknown_option_and_missing_command_are_one_line(capsys):
    code, _, err = run_cli(capsys, "train", "--batchsize", "3")
    assert_one_line_error(code, err, "unrecognized arguments")
    code, _, err = run_cli(capsys)
    assert_one_line_error(code, err, "required")


def _integer_flags():
    """(command, flag) for every flag of every command that takes an integer (or a list of them)."""
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


# -- an empty value, on every flag of every command -------------------------------------

def _value_flags():
    """(command, flag or positional's dest) for every argument of every command taking a value."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if action.nargs != 0:
                yield name, action.option_strings[0] if action.option_strings else action.dest


@pytest.mark.parametrize("command, flag", list(_value_flags()))
def test_an_empty_value_is_bad_input_on_every_flag(capsys, command, flag):
    if flag.startswith("-"):
        argv, named = [command, flag, ""], flag
    elif command != "compare":  # a command's one positional (pin-threads N)
        argv, named = [command, ""], "argument"
    else:  # compare's files: the empty one in each place
        argv, named = [command, "" if flag == "a" else "x.json",
                       "" if flag == "b" else "x.json"], flag.upper() + ".json"
    # Refused by the parser, so no command runs: without the check, `regress --base ''` would
    # run the whole gate, `bench --output ''` a full sweep.
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    captured = capsys.readouterr()
    assert_one_line_error(exc.value.code, captured.err, named, "''")
    assert captured.out == ""


def test_the_walk_over_flags_sees_the_known_ones():
    seen = set(_value_flags())
    assert {("bench", "--output"), ("bench", "--plot"), ("train", "--save"),
            ("regress", "--base"), ("regress", "--bench"), ("compare", "a")} <= seen
