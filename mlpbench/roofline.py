"""The machine's roofs and each bench point under them: bandwidth by working set, the step's bytes, the attainable rate.

Bandwidth is measured as the Empirical Roofline Toolkit measures it: each element of an
array is read, scaled and written back in place (``numpy.multiply(a, s, out=a)``, s = 1),
pass after pass, each thread over its own contiguous slice. Bytes counted per pass: 2 x the
array's bytes (one read, one write of each element). Write-allocate does not arise: every
line written was read just before, as in the step's in-place weight update. The working set
is the array's bytes; below the caches' sizes the rate is the caches'.

The model of a step (``step_bytes``), the least traffic between the cores and the level of
memory that holds the step's working set:

- x and t read once: ``B (n_in + n_out)`` elements;
- W and S read by the forward pass, then read and written by the update:
  ``3 (n_in H + H n_out)`` (between the two, the rest of the step passes through the caches);
- the activations u, h, grad_h, grad_u (B x H each) and y, grad_y (B x n_out each), each
  written once and read once, ``2 B (4 H + 2 n_out)``, counted only when together they do
  not fit in ``near_cache_bytes`` (the L1 data cache of one core: below it they stay there).

Its working set (``working_set_bytes``): x, t, W, S and the activations, once each (the
update in place). Its intensity is ``kernels.step_flops`` over those bytes; its attainable
rate ``min(peak, intensity x bandwidth)``, the bandwidth being the one measured at the
smallest measured working set at least as large as the step's (the largest one past them).
"""
from __future__ import annotations

import glob
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from kernels import step_flops
from mlpbench.measure import per_step, time_blocks, warm_up

__all__ = ["BYTES_COUNTED", "DEVICE_KERNEL", "KERNEL", "attainable_gflops", "bandwidth_at",
           "cache_sizes", "default_sizes", "device_roofs", "intensity", "measure_bandwidth",
           "roof_fields", "roofs_for", "step_bytes", "working_set_bytes"]

KERNEL = ("in-place scale of a float64 array, numpy.multiply(a, 1.0, out=a), pass after pass; "
          "with threads, each thread over its own contiguous slice")
BYTES_COUNTED = ("2 x the array's bytes per pass (each element read once and written once); "
                 "no write-allocate (each line written was just read)")


def cache_sizes(root: str = "/sys/devices/system/cpu/cpu0/cache") -> dict[str, int]:
    """The data caches of one core, in bytes: {"L1d", "L2", "L3"} as Linux lists them; {} elsewhere."""
    sizes = {}
    for folder in sorted(glob.glob(os.path.join(root, "index*"))):
        try:
            with open(os.path.join(folder, "level")) as f:
                level = f.read().strip()
            with open(os.path.join(folder, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(folder, "size")) as f:
                text = f.read().strip()
        except OSError:
            continue
        if kind == "Instruction" or not text:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1].upper(), 1)
        sizes[f"L{level}d" if level == "1" else f"L{level}"] = int(text.rstrip("KMGkmg")) * scale
    return sizes


def default_sizes(caches: dict[str, int], threads: int = 1) -> list[int]:
    """Working sets inside L1, L2 (per core: x threads), L3 and well past it, in bytes."""
    if not {"L1d", "L2"} <= caches.keys():
        return [32 * 2**10, 512 * 2**10, 8 * 2**20, 256 * 2**20]
    last = caches.get("L3", caches["L2"] * threads)
    return [caches["L1d"] * threads // 2, caches["L2"] * threads // 2, last // 2,
            max(4 * last, 128 * 2**20)]


