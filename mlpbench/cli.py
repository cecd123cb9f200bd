"""The ``mlpbench`` command: one parser, one module per subcommand, errors as one line."""
from __future__ import annotations

import argparse
import codecs
import contextlib
import importlib
import os
import sys
import warnings
from typing import Iterator

from mlpbench import __version__
from mlpbench.environment import command_line
from mlpbench.errors import UsageError
from mlpbench.options import non_empty

__all__ = ["main"]

# subcommand -> module with add_arguments(parser) and run(args) -> exit status
COMMANDS = {
    "backends": "mlpbench.commands.list_backends",
    "train": "mlpbench.commands.train",
    "check": "mlpbench.commands.check",
    "bench": "mlpbench.commands.bench",
    "compare": "mlpbench.commands.compare",
    "regress": "mlpbench.commands.regress",
    "history": "mlpbench.commands.history",
    "pieces": "mlpbench.commands.pieces",
    "pin-threads": "mlpbench.commands.pin_threads",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mlpbench", description=(
        "One training step of a two-layer network, run on many array libraries: checked "
        "against numpy and timed. Exit status: 0 success, 1 a failed check, regression or "
        "run, 2 bad input or could not run, 130 interrupted (docs/cli.md)."))
    parser.add_argument("--version", action="version", version=f"mlpbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip().splitlines()[0]
        p = sub.add_parser(name, help=doc, description=doc)
        module.add_arguments(p)
        _refuse_empty_values(p)
        # Also after the command, where users put it; unset here unless given (SUPPRESS), so
        # that `mlpbench --debug train` keeps its value.
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks")
        p.set_defaults(_run=module.run)
    return parser


def _refuse_empty_values(parser: argparse.ArgumentParser) -> None:
    """Give every flag that takes text and has no validator one that refuses an empty value.

    An empty value (`--base ''`, `--output ""`) is a mistake, never "not given".
    """
    for action in parser._actions:
        if action.type is None and action.nargs != 0:  # nargs 0: a switch, no value
            action.type = non_empty


def _tolerant_output() -> None:
    """Let stdout print what its encoding cannot (PYTHONIOENCODING=ascii) as escapes, not crash."""
    stream = sys.stdout
    reconfigure = getattr(stream, "reconfigure", None)
    encoding = getattr(stream, "encoding", None) or "utf-8"
    if reconfigure and getattr(stream, "errors", "strict") == "strict" \
            and codecs.lookup(encoding).name != "utf-8":
        reconfigure(errors="backslashreplace")


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """A warning shown while a command runs is one line, like the errors."""
    saved = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: f"mlpbench {command}: warning: {message}\n"
    try:
        yield
    finally:
        warnings.formatwarning = saved


def _silence_output() -> None:
    """Point stdout and stderr at /dev/null, so that nothing more fails on a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`| head -1`): end quietly, with the status of a tool that
        # SIGPIPE ended (128 + 13), as other command-line tools do.
        _silence_output()
        return 141


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = command_line(argv)  # recorded in results files
    _tolerant_output()
    try:
        # cleanup: what a command holds until it ends (bench's lock on its --output).
        with contextlib.ExitStack() as args.cleanup, _one_line_warnings(args.command):
            return int(args._run(args) or 0)
    except BrokenPipeError:
        raise
    except UsageError as exc:
        if args.debug:
            raise
        print(f"mlpbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mlpbench {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an environment or library failure: one line, not a traceback
        if args.debug:
            raise
        print(f"mlpbench {args.command}: error: {type(exc).__name__}: {exc} "
              f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
