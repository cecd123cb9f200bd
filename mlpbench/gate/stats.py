"""The gate's statistics: per-process-pair effects, a t interval on the mean log ratio, Holm.

Pure functions on lists of floats. An *effect* is the log of head's time over base's,
``log(head / base)``: 0 for identical speed, ``log(1.1)`` for a head 10% slower. A process
pair (one base worker, one head worker, alternated) gives one effect, the median of its
per-pair log ratios; process pairs are the replicates, since a process's state (where the
allocator put the arrays, say) can shift a step's time for the whole life of the process.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

__all__ = ["INCONCLUSIVE", "PASS", "SLOWER", "Estimate", "decide", "estimate", "holm",
           "process_pair_effect"]

PASS, SLOWER, INCONCLUSIVE = "pass", "slower", "inconclusive"


def process_pair_effect(base_s: Sequence[float], head_s: Sequence[float]) -> float:
    """The median of ``log(head / base)`` over the pairs of samples, taken side by side."""
    if len(base_s) != len(head_s) or not base_s:
        raise ValueError(f"need as many base as head samples, at least one; got "
                         f"{len(base_s)} and {len(head_s)}")
    return statistics.median(math.log(h / b) for b, h in zip(base_s, head_s))


@dataclass(frozen=True)
class Estimate:
    """The mean effect over process pairs, its interval, and the p-value of "not slower"."""

    n: int
    mean: float
    low: float
    high: float
    #: One-sided p-value of the hypothesis "the effect is at most log(1 + min_effect)".
    p_slower: float

    @property
    def ratio(self) -> float:
        return math.exp(self.mean)

    @property
    def ratio_interval(self) -> tuple[float, float]:
        return math.exp(self.low), math.exp(self.high)


def estimate(effects: Sequence[float], *, min_effect: float, confidence: float) -> Estimate:
    """A t interval (two-sided, ``confidence``) of the mean of ``effects``, one per process
    pair, and the one-sided p-value of "head is at most ``min_effect`` slower"."""
    from scipy.stats import t

    n = len(effects)
    if n == 0:
        return Estimate(0, math.nan, -math.inf, math.inf, 1.0)
    mean = statistics.fmean(effects)
    if n == 1:
        return Estimate(1, mean, -math.inf, math.inf, 1.0)
    se = statistics.stdev(effects) / math.sqrt(n)
    threshold = math.log1p(min_effect)
    if se == 0:
        return Estimate(n, mean, mean, mean, 0.0 if mean > threshold else 1.0)
    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * se
    p = float(t.sf((mean - threshold) / se, n - 1))
    return Estimate(n, mean, mean - half, mean + half, p)


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down rejections at family-wise error ``alpha``, in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


def decide(estimates: Sequence[Estimate], *, min_effect: float, alpha: float) -> list[str]:
    """Each point's verdict. SLOWER: "at most ``min_effect`` slower" rejected by Holm over
    all the points at family-wise ``alpha``. PASS: the interval lies wholly below
    ``1 + min_effect``. INCONCLUSIVE: neither, the interval is too wide to tell."""
    slower = holm([e.p_slower for e in estimates], alpha)
    threshold = math.log1p(min_effect)
    return [SLOWER if s else PASS if e.high < threshold else INCONCLUSIVE
            for e, s in zip(estimates, slower)]


def detectable(effects: Sequence[float], *, min_effect: float, alpha: float, points: int,
               power: float = 0.8) -> float:
    """The least slowdown (a fraction: 0.07 for 7%) this point's noise lets the gate catch
    with probability ``power``: a true effect of ``log(1 + min_effect) + (t_(1 - alpha/points)
    + t_power) se`` makes a one-sided t test at Holm's first level reject "not slower" that
    often, se being the standard error of the mean over the process pairs measured. nan with
    fewer than two process pairs."""
    from scipy.stats import t

    n = len(effects)
    if n < 2:
        return math.nan
    se = statistics.stdev(effects) / math.sqrt(n)
    shift = (t.ppf(1 - alpha / max(points, 1), n - 1) + t.ppf(power, n - 1)) * se
    return math.expm1(math.log1p(min_effect) + shift)
