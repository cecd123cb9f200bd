"""The asv piece suite without asv: its grid (always the quick one), its skips, a real piece on numpy."""
from __future__ import annotations

import pytest

from helpers import import_benchmarks
from mlpbench import settings
from mlpbench.pieces import TIMED


bench_pieces = import_benchmarks("bench_pieces")
StepPiece = bench_pieces.StepPiece


def test_params_are_the_quick_grid_times_the_pieces():
    quick = settings.GRIDS["quick"]
    assert StepPiece.param_names == ["backend", "batch_size", "hidden", "dtype", "piece"]
    assert StepPiece.params[1:] == [quick["batch_size"], quick["hidden"], quick["dtype"],
                                    list(TIMED)]


@pytest.mark.parametrize("piece", TIMED)
def test_time_piece_runs_the_piece_on_numpy(piece):
    bench = StepPiece()
    point = ("numpy", 1, 8, "float64", piece)
    bench.setup(*point)
    bench.time_piece(*point)
    again = StepPiece()
    again.setup(*point)
    assert again.run is bench.run  # asv reruns setup per sample: the arrays carry over


def test_unavailable_backend_is_skipped(register_backend):
    name = register_backend("MissingLibraryBackend")
    with pytest.raises(NotImplementedError, match=name):
        StepPiece().setup(name, 1, 8, "float64", "forward")
