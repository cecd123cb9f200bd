"""The roofline model on small hand-computed cases, and the bandwidth timer on a real array."""
from __future__ import annotations

import math

import pytest

from mlpbench import roofline

TABLE = [{"working_set_bytes": 1024, "gb_per_s": 5.0}, {"working_set_bytes": 256, "gb_per_s": 10.0},
         {"working_set_bytes": 4096, "gb_per_s": 2.0}]
# batch 2, n_in 3, hidden 4, n_out 1: flops 2*2*4*(2*3 + 3*1) = 144
TINY = {"backend": "numpy", "dtype": "float64", "batch_size": 2, "n_in": 3, "hidden": 4, "n_out": 1}


def test_step_bytes_by_hand():
    # data 2*(3+1) = 8; weights 3*(3*4 + 4*1) = 48; activations 2*(4*4 + 2*1) = 36, moved twice
    assert roofline.step_bytes(2, 3, 4, 1, 8) == (8 + 48 + 72) * 8
    # 36 activations * 8 bytes = 288 fit in a 1000-byte near cache: not moved
    assert roofline.step_bytes(2, 3, 4, 1, 8, near_cache_bytes=1000) == (8 + 48) * 8
    assert roofline.step_bytes(2, 3, 4, 1, 8, near_cache_bytes=288) == (8 + 48) * 8
    assert roofline.step_bytes(2, 3, 4, 1, 8, near_cache_bytes=287) == (8 + 48 + 72) * 8
    # the seed's batch 1, hidden 16, float32: weights dominate, the activations stay in L1
    assert roofline.step_bytes(1, 1000, 16, 10, 4, near_cache_bytes=48 * 1024) == \
        (1010 + 3 * (16000 + 160)) * 4


def test_working_set_and_intensity_by_hand():
    assert roofline.working_set_bytes(2, 3, 4, 1, 8) == (8 + 16 + 36) * 8
    assert roofline.intensity(TINY) == pytest.approx(144 / 1024)
    assert roofline.intensity(TINY, near_cache_bytes=1000) == pytest.approx(144 / 448)
    assert roofline.intensity({**TINY, "dtype": "float32"}) == pytest.approx(144 / 512)


def test_bandwidth_at_takes_the_level_the_working_set_fits_in():
    assert roofline.bandwidth_at(TABLE, 100) == 10.0
    assert roofline.bandwidth_at(TABLE, 256) == 10.0
    assert roofline.bandwidth_at(TABLE, 257) == 5.0
    assert roofline.bandwidth_at(TABLE, 480) == 5.0
    assert roofline.bandwidth_at(TABLE, 10**9) == 2.0  # past every measured size: the largest's
    with pytest.raises(ValueError, match="no bandwidth"):
        roofline.bandwidth_at([], 1)


def test_attainable_is_the_lower_roof():
    # working set 480 bytes -> 5 GB/s; 144/1024 flop/byte * 5 GB/s = 0.703125 GFLOP/s
    assert roofline.attainable_gflops(TINY, 100.0, TABLE) == pytest.approx(0.703125)
    assert roofline.attainable_gflops(TINY, 0.5, TABLE) == 0.5
    assert roofline.attainable_gflops(TINY, None, TABLE) == pytest.approx(0.703125)


def test_roof_fields():
    roofs = {"caches": {}, "bandwidth": TABLE}
    fields = roofline.roof_fields({**TINY, "gflops": 0.3515625, "peak_fraction": 0.0035},
                                  100.0, roofs)
    assert fields == {"intensity": pytest.approx(144 / 1024), "working_set_bytes": 480,
                      "bandwidth_gb_per_s": 5.0, "attainable_gflops": pytest.approx(0.703125),
                      "bound": "memory", "roof_fraction": pytest.approx(0.5)}
    compute = roofline.roof_fields({**TINY, "gflops": 0.25, "peak_fraction": 0.5}, 0.5, roofs)
    assert (compute["bound"], compute["roof_fraction"]) == ("compute", 0.5)
    # the L1 data cache of the roofs is the near cache: the activations stay there
    near = roofline.roof_fields({**TINY, "gflops": None}, 100.0, {**roofs, "caches": {"L1d": 1000}})
    assert near["intensity"] == pytest.approx(144 / 448)
    assert near["roof_fraction"] is None


def test_cache_sizes_from_sysfs(tmp_path):
    for index, (level, kind, size) in enumerate([("1", "Data", "48K"), ("1", "Instruction", "32K"),
                                                 ("2", "Unified", "1024K"), ("3", "Unified", "32M")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "level").write_text(level + "\n")
        (folder / "type").write_text(kind + "\n")
        (folder / "size").write_text(size + "\n")
    caches = roofline.cache_sizes(str(tmp_path))
    assert caches == {"L1d": 48 * 1024, "L2": 2**20, "L3": 32 * 2**20}
    assert roofline.default_sizes(caches, threads=2) == [48 * 1024, 2**20, 16 * 2**20, 128 * 2**20]
    assert roofline.cache_sizes(str(tmp_path / "none")) == {}
    assert len(roofline.default_sizes({})) == 4


@pytest.mark.parametrize("threads", [1, 2])
def test_measure_bandwidth_gives_a_sane_rate(threads):
    roofs = roofline.measure_bandwidth([2**20], threads=threads, min_time=0.01, repeat=2)
    (row,) = roofs["bandwidth"]
    assert row["working_set_bytes"] == 2**20
    # from 0.1 GB/s (a very busy machine) to 10 TB/s (far above any CPU's caches)
    assert 0.1 < row["gb_per_s"] < 10_000 and math.isfinite(row["gb_per_s"])
    assert roofs["threads"] == threads and "in-place" in roofs["kernel"]
    assert "write-allocate" in roofs["bytes_counted"]


def test_measure_bandwidth_counts_two_bytes_per_byte_of_array(monkeypatch):
    # A clock that advances 1 s per reading: every block of passes lasts 1 s and calibration
    # stops at one pass, so the rate is 2 x 8000 bytes per second.
    from mlpbench import measure

    ticks = iter(range(10**6))

    def one_second_blocks(run, synchronize, **options):
        return measure.time_blocks(run, synchronize, **options, clock=lambda: float(next(ticks)))

    monkeypatch.setattr(roofline, "time_blocks", one_second_blocks)
    roofs = roofline.measure_bandwidth([8000], min_time=0.5, repeat=2)
    assert roofs["bandwidth"][0]["gb_per_s"] == pytest.approx(2 * 8000 / 1e9)


def test_measure_bandwidth_rejects_no_threads():
    with pytest.raises(ValueError, match="threads"):
        roofline.measure_bandwidth([1024], threads=0)


def test_plot_roofline_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install 'mlpbench[plot]')")
    from mlpbench.roofline_plot import plot_roofline

    roofs = {"threads": 1, "caches": {}, "bandwidth": TABLE}
    results = [{**TINY, "backend": name, "dtype": dtype, "status": "ok", "gflops": g}
               for name, g in (("numpy", 0.3), ("numba", 0.6)) for dtype in ("float32", "float64")]
    results.append({**TINY, "status": "error", "gflops": None})
    doc = {"environment": {"cpu": "test CPU", "started": "today", "roofs": roofs},
           "peak_gflops": {"numpy/float64": 0.5, "numba/float32": 2.0}, "results": results}
    path = tmp_path / "roofline.png"
    plot_roofline(doc, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
