"""The roofline chart: each backend's points, GFLOP/s against flops per byte, under the measured roofs."""
from __future__ import annotations


from mlpbench.report import backend_order
from mlpbench.roofline import roof_fields

__all__ = ["path_beside", "plot_roofline"]


def path_beside(path: str) -> str:
    """Where ``bench --plot PATH`` writes its roofline chart: ``NAME-roofline.SUFFIX``."""
    import os

    stem, suffix = os.path.splitext(path)
    return f"{stem}-roofline{suffix}"


def _gib(nbytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:g} {unit}"
    return f"{nbytes} B"


def _fields(doc: dict, result: dict) -> dict:
    """The result's roof fields: recorded, or computed from the document's roofs and peaks."""
    if "intensity" in result:
        return result
    peak = doc["peak_gflops"].get(f"{result['backend']}/{result['dtype']}")
    return {**result, **roof_fields(result, peak, doc["environment"]["roofs"])}


def plot_roofline(doc: dict, path: str) -> None:
    """Draw ``doc`` (bench results with ``environment["roofs"]``) to ``path``: one panel per dtype.

    Each panel: the bandwidth roofs measured (GB/s x intensity, one line per working set),
    each backend's matmul peak (a horizontal line in its colour) and its ok points.
    """
    from mlpbench.plot import pyplot

    plt = pyplot()

    roofs = doc["environment"]["roofs"]
    ok = [_fields(doc, r) for r in doc["results"] if r.get("status", "ok") == "ok"
          and r.get("gflops")]
    dtypes = sorted({r["dtype"] for r in ok}) or ["float64"]
    names = sorted({r["backend"] for r in ok}, key=backend_order)
    colours = {n: f"C{i % 10}" for i, n in enumerate(names)}
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.5 * len(dtypes), 5.5), squeeze=False,
                             sharey=True, layout="constrained")
    xs = [r["intensity"] for r in ok] or [0.1, 100.0]
    lo, hi = min(xs) / 3, max(xs) * 3
    ys = [r["gflops"] for r in ok] + [p for p in doc["peak_gflops"].values() if p] or [1.0]
    for ax, dtype in zip(axes[0], dtypes):
        for k, row in enumerate(sorted(roofs["bandwidth"], key=lambda r: r["working_set_bytes"])):
            bw = row["gb_per_s"]
            ax.plot([lo, hi], [bw * lo, bw * hi], color="0.5", lw=1, ls=(0, (1 + k, 2)),
                    label=f"{bw:.0f} GB/s at {_gib(row['working_set_bytes'])}")
        for name in names:
            peak = doc["peak_gflops"].get(f"{name}/{dtype}")
            if peak:
                ax.axhline(peak, color=colours[name], lw=1, ls="--", alpha=0.7)
            pts = [(r["intensity"], r["gflops"]) for r in ok
                   if (r["backend"], r["dtype"]) == (name, dtype)]
            if pts:
                ax.scatter(*zip(*pts), s=18, color=colours[name], label=name, zorder=3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(min(ys) / 3, max(ys) * 3)
        ax.set_xlabel("flops per byte (the step's model)")
        ax.set_title(f"{dtype}: dashed = matmul peak per backend", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0, 0].set_ylabel("GFLOP/s")
    env = doc["environment"]
    fig.suptitle(f"roofline: {env.get('cpu', '?')}, bandwidth with {roofs.get('threads')} "
                 f"thread(s), started {env.get('started', '?')}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
