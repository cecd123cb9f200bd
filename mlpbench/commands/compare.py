"""Compare two bench result files point by point."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A.json", help="the baseline results")
    p.add_argument("b", metavar="B.json", help="the results compared with it")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("mlpbench compare is being built")
