"""The summary of scripts/gpu-check.sh's results: each GPU point against its roofs and launch floor,
the targets of docs/gpu.md met or not, the gate on the GPU, and the CPU's thread scaling.

``python -m mlpbench.gpu_summary OUTDIR`` reads what the script wrote there, each where
present: gpu-bench.json, gpu-bench-tf32.json, gpu-probe.json, gate.jsonl, cpu-numpy.json,
cpu-scaling.json; exit status 2 when none is there or one is not a results file.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from mlpbench.errors import UsageError
from mlpbench.results import load_results

__all__ = ["TARGETS", "summarize"]

#: The targets of docs/gpu.md, by name.
TARGETS = {
    "peak": 0.70,          # cupy at batch 4096 x hidden 4096: this share of its matmul peak
    "peers": 0.90,         # cupy's steps/s over the faster of torch and jax, batch >= 1024
    "honest": 0.05,        # |wall / CUDA events - 1| at compute-bound points
    "graph_gain": 2.5,     # cupy-graph over cupy, batch 1 and 64 x hidden 100
    "graph_cost": 0.03,    # cupy-graph at least this close to cupy at batch 4096 x hidden 4096
}
GPU_ORDER = ("cupy", "cupy-graph", "torch", "torch-graph", "jax")


def _us(seconds) -> str:
    return f"{seconds * 1e6:9.1f}" if isinstance(seconds, (int, float)) else f"{'-':>9}"


def _key(r: dict) -> tuple:
    return (r["dtype"], r["batch_size"], r["hidden"])


def _ok(rows: list[dict]) -> dict[tuple, dict]:
    """{(backend, dtype, batch, hidden): result} of the results that are ok (the last wins)."""
    return {(r["backend"], *_key(r)): r for r in rows if r["status"] == "ok"}


def _header(doc: dict, probe: dict | None) -> list[str]:
    env = doc["environment"]
    gpu = env.get("gpu") or {}
    libs = env.get("libraries") or {}
    lines = [f"GPU: {gpu.get('name')} (compute capability {gpu.get('compute_capability')}, "
             f"driver {gpu.get('driver')}, CUDA runtime {gpu.get('cuda')}); "
             f"{env.get('cores')} CPU cores ({env.get('cpu')})",
             "libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(libs.items()) if v),
             f"run: {env.get('started')} to {env.get('finished')}"]
    if probe:
        lines.append(f"CuPy's own matmul under stream capture: {probe.get('cupy_cublas_capture')}")
    lines.append("matmul peak GFLOP/s: " + ", ".join(
        f"{k} {v:,.0f}" for k, v in sorted(doc.get("peak_gflops", {}).items())))
    for name, roofs in sorted((env.get("device_roofs") or {}).items()):
        bw = ", ".join(f"{row['gb_per_s']:,.0f} GB/s at {row['working_set_bytes'] / 2**20:,.0f} MiB"
                       for row in roofs.get("bandwidth", []))
        floor = roofs.get("launch_floor") or {}
        lines.append(f"{name}: bandwidth {bw}; launch floor: empty kernel "
                     f"{_us(floor.get('empty_kernel_s')).strip()} µs, empty graph "
                     f"{_us(floor.get('empty_graph_s')).strip()} µs")
    return lines


def _launches(r: dict, probe: dict | None) -> float | None:
    """Host launches per step: the backend's own count, else the kernels CUPTI saw per step."""
    if r.get("launches_per_step"):
        return r["launches_per_step"]
    counted = ((probe or {}).get("kernels_per_step") or {}).get(
        f"{r['backend']} b{r['batch_size']} h{r['hidden']} {r['dtype']}") or {}
    if "kernels" in counted:
        return counted["kernels"] + counted.get("copies", 0)
    return None


def _floor(r: dict, env: dict, probe: dict | None) -> float | None:
    """Seconds the step's launches take at the launch floor (a graph: one replay and one copy)."""
    floor = ((env.get("device_roofs") or {}).get(r["backend"]) or {}).get("launch_floor") or {}
    kernel, graph = floor.get("empty_kernel_s"), floor.get("empty_graph_s")
    if r.get("graph") and kernel and graph:
        return graph + kernel
    n = _launches(r, probe)
    return n * kernel if n and kernel else None


