"""Drawing bench results: steps/s against batch size per backend; speed-up over numpy as a heatmap."""
from __future__ import annotations

import io
import math
import os
from typing import Any

from backends import REFERENCE
from mlpbench.errors import UsageError
from mlpbench.files import write_atomic
from mlpbench.report import backend_order, speedups

__all__ = ["check_format", "plot_results", "pyplot", "require_matplotlib"]


def require_matplotlib(flag: str = "--plot") -> None:
    """UsageError (one line) when matplotlib is missing, before any work."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"{flag} needs matplotlib, which is not installed; "
                         "pip install 'mlpbench[plot]'") from None


def pyplot():
    """matplotlib's pyplot drawing to files only (Agg: no display needed): every figure's set-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _format(path: str) -> str:
    return os.path.splitext(path)[1][1:].lower()


def check_format(path: str) -> str:
    """The format ``path``'s suffix names, once a tiny figure is written in it; else UsageError.

    Checked before the sweep: matplotlib would otherwise refuse the format after it. A name
    without a suffix is refused rather than written under another name (matplotlib adds .png).
    """
    require_matplotlib()
    plt = pyplot()

    fmt = _format(path)
    supported = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    common = ", ".join(f".{f}" for f in ("png", "pdf", "svg") if f in supported)
    if not fmt:
        raise UsageError(f"--plot {path!r} has no suffix to name its format; "
                         f"add one ({common}, ...)")
    if fmt not in supported:
        raise UsageError(f"--plot {path!r}: matplotlib cannot write .{fmt} files; "
                         f"use one of {', '.join('.' + f for f in sorted(supported))}")
    fig = plt.figure(figsize=(1, 1))
    fig.text(0.5, 0.5, "1.0x")  # text too: .pgf needs LaTeX only for it
    try:  # some formats need more than matplotlib (.pgf needs LaTeX): try it
        fig.savefig(io.BytesIO(), format=fmt)
    except Exception as exc:
        raise UsageError(f"--plot {path!r}: matplotlib cannot write .{fmt} here "
                         f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    finally:
        plt.close(fig)
    return fmt


def _title(doc: dict) -> str:
    env = doc["environment"]
    threads = sorted({r["threads"] for r in doc["results"]}, key=lambda t: (t is None, t))
    gpu = f", {env['gpu']['name']}" if env.get("gpu") else ""
    return (f"mlpbench bench: {env.get('cpu', '?')}, {env.get('cores', '?')} cores{gpu}; "
            f"threads {', '.join(map(str, threads))}; started {env.get('started', '?')}")


def _lines(fig: Any, ok: list[dict]) -> None:
    """One panel per dtype (rows) and hidden width (columns): steps/s against batch size."""
    from matplotlib.ticker import NullFormatter

    dtypes = sorted({r["dtype"] for r in ok})
    hiddens = sorted({r["hidden"] for r in ok})
    batch_sizes = sorted({r["batch_size"] for r in ok})
    names = sorted({r["backend"] for r in ok}, key=backend_order)
    colours = {n: f"C{i % 10}" for i, n in enumerate(names)}
    axes = fig.subplots(len(dtypes), len(hiddens), sharex=True, sharey=True, squeeze=False)
    for i, dtype in enumerate(dtypes):
        for j, hidden in enumerate(hiddens):
            ax = axes[i, j]
            for name in names:
                pts = sorted((r["batch_size"], r["steps_per_s"]) for r in ok if
                             (r["backend"], r["dtype"], r["hidden"]) == (name, dtype, hidden))
                if pts:
                    ax.plot(*zip(*pts), marker="o", ms=4, color=colours[name], label=name)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_title(f"{dtype}, hidden {hidden}", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
            if i == len(dtypes) - 1:
                ax.set_xlabel("batch size")
            if j == 0:
                ax.set_ylabel("steps / s (higher is faster)")
    handles = [axes[0, 0].plot([], [], marker="o", color=colours[n], label=n)[0] for n in names]
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(names), 7),
               fontsize=9, frameon=False)


def _heatmap(fig: Any, ok: list[dict]) -> None:
    """Backend x point: steps/s over numpy's, coloured on a log scale centred at 1."""
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    ratio = speedups(ok)
    points = sorted({(r["dtype"], r["hidden"], r["batch_size"]) for r in ok})
    names = [n for n in sorted({r["backend"] for r in ok}, key=backend_order)
             if n != REFERENCE] or [REFERENCE]
    cells = np.full((len(names), len(points)), np.nan)
    for r in ok:
        if id(r) in ratio and r["backend"] in names:
            j = points.index((r["dtype"], r["hidden"], r["batch_size"]))
            cells[names.index(r["backend"]), j] = math.log2(ratio[id(r)])
    ax = fig.subplots()
    span = max(1.0, float(np.nanmax(np.abs(cells)))) if np.isfinite(cells).any() else 1.0
    image = ax.imshow(cells, cmap="RdBu", norm=TwoSlopeNorm(0.0, -span, span), aspect="auto")
    ax.set_yticks(range(len(names)), names)
    ax.set_xticks(range(len(points)),
                  [f"{d.replace('float', 'f')} H{h} B{b}" for d, h, b in points],
                  rotation=60, ha="right", fontsize=8)
    for (i, j), value in np.ndenumerate(cells):
        if np.isfinite(value):
            ax.text(j, i, f"{2 ** value:.2g}", ha="center", va="center", fontsize=7,
                    color="white" if abs(value) > 0.6 * span else "black")
    ax.set_title("speed-up over numpy: steps/s ratio at the same point (blue faster, red slower; "
                 "blank: not measured or not ok)", fontsize=10)
    bar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    step = max(1, math.ceil(span / 4))
    ticks = list(range(-step * int(span // step), int(span) + 1, step))
    bar.set_ticks(ticks, labels=[f"{2.0 ** t:g}x" for t in ticks])


def plot_results(doc: dict, path: str) -> None:
    """Write the figure of ``doc``'s ok points to ``path`` in the format of its suffix (Agg).

    Written atomically, under exactly the name given.
    """
    plt = pyplot()

    ok = [r for r in doc["results"] if r["status"] == "ok"]
    n_dtypes = max(1, len({r["dtype"] for r in ok}))
    n_hidden = max(1, len({r["hidden"] for r in ok}))
    n_backends = max(1, len({r["backend"] for r in ok}) - 1)
    lines_h, heat_h = 2.6 * n_dtypes + 0.8, 0.35 * n_backends + 2.4
    fig = plt.figure(figsize=(max(11.0, 3.6 * n_hidden), lines_h + heat_h), layout="constrained")
    if ok:
        top, bottom = fig.subfigures(2, 1, height_ratios=[lines_h, heat_h])
        _lines(top, ok)
        _heatmap(bottom, ok)
    else:
        fig.text(0.5, 0.5, "no point finished ok", ha="center", va="center")
    fig.suptitle(_title(doc), fontsize=10)
    try:
        write_atomic(path, lambda f: fig.savefig(f, format=_format(path) or "png", dpi=110),
                     binary=True)
    finally:
        plt.close(fig)
