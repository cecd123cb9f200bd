"""The numba backend, one job per module.

``backend``: the Backend (the shared step compiled whole, arrays and threads); ``pieces``: the
fused pieces and ``stable_njit``, Numba's disk cache for closures; ``cblas``: CBLAS gemm called
from compiled code; ``libraries``: finding and loading MKL, AOCL-BLAS and SciPy's BLAS;
``choice``: which of them each product calls (the setting, the pick, a named file of picks).
Importing this package imports no numba: ``backend`` imports it when first used.
"""
