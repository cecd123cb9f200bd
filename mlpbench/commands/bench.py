"""Time the step over backends x batch sizes x hidden widths x dtypes, and write the results."""
from __future__ import annotations

import argparse

from mlpbench.options import (DTYPES, add_threads, comma_list, dtype, non_negative_int,
                              positive_float, positive_int)

DEFAULT_BATCH_SIZES = [1, 16, 64, 256, 1024]
DEFAULT_HIDDEN = [16, 100, 1024]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", type=comma_list(str), default=["all"], metavar="LIST",
                   help="comma-separated backends, or 'all' available (default)")
    p.add_argument("--batch-size", type=comma_list(positive_int), default=None, metavar="LIST",
                   help=f"comma-separated batch sizes (default {','.join(map(str, DEFAULT_BATCH_SIZES))})")
    p.add_argument("--hidden", type=comma_list(positive_int), default=None, metavar="LIST",
                   help=f"comma-separated hidden widths (default {','.join(map(str, DEFAULT_HIDDEN))})")
    p.add_argument("--n-in", type=positive_int, default=1000, metavar="N")
    p.add_argument("--n-out", type=positive_int, default=10, metavar="N")
    p.add_argument("--dtype", type=comma_list(dtype), default=list(DTYPES), metavar="LIST",
                   help="float32,float64 (default both)")
    add_threads(p)
    p.add_argument("--min-time", type=positive_float, default=None, metavar="S",
                   help="seconds each timed block lasts at least (default 0.2; --quick 0.05)")
    p.add_argument("--repeat", type=positive_int, default=None, metavar="R",
                   help="timed blocks per point (default 5; --quick 3)")
    p.add_argument("--timeout", type=positive_float, default=60.0, metavar="S",
                   help="seconds one point may take before it is recorded as 'timeout' (default 60)")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="N")
    p.add_argument("--output", default=None, metavar="FILE.json",
                   help="write results here, after every point")
    p.add_argument("--resume", action="store_true",
                   help="skip the points already in --output")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="draw the results (matplotlib)")
    p.add_argument("--quick", action="store_true", help="a small grid and short times: a smoke run")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first point that errors")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("mlpbench bench is being built")
