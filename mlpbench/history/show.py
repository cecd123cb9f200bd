"""Showing the history: a table per point, and a figure (steps/s per commit)."""
from __future__ import annotations

import math

from mlpbench.files import write_atomic
from mlpbench.history import Commit, Measurement
from mlpbench.report import backend_order, format_rate

__all__ = ["draw", "format_table"]


def _labels(commits: list[Commit]) -> dict[tuple, str]:
    """series -> its name: the backend, with asv's environment when there are several."""
    every = [m for c in commits for m in c.measurements]
    several_envs = len({m.env for m in every}) > 1
    return {m.series: f"{m.backend} ({m.env})" if several_envs else m.backend for m in every}


def _cell(m: Measurement | None, change: float | None) -> str:
    if m is None:
        return "-"
    spread = m.rate_range()
    text = format_rate(m.steps_per_s)
    if spread:
        text += f" ({format_rate(spread[0])}-{format_rate(spread[1])})"
    if change is not None:
        text += f" {change:+.0f}%*"
    return text


def format_table(commits: list[Commit], flagged: dict[tuple, float], header: str,
                 threshold: float) -> str:
    labels = _labels(commits)
    points = sorted({m.point for c in commits for m in c.measurements},
                    key=lambda p: (p[2], p[1], p[0]))
    out = [header, "", "commits, oldest first:"]
    out += [f"  {c.hash[:8]}  {c.date_text()}  {c.subject}".rstrip() for c in commits]
    for point in points:
        series = sorted({m.series for c in commits for m in c.measurements if m.point == point},
                        key=lambda s: (backend_order(s[0]), s[1]))
        rows = [["commit", *(labels[s] for s in series)]]
        for c in commits:
            by_series = {m.series: m for m in c.measurements}
            rows.append([c.hash[:8], *(_cell(by_series.get(s), flagged.get((c.hash, s)))
                                       for s in series)])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        out += ["", f"batch {point[0]}, hidden {point[1]}, {point[2]}: steps/s, median "
                    "(interquartile range)"]
        out += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
                for r in rows]
    out += ["", f"* moved beyond its noise since the commit above: more than {threshold:g}% "
                "and the 99% confidence intervals of the two medians do not overlap"
            if flagged else f"no point moved beyond its noise (more than {threshold:g}% with "
                            "non-overlapping 99% confidence intervals) between these commits"]
    return "\n".join(out)


def draw(commits: list[Commit], flagged: dict[tuple, float], title: str, path: str) -> None:
    """One panel per point: steps/s per commit, a line per backend, the IQR as a band."""
    from matplotlib.ticker import FuncFormatter

    from mlpbench.plot import pyplot

    plt = pyplot()

    labels = _labels(commits)
    rate = FuncFormatter(lambda v, _: format_rate(v))
    # minor ticks at 2x and 5x only: all nine crowd a panel that spans about one decade
    sparse = FuncFormatter(lambda v, _: format_rate(v) if _mantissa(v) in (2, 5) else "")
    points = sorted({m.point for c in commits for m in c.measurements},
                    key=lambda p: (p[2], p[1], p[0]))
    names = sorted(set(labels.values()), key=lambda n: backend_order(n.split(" ")[0]))
    colours = {n: f"C{i % 10}" for i, n in enumerate(names)}
    ncols = min(len(points), 2)
    nrows = math.ceil(len(points) / ncols)
    width = min(max(6.0, 0.5 * len(commits) + 3), 14.0)  # per panel
    fig = plt.figure(figsize=(width * ncols, 3.6 * nrows + 0.8),
                     layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    x = range(len(commits))
    for ax, point in zip(axes.flat, points):
        for s in sorted({m.series for c in commits for m in c.measurements if m.point == point},
                        key=lambda s: (backend_order(s[0]), s[1])):
            at = [(i, m) for i, c in enumerate(commits) for m in c.measurements if m.series == s]
            colour = colours[labels[s]]
            xs, ms = [i for i, _ in at], [m for _, m in at]
            ax.plot(xs, [m.steps_per_s for m in ms], marker="o", ms=4, color=colour)
            band = [(i, m.rate_range()) for i, m in at if m.rate_range()]
            if band:
                ax.fill_between([i for i, _ in band], [r[0] for _, r in band],
                                [r[1] for _, r in band], color=colour, alpha=0.2, lw=0)
            moved = [(i, m) for i, m in at if (commits[i].hash, s) in flagged]
            if moved:
                ax.plot([i for i, _ in moved], [m.steps_per_s for _, m in moved], ls="none",
                        marker="o", ms=11, mfc="none", mec="red", mew=1.5)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(rate)
        ax.yaxis.set_minor_formatter(sparse)
        ax.set_title(f"batch {point[0]}, hidden {point[1]}, {point[2]}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.set_ylabel("steps / s (higher is faster)")
        ax.set_xticks(list(x), [c.hash[:8] for c in commits], rotation=45, ha="right",
                      fontsize=8)
    for ax in list(axes.flat)[len(points):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], marker="o", color=colours[n], label=n) for n in names]
    handles.append(plt.Line2D([], [], ls="none", marker="o", ms=11, mfc="none", mec="red",
                              label="moved beyond its noise"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5),
               fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=10)
    try:
        write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110), binary=True)
    finally:
        plt.close(fig)


def _mantissa(value: float) -> int:
    return round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0
