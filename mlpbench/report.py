"""The stdout table of a bench run: grouped by size, each backend's speed-up over numpy beside."""
from __future__ import annotations

import codecs
import os
import sys
import textwrap
from collections import Counter
from typing import Iterable

import backends
from mlpbench.results import STATUSES

__all__ = ["backend_order", "format_bench", "format_rate", "format_seconds", "kernels_line",
           "speedups"]

_GROUP = ("batch_size", "hidden", "n_in", "n_out", "threads")


def _micro() -> str:
    """"µs", or "us" where stdout cannot print "µ" (PYTHONIOENCODING=ascii, a C locale)."""
    try:
        codecs.encode("µ", getattr(sys.stdout, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "us"
    return "µs"


def format_seconds(seconds: float | None) -> str:
    """3 significant digits in ns, µs, ms or s (us where stdout cannot print µ)."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), (_micro(), 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_rate(value: float | None) -> str:
    """Whole numbers with thousands separators from 1000 up; 3 significant digits below."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def backend_order(name: str) -> tuple[int, str]:
    known = backends.names()
    return (known.index(name), name) if name in known else (len(known), name)


def speedups(results: Iterable[dict]) -> dict[int, float]:
    """id(result) -> its steps/s over numpy's at the same point (ok results on both sides only)."""
    results = list(results)
    reference = {(r["dtype"],) + tuple(r[k] for k in _GROUP): r["steps_per_s"] for r in results
                 if r["backend"] == backends.REFERENCE and r["status"] == "ok"}
    out = {}
    for r in results:
        ref = reference.get((r["dtype"],) + tuple(r[k] for k in _GROUP))
        if r["status"] == "ok" and ref:
            out[id(r)] = r["steps_per_s"] / ref
    return out


def _flops(flops: float) -> str:
    return f"{flops / 1e9:.3g} GFLOP" if flops >= 1e9 else f"{flops / 1e6:.3g} MFLOP"


def _percent(fraction: float | None) -> str:
    if fraction is None:
        return "-"
    return f"{100 * fraction:.0f}%" if fraction >= 0.1 else f"{100 * fraction:.2g}%"


def _row(r: dict, speedup: float | None, width: int) -> str:
    head = f"  {r['backend']:<{width}}  {r['dtype']:<7}"
    if r["status"] != "ok":
        message = f"{r['status']}: {r['error']}" if r.get("error") else r["status"]
        return f"{head}  {textwrap.shorten(message, 100, placeholder=' ...')}"
    step = r["step_s"]
    spread = f"{format_seconds(step['min'])} - {format_seconds(step['max'])}"
    peak = _percent(r.get("peak_fraction"))
    roof = _percent(r.get("roof_fraction"))
    vs = f"{speedup:.2f}x" if speedup is not None else "-"
    return (f"{head}  {format_seconds(step['median']):>9}  {spread:>19}  "
            f"{format_rate(r['steps_per_s']):>9}  {format_rate(r['gflops']):>7}  {peak:>5}  "
            f"{roof:>5}  {format_seconds(r['compile_s']):>8}  {vs:>8}")


def format_bench(doc: dict, *, skipped: int = 0) -> str:
    """The results of ``doc`` as a table: one block per size, rows by dtype then backend."""
    results = doc["results"]
    if not results:
        return "no points measured"
    ratio = speedups(results)
    width = max(len("backend"), *(len(r["backend"]) for r in results))
    header = (f"  {'backend':<{width}}  {'dtype':<7}  {'median':>9}  {'min - max per step':>19}  "
              f"{'steps/s':>9}  {'GFLOP/s':>7}  {'peak':>5}  {'roof':>5}  {'compile':>8}  "
              f"{'vs numpy':>8}")
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault(tuple(r[k] for k in _GROUP), []).append(r)
    lines = []
    for key in sorted(groups, key=lambda k: tuple(-1 if v is None else v for v in k)):
        batch_size, hidden, n_in, n_out, threads = key
        flops = groups[key][0].get("flops_per_step")
        size = f"; {_flops(flops)} per step" if flops else ""
        lines.append(f"batch {batch_size}, hidden {hidden}  (n_in {n_in}, n_out {n_out}, "
                     f"threads {threads}{size})")
        lines.append(header)
        rows = sorted(groups[key], key=lambda r: (r["dtype"], backend_order(r["backend"])))
        lines.extend(_row(r, ratio.get(id(r)), width) for r in rows)
        lines.append("")
    counts = Counter(r["status"] for r in results)
    summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    resumed = f" ({skipped} from the resumed file)" if skipped else ""
    lines.append(f"{len(results)} points{resumed}: {summary}. median, min and max are seconds per "
                 "step over the timed blocks; vs numpy: steps/s over numpy's at the same point; "
                 "peak: GFLOP/s over the matmul peak below; roof: GFLOP/s over what the roofline "
                 "allows at the point (docs/roofline.md).")
    if doc.get("peak_gflops"):
        ordered = sorted(doc["peak_gflops"].items(),
                         key=lambda kv: (backend_order(kv[0].split("/")[0]), kv[0]))
        peaks = ", ".join(f"{k} {v:.4g}" for k, v in ordered)
        lines.append(textwrap.fill(
            f"peak matmul GFLOP/s (a large square matmul through each backend): {peaks}", 100))
    for key, message in sorted(doc.get("peak_errors", {}).items()):
        lines.append(f"peak matmul {key} failed: {message}")
    kernels = kernels_line(doc.get("environment") or {})
    if kernels:
        lines.append(textwrap.fill(kernels, 100))
    return "\n".join(lines)


def kernels_line(env: dict) -> str:
    """The kernels each BLAS runs (threadpoolctl's architecture, in the parent process), and
    the variables that chose them over the library's own pick; "" when neither is known."""
    runs = [f"{b.get('internal_api')} {b.get('version')} {b['architecture']} "
            f"({os.path.basename(os.path.dirname(b.get('filepath', '')))})"
            for b in env.get("blas") or [] if b.get("architecture")]
    forced = env.get("kernel_variables") or {}
    line = f"BLAS kernels: {', '.join(runs)}" if runs else ""
    if forced:
        named = ", ".join(f"{k}={v}" for k, v in forced.items())
        line += (f"{'; ' if line else ''}chosen by the environment, not the libraries: {named} "
                 "(docs/measuring.md)")
    return line
