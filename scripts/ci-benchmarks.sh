#!/usr/bin/env bash
# CI's benchmark stage, after the tests: an asv smoke run of every benchmark on the quick grid
# in the current environment, then the regression gate (mlpbench regress) against the previous
# commit, with the settings it defines itself (docs/gate.md).
#
#   scripts/ci-benchmarks.sh            # from anywhere; uses $PYTHON (default: python)
#
# Exit status: 0 all well; 1 a benchmark errored in the smoke run, or the gate found a slower
# step; 2 the gate could not measure (a commit that does not import, a backend failing on one
# side: never counted as a pass). Do not run two of these at once on one machine: the gate times.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
# The smoke run with one thread (the variables of mlpbench.settings); the gate pins its own.
eval "$("$PYTHON" -m mlpbench pin-threads 1)"

# asv asks questions about a machine it does not know; CI answers with the defaults.
if [ ! -f "$HOME/.asv-machine.json" ]; then
    "$PYTHON" -m asv machine --yes > /dev/null
fi

echo "== asv smoke run: every benchmark once, quick grid, this environment"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# numpy and numba only: asv runs each parameter in a process of its own, so every other
# backend would add its library's import per parameter (torch: 73 s for time_piece alone on
# 2 cores); their code runs in the tests and in the gate below.
MLPBENCH_GRID=quick MLPBENCH_BACKENDS=numpy,numba "$PYTHON" -m asv run --python=same --quick \
    --show-stderr 2>&1 | tee "$log"
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

echo "== regression gate: HEAD against HEAD~1"
if ! git rev-parse --verify --quiet 'HEAD~1^{commit}' > /dev/null; then
    echo "ci-benchmarks: no previous commit here (a shallow clone?); the gate needs HEAD~1" >&2
    exit 2
fi
# The gate's settings (coverage, threads, effect, budget) are its own: mlpbench/gate/__init__.py.
"$PYTHON" -m mlpbench regress --base HEAD~1 --head HEAD
