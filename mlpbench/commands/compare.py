"""Compare two bench result files point by point: B's steps/s over A's."""
from __future__ import annotations

import argparse
import math

from mlpbench.options import file_path
from mlpbench.report import backend_order, format_rate, kernels_line
from mlpbench.results import KEY_FIELDS, load_results, point_key

__all__ = ["add_arguments", "match", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", type=file_path, metavar="A.json", help="the baseline results")
    p.add_argument("b", type=file_path, metavar="B.json", help="the results compared with it")
    p.epilog = ("Points are matched on backend, dtype, batch size, n_in, hidden, n_out and "
                "threads; B/A above 1 means B is faster. Exit status 0, or 2 when a file is "
                "missing or not a results file.")


def match(a: dict, b: dict) -> tuple[list[tuple[dict, dict]], list[dict], list[dict]]:
    """(pairs of results at the same point, points only in A, points only in B).

    When a file holds a point twice (a resumed run redone by hand), its last entry counts.
    """
    in_a = {point_key(r): r for r in a["results"]}
    in_b = {point_key(r): r for r in b["results"]}
    pairs = [(in_a[k], in_b[k]) for k in in_a if k in in_b]
    return pairs, [r for k, r in in_a.items() if k not in in_b], \
        [r for k, r in in_b.items() if k not in in_a]


def _order(r: dict) -> tuple:
    return (r["n_in"], r["n_out"], r["hidden"], r["batch_size"], r["dtype"],
            backend_order(r["backend"]), -1 if r["threads"] is None else r["threads"])


def _describe(r: dict) -> str:
    return (f"{r['backend']} {r['dtype']} batch {r['batch_size']} n_in {r['n_in']} "
            f"hidden {r['hidden']} n_out {r['n_out']} threads {r['threads']}")


def run(args: argparse.Namespace) -> int:
    a, b = load_results(args.a), load_results(args.b)
    pairs, only_a, only_b = match(a, b)
    for label, path, doc in (("A", args.a, a), ("B", args.b, b)):
        env = doc["environment"]
        print(f"{label}: {path}  ({env.get('cpu')}, started {env.get('started')})")
    kernels = [kernels_line(doc["environment"]) for doc in (a, b)]
    if kernels[0] != kernels[1]:  # e.g. OPENBLAS_CORETYPE set in one run: a ratio of BLASes
        for label, line in zip("AB", kernels):
            print(f"{label}'s {line or 'BLAS kernels: not recorded'}")
    width = max([len("backend")] + [len(ra["backend"]) for ra, _ in pairs])
    print(f"{'backend':<{width}}  {'dtype':<7}  {'batch':>5}  {'n_in':>5}  {'hidden':>6}  "
          f"{'n_out':>5}  {'threads':>7}  {'A steps/s':>10}  {'B steps/s':>10}  {'B/A':>6}")
    logs = []
    for ra, rb in sorted(pairs, key=lambda pair: _order(pair[0])):
        if ra["status"] == "ok" and rb["status"] == "ok":
            ratio = rb["steps_per_s"] / ra["steps_per_s"]
            logs.append(math.log(ratio))
            verdict = f"{ratio:6.2f}"
        else:
            verdict = f"A {ra['status']}, B {rb['status']}"
        cells = [ra[k] for k in KEY_FIELDS]
        print(f"{cells[0]:<{width}}  {cells[1]:<7}  {cells[2]:>5}  {cells[3]:>5}  {cells[4]:>6}  "
              f"{cells[5]:>5}  {str(cells[6]):>7}  {_rate(ra):>10}  {_rate(rb):>10}  {verdict:>6}")
    for label, only in (("A", only_a), ("B", only_b)):
        for r in sorted(only, key=_order):
            print(f"only in {label}: {_describe(r)} ({r['status']})")
    if logs:
        print(f"geometric mean of B/A over {len(logs)} points ok in both: "
              f"{math.exp(sum(logs) / len(logs)):.3f}")
    else:
        print("no point is ok in both files")
    return 0


def _rate(r: dict) -> str:
    return format_rate(r["steps_per_s"]) if r["status"] == "ok" else r["status"]
