"""The GPU check's summary: CuPy against numpy per point, and the step's share of the matmul peak.

``python -m mlpbench.gpu_summary BENCH.json [TF32.json]``, as scripts/gpu-check.sh runs it;
exit status 2 when BENCH.json is missing or not a results file.
"""
from __future__ import annotations

import sys

from mlpbench import report
from mlpbench.errors import UsageError
from mlpbench.results import load_results

__all__ = ["PEAK_GOAL", "summarize"]

#: The share of the measured matmul peak the step should reach at the largest size.
PEAK_GOAL = 0.5


def _number(value, spec: str, width: int) -> str:
    return f"{value:{width}{spec}}" if isinstance(value, (int, float)) else f"{'-':>{width}}"


def _key(r: dict) -> tuple:
    return (r["dtype"], r["batch_size"], r["hidden"])


def summarize(doc: dict, tf32: dict | None = None) -> str:
    """The summary of a bench run of numpy and cupy (and of a run with --allow-tf32)."""
    env = doc["environment"]
    gpu = env.get("gpu") or {}
    libraries = env.get("libraries") or {}
    cupy = next((v for k, v in libraries.items() if k.startswith("cupy")), None)
    lines = [f"GPU: {gpu.get('name')} (compute capability {gpu.get('compute_capability')}, "
             f"driver {gpu.get('driver')}, CUDA runtime {gpu.get('cuda')})",
             f"CuPy {cupy}; numpy {libraries.get('numpy')}; {env.get('cores')} cores "
             f"({env.get('cpu')})",
             "matmul peak GFLOP/s: " + ", ".join(
                 f"{k} {v:.0f}" for k, v in sorted(doc["peak_gflops"].items())),
             "",
             f"{'dtype':<8} {'batch':>6} {'hidden':>6} {'numpy step/s':>13} {'cupy step/s':>12} "
             f"{'speed-up':>9} {'peak frac':>9} {'GPU ms/step':>11}"]
    rows = doc["results"]
    speedup = report.speedups(rows)
    numpy_rate = {_key(r): r["steps_per_s"] for r in rows
                  if r["backend"] == "numpy" and r["status"] == "ok"}
    cupy_rows = sorted((r for r in rows if r["backend"] == "cupy"), key=_key)
    for r in cupy_rows:
        if r["status"] != "ok":
            lines.append(f"{r['dtype']:<8} {r['batch_size']:>6} {r['hidden']:>6}  "
                         f"cupy {r['status']}: {r.get('error')}")
            continue
        gpu_s = (r.get("device_step_s") or {}).get("median")  # CUDA events, per step
        lines.append(f"{r['dtype']:<8} {r['batch_size']:>6} {r['hidden']:>6} "
                     f"{_number(numpy_rate.get(_key(r)), '.1f', 13)} {r['steps_per_s']:12.1f} "
                     f"{_number(speedup.get(id(r)), '.1f', 9)} "
                     f"{_number(r.get('peak_fraction'), '.2f', 9)} "
                     f"{_number(gpu_s * 1e3 if gpu_s else None, '.3f', 11)}")
    ok = [r for r in cupy_rows if r["status"] == "ok" and r.get("peak_fraction") is not None]
    if ok:
        largest = max(r["batch_size"] * r["hidden"] for r in ok)
        for r in (r for r in ok if r["batch_size"] * r["hidden"] == largest):
            verdict = "meets" if r["peak_fraction"] >= PEAK_GOAL else "is below"
            lines += ["", f"largest size, {r['dtype']} (TF32 {'on' if r.get('tf32') else 'off'}): "
                          f"the step reaches {r['peak_fraction']:.0%} of the measured matmul "
                          f"peak; {verdict} the {PEAK_GOAL:.0%} goal"]
    for r in (tf32 or {}).get("results", []):
        if r["backend"] == "cupy" and r["status"] == "ok":
            lines.append(f"with --allow-tf32, {r['dtype']} batch {r['batch_size']} hidden "
                         f"{r['hidden']}: {r['steps_per_s']:.1f} step/s, peak fraction "
                         f"{_number(r.get('peak_fraction'), '.2f', 0)}, tf32 recorded "
                         f"{r.get('tf32')}")
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        lines += ["", f"{len(bad)} point(s) not ok: " + "; ".join(
            f"{r['backend']} {r['dtype']} B{r['batch_size']} H{r['hidden']} {r['status']}"
            for r in bad)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python -m mlpbench.gpu_summary BENCH.json [TF32.json]", file=sys.stderr)
        return 2
    try:
        doc = load_results(argv[0])
        tf32 = load_results(argv[1]) if len(argv) == 2 else None
    except UsageError as exc:
        print(f"gpu summary: error: {exc}", file=sys.stderr)
        return 2
    print(summarize(doc, tf32))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
