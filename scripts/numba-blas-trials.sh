#!/usr/bin/env bash
# The proof for numba's BLAS (docs/numba-blas.md): one side-by-side run of numpy, numba, torch
# and jax at 1 thread over batch 1,64,1024 x hidden 100,1024 x both dtypes (the seed's sizes are
# batch 64 x hidden 100), once per MLPBENCH_NUMBA_BLAS setting given (default: auto scipy).
# The BLAS kernels are those the environment gives; for the libraries' own pick on a machine that
# forces them: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE scripts/numba-blas-trials.sh ...
# Tabulate one or more runs: python scripts/numba-blas-table.py OUTDIR*/numba-blas-auto.json
# usage: scripts/numba-blas-trials.sh OUTDIR [SETTING...]      (from the repository root)
set -euo pipefail
out=${1:?usage: scripts/numba-blas-trials.sh OUTDIR [SETTING...]}
shift
settings=("${@:-auto}")
[ $# -gt 0 ] || settings=(auto scipy)
py=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
{ lscpu | grep 'Model name'; date -u +%Y-%m-%dT%H:%M:%SZ
  "$py" -c 'from mlpbench.environment import kernel_variables; print("kernel variables:", kernel_variables())'
} > "$out/machine.txt"
for setting in "${settings[@]}"; do
    MLPBENCH_NUMBA_BLAS=$setting "$py" -m mlpbench bench --backend numpy,numba,torch,jax \
        --batch-size 1,64,1024 --hidden 100,1024 --threads 1 \
        --output "$out/numba-blas-$setting.json" > "$out/numba-blas-$setting.txt" 2>&1
done
echo "done: $out"
