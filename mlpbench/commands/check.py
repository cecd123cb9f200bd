"""Check every available backend (or the named ones) against numpy on a few shapes, both dtypes."""
from __future__ import annotations

import argparse

import backends
from mlpbench.options import DTYPES, add_threads, resolve_backends
from mlpbench.verify import CHECK_SHAPES, CHECK_STEPS, check_backend

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", action="extend", nargs="+", metavar="NAME",
                   help="backends to check (default: every available one but numpy itself)")
    add_threads(p)


def run(args: argparse.Namespace) -> int:
    chosen = resolve_backends(args.backend)
    if not args.backend:
        chosen = [b for b in chosen if b.name != backends.REFERENCE]
        skipped = [n for n in backends.names() if n != backends.REFERENCE
                   and n not in {b.name for b in chosen}]
    else:
        skipped = []
    header = (f"{'backend':<17} {'dtype':<8} {'shape (B,n_in,H,n_out)':<22} {'steps':>5} "
              f"{'loss err':>9} {'W err':>9} {'S err':>9} {'rtol':>8}  result")
    print(header)
    failures = 0
    for backend in chosen:
        with backend.threads(args.threads):
            for dtype in DTYPES:
                for shape in CHECK_SHAPES:
                    for steps in CHECK_STEPS:
                        c = check_backend(backend, shape, dtype=dtype, steps=steps)
                        failures += not c.ok
                        verdict = "ok" if c.ok else ("FAIL" if c.dtypes_ok else "FAIL (dtype)")
                        e = c.errors
                        print(f"{backend.name:<17} {dtype:<8} {str(shape):<22} {steps:>5} "
                              f"{e['loss']:>9.1e} {e['W']:>9.1e} {e['S']:>9.1e} {c.rtol:>8.0e}  "
                              f"{verdict}", flush=True)
    for name in skipped:
        print(f"{name:<17} skipped: {backends.create(name).available()[1]}")
    print(f"errors are max|backend - numpy| / max|numpy|; {failures} mismatches")
    return 1 if failures else 0
