"""Time the step over backends x batch sizes x hidden widths x dtypes, and write the results.

Every point (backend, dtype, batch size, hidden width) gets fresh seeded data, one warm-up
call (its time is ``compile_s``), then ``--repeat`` timed blocks of enough steps to last
``--min-time``, each ended by the backend's synchronize (see ``mlpbench.measure``). The
points run in a seeded shuffled order; the results file is rewritten atomically after
each point, so an interrupted sweep leaves every finished point, and ``--resume`` goes on.
A point past ``--timeout`` is stopped by an interval timer, or between blocks (how, and
what it cannot cut short: ``mlpbench.measure``) and recorded as ``timeout``.

Exit status: 0 when every point is ok or timed out; 1 when a point is ``error`` or
``invalid`` (or ``--fail-fast`` stopped the sweep at one); 2 for bad input; 130 when
interrupted (the finished points are in ``--output``).
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from typing import Any

import numpy as np

from kernels import make_step, step_flops
from mlpbench import report, settings
from mlpbench.errors import UsageError
from mlpbench.measure import PointTimeout, measure_step, peak_matmul_gflops, per_step, time_limit
from mlpbench.options import (DTYPES, add_threads, comma_list, dtype, file_path, non_negative_int,
                              positive_int, resolve_backends, seconds)
from mlpbench.problem import check_memory, make_inputs, to_backend
from mlpbench.files import check_distinct, check_writable, lock_output
from mlpbench.results import (command_line, environment, load_results, make_result, new_results,
                              now, point_key, write_results)

__all__ = ["add_arguments", "measure_peak", "measure_point", "plan_points", "run"]

FULL, QUICK = settings.GRIDS["full"], settings.GRIDS["quick"]

EPILOG = ("Exit status: 0 when every point is ok or timed out; 1 when a point is 'error' or "
          "'invalid' (or --fail-fast stopped there); 2 for bad input; 130 when interrupted "
          "(the finished points are in --output; rerun with --resume).")


def _join(values: list) -> str:
    return ",".join(map(str, values))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.add_argument("--backend", type=comma_list(str), default=None, metavar="LIST",
                   help="comma-separated backends, or 'all' available (default all; with --quick: "
                        f"the available ones of {','.join(settings.QUICK_BACKENDS)}: all but dask, "
                        "slow for a smoke run)")
    p.add_argument("--batch-size", type=comma_list(positive_int), default=None, metavar="LIST",
                   help=f"comma-separated batch sizes (default {_join(FULL['batch_size'])})")
    p.add_argument("--hidden", type=comma_list(positive_int), default=None, metavar="LIST",
                   help=f"comma-separated hidden widths (default {_join(FULL['hidden'])})")
    p.add_argument("--n-in", type=positive_int, default=settings.N_IN, metavar="N",
                   help=f"input features (default {settings.N_IN})")
    p.add_argument("--n-out", type=positive_int, default=settings.N_OUT, metavar="N",
                   help=f"outputs (default {settings.N_OUT})")
    p.add_argument("--dtype", type=comma_list(dtype), default=list(DTYPES), metavar="LIST",
                   help="float32,float64 (default both)")
    add_threads(p)
    p.add_argument("--min-time", type=seconds, default=None, metavar="S",
                   help="seconds each timed block lasts at least (default "
                        f"{settings.TIMING['full']['min_time']:g}; --quick "
                        f"{settings.TIMING['quick']['min_time']:g})")
    p.add_argument("--repeat", type=positive_int, default=None, metavar="R",
                   help=f"timed blocks per point (default {settings.TIMING['full']['repeat']}; "
                        f"--quick {settings.TIMING['quick']['repeat']})")
    p.add_argument("--timeout", type=seconds, default=60.0, metavar="S",
                   help="seconds one point may take before it is recorded as 'timeout' "
                        "(default 60)")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                   help="seeds the data and the order of the points (default 0)")
    p.add_argument("--output", type=file_path, default=None, metavar="FILE.json",
                   help="write results here, after every point (locked while the run lasts: "
                        "a second run on the same file is refused)")
    p.add_argument("--resume", action="store_true",
                   help="skip the points already in --output (whatever their status), "
                        "run the rest")
    p.add_argument("--plot", type=file_path, default=None, metavar="FILE.png",
                   help="draw the results, in the format its suffix names: .png, .pdf, .svg, ... "
                        "(needs matplotlib: pip install 'mlpbench[plot]')")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run: batch {_join(QUICK['batch_size'])} x hidden "
                        f"{_join(QUICK['hidden'])}, min-time "
                        f"{settings.TIMING['quick']['min_time']:g}, repeat "
                        f"{settings.TIMING['quick']['repeat']}, every available backend but "
                        "dask (flags given override these)")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first point that errors or is invalid (exit 1)")
    p.add_argument("--allow-tf32", action="store_true",
                   help="let float32 matmuls on a GPU use TF32; recorded in the results")


def plan_points(backend_names: list[str], dtypes: list[str], batch_sizes: list[int],
                hiddens: list[int], n_in: int, n_out: int, seed: int) -> list[dict]:
    """Every point of the grid once, in an order shuffled by ``seed``."""
    points = [{"backend": b, "dtype": d, "batch_size": B, "n_in": n_in, "hidden": H, "n_out": n_out}
              for b in backend_names for d in dtypes for B in batch_sizes for H in hiddens]
    random.Random(seed).shuffle(points)
    return points


def _threads_in_effect(requested: int | None, info: dict) -> int | None:
    """The thread count recorded with a result: the one asked for, else the BLAS's."""
    if requested is not None:
        return requested
    blas = info.get("blas") or []
    return max(blas) if blas else None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text[:500]}"


