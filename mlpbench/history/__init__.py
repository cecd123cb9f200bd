"""asv's history of the step: the model (a commit, its measurements); reading (``read``),
ordering and flagging (``flag``), and showing (``show``) are modules of their own."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

__all__ = ["BENCHMARK", "DEFAULT_THRESHOLD", "PARAM_NAMES", "Commit", "Measurement"]

#: The benchmark read: steps/s is 1 / its median (asv keeps no higher-is-better benchmark).
BENCHMARK = "bench_step.TrainStep.time_train_step"
PARAM_NAMES = ("backend", "batch_size", "hidden", "dtype")
#: asv compare's default factor, as a percentage: a smaller change is never flagged.
DEFAULT_THRESHOLD = 10.0


@dataclass(frozen=True)
class Measurement:
    """One point on one commit: asv's median time per step and its spread, in seconds."""

    backend: str
    batch_size: int
    hidden: int
    dtype: str
    env: str
    seconds: float
    q_25: float | None = None
    q_75: float | None = None
    ci_99: tuple[float, float] | None = None

    @property
    def point(self) -> tuple[int, int, str]:
        return self.batch_size, self.hidden, self.dtype

    @property
    def series(self) -> tuple:
        return self.backend, self.env, self.point

    @property
    def steps_per_s(self) -> float:
        return 1.0 / self.seconds

    def rate_range(self) -> tuple[float, float] | None:
        """The interquartile range as steps/s (the spread asv shows as ±), low to high."""
        if self.q_25 is None or self.q_75 is None or self.q_25 <= 0:
            return None
        return 1.0 / self.q_75, 1.0 / self.q_25


@dataclass
class Commit:
    """A commit asv measured, with what it measured there."""

    hash: str
    date_ms: int | None
    subject: str = ""
    measurements: list[Measurement] = field(default_factory=list)

    def date_text(self) -> str:
        if self.date_ms is None:
            return "?"
        return datetime.fromtimestamp(self.date_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")
