"""The gate's statistics on synthetic samples: a known ratio is found, identical code passes,
a process-level effect widens the interval instead of raising an alarm, Holm keeps many points
from multiplying alarms."""
from __future__ import annotations

import math
import random

import pytest

from mlpbench.gate import stats

MIN_EFFECT = 0.05


def process_pairs(ratio: float, n: int, *, rng: random.Random, sample_noise: float = 0.05,
                  process_noise: float = 0.01, pairs: int = 60) -> list[float]:
    """Effects of ``n`` process pairs, head ``ratio`` times base's time: each process has a
    speed of its own (``process_noise``), each sample its own noise (``sample_noise``)."""
    effects = []
    for _ in range(n):
        base_speed = math.exp(rng.gauss(0, process_noise))
        head_speed = math.exp(rng.gauss(0, process_noise)) * ratio
        base = [base_speed * math.exp(rng.gauss(0, sample_noise)) for _ in range(pairs)]
        head = [head_speed * math.exp(rng.gauss(0, sample_noise)) for _ in range(pairs)]
        effects.append(stats.process_pair_effect(base, head))
    return effects


def verdict(effects: list[float]) -> tuple[str, stats.Estimate]:
    e = stats.estimate(effects, min_effect=MIN_EFFECT, confidence=0.95)
    return stats.decide([e], min_effect=MIN_EFFECT, alpha=0.05)[0], e


@pytest.mark.parametrize("ratio", [1.1, 1.2, 1.5])
def test_a_known_ratio_is_found_and_is_slower(ratio):
    found, e = verdict(process_pairs(ratio, 6, rng=random.Random(1)))
    low, high = e.ratio_interval
    assert low < ratio < high and high / low < 1.04
    assert found == stats.SLOWER


def test_identical_distributions_pass():
    rng = random.Random(2)
    results = [verdict(process_pairs(1.0, 6, rng=rng)) for _ in range(50)]
    assert all(found == stats.PASS for found, _ in results)
    assert sum(e.ratio_interval[0] < 1 < e.ratio_interval[1] for _, e in results) >= 45


def test_a_bimodal_process_level_effect_widens_the_interval_instead_of_an_alarm():
    # Each process runs in one of two speeds, 1.4x apart, drawn when it starts: pooled over
    # all samples, head's processes happened to land slow more often (4 of 6).
    rng = random.Random(3)
    modes = {"base": [1, 1, 1.4, 1, 1.4, 1], "head": [1.4, 1, 1.4, 1.4, 1, 1.4]}
    effects, pooled = [], {"base": [], "head": []}
    for b, h in zip(modes["base"], modes["head"]):
        base = [b * math.exp(rng.gauss(0, 0.02)) for _ in range(60)]
        head = [h * math.exp(rng.gauss(0, 0.02)) for _ in range(60)]
        pooled["base"] += base
        pooled["head"] += head
        effects.append(stats.process_pair_effect(base, head))
    # Sample pairs pooled as if independent would call head slower, with a narrow interval.
    naive = stats.estimate([math.log(h / b) for b, h in zip(pooled["base"], pooled["head"])],
                           min_effect=MIN_EFFECT, confidence=0.95)
    assert naive.ratio_interval[0] > 1 + MIN_EFFECT
    found, e = verdict(effects)
    assert found == stats.INCONCLUSIVE
    assert e.ratio_interval[0] < 1 < 1.3 < e.ratio_interval[1]


def test_process_pair_effect_is_the_median_log_ratio():
    assert stats.process_pair_effect([1, 1, 1], [1.1, 2.0, 1.2]) == pytest.approx(math.log(1.2))
    with pytest.raises(ValueError, match="as many base as head"):
        stats.process_pair_effect([1, 1], [1])


def test_the_interval_and_p_value_are_students_t():
    # mean 0.2, standard error 0.1/sqrt(3); t(0.975, 2 df) = 4.3027, P(T(2) > 2.5115) = 0.0643
    e = stats.estimate([0.1, 0.2, 0.3], min_effect=math.expm1(0.055), confidence=0.95)
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert (e.low, e.high) == pytest.approx((0.2 - half, 0.2 + half), abs=1e-6)
    assert e.p_slower == pytest.approx(0.06432, abs=1e-4)


def test_holm_steps_down():
    assert stats.holm([0.01, 0.04, 0.03, 0.2], 0.05) == [True, False, False, False]
    assert stats.holm([0.01, 0.012, 0.02], 0.05) == [True, True, True]
    assert stats.holm([], 0.05) == []


def test_many_points_do_not_multiply_alarms():
    # p = 0.01 at each of 16 points: one point alone would be slower, 16 together are not.
    one = stats.Estimate(6, 0.1, 0.06, 0.14, 0.01)
    assert stats.decide([one], min_effect=MIN_EFFECT, alpha=0.05) == [stats.SLOWER]
    assert set(stats.decide([one] * 16, min_effect=MIN_EFFECT, alpha=0.05)) == {stats.INCONCLUSIVE}


def test_too_few_process_pairs_decide_nothing():
    assert verdict([])[0] == stats.INCONCLUSIVE
    found, e = verdict([0.3])
    assert found == stats.INCONCLUSIVE and e.low == -math.inf


def test_detectable_grows_with_the_noise_and_needs_two_pairs():
    import math

    from mlpbench.gate.stats import detectable

    quiet = [0.01, -0.01, 0.0, 0.005, -0.005]
    noisy = [10 * e for e in quiet]
    q = detectable(quiet, min_effect=0.05, alpha=0.05, points=8)
    assert 0.05 < q < detectable(noisy, min_effect=0.05, alpha=0.05, points=8)
    # More points gated: Holm's first level is stricter, so the resolution is coarser.
    assert q < detectable(quiet, min_effect=0.05, alpha=0.05, points=32)
    # The formula: log(1.05) + (t_{1-0.05/8, 4} + t_{0.8, 4}) * se, quantiles from tables.
    se = 0.0079057 / math.sqrt(5)
    assert math.isclose(q, math.expm1(math.log(1.05) + (4.3147 + 0.9410) * se), rel_tol=1e-4)
    assert math.isnan(detectable([0.01], min_effect=0.05, alpha=0.05, points=1))