def measure_point(backend: Any, point: dict, *, threads: int | None, min_time: float,
                  repeat: int, timeout: float | None, seed: int, peaks: dict,
                  allow_tf32: bool) -> dict:
    """Run one point under its time limit: its result, whatever happened (but Ctrl-C)."""
    sizes = (point["batch_size"], point["n_in"], point["hidden"], point["n_out"])
    lr = settings.learning_rate(*sizes)
    measurement, started = None, time.perf_counter()
    with backend.threads(threads) as info:
        try:
            # Overflow in a diverging point is reported as 'invalid', not as numpy warnings.
            with time_limit(timeout) as deadline, np.errstate(all="ignore"):
                arrays = to_backend(backend, make_inputs(*sizes, dtype=point["dtype"], seed=seed,
                                                         init="scaled"))
                step = backend.prepare(make_step, lr=lr, dtype=point["dtype"])
                measurement = measure_step(backend, step, arrays, min_time=min_time,
                                           repeat=repeat, deadline=deadline)
            if math.isfinite(measurement.final_loss):
                status, error = "ok", None
            else:
                status, error = "invalid", f"loss after the timed steps is {measurement.final_loss}"
        except PointTimeout:
            status, error = "timeout", f"ran past the --timeout of {timeout:g} s"
        except Exception as exc:  # any failure of the backend is this point's result
            status, error = "error", _one_line(exc)
    extra: dict[str, Any] = {"lr": lr, "seed": seed, "allow_tf32": allow_tf32,
                             "tf32": getattr(backend, "tf32", None), "thread_info": info,
                             "launches_per_step": getattr(backend, "launches_per_step", None),
                             "updates_in_place": getattr(backend, "updates_in_place", None),
                             "min_time": min_time, "elapsed_s": time.perf_counter() - started}
    if status == "ok" and measurement.device_block_s is not None:
        extra["device_step_s"] = per_step(measurement.device_block_s, measurement.steps_per_block)
    return make_result(point, threads=_threads_in_effect(threads, info), status=status,
                       error=error, measurement=measurement, flops_per_step=step_flops(*sizes),
                       peak_gflops=peaks.get(f"{point['backend']}/{point['dtype']}"), **extra)


def measure_peak(backend: Any, dtype: str, *, threads: int | None, min_time: float, repeat: int,
                 timeout: float | None) -> float:
    """GFLOP/s of a large square matmul through the backend, with its settings for ``dtype``."""
    with backend.threads(threads), time_limit(timeout) as deadline, np.errstate(all="ignore"):
        # prepare applies a backend's per-dtype settings: CuPy's TF32, JAX's 64-bit mode.
        backend.prepare(make_step, lr=1e-6, dtype=dtype)
        return peak_matmul_gflops(backend, dtype, min_time=min_time, repeat=repeat,
                                  deadline=deadline)["gflops"]


def _settings(args: argparse.Namespace) -> argparse.Namespace:
    """The flags, with --quick's or the full sweep's defaults for those not given."""
    grid = "quick" if args.quick else "full"
    s = argparse.Namespace(**vars(args))
    s.batch_size = args.batch_size or settings.GRIDS[grid]["batch_size"]
    s.hidden = args.hidden or settings.GRIDS[grid]["hidden"]
    s.min_time = args.min_time or settings.TIMING[grid]["min_time"]
    s.repeat = args.repeat or settings.TIMING[grid]["repeat"]
    return s


def _choose_backends(names: list[str] | None, quick: bool) -> list[Any]:
    if names is None and quick:
        return [b for b in resolve_backends(None) if b.name in settings.QUICK_BACKENDS]
    if names and "all" in names and names != ["all"]:
        raise UsageError(f"--backend 'all' cannot be combined with names: {','.join(names)}")
    return resolve_backends(names)


