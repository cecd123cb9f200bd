"""The jax backend: numpy's results under jax.jit, float64 when asked, async dispatch, threads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import backends
from kernels import make_step
from mlpbench.problem import make_inputs, to_backend

pytestmark = pytest.mark.uses_backend("jax")


@pytest.fixture
def jax_backend():
    return backends.create("jax")


def prepared(backend, shape, dtype="float32", make=make_step):
    dev = to_backend(backend, make_inputs(*shape, dtype=dtype, seed=0))
    return dev, backend.prepare(make, lr=1e-4, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_arrays_keep_their_dtype(jax_backend, dtype):
    """float64 is really float64 (x64 turned on for it); float32 stays float32 beside it."""
    import jax

    dev, step = prepared(jax_backend, (3, 7, 5, 2), dtype)
    W, S, loss = step(dev["x"], dev["t"], dev["W"], dev["S"])
    assert {str(a.dtype) for a in (dev["x"], W, S, loss)} == {dtype}
    assert loss.shape == ()
    if dtype == "float64":
        assert jax.config.jax_enable_x64


def test_step_compiles_once(jax_backend):
    traces = []

    def counting_make_step(xp):
        built = make_step(xp)

        def train_step(*args):
            traces.append(1)  # runs while jax.jit traces, not when the compiled step runs
            return built.train_step(*args)

        return built._replace(train_step=train_step)

    dev, step = prepared(jax_backend, (5, 4, 3, 2), make=counting_make_step)
    W, S = dev["W"], dev["S"]
    for _ in range(5):
        W, S, loss = step(dev["x"], dev["t"], W, S)
    jax_backend.synchronize(W, S, loss)
    assert len(traces) == 1


def test_steps_return_before_their_work_is_done(jax_backend):
    """JAX dispatches asynchronously on the CPU: only synchronize() makes a timed block honest."""
    dev, step = prepared(jax_backend, (512, 1000, 512, 10))
    W, S, loss = step(dev["x"], dev["t"], dev["W"], dev["S"])
    jax_backend.synchronize(W, S, loss)  # compiled, outside the timing
    n_steps = 10  # about 10 GFLOP in all: far longer than dispatching them
    start = time.perf_counter()
    for _ in range(n_steps):
        W, S, loss = step(dev["x"], dev["t"], W, S)
    dispatched_s = time.perf_counter() - start
    ready_when_dispatched = loss.is_ready()
    jax_backend.synchronize(W, S, loss)
    synchronized_s = time.perf_counter() - start
    print(f"{n_steps} steps: returned after {dispatched_s * 1e3:.2f} ms, "
          f"done after {synchronized_s * 1e3:.1f} ms")
    assert not ready_when_dispatched, "the steps finished before dispatch returned"
    assert W.is_ready() and S.is_ready() and loss.is_ready()


def test_synchronize_waits_for_the_arrays_it_is_given(jax_backend):
    (dev_a, step_a), (dev_b, step_b) = (prepared(jax_backend, (512, 1000, 256, 10)),
                                        prepared(jax_backend, (256, 1000, 512, 10)))
    a = step_a(dev_a["x"], dev_a["t"], dev_a["W"], dev_a["S"])
    b = step_b(dev_b["x"], dev_b["t"], dev_b["W"], dev_b["S"])
    jax_backend.synchronize(*a, *b)
    assert all(array.is_ready() for array in a + b)


def test_step_consumes_only_its_own_outputs(jax_backend):
    """W and S fed back are donated (updated in place); the caller's first W and S survive."""
    dev, step = prepared(jax_backend, (4, 6, 5, 3))
    W1, S1, _ = step(dev["x"], dev["t"], dev["W"], dev["S"])
    W2, S2, _ = step(dev["x"], dev["t"], W1, S1)
    jax_backend.synchronize(W2, S2)
    assert not dev["W"].is_deleted() and not dev["S"].is_deleted()
    assert W1.is_deleted() and S1.is_deleted()
    assert np.all(np.isfinite(jax_backend.to_numpy(W2)))


THREADS_SCRIPT = textwrap.dedent("""
    import json, os, warnings
    import numpy as np
    from backends.jax_backend import JaxBackend

    backend = JaxBackend()
    main_before = sorted(os.sched_getaffinity(0))
    with backend.threads(1) as inside:
        backend.asarray(np.ones((3, 2)))  # JAX starts here, inside threads(1)
        started = backend.thread_info()
    main_after = sorted(os.sched_getaffinity(0))
    threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    pinned = sum(sorted(os.sched_getaffinity(tid)) == started["xla_cpu_cores"] for tid in threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with backend.threads(2) as later:
            pass
    print(json.dumps({"inside": inside, "started": started, "later": later, "pinned": pinned,
                      "main_before": main_before, "main_after": main_after,
                      "warnings": [str(w.message) for w in caught]}))
""")


def test_threads_size_xla_pool_when_jax_starts_inside(tmp_path):
    """In a fresh process: threads(1) pins XLA's pool to one core, unpins the caller, and
    says so; a later threads(2) cannot resize the pool and warns."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 usable cores to show the pool limited to 1")
    out = subprocess.run([sys.executable, "-c", THREADS_SCRIPT], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["inside"]["xla_cpu"] == 1 and info["started"]["xla_cpu"] == 1
    assert len(info["started"]["xla_cpu_cores"]) == 1
    assert "pinned" in info["started"]["xla_cpu_set_by"]
    assert info["pinned"] >= 1, "no thread of XLA's pool is pinned to the chosen core"
    assert info["main_after"] == info["main_before"], "the calling thread stayed pinned"
    assert info["later"]["xla_cpu"] == 1
    assert any("cannot be resized" in w for w in info["warnings"])


def test_describing_the_backend_does_not_start_jax():
    """`mlpbench backends` and a run's environment read device and gpu_info before threads(n)."""
    script = ("import json; from backends.jax_backend import JaxBackend, _client_started\n"
              "b = JaxBackend()\n"
              "print(json.dumps([b.available()[0], b.device, b.gpu_info(), _client_started()]))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, "cpu", None, False]
