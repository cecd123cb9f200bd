"""The timing core on a clock the test controls: how calibrate grows a block, and when the peak
search stops. Nothing here measures real time."""
from __future__ import annotations

import pytest

from mlpbench import measure


class Ticks:
    """A clock that advances only when work is done: ``cost(n)`` seconds per run(n)."""

    def __init__(self, cost):
        self.now, self.cost, self.calls = 0.0, cost, []

    def clock(self):
        return self.now

    def run(self, n):
        self.calls.append(n)
        self.now += self.cost(n)


def test_calibrate_grows_until_a_block_lasts_min_time():
    t = Ticks(lambda n: 1e-3 * n)  # 1 ms per iteration
    n = measure.calibrate(t.run, lambda: None, min_time=0.5, clock=t.clock)
    # Far below min_time: grow by at most 10x; then aim 10% past it (0.55 s / 0.1 s = 5.5x).
    assert t.calls == [1, 10, 100, 550]
    assert n == 550


def test_calibrate_grows_at_least_twofold():
    t = Ticks(lambda n: 0.06 * n)  # just over half of min_time: the aim alone would be 1.83x
    assert measure.calibrate(t.run, lambda: None, min_time=0.1, clock=t.clock) == 2
    assert t.calls == [1, 2]


def test_time_blocks_reports_each_block_and_the_calibrated_n():
    t = Ticks(lambda n: 0.01 * n)
    blocks = measure.time_blocks(t.run, lambda: None, min_time=0.05, repeat=3, clock=t.clock)
    assert blocks.n == 6  # 1 (0.01 s), 6 (0.055/0.01 rounded up; 0.06 s >= 0.05)
    assert blocks.seconds == pytest.approx([0.06] * 3)
    assert blocks.device_seconds is None


def fake_chains(monkeypatch, clock_ticks, rate_by_n):
    """Replace the matmul chain by products that take 2n^3 / rate seconds on the test's clock."""
    def chain(backend, n, dtype, seed):
        def run(k):
            clock_ticks.now += k * 2.0 * n**3 / rate_by_n[n]
            clock_ticks.calls.append(n)
        return run, lambda: None

    monkeypatch.setattr(measure, "_matmul_chain", chain)


def test_peak_search_stops_when_the_rate_no_longer_rises_by_a_tenth(monkeypatch):
    t = Ticks(lambda n: 0.0)
    fake_chains(monkeypatch, t, {2: 1e9, 4: 1.5e9, 8: 1.6e9, 16: 5e9})
    peak = measure.peak_matmul_gflops(None, "float64", min_time=1e-3, repeat=2,
                                      sizes=(2, 4, 8, 16), max_product_s=10.0, clock=t.clock)
    assert 16 not in t.calls  # 8 did not rise by 10% over 4: the search stops there
    assert peak["n"] == 8 and peak["gflops"] == pytest.approx(1.6, rel=1e-6)


def test_peak_search_stops_before_a_product_too_long_for_a_block(monkeypatch):
    t = Ticks(lambda n: 0.0)
    fake_chains(monkeypatch, t, {2: 1e9, 4: 2e9, 8: 4e9})
    one_product_at_4 = 2.0 * 4**3 / 2e9
    peak = measure.peak_matmul_gflops(None, "float64", min_time=1e-3, repeat=2, sizes=(2, 4, 8),
                                      max_product_s=8 * one_product_at_4 * 0.99, clock=t.clock)
    assert 8 not in t.calls  # the next size's product (8x the work) would not fit
    assert peak["n"] == 4 and peak["gflops"] == pytest.approx(2.0, rel=1e-6)


def test_a_step_chain_feeds_each_steps_weights_to_the_next_and_syncs_the_last():
    def step(x, t, W, S):
        return W + x, S + t, W + S

    synced = []
    chain = measure.StepChain(step, {"x": 1, "t": 10, "W": 0, "S": 0},
                              lambda *outputs: synced.append(outputs))
    chain.run(3)
    chain.run(2)
    assert (chain.W, chain.S, chain.loss) == (5, 50, 4 + 40)
    wall, device = measure.timed(chain.run, chain.synchronize, 1)
    assert synced == [(6, 60, 5 + 50)] and wall >= 0 and device is None
