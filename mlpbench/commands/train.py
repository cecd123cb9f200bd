"""Train like the original loop: print the loss of every step, optionally save the run to an npz."""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from kernels import make_step
from kernels.problem import INITS
from mlpbench.divergence import divergence
from mlpbench.files import check_writable, write_atomic
from mlpbench.options import (add_threads, check_learning_rate, dtype, file_path, format_threads,
                              learning_rate, non_negative_int, positive_int, resolve_backend)
from mlpbench.problem import check_memory, make_inputs, to_backend

__all__ = ["SEED_PRESET", "add_arguments", "run"]

# The original loop's sizes and settings.
SEED_PRESET = {"batch_size": 64, "n_in": 1000, "hidden": 100, "n_out": 10,
               "lr": 1e-6, "steps": 500, "dtype": "float64", "init": "normal"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="numpy", metavar="NAME", help="where to run (default numpy)")
    p.add_argument("--preset", choices=["seed"], default=None,
                   help="the original loop's settings (also the defaults); flags given override them")
    p.add_argument("--batch-size", type=positive_int, metavar="N")
    p.add_argument("--n-in", type=positive_int, metavar="N")
    p.add_argument("--hidden", type=positive_int, metavar="N")
    p.add_argument("--n-out", type=positive_int, metavar="N")
    p.add_argument("--steps", type=positive_int, metavar="N")
    p.add_argument("--lr", type=learning_rate, metavar="F")
    p.add_argument("--dtype", type=dtype)
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="N")
    p.add_argument("--init", choices=INITS,
                   help="normal: standard normal weights (the original); scaled: N(0, 2/n_in), N(0, 1/hidden)")
    add_threads(p)
    p.add_argument("--print-every", type=positive_int, default=1, metavar="K",
                   help="print the loss every K steps (default 1); the last step is always printed")
    p.add_argument("--save", type=file_path, metavar="FILE.npz",
                   help="save x, t, W0, S0, W, S, loss, lr (numpy npz, no pickles)")


def _settings(args: argparse.Namespace) -> dict:
    """The preset, overridden by the flags given."""
    settings = dict(SEED_PRESET)
    for key in settings:
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    return settings


def run(args: argparse.Namespace) -> int:
    s = _settings(args)
    check_learning_rate(s["lr"], s["dtype"])
    backend = resolve_backend(args.backend)
    if args.save is not None:
        check_writable(args.save, "--save")
    check_memory(s["batch_size"], s["n_in"], s["hidden"], s["n_out"], s["dtype"])
    inputs = make_inputs(s["batch_size"], s["n_in"], s["hidden"], s["n_out"], dtype=s["dtype"],
                         seed=args.seed, init=s["init"])
    losses: list[float] = []
    # Overflow in a diverging run is reported below, once, rather than as numpy warnings.
    with backend.threads(args.threads) as threads, np.errstate(over="ignore", invalid="ignore"):
        dev = to_backend(backend, inputs)
        step = backend.prepare(make_step, lr=s["lr"], dtype=s["dtype"])
        W, S = dev["W"], dev["S"]
        start = time.perf_counter()
        compile_s = 0.0
        for i in range(s["steps"]):
            W, S, loss = step(dev["x"], dev["t"], W, S)
            losses.append(float(backend.to_numpy(loss)))
            if i == 0:
                compile_s = time.perf_counter() - start
            if i % args.print_every == 0 or i == s["steps"] - 1:
                print(f"Iter: {i}\tLoss: {losses[-1]}", flush=True)
            if not math.isfinite(losses[-1]):
                break
        backend.synchronize(W, S, loss)
        elapsed = time.perf_counter() - start
        W, S = backend.to_numpy(W), backend.to_numpy(S)
    why = divergence(losses[-1], W=W, S=S)
    if args.save is not None:
        arrays = dict(x=inputs["x"], t=inputs["t"], W0=inputs["W"], S0=inputs["S"], W=W, S=S,
                      loss=np.array(losses, dtype=np.float64),
                      lr=np.array(s["lr"], dtype=s["dtype"]))
        # Through a file object: numpy would append .npz to a name without it.
        write_atomic(args.save, lambda f: np.savez(f, **arrays), binary=True)
    steps_done = len(losses)
    per_step = (elapsed - compile_s) / (steps_done - 1) if steps_done > 1 else float("nan")
    print(f"mlpbench train: {backend.name} {s['dtype']} batch {s['batch_size']} n_in {s['n_in']} "
          f"hidden {s['hidden']} n_out {s['n_out']}; threads: {format_threads(threads)}; "
          f"first step (compile) {compile_s:.3f} s; {per_step * 1e3:.3f} ms/step over the other "
          f"{steps_done - 1} steps",
          file=sys.stderr)
    if why:
        where = (f"the loss became {losses[-1]} at step {steps_done - 1}"
                 if not math.isfinite(losses[-1]) else f"after step {steps_done - 1}, {why}")
        print(f"mlpbench train: {where} (diverged); try a smaller --lr (now {s['lr']:g}) "
              "or --init scaled", file=sys.stderr)
        return 1
    return 0
