"""asv benchmarks of each piece of the step at the quick grid, so a regression points at its piece."""
from __future__ import annotations

import backends
from kernels import resolve_pieces
from mlpbench import pieces as step_pieces
from mlpbench import settings
from mlpbench.problem import make_inputs, to_backend

from .common import N_IN, N_OUT, SEED, backend_names, require_backend

QUICK = settings.GRIDS["quick"]

# The runs of the last point set up in this process (asv reruns setup before every sample).
_runs: dict[tuple, dict] = {}


def _piece_runs(backend: backends.Backend, batch_size: int, hidden: int, dtype: str) -> dict:
    key = (backend.name, batch_size, hidden, dtype)
    if key not in _runs:
        _runs.clear()
        inputs = make_inputs(batch_size, N_IN, hidden, N_OUT, dtype=dtype, seed=SEED, init="scaled")
        pieces = backend.prepare_pieces(
            resolve_pieces, lr=settings.learning_rate(batch_size, N_IN, hidden, N_OUT), dtype=dtype)
        latest: dict[str, tuple] = {}
        runs = step_pieces.piece_runs(pieces, to_backend(backend, inputs), latest)
        for name, run in runs.items():  # the warm-up: a JIT compiles here, never in a timed call
            run(1)
            backend.synchronize(*latest[name])
        _runs[key] = runs, latest
    return _runs[key]


class StepPiece:
    """One piece of the step (``mlpbench.pieces.TIMED``) on one step's arrays, ended by the
    backend's synchronize; always at the quick grid."""

    param_names = ["backend", "batch_size", "hidden", "dtype", "piece"]
    params = [backend_names(), QUICK["batch_size"], QUICK["hidden"], QUICK["dtype"],
              list(step_pieces.TIMED)]
    timeout = 300.0
    number = 1
    repeat = (10, 100, 1.0)
    rounds = 2
    warmup_time = 0.1

    def setup(self, backend, batch_size, hidden, dtype, piece):
        self.backend = require_backend(backend)
        runs, self.latest = _piece_runs(self.backend, batch_size, hidden, dtype)
        self.run, self.piece = runs[piece], piece

    def time_piece(self, backend, batch_size, hidden, dtype, piece):
        self.run(1)
        self.backend.synchronize(*self.latest[self.piece])
