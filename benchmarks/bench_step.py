"""asv benchmarks of one training step: its time, its rate (steps/s, GFLOP/s) and its memory."""
from __future__ import annotations

from .common import StepBenchmark


class TrainStep(StepBenchmark):
    """One SGD step of the two-layer network; W and S carry over from step to step.

    ``time_*`` is what the regression gate compares (asv: lower is better). ``track_*`` are for
    the graphs only: asv would call a higher rate a regression.
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

    def track_steps_per_second(self, backend, batch_size, hidden, dtype):
        return 1.0 / self.point.seconds_per_step()

    track_steps_per_second.unit = "steps/s"

    def track_gflops(self, backend, batch_size, hidden, dtype):
        return self.point.flops / self.point.seconds_per_step() / 1e9

    track_gflops.unit = "GFLOP/s"