def _scale_passes(nbytes: int, threads: int) -> tuple[Callable[[int], None], Callable[[], None]]:
    """run(n): n in-place passes over an array of ``nbytes``, by ``threads`` threads; and a closer."""
    import numpy as np

    a = np.ones(max(threads, nbytes // 8))
    one = np.float64(1.0)
    slices = np.array_split(a, threads)

    def passes(part: Any, n: int) -> None:
        for _ in range(n):
            np.multiply(part, one, out=part)

    if threads == 1:
        return (lambda n: passes(a, n)), (lambda: None)
    pool = ThreadPoolExecutor(max_workers=threads)

    def run(n: int) -> None:
        for done in [pool.submit(passes, part, n) for part in slices]:
            done.result()

    return run, pool.shutdown


def measure_bandwidth(sizes: list[int], threads: int = 1, min_time: float = 0.1,
                      repeat: int = 3) -> dict:
    """Memory bandwidth (GB/s, 1e9 bytes) at each working set in ``sizes`` (bytes), with how.

    The best of ``repeat`` blocks of at least ``min_time`` seconds each (as the matmul peak).
    Below a few hundred KiB numpy's call (about 1 µs) is a large part of a pass: the rate
    measured there is lower than the cache's own.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    table = []
    for nbytes in sizes:
        run, close = _scale_passes(int(nbytes), threads)
        try:
            run(1)
            blocks = time_blocks(run, lambda: None, min_time=min_time, repeat=repeat)
        finally:
            close()
        array_bytes = max(threads, int(nbytes) // 8) * 8
        table.append({"working_set_bytes": array_bytes,
                      "gb_per_s": 2 * array_bytes * blocks.n / min(blocks.seconds) / 1e9})
    return {"kernel": KERNEL, "bytes_counted": BYTES_COUNTED, "threads": threads,
            "min_time": min_time, "repeat": repeat, "caches": cache_sizes(), "bandwidth": table}


DEVICE_KERNEL = ("b = a * 1 through the backend's own namespace, float32, pass after pass "
                 "(one read and one write of the array per pass)")
#: Arrays of the device bandwidth: one that fits in a GPU's L2 (16 MiB read and written
#: together), one far past it.
DEVICE_SIZES = (8 * 2**20, 2**30)


def measure_device_bandwidth(backend: Any, sizes: tuple[int, ...] = DEVICE_SIZES,
                             min_time: float = 0.05, repeat: int = 3) -> list[dict]:
    """The device's bandwidth (GB/s) as the backend's own arrays see it, at each array size."""
    import numpy as np

    table = []
    one = backend.scalar(1.0, "float32")
    for nbytes in sizes:
        state = {"a": backend.asarray(np.ones(nbytes // 4, dtype=np.float32))}

        def run(n: int) -> None:
            a = state["a"]
            for _ in range(n):
                a = a * one
            state["a"] = a

        def synchronize() -> None:
            backend.synchronize(state["a"])

        warm_up(run, synchronize)
        blocks = time_blocks(run, synchronize, min_time=min_time, repeat=repeat)
        table.append({"working_set_bytes": 2 * nbytes,
                      "gb_per_s": 2 * nbytes * blocks.n / min(blocks.seconds) / 1e9})
        del state["a"]
    return table


def device_roofs(backend: Any) -> dict | None:
    """A GPU backend's roofs: its device bandwidth and its launch floor (None on a CPU)."""
    if backend.device == "cpu":
        return None
    return {"kernel": DEVICE_KERNEL, "bandwidth": measure_device_bandwidth(backend),
            "caches": {}, "launch_floor": launch_floor(backend)}


def launch_floor(backend: Any, min_time: float = 0.05, repeat: int = 5) -> dict | None:
    """Seconds per launch, back to back from the host, of each of ``backend.empty_launches()``
    (the median block), as ``{"empty_kernel_s", "empty_graph_s"}``; None when it has none."""
    launches = backend.empty_launches()
    if not launches:
        return None
    floor = {}
    for name, run in launches.items():
        warm_up(run, backend.synchronize)
        blocks = time_blocks(run, backend.synchronize, min_time=min_time, repeat=repeat)
        floor[f"{name}_s"] = per_step(blocks.seconds, blocks.n)["median"]
    return floor


def roofs_for(result: dict, environment: dict) -> dict:
    """The roofs a result sits under: its backend's device roofs, else the machine's."""
    return (environment.get("device_roofs") or {}).get(result["backend"]) or environment["roofs"]


def step_bytes(batch_size: int, n_in: int, hidden: int, n_out: int, itemsize: int, *,
               near_cache_bytes: int = 0) -> int:
    """The bytes one step must move at least (the module's docstring gives the model)."""
    data = batch_size * (n_in + n_out)
    weights = 3 * (n_in * hidden + hidden * n_out)
    activations = batch_size * (4 * hidden + 2 * n_out)
    moved = 2 * activations if activations * itemsize > near_cache_bytes else 0
    return (data + weights + moved) * itemsize


def working_set_bytes(batch_size: int, n_in: int, hidden: int, n_out: int, itemsize: int) -> int:
    """x, t, W, S and the six activations, once each."""
    data = batch_size * (n_in + n_out)
    weights = n_in * hidden + hidden * n_out
    activations = batch_size * (4 * hidden + 2 * n_out)
    return (data + weights + activations) * itemsize


def _sizes(point: dict) -> tuple[int, int, int, int]:
    return point["batch_size"], point["n_in"], point["hidden"], point["n_out"]


def _itemsize(point: dict) -> int:
    return {"float32": 4, "float64": 8}[point["dtype"]]


def intensity(point: dict, *, near_cache_bytes: int = 0) -> float:
    """Flops per byte of one step at ``point`` (batch_size, n_in, hidden, n_out, dtype)."""
    return step_flops(*_sizes(point)) / step_bytes(*_sizes(point), _itemsize(point),
                                                   near_cache_bytes=near_cache_bytes)


def bandwidth_at(table: list[dict], nbytes: int) -> float:
    """GB/s at the smallest measured working set >= ``nbytes``; the largest one's past them all."""
    if not table:
        raise ValueError("no bandwidth measured")
    ordered = sorted(table, key=lambda row: row["working_set_bytes"])
    for row in ordered:
        if row["working_set_bytes"] >= nbytes:
            return row["gb_per_s"]
    return ordered[-1]["gb_per_s"]


def attainable_gflops(point: dict, peak_gflops: float | None, bandwidth_table: list[dict], *,
                      near_cache_bytes: int = 0) -> float:
    """min(peak, intensity x bandwidth at the point's working set); the memory roof alone without a peak."""
    memory = intensity(point, near_cache_bytes=near_cache_bytes) * bandwidth_at(
        bandwidth_table, working_set_bytes(*_sizes(point), _itemsize(point)))
    return memory if peak_gflops is None else min(peak_gflops, memory)


def roof_fields(result: dict, peak_gflops: float | None, roofs: dict) -> dict:
    """A bench result's place under the roofs (``roofs`` from ``measure_bandwidth``).

    {"intensity", "working_set_bytes", "bandwidth_gb_per_s", "attainable_gflops", "bound",
    "roof_fraction"}: ``bound`` is "memory" where intensity x bandwidth is below the peak,
    else "compute"; ``roof_fraction`` is the result's GFLOP/s over the attainable (None when
    the result has no speed).
    """
    near = roofs.get("caches", {}).get("L1d", 0)
    ws = working_set_bytes(*_sizes(result), _itemsize(result))
    flops_per_byte = intensity(result, near_cache_bytes=near)
    bandwidth = bandwidth_at(roofs["bandwidth"], ws)
    attainable = attainable_gflops(result, peak_gflops, roofs["bandwidth"], near_cache_bytes=near)
    memory_bound = peak_gflops is None or flops_per_byte * bandwidth < peak_gflops
    gflops = result.get("gflops")
    fraction = gflops / attainable if gflops is not None and math.isfinite(gflops) else None
    return {"intensity": flops_per_byte, "working_set_bytes": ws, "bandwidth_gb_per_s": bandwidth,
            "attainable_gflops": attainable, "bound": "memory" if memory_bound else "compute",
            "roof_fraction": fraction}
