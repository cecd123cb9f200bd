"""Replay a bench run's numba worker in one process: the same points, in the same order, on the
same (forward, update) BLAS pairs its results record, each point's status printed.

For a failure seen in a sweep and not alone (docs/numba-blas.md: the 1024 x 1024 float32
SystemError): a worker runs every pair of the sweep before the failing point. The pairs are
given, not measured (``_numba_blas.pick`` replaced), so the replay does not depend on this
machine's timings; short blocks, as only the sequence matters.

usage: python scripts/replay-numba-worker.py RESULTS.json      (from the repository root)
"""
from __future__ import annotations

import json
import sys

from backends import _numba_blas
from mlpbench.worker import _Worker


def main(path: str) -> int:
    points = [r for r in json.load(open(path))["results"]
              if r["backend"] == "numba" and (r.get("blas") or {}).get("products")]
    pairs = {(r["dtype"], r["batch_size"], r["n_in"], r["hidden"]):
             (r["blas"]["products"]["forward"], r["blas"]["products"]["update"]) for r in points}

    def recorded_pick(offered, dtype, batch, n_in, hidden):
        forward, update = pairs[dtype, batch, n_in, hidden]
        return _numba_blas.Products(forward, update, (batch, n_in, hidden))

    _numba_blas.pick = recorded_pick
    worker = _Worker()
    print(worker.op_start({"backend": "numba", "allow_tf32": False, "threads": 1}))
    for dtype in ("float32", "float64"):
        worker.op_peak({"dtype": dtype, "min_time": 0.05, "repeat": 3})
    failed = 0
    for r in points:
        point = {k: r[k] for k in ("backend", "dtype", "batch_size", "n_in", "hidden", "n_out")}
        got = worker.op_point({"point": point, "min_time": 0.05, "repeat": 3, "seed": r["seed"],
                               "peak_gflops": None})["result"]
        failed += got["status"] != "ok"
        print(r["dtype"], r["batch_size"], r["hidden"],
              pairs[r["dtype"], r["batch_size"], r["n_in"], r["hidden"]], got["status"],
              *[got["error"]] if got.get("error") else [], flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