def _table(doc: dict, probe: dict | None) -> list[str]:
    env = doc["environment"]
    lines = ["", f"{'backend':<12} {'dtype':<8} {'batch':>5} {'hidden':>6} {'wall µs':>9} "
                 f"{'event µs':>9} {'wall/ev':>7} {'steps/s':>10} {'peak':>5} {'roof':>5} "
                 f"{'launch':>6} {'floor µs':>9}"]
    rows = sorted(doc["results"], key=lambda r: (*_key(r), GPU_ORDER.index(r["backend"])
                                                  if r["backend"] in GPU_ORDER else 99))
    for r in rows:
        head = f"{r['backend']:<12} {r['dtype']:<8} {r['batch_size']:>5} {r['hidden']:>6}"
        if r["status"] != "ok":
            lines.append(f"{head} {r['status']}: {r.get('error')}")
            continue
        wall = r["step_s"]["median"]
        event = (r.get("device_step_s") or {}).get("median")
        ratio = f"{wall / event:7.3f}" if event else f"{'-':>7}"
        peak = r.get("peak_fraction")
        roof = r.get("roof_fraction")
        n = _launches(r, probe)
        lines.append(f"{head} {_us(wall)} {_us(event)} {ratio} {r['steps_per_s']:10,.0f} "
                     f"{_percent(peak)} {_percent(roof)} "
                     f"{f'{n:6.1f}' if n is not None else '-':>6} {_us(_floor(r, env, probe))}")
    return lines


def _percent(fraction) -> str:
    return f"{fraction:5.0%}" if isinstance(fraction, (int, float)) else f"{'-':>5}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _targets(doc: dict) -> list[str]:
    ok = _ok(doc["results"])
    lines = ["", "targets:"]
    for dtype in ("float32", "float64"):
        r = ok.get(("cupy", dtype, 4096, 4096))
        if r and r.get("peak_fraction") is not None:
            lines.append(f"  cupy b4096 h4096 {dtype}: {r['peak_fraction']:.0%} of its matmul peak "
                         f"(TF32 {'on' if r.get('tf32') else 'off'}; target {TARGETS['peak']:.0%}): "
                         f"{_verdict(r['peak_fraction'] >= TARGETS['peak'])}")
    for (name, dtype, batch, hidden), r in sorted(ok.items()):
        if name != "cupy" or batch < 1024:
            continue
        peers = [ok[p] for p in (("torch", dtype, batch, hidden), ("jax", dtype, batch, hidden))
                 if p in ok]
        if peers:
            best = max(peers, key=lambda p: p["steps_per_s"])
            ratio = r["steps_per_s"] / best["steps_per_s"]
            lines.append(f"  cupy b{batch} h{hidden} {dtype}: {ratio:.3f}x {best['backend']} "
                         f"(target >= {TARGETS['peers']}): {_verdict(ratio >= TARGETS['peers'])}")
    for (name, dtype, batch, hidden), r in sorted(ok.items()):
        event = (r.get("device_step_s") or {}).get("median")
        if event and r.get("bound") == "compute":
            off = r["step_s"]["median"] / event - 1
            lines.append(f"  {name} b{batch} h{hidden} {dtype} (compute-bound): wall/events "
                         f"{1 + off:.3f} (target within {TARGETS['honest']:.0%}): "
                         f"{_verdict(abs(off) <= TARGETS['honest'])}")
    for (name, dtype, batch, hidden), r in sorted(ok.items()):
        plain = ok.get((name.removesuffix("-graph"), dtype, batch, hidden))
        if not name.endswith("-graph") or plain is None:
            continue
        gain = r["steps_per_s"] / plain["steps_per_s"]
        others = {p: ok[(p, dtype, batch, hidden)]["steps_per_s"] for p in GPU_ORDER
                  if p != name and (p, dtype, batch, hidden) in ok}
        fastest_other = max(others, key=others.get) if others else None
        text = f"  {name} b{batch} h{hidden} {dtype}: {gain:.2f}x {plain['backend']}"
        if name == "cupy-graph" and hidden == 100 and batch in (1, 64):
            text += (f" (target >= {TARGETS['graph_gain']}x): {_verdict(gain >= TARGETS['graph_gain'])}"
                     + (f"; fastest other: {fastest_other} "
                        f"{r['steps_per_s'] / others[fastest_other]:.2f}x" if fastest_other else ""))
        elif name == "cupy-graph" and batch == 4096 and hidden == 4096:
            text += (f" (target within {TARGETS['graph_cost']:.0%}): "
                     f"{_verdict(gain >= 1 - TARGETS['graph_cost'])}")
        lines.append(text)
    return lines


def _tf32(doc: dict, tf32: dict) -> list[str]:
    plain = _ok(doc["results"])
    lines = ["", "TF32 (--allow-tf32) against the same float32 point without:"]
    for (name, dtype, batch, hidden), r in sorted(_ok(tf32["results"]).items()):
        base = plain.get((name, dtype, batch, hidden))
        ratio = f"{r['steps_per_s'] / base['steps_per_s']:.2f}x" if base else "-"
        lines.append(f"  {name:<12} b{batch:<5} h{hidden:<5} {r['steps_per_s']:10,.0f} steps/s "
                     f"{ratio} (tf32 recorded: {r.get('tf32')})")
    return lines