def _validate(s: argparse.Namespace) -> tuple[list[Any], dict | None]:
    """Everything checked before any work: (backends, the --resume document or None)."""
    if s.resume and s.output is None:
        raise UsageError("--resume needs --output FILE.json (the file to resume)")
    check_distinct({"--output": s.output, "--plot": s.plot,
                    "--output's lock": s.output and s.output + ".lock"})
    if s.plot is not None:
        from mlpbench import plot

        check_writable(s.plot, "--plot")
        plot.check_format(s.plot)
    chosen = _choose_backends(s.backend, s.quick)
    if not chosen:
        raise UsageError("no backend to run: none of the chosen ones is available here")
    previous = None
    if s.output is not None:
        check_writable(s.output, "--output")
        s.cleanup.enter_context(lock_output(s.output, "--output"))  # held until the run ends
        if s.resume and os.path.exists(s.output):
            previous = load_results(s.output)
    check_memory(max(s.batch_size), s.n_in, max(s.hidden), s.n_out,
                 "float64" if "float64" in s.dtype else "float32")
    return chosen, previous


def run(args: argparse.Namespace) -> int:
    s = _settings(args)
    chosen, previous = _validate(s)
    by_name = {b.name: b for b in chosen}
    if s.allow_tf32:
        for backend in chosen:
            backend.allow_tf32 = True
    threads = {}
    for backend in chosen:
        with backend.threads(s.threads) as info:
            threads[backend.name] = _threads_in_effect(s.threads, info)

    argv = getattr(args, "argv", None)
    doc = new_results(environment(chosen, command_line(argv), threads=s.threads))
    if previous is not None:
        env = previous["environment"]
        doc["environment"]["earlier_runs"] = env.pop("earlier_runs", []) + [env]
        doc["peak_gflops"].update(previous["peak_gflops"])
        doc["results"] = previous["results"]
    done = {point_key(r) for r in doc["results"]}
    points = plan_points([b.name for b in chosen], s.dtype, s.batch_size, s.hidden, s.n_in,
                         s.n_out, s.seed)
    todo = [p for p in points if point_key({**p, "threads": threads[p["backend"]]}) not in done]
    peaks_todo = list(dict.fromkeys((p["backend"], p["dtype"]) for p in todo))

    def save() -> None:
        if s.output:
            write_results(s.output, doc)

    save()
    failed = False
    try:
        failed = _sweep(s, doc, by_name, todo, peaks_todo, save)
    except KeyboardInterrupt:
        where = f"; the finished points are in {s.output} (rerun with --resume)" if s.output else ""
        print(f"mlpbench bench: interrupted{where}", file=sys.stderr)
        return 130
    doc["environment"]["finished"] = now()
    save()

    print(report.format_bench(doc, skipped=len(points) - len(todo)))
    if s.output:
        print(f"results: {s.output}")
    if s.plot:
        from mlpbench import plot

        plot.plot_results(doc, s.plot)
        print(f"plot: {s.plot}")
    bad = any(r["status"] in ("error", "invalid") for r in doc["results"])
    return 1 if failed or bad else 0


def _sweep(s: argparse.Namespace, doc: dict, by_name: dict, todo: list[dict],
           peaks_todo: list[tuple[str, str]], save) -> bool:
    """The peaks, then every point in order, saved after each; True if --fail-fast stopped it."""
    from tqdm import tqdm

    with tqdm(total=len(todo), file=sys.stderr, unit="point", disable=not sys.stderr.isatty(),
              dynamic_ncols=True, leave=False) as bar:
        for name, dtype_ in peaks_todo:
            bar.set_description(f"peak matmul {name} {dtype_}")
            try:
                doc["peak_gflops"][f"{name}/{dtype_}"] = measure_peak(
                    by_name[name], dtype_, threads=s.threads, min_time=s.min_time,
                    repeat=s.repeat, timeout=s.timeout)
            except (Exception, PointTimeout) as exc:
                doc.setdefault("peak_errors", {})[f"{name}/{dtype_}"] = _one_line(exc)
        save()
        for point in todo:
            bar.set_description(f"{point['backend']} {point['dtype']} batch {point['batch_size']} "
                                f"hidden {point['hidden']}")
            result = measure_point(by_name[point["backend"]], point, threads=s.threads,
                                   min_time=s.min_time, repeat=s.repeat, timeout=s.timeout,
                                   seed=s.seed, peaks=doc["peak_gflops"],
                                   allow_tf32=s.allow_tf32)
            doc["results"].append(result)
            save()
            bar.update()
            if s.fail_fast and result["status"] in ("error", "invalid"):
                bar.close()
                print(f"mlpbench bench: stopped (--fail-fast) at {point['backend']} "
                      f"{point['dtype']} batch {point['batch_size']} hidden {point['hidden']}: "
                      f"{result['status']}: {result['error']}", file=sys.stderr)
                return True
    return False
