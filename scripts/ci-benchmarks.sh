#!/usr/bin/env bash
# CI's benchmark stage, after the tests: an asv smoke run of every benchmark on the quick grid
# in the current environment, then the regression gate against the previous commit.
#
#   scripts/ci-benchmarks.sh            # from anywhere; uses $PYTHON (default: python)
#
# Exit status: 0 all well; 1 a benchmark errored in the smoke run, or the gate found a slower
# step; 2 the gate could not build or run the benchmarks (never counted as a pass).
# asv's environments live in $MLPBENCH_ASV_ENV_DIR (default ~/.cache/mlpbench/asv-env), shared
# by every clone and run on this machine, so only the first run installs anything; do not run
# two of these at once on one machine.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
# One thread everywhere: stable timings, and no Numba threads beside a threaded BLAS.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1

env_dir=${MLPBENCH_ASV_ENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlpbench/asv-env}
mkdir -p "$env_dir" .asv
if [ ! -e .asv/env ]; then
    ln -s "$env_dir" .asv/env
fi
# asv asks questions about a machine it does not know; CI answers with the defaults.
if [ ! -f "$HOME/.asv-machine.json" ]; then
    "$PYTHON" -m asv machine --yes > /dev/null
fi

echo "== asv smoke run: every benchmark once, quick grid, this environment"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
MLPBENCH_GRID=quick "$PYTHON" -m asv run --python=same --quick --show-stderr 2>&1 | tee "$log"
smoke=${PIPESTATUS[0]}
set -e
# asv exits 2 when a benchmark failed; the output is checked too, in case it does not.
if [ "$smoke" -ne 0 ] || grep -Eq '(^|[[:space:]])([0-9]+/[0-9]+ )?failed[[:space:]]*$' "$log"; then
    echo "ci-benchmarks: the asv smoke run failed (asv exit status $smoke): see the errors above" >&2
    exit 1
fi
if ! grep -Eq '[[:space:]]ok[[:space:]]*$' "$log"; then
    echo "ci-benchmarks: the asv smoke run measured nothing" >&2
    exit 1
fi

echo "== regression gate: HEAD against HEAD~1 (numpy, batch 64, hidden 100, float32)"
if ! git rev-parse --verify --quiet 'HEAD~1^{commit}' > /dev/null; then
    echo "ci-benchmarks: no previous commit here (a shallow clone?); the gate needs HEAD~1" >&2
    exit 2
fi
# The gate's subset: numpy, batch 64, float32, the steadiest point on a 2-core machine (batch 1
# fits the cache only while nothing runs beside it; float64 at batch 64 can switch between two
# speeds with the allocator's state). A regression must show in two gate runs: a real slowdown
# beyond the factor repeats, noise seldom does (one false 1.6x at batch 1 was seen in a CI run).
gate() {
    MLPBENCH_BACKENDS=numpy MLPBENCH_GRID=quick \
        "$PYTHON" -m mlpbench regress --base HEAD~1 --head HEAD --bench "'numpy', 64, 100, 'float32'"
}
set +e
gate
status=$?
if [ "$status" -eq 1 ]; then
    echo "== the gate reported a regression: measuring again to confirm"
    gate
    status=$?
fi
set -e
exit "$status"
