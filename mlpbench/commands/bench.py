"""Time the step over backends x batch sizes x hidden widths x dtypes, and write the results.

Every point (backend, dtype, batch size, hidden width) gets fresh seeded data, one warm-up
call (its time is ``compile_s``), then ``--repeat`` timed blocks of enough steps to last
``--min-time``, each ended by the backend's synchronize (see ``mlpbench.measure``). Each
backend runs in a worker process of its own (``mlpbench.sweep``); the points run in a
seeded shuffled order; the results file is rewritten atomically after each point, so an
interrupted sweep leaves every finished point, and ``--resume`` goes on. A point past
``--timeout`` has its worker killed and is recorded as ``timeout``; a worker that dies
makes its point ``error``.

Exit status: 0 when every point is ok or timed out; 1 when a point is ``error`` or
``invalid`` (or ``--fail-fast`` stopped the sweep at one); 2 for bad input; 130 when
interrupted (the finished points are in ``--output``).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import backends
from mlpbench import report, roofline, roofline_plot, settings, sweep
from mlpbench.environment import environment
from mlpbench.errors import UsageError
from mlpbench.files import check_distinct, check_writable, lock_output
from mlpbench.options import (DTYPES, add_threads, comma_list, dtype, file_path, non_negative_int,
                              positive_int, resolve_backends, seconds)
from mlpbench.problem import check_memory
from mlpbench.results import load_results, new_results, now, write_results
from mlpbench.workers import WorkerError

__all__ = ["add_arguments", "run"]

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
    p.add_argument("--isolate", choices=sweep.ISOLATION, default="backend",
                   help="a worker process per backend for the whole sweep (default), or a "
                        "fresh one per point")
    p.add_argument("--allow-tf32", action="store_true",
                   help="let float32 matmuls on a GPU use TF32; recorded in the results")


def _settings(args: argparse.Namespace) -> argparse.Namespace:
    """The flags, with --quick's or the full sweep's defaults for those not given."""
    grid = "quick" if args.quick else "full"
    s = argparse.Namespace(**vars(args))
    s.batch_size = args.batch_size or settings.GRIDS[grid]["batch_size"]
    s.hidden = args.hidden or settings.GRIDS[grid]["hidden"]
    s.min_time = args.min_time or settings.TIMING[grid]["min_time"]
    s.repeat = args.repeat or settings.TIMING[grid]["repeat"]
    return s


def _choose_backends(names: list[str] | None, quick: bool, allow_tf32: bool) -> list[Any]:
    if names is None and quick:
        names = [n for n in backends.available() if n in settings.QUICK_BACKENDS]
    if names and "all" in names and names != ["all"]:
        raise UsageError(f"--backend 'all' cannot be combined with names: {','.join(names)}")
    return resolve_backends(names, allow_tf32=allow_tf32)


def _validate(s: argparse.Namespace) -> tuple[list[Any], dict | None]:
    """Everything checked before any work: (backends, the --resume document or None)."""
    if s.resume and s.output is None:
        raise UsageError("--resume needs --output FILE.json (the file to resume)")
    check_distinct({"--output": s.output, "--plot": s.plot,
                    "--plot's roofline chart": s.plot and roofline_plot.path_beside(s.plot),
                    "--output's lock": s.output and s.output + ".lock"})
    if s.plot is not None:
        from mlpbench import plot

        check_writable(s.plot, "--plot")
        check_writable(roofline_plot.path_beside(s.plot), "--plot's roofline chart")
        plot.check_format(s.plot)
    chosen = _choose_backends(s.backend, s.quick, s.allow_tf32)
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
    names = [b.name for b in chosen]
    options = sweep.Options(threads=s.threads, min_time=s.min_time, repeat=s.repeat,
                            timeout=s.timeout, seed=s.seed, allow_tf32=s.allow_tf32,
                            isolate=s.isolate)
    with sweep.Sweep(options) as engine:
        try:
            return _run(s, args, chosen, names, previous, engine)
        except KeyboardInterrupt:
            where = (f"; the finished points are in {s.output} (rerun with --resume)"
                     if s.output else "")
            print(f"mlpbench bench: interrupted{where}", file=sys.stderr)
            return 130


def _run(s: argparse.Namespace, args: argparse.Namespace, chosen: list, names: list[str],
         previous: dict | None, engine: sweep.Sweep) -> int:
    from tqdm import tqdm

    facts = {}
    for name in names:
        try:
            facts[name] = engine.start(name)
        except WorkerError as exc:
            raise UsageError(str(exc)) from None
    threads = {name: facts[name]["threads"] for name in names}
    doc = new_results(environment([b.library for b in chosen if b.library], facts,
                                  args.command_line))
    if previous is not None:
        env = previous["environment"]
        doc["environment"]["earlier_runs"] = env.pop("earlier_runs", []) + [env]
        doc["peak_gflops"].update(previous["peak_gflops"])
        doc["results"] = previous["results"]
    roof_threads = s.threads or doc["environment"]["cores_usable"] or 1
    doc["environment"]["roofs"] = roofline.measure_bandwidth(
        roofline.default_sizes(roofline.cache_sizes(), roof_threads), threads=roof_threads,
        min_time=min(s.min_time, 0.1), repeat=3)  # best of 3: a few seconds in all
    points = sweep.plan_points(names, s.dtype, s.batch_size, s.hidden, s.n_in, s.n_out, s.seed)
    todo = sweep.pending(points, doc["results"], threads)
    peaks_todo = list(dict.fromkeys((p["backend"], p["dtype"]) for p in todo))

    def save() -> None:
        if s.output:
            write_results(s.output, doc)

    save()
    stopped: list[dict] = []
    with tqdm(total=len(todo), file=sys.stderr, unit="point", disable=not sys.stderr.isatty(),
              dynamic_ncols=True, leave=False) as bar:
        for name, dtype_ in peaks_todo:
            bar.set_description(f"peak matmul {name} {dtype_}")
            try:
                doc["peak_gflops"][f"{name}/{dtype_}"] = engine.peak(name, dtype_)
            except WorkerError as exc:
                doc.setdefault("peak_errors", {})[f"{name}/{dtype_}"] = str(exc)
        save()

        def on_result(result: dict) -> bool:
            if result["status"] == "ok":
                peak = doc["peak_gflops"].get(f"{result['backend']}/{result['dtype']}")
                result.update(roofline.roof_fields(
                    result, peak, roofline.roofs_for(result, doc["environment"])))
            doc["results"].append(result)
            save()
            bar.update()
            if s.fail_fast and result["status"] in ("error", "invalid"):
                stopped.append(result)
                return True
            return False

        sweep.run_points(engine, todo, doc["peak_gflops"], on_result, bar.set_description)
    if stopped:
        r = stopped[0]
        print(f"mlpbench bench: stopped (--fail-fast) at {r['backend']} {r['dtype']} batch "
              f"{r['batch_size']} hidden {r['hidden']}: {r['status']}: {r['error']}",
              file=sys.stderr)
    doc["environment"]["finished"] = now()
    save()

    print(report.format_bench(doc, skipped=len(points) - len(todo)))
    if s.output:
        print(f"results: {s.output}")
    if s.plot:
        from mlpbench import plot

        plot.plot_results(doc, s.plot)
        roofline_plot.plot_roofline(doc, roofline_plot.path_beside(s.plot))
        print(f"plot: {s.plot}, roofline: {roofline_plot.path_beside(s.plot)}")
    bad = any(r["status"] in ("error", "invalid") for r in doc["results"])
    return 1 if bad else 0