def _gate(path: Path) -> list[str]:
    lines = ["", "the gate on the GPU (mlpbench regress --backend cupy, scratch repository):"]
    for line in path.read_text().splitlines():
        run = json.loads(line)
        points = run.get("points", [])
        intervals = [p["ratio_interval"] for p in points if p.get("ratio_interval")]
        verdicts = ", ".join(
            f"{p.get('name')} {p.get('verdict')} "
            + (f"{p['ratio']:.3f} [{p['ratio_interval'][0]:.3f}, {p['ratio_interval'][1]:.3f}]"
               if p.get("ratio") is not None and p.get("ratio_interval") else "-")
            for p in points)
        widest = max((hi - lo for lo, hi in intervals), default=math.nan)
        lines.append(f"  {run['run']}: exit {run.get('status')}, {run.get('elapsed_s', math.nan):.0f} s, "
                     f"widest interval {widest:.3f}: {verdicts}")
    return lines


def _rate(v) -> str:
    if not v:
        return f"{'-':>9}"
    return f"{v:9,.0f}" if v >= 100 else f"{v:9.3g}"


def _scaling(doc: dict) -> list[str]:
    lines = ["", f"CPU thread scaling ({doc['environment'].get('cpu')}), steps/s:"]
    table: dict[tuple, dict[int, float]] = {}
    for r in doc["results"]:
        if r["status"] == "ok":
            table.setdefault((r["backend"], *_key(r)), {})[r["threads"]] = r["steps_per_s"]
    threads = sorted({n for row in table.values() for n in row})
    lines.append(f"  {'backend':<8} {'dtype':<8} {'batch':>5} {'hidden':>6} "
                 + " ".join(f"{n:>9}" for n in threads) + "  slower with more threads")
    for key, row in sorted(table.items()):
        rates = [row.get(n) for n in threads]
        worse = [f"{a}->{b}" for i, a in enumerate(threads) for b in threads[i + 1:]
                 if row.get(a) and row.get(b) and row[b] < 0.95 * row[a]]
        lines.append(f"  {key[0]:<8} {key[1]:<8} {key[2]:>5} {key[3]:>6} "
                     + " ".join(_rate(v) for v in rates)
                     + "  " + (", ".join(worse) or "-"))
    return lines


def _merged(env: dict) -> dict:
    """The environment with what its earlier runs (``bench --resume``) measured: each backend's
    device roofs and library versions, and the GPU facts, the latest run's winning."""
    merged: dict = {}
    for run in [*env.get("earlier_runs", []), env]:
        for key in ("device_roofs", "libraries"):
            merged.setdefault(key, {}).update(run.get(key) or {})
        for key, value in run.items():
            if key not in ("device_roofs", "libraries", "earlier_runs", "finished"):
                merged[key] = value if value is not None else merged.get(key)
        if (run.get("gpu") or {}).get("compute_capability"):
            merged["cuda_gpu"] = run["gpu"]
    merged["gpu"] = merged.pop("cuda_gpu", merged.get("gpu"))
    merged["finished"] = env.get("finished")
    merged["started"] = next((r["started"] for r in env.get("earlier_runs", []) if r.get("started")),
                             env.get("started"))
    return merged


def summarize(folder: Path) -> str:
    """The summary of what scripts/gpu-check.sh left in ``folder`` (UsageError: nothing there)."""
    lines: list[str] = []
    probe_path = folder / "gpu-probe.json"
    probe = json.loads(probe_path.read_text()) if probe_path.exists() else None
    if (folder / "gpu-bench.json").exists():
        doc = load_results(str(folder / "gpu-bench.json"))
        doc["environment"] = _merged(doc["environment"])
        lines += _header(doc, probe) + _table(doc, probe) + _targets(doc)
        if (folder / "gpu-bench-tf32.json").exists():
            lines += _tf32(doc, load_results(str(folder / "gpu-bench-tf32.json")))
    elif probe:
        lines.append(f"CuPy's own matmul under stream capture: {probe.get('cupy_cublas_capture')}")
    if (folder / "gate.jsonl").exists():
        lines += _gate(folder / "gate.jsonl")
    if (folder / "cpu-numpy.json").exists():
        cpu = load_results(str(folder / "cpu-numpy.json"))
        lines += ["", "numpy on the CPU, 1 thread (the reference): " + ", ".join(
            f"{r['dtype']} b{r['batch_size']} h{r['hidden']} {r['steps_per_s']:,.0f} steps/s"
            for r in cpu["results"] if r["status"] == "ok")]
    if (folder / "cpu-scaling.json").exists():
        lines += _scaling(load_results(str(folder / "cpu-scaling.json")))
    if not lines:
        raise UsageError(f"no results of scripts/gpu-check.sh in {str(folder)!r} "
                         "(gpu-bench.json does not exist)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m mlpbench.gpu_summary OUTDIR", file=sys.stderr)
        return 2
    try:
        print(summarize(Path(argv[0])))
    except UsageError as exc:
        print(f"gpu summary: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
