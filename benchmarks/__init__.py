"""asv suites: one training step, per backend x batch size x hidden width x dtype.

The grid comes from the environment, so a user chooses what asv measures without editing
files: ``MLPBENCH_BACKENDS=numpy,numba`` limits the backends, ``MLPBENCH_GRID=quick`` picks
the small grid (see ``benchmarks.common``).

Every benchmark process is measured as the regression gate measures its workers (the gate's
threads and allocator settings, ``mlpbench.gate.SETTINGS``), applied here, before any array
library is imported, so that a commit's point is as steady in asv's history as in the gate.
"""
try:
    from mlpbench.gate import SETTINGS as _GATE
    from mlpbench.settings import pin_this_process as _pin
except ImportError:  # a commit older than these settings: measured as it was then
    pass
else:
    _pin(_GATE.threads, _GATE.allocator)
