"""Time each piece of the step (forward, loss_and_grad, grad_h, relu_backward, weight_update) beside the whole step."""
from __future__ import annotations

import argparse
import json

from mlpbench import settings
from mlpbench.errors import UsageError
from mlpbench.files import check_writable, write_atomic
from mlpbench.options import (DTYPES, add_threads, comma_list, dtype, seconds,
                              positive_int, resolve_backends)
from mlpbench.pieces import format_pieces, measure_pieces
from mlpbench.environment import environment, facts_in_process

__all__ = ["SCHEMA", "add_arguments", "run"]

SCHEMA = "mlpbench.pieces/1"
QUICK = settings.GRIDS["quick"]
TIMING = settings.TIMING["quick"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", type=comma_list(str), default=["numpy"], metavar="LIST",
                   help="comma-separated backends (default numpy)")
    p.add_argument("--batch-size", type=comma_list(positive_int),
                   default=list(QUICK["batch_size"]), metavar="LIST",
                   help=f"comma-separated batch sizes (default {','.join(map(str, QUICK['batch_size']))})")
    p.add_argument("--hidden", type=comma_list(positive_int), default=list(QUICK["hidden"]),
                   metavar="LIST",
                   help=f"comma-separated hidden widths (default {','.join(map(str, QUICK['hidden']))})")
    p.add_argument("--dtype", type=comma_list(dtype), default=["float64"], metavar="LIST",
                   help=f"{','.join(DTYPES)} (default float64)")
    add_threads(p)
    p.add_argument("--min-time", type=seconds, default=TIMING["min_time"], metavar="S",
                   help=f"seconds each timed block lasts at least (default {TIMING['min_time']:g})")
    p.add_argument("--repeat", type=positive_int, default=TIMING["repeat"], metavar="R",
                   help=f"timed blocks per piece (default {TIMING['repeat']})")
    p.add_argument("--output", default=None, metavar="FILE.json",
                   help="also write the times here (JSON)")


def run(args: argparse.Namespace) -> int:
    if "all" in args.backend:
        raise UsageError("--backend takes names (see 'mlpbench backends'), not 'all'")
    chosen = resolve_backends(args.backend)
    if args.output:
        check_writable(args.output, "--output")
    doc = {"schema": SCHEMA,
           "environment": environment([b.library for b in chosen if b.library],
                                      {b.name: facts_in_process(b, args.threads) for b in chosen},
                                      args.command_line),
           "points": []}
    for backend in chosen:
        for dtype_ in args.dtype:
            for batch_size in args.batch_size:
                for hidden in args.hidden:
                    point = measure_pieces(backend, batch_size, hidden, dtype_,
                                           threads=args.threads, min_time=args.min_time,
                                           repeat=args.repeat)
                    doc["points"].append(point)
                    print(format_pieces(point), end="\n\n", flush=True)
    if args.output:
        write_atomic(args.output, lambda f: f.write(json.dumps(doc, indent=1) + "\n"))
        print(f"pieces: {args.output}")
    return 0
