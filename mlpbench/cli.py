"""The ``mlpbench`` command: one parser, one module per subcommand, errors as one line."""
from __future__ import annotations

import argparse
import importlib
import sys

from mlpbench import __version__
from mlpbench.errors import UsageError

__all__ = ["main"]

# subcommand -> module with add_arguments(parser) and run(args) -> exit status
COMMANDS = {
    "backends": "mlpbench.commands.list_backends",
    "train": "mlpbench.commands.train",
    "check": "mlpbench.commands.check",
    "bench": "mlpbench.commands.bench",
    "compare": "mlpbench.commands.compare",
    "regress": "mlpbench.commands.regress",
    "pieces": "mlpbench.commands.pieces",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mlpbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mlpbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip().splitlines()[0]
        p = sub.add_parser(name, help=doc, description=doc)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # recorded in results files
    try:
        return int(args._run(args) or 0)
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
