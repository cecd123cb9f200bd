"""Print shell export lines that pin every library's thread pool to N threads (for eval)."""
from __future__ import annotations

import argparse

from mlpbench.options import threads
from mlpbench.settings import pinned_environment

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("threads", type=threads, metavar="N",
                   help="threads for every pool (eval \"$(mlpbench pin-threads 1)\" in a shell)")


def run(args: argparse.Namespace) -> int:
    for name, value in pinned_environment(args.threads).items():
        print(f"export {name}={value}")
    return 0
