#!/usr/bin/env bash
# The proof for bench's worker processes (docs/workers.md), one command after another:
#   1. the quick sweep, in-process (OLD_REV, before workers) and with workers, twice each,
#      alternated: wall time of each;
#   2. two consecutive identical --threads 2 sweeps of numpy, numba, torch, jax over
#      batch 1,64,1024 x hidden 100,1024 x both dtypes;
#   3. numba alone at 1 x 1024 float64, --threads 2; numpy's matmul peak alone, twice.
# usage: scripts/worker-trials.sh OUTDIR [OLD_REV]     (from the repository root; takes ~25 min)
# Each run holds /tmp/mlpbench-timing.lock (flock) so that no other timing run overlaps it.
set -euo pipefail
out=${1:?usage: scripts/worker-trials.sh OUTDIR [OLD_REV]}
old_rev=${2:-795695d}
mkdir -p "$out"
py=${PYTHON:-.venv/bin/python}
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT
git archive "$old_rev" | tar -x -C "$old"
lscpu | grep 'Model name' > "$out/machine.txt"
date -u +%Y-%m-%dT%H:%M:%SZ >> "$out/machine.txt"

timed() {  # timed NAME PYTHONPATH ARGS...: wall seconds of one bench run, appended to times.txt
    local name=$1 path=$2
    shift 2
    local seconds
    # The clock starts once the lock is held: waiting for it is not the run's time.
    seconds=$(PYTHONPATH=$path flock /tmp/mlpbench-timing.lock bash -c \
        'TIMEFORMAT=%R; { time "$0" -m mlpbench bench "${@:2}" > "$1" 2>&1; } 2>&1' \
        "$py" "$out/$name.txt" "$@")
    echo "$name $seconds" | tee -a "$out/times.txt"
}

: > "$out/times.txt"
for round in 1 2; do
    timed "quick-inprocess-$round" "$old" --quick --threads 1 --output "$out/quick-inprocess-$round.json"
    timed "quick-workers-$round" "$PWD" --quick --threads 1 --output "$out/quick-workers-$round.json"
done
grid=(--backend numpy,numba,torch,jax --batch-size 1,64,1024 --hidden 100,1024 --threads 2)
timed sweep-threads2-a "$PWD" "${grid[@]}" --output "$out/sweep-threads2-a.json"
timed sweep-threads2-b "$PWD" "${grid[@]}" --output "$out/sweep-threads2-b.json"
timed numba-alone "$PWD" --backend numba --batch-size 1 --hidden 1024 --dtype float64 \
    --threads 2 --output "$out/numba-alone.json"
timed numpy-alone-a "$PWD" --backend numpy --batch-size 1024 --hidden 1024 --threads 2 \
    --output "$out/numpy-alone-a.json"
timed numpy-alone-b "$PWD" --backend numpy --batch-size 1024 --hidden 1024 --threads 2 \
    --output "$out/numpy-alone-b.json"
PYTHONPATH=$PWD "$py" -m mlpbench compare "$out/sweep-threads2-a.json" "$out/sweep-threads2-b.json" \
    > "$out/compare-threads2.txt"
echo "done: $out"
