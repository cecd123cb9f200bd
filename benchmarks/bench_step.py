"""asv benchmarks of one training step: its time and its memory."""
from __future__ import annotations

from .common import StepBenchmark


class TrainStep(StepBenchmark):
    """One SGD step of the two-layer network; W and S carry over from step to step.

    Only lower-is-better benchmarks: asv takes every value that way (``track_*`` too), so a rate
    here would show a speed-up as a regression. Rates are 1/time: ``mlpbench history`` draws
    them from these results, ``mlpbench bench`` measures them.
    """

    # One step per sample: asv_runner >= 0.3 reruns setup before every timed call anyway.
    # Many short samples, two rounds in separate processes, interleaved between commits.
    number = 1
    repeat = (10, 100, 1.0)  # (min samples, max samples, seconds) per round
    rounds = 2
    warmup_time = 0.1

    def time_train_step(self, backend, batch_size, hidden, dtype):
        self.point.train_step()
        self.point.synchronize()

    def peakmem_train_step(self, backend, batch_size, hidden, dtype):
        self.point.train_step()
        self.point.synchronize()
