"""asv's benchmark processes are measured as the gate's workers: its threads and allocator."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT
from mlpbench.gate import SETTINGS
from mlpbench.settings import THREAD_VARIABLES


def test_importing_the_suite_pins_threads_and_allocator_as_the_gate_does():
    env = {k: v for k, v in os.environ.items()
           if k not in THREAD_VARIABLES and not k.startswith("MALLOC_")}
    code = ("import benchmarks, json, os, numpy, threadpoolctl; print(json.dumps({"
            "'blas': sorted({p['num_threads'] for p in threadpoolctl.threadpool_info() "
            "if p['user_api'] == 'blas'}), 'env': dict(os.environ)}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["blas"] == [SETTINGS.threads]
    assert all(seen["env"][name] == str(SETTINGS.threads) for name in THREAD_VARIABLES)
    assert all(seen["env"][name] == value for name, value in SETTINGS.allocator)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_the_allocator_settings_are_applied_in_the_running_process(monkeypatch):
    from mlpbench.settings import pin_this_process

    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, _ in SETTINGS.allocator:
        monkeypatch.delenv(name, raising=False)
    applied = pin_this_process(SETTINGS.threads, SETTINGS.allocator)
    assert applied == {name: True for name, _ in SETTINGS.allocator}
