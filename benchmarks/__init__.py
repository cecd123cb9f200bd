"""asv suites: one training step, per backend x batch size x hidden width x dtype.

The grid comes from the environment, so a user chooses what asv measures without editing
files: ``MLPBENCH_BACKENDS=numpy,numba`` limits the backends, ``MLPBENCH_GRID=quick`` picks
the small grid (see ``benchmarks.common``).
"""
