"""Run asv continuous between two commits and fail on a slower step."""
from __future__ import annotations

import argparse

from mlpbench.options import positive_float


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default=None, metavar="REV",
                   help="the commit to compare against (default: merge base with main, else HEAD~1)")
    p.add_argument("--head", default="HEAD", metavar="REV", help="the commit measured (default HEAD)")
    p.add_argument("--factor", type=positive_float, default=None, metavar="F",
                   help="a benchmark slower than base by more than this factor fails")
    p.add_argument("--bench", default=None, metavar="REGEX",
                   help="only the time_* benchmarks matching REGEX")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("mlpbench regress is being built")
