#!/usr/bin/env bash
# The GPU half, run and measured on a machine with an NVIDIA GPU: every figure of docs/gpu.md.
#
# usage: scripts/gpu-check.sh [--wheels DIR] [--python PY] [--cuda 12|13] [--budget S]
#                             [--only STEP,...] [--dry-run | --summarize] OUTDIR
#
#   OUTDIR        where the log and the results are written (below)
#   --wheels DIR  install missing Python packages from the wheels in DIR only (no network)
#   --python PY   the interpreter to use (default: $PYTHON, else python3)
#   --cuda 12|13  which CuPy to install from PyPI when cupy is missing (default 12)
#   --budget S    seconds for all the steps together (default 540): a step gets at most what
#                 is left, and a step with under 10 s left is skipped, saying so
#   --only STEPS  run only these steps (comma-separated names, below); the others' results
#                 in OUTDIR are kept, so a second run can redo the steps that failed
#   --dry-run     print the steps and their limits instead of running them (no GPU needed)
#   --summarize   only print the summary of OUTDIR's results (from an earlier run)
#
# Steps, in order (each with its own time limit, seconds):
#   probe     scripts/gpu_probe.py: versions, whether CuPy's own cuBLAS can be captured, the
#             kernels and copies of one step of each GPU backend (CUPTI)        -> gpu-probe.json
#   check     mlpbench check --backend cupy cupy-graph torch torch-graph jax (TF32 off)
#   bench     the GPU backends but jax x batch 1,64,1024,4096 x hidden 100,1024,4096 x both
#             dtypes, CUDA-event and wall-clock times, matmul peaks, device roofs -> gpu-bench.json
#   jax       the same grid for jax, into the same file (--resume): XLA compiles and autotunes
#             each shape, up to 10 s a point on an H200
#   tf32      the same backends' float32 at batch and hidden 1024,4096, --allow-tf32
#                                                                      -> gpu-bench-tf32.json
#   gate      mlpbench regress on cupy in a scratch repository: identical code 3 times, a step
#             10% slower (every 10th step run twice) 3 times              -> gate.jsonl
#   numpy     numpy on the CPU, the quick grid, 1 thread (the reference)  -> cpu-numpy.json
#   scaling   numpy, numba, torch, jax on the CPU at --threads 1,16,4,2,8, batch 64,1024 x
#             hidden 100,1024, both dtypes                                -> cpu-scaling.json
#   pytest    the contract and the GPU backends' tests, on the GPU (last: CuPy compiles each
#             kernel it has not cached with NVRTC, seconds apiece on a fresh machine)
#   summary   python -m mlpbench.gpu_summary OUTDIR (also: --summarize)
# The limits add up to more than one 10-minute call: on a lent machine, run it in two calls,
# --only probe,check,bench,jax,tf32 and then --only gate,numpy,scaling,pytest; put both calls'
# files in one folder and run --summarize on it.
# All output goes to OUTDIR/gpu-check.log too.
#
# mlpbench runs from this source tree (PYTHONPATH), so the project itself is not installed.
# It needs numpy, array-api-compat, threadpoolctl, tqdm, pytest, cupy, torch (CUDA), jax
# (CUDA) and numba with scipy. Missing pure-Python packages: fetch the wheels where pip works,
# into a folder that travels with the tree:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl \
#       'array-api-compat>=1.9' 'array-api-strict>=2.0'
# then run there: bash scripts/gpu-check.sh --wheels .whl "$OUT"
#
# Exit status: 0 all passed; 1 a step failed or ran out of time; 2 this machine cannot run it
# (no GPU, packages missing, bad usage). Without a GPU it stops at the first check.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
WHEELS=""
CUDA_MAJOR=12
BUDGET=540
DRY_RUN=0
SUMMARIZE=0
OUTDIR=""
ALL_STEPS="probe check bench jax tf32 gate numpy scaling pytest"
ONLY=$ALL_STEPS
GPU_BACKENDS="cupy cupy-graph torch torch-graph jax"
CPU_THREADS="1 16 4 2 8"  # the ends first: a run cut short still compares them

die() { echo "gpu-check: error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
        --wheels) [ $# -ge 2 ] || die "--wheels needs a folder"; WHEELS=$2; shift 2 ;;
        --python) [ $# -ge 2 ] || die "--python needs an interpreter"; PY=$2; shift 2 ;;
        --cuda) [ $# -ge 2 ] || die "--cuda needs 12 or 13"; CUDA_MAJOR=$2; shift 2 ;;
        --budget) [ $# -ge 2 ] || die "--budget needs seconds"; BUDGET=$2; shift 2 ;;
        --only) [ $# -ge 2 ] || die "--only needs step names"; ONLY=${2//,/ }; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        --summarize) SUMMARIZE=1; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$OUTDIR" ] || die "one OUTDIR only, got '$OUTDIR' and '$1'"; OUTDIR=$1; shift ;;
    esac
done
[ -n "$OUTDIR" ] || die "usage: scripts/gpu-check.sh [--wheels DIR] [--python PY] [--cuda 12|13] [--budget S] [--only STEP,...] [--dry-run | --summarize] OUTDIR"
case $CUDA_MAJOR in 12|13) ;; *) die "--cuda must be 12 or 13, got '$CUDA_MAJOR'" ;; esac
for s in $ONLY; do
    case " $ALL_STEPS " in *" $s "*) ;; *) die "--only: no step '$s' (steps: ${ALL_STEPS// /,})" ;; esac
done
[ -n "${ONLY// /}" ] || die "--only needs step names"
case $BUDGET in ''|*[!0-9]*|0) die "--budget must be a positive whole number of seconds, got '$BUDGET'" ;; esac
if [ -n "$WHEELS" ]; then
    [ -d "$WHEELS" ] || die "--wheels: no folder '$WHEELS'"
    WHEELS=$(cd "$WHEELS" && pwd)
fi
command -v "$PY" >/dev/null 2>&1 || die "no Python interpreter '$PY' (use --python)"
mkdir -p "$OUTDIR" || die "cannot create '$OUTDIR'"
OUTDIR=$(cd "$OUTDIR" && pwd)
LOG=$OUTDIR/gpu-check.log
SITE=${GPU_CHECK_SITE:-${TMPDIR:-/tmp}/mlpbench-gpu-check-site}

export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# JAX takes 75% of the GPU's memory at start unless told otherwise; the backends share the GPU.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

FAILED=()
START=$SECONDS

# step NAME LIMIT CMD...: run CMD (printed first) within LIMIT and what is left of the budget.
step() {
    local name=$1 limit=$2 rc left
    shift 2
    case " $ALL_STEPS " in *" $name "*) case " $ONLY " in *" $name "*) ;; *) echo; echo "=== $name: not asked for (--only)"; return 0 ;; esac ;; esac
    left=$((BUDGET - (SECONDS - START)))
    [ "$left" -lt "$limit" ] && [ "$DRY_RUN" = 0 ] && limit=$left
    echo
    echo "=== $name (limit ${limit}s): $(printf '%q ' "$@")"
    if [ "$DRY_RUN" = 1 ]; then return 0; fi
    if [ "$limit" -lt 10 ]; then
        echo "=== $name: skipped, ${left}s of the ${BUDGET}s budget left"
        FAILED+=("$name (skipped: out of time)")
        return 1
    fi
    local began=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    echo "=== $name: exit $rc after $((SECONDS - began))s"
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && echo "=== $name: ran past ${limit}s"
    [ "$rc" = 0 ] || FAILED+=("$name (exit $rc)")
    return "$rc"
}

missing_modules() {
    "$PY" - <<'EOF'
import importlib
need = ["numpy", "array_api_compat", "threadpoolctl", "tqdm", "pytest", "cupy"]
missing = []
for name in need:
    try:
        importlib.import_module(name)
    except Exception:
        missing.append(name)
print(" ".join(missing))
EOF
}

install_missing() {
    local missing=$1
    if [ -n "$WHEELS" ]; then
        local wheels=("$WHEELS"/*.whl)
        [ -e "${wheels[0]}" ] || die "no wheels (*.whl) in $WHEELS"
        mkdir -p "$SITE" || die "cannot create $SITE"
        step "install wheels from $WHEELS" 60 "$PY" -m pip install -q --no-index --no-deps \
            --no-compile --upgrade --target "$SITE" "${wheels[@]}" \
            || die "installing the wheels in $WHEELS failed (see above)"
        return
    fi
    local extras=test
    case " $missing " in *" cupy "*) extras="test,cuda$CUDA_MAJOR" ;; esac
    step "pip install -e .[$extras]" 60 "$PY" -m pip install -q -e "${REPO}[$extras]" \
        || die "pip could not install $missing (no network here?). Where pip works, run:" \
               "python3 -m pip download --no-deps --only-binary=:all: -d .whl 'array-api-compat>=1.9'" \
               "'array-api-strict>=2.0' (add cupy-cuda${CUDA_MAJOR}x and cuda-pathfinder if cupy is" \
               "missing), carry .whl to this machine and rerun with --wheels .whl"
}

gpu_present() {
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi -L
        return
    fi
    echo "nvidia-smi not found"
    compgen -G '/dev/nvidia[0-9]*' >/dev/null
}

# The regression gate on cupy, in a scratch repository of this tree: identical code, then a
# step 10% slower (every 10th step run twice), three runs each; reports in OUTDIR/gate.jsonl.
gate_trials() {
    command -v git >/dev/null 2>&1 || { echo "gate: git is not installed here"; return 2; }
    local repo=${TMPDIR:-/tmp}/mlpbench-gate-repo runs=$OUTDIR/gate-runs
    rm -rf "$repo" "$runs" && mkdir -p "$repo" "$runs" || return 2
    cp -r "$REPO"/backends "$REPO"/kernels "$REPO"/mlpbench "$REPO"/pyproject.toml "$repo"/ || return 2
    find "$repo" -name __pycache__ -prune -exec rm -rf {} +
    cd "$repo" || return 2
    local g=(git -c user.name=gpu-check -c user.email=gpu-check@localhost)
    "${g[@]}" init -q && "${g[@]}" add -A && "${g[@]}" commit -qm base \
        && "${g[@]}" commit -q --allow-empty -m identical || return 2
    "$PY" - <<'EOF' || return 2
import re, sys
path = "backends/cupy_backend.py"
text = open(path).read()
old = ("        def step(x, t, W, S):\n            return train_step(x, t, W, S, lr_)\n\n"
       "        return step\n\n    def prepare_pieces")
new = ("        calls = [0]\n\n        def step(x, t, W, S):\n            calls[0] += 1\n"
       "            if calls[0] % 10 == 0:  # every 10th step twice: 10% slower\n"
       "                train_step(x, t, W, S, lr_)\n"
       "            return train_step(x, t, W, S, lr_)\n\n        return step\n\n    def prepare_pieces")
if text.count(old) != 1:
    sys.exit("gate: the cupy step to slow down was not found once in " + path)
open(path, "w").write(text.replace(old, new))
EOF
    "${g[@]}" commit -qam "cupy 10% slower" || return 2
    # The gate works when identical code passes (exit 0) and the slower step fails (exit 1).
    local rc=0 i head kind want got
    for i in 1 2 3; do
        for head in HEAD~1 HEAD; do
            if [ "$head" = HEAD ]; then kind=slower want=1; else kind=identical want=0; fi
            echo "--- gate run $i: base HEAD~2, head $head ($kind)"
            "$PY" -m mlpbench regress --base HEAD~2 --head "$head" --backend cupy --budget 20 \
                --output "$runs/run-$i-$kind.json"
            got=$?
            echo "--- gate run $i ($kind): exit $got, expected $want"
            [ "$got" = "$want" ] || rc=1
        done
    done
    cd "$REPO" || return 2
    "$PY" - "$runs" "$OUTDIR/gate.jsonl" <<'EOF'
import json, pathlib, sys
runs, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with out.open("w") as f:
    for path in sorted(runs.glob("*.json")):
        record = json.loads(path.read_text())
        record["run"] = path.stem
        f.write(json.dumps(record) + "\n")
EOF
    rm -rf "$runs"
    return $rc
}

cpu_scaling() {
    local n rc=0
    for n in $CPU_THREADS; do
        CUDA_VISIBLE_DEVICES= JAX_PLATFORMS=cpu MLPBENCH_NUMBA_BLAS=scipy \
            "$PY" -m mlpbench bench --backend numpy,numba,torch,jax --batch-size 64,1024 \
            --hidden 100,1024 --threads "$n" --min-time 0.03 --repeat 3 --timeout 60 \
            --output "$OUTDIR/cpu-scaling.json" --resume || rc=1
    done
    return $rc
}

# The GPU backends that can run here (of `mlpbench backends --json`, read from stdin),
# space-separated; each one that cannot is said on stderr.
available_gpu_backends() {
    # shellcheck disable=SC2086
    "$PY" -c '
import json, sys
listed = {b["name"]: b for b in json.load(sys.stdin)}
usable = [n for n in sys.argv[1:] if listed.get(n, {}).get("available")]
for name in sys.argv[1:]:
    if name not in usable:
        why = listed.get(name, {}).get("reason") or "unknown backend"
        print(f"gpu-check: {name} cannot run here: {why}", file=sys.stderr)
print(" ".join(usable))' $GPU_BACKENDS
}

summary() {
    "$PY" -m mlpbench.gpu_summary "$OUTDIR"
}

main() {
    echo "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), repo $REPO, python $PY, budget ${BUDGET}s"
    [ "$DRY_RUN" = 1 ] && echo "(dry run: steps are printed, not run)"

    echo; echo "=== GPU"
    if ! gpu_present; then
        if [ "$DRY_RUN" = 1 ]; then
            echo "(no NVIDIA GPU here; a real run stops at this point)"
        else
            die "no NVIDIA GPU here (nvidia-smi -L failed or is missing, and no /dev/nvidia*)"
        fi
    fi

    echo; echo "=== Python packages"
    "$PY" --version || die "'$PY' does not run"
    local missing
    missing=$(missing_modules) || die "'$PY' could not check its packages"
    if [ -n "$missing" ]; then
        echo "missing: $missing"
        if [ "$DRY_RUN" = 1 ]; then
            echo "(would install them from ${WHEELS:-PyPI})"
        else
            install_missing "$missing"
            missing=$(missing_modules)
            [ -z "$missing" ] || die "still missing after the install: $missing"
        fi
    fi

    echo; echo "=== the GPU backends"
    "$PY" -m mlpbench backends
    [ "$DRY_RUN" = 0 ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi
    if [ "$DRY_RUN" = 0 ]; then
        local usable
        usable=$("$PY" -m mlpbench backends --json | available_gpu_backends)
        if [ "$usable" != "$GPU_BACKENDS" ]; then
            FAILED+=("GPU backends missing (only: ${usable:-none})")
            GPU_BACKENDS=$usable
        fi
        [ -n "$GPU_BACKENDS" ] || echo "gpu-check: no GPU backend can run here; the CPU steps only"
    fi

    # never summarise an earlier run's results of a step run now
    local name
    for name in $ONLY; do
        case $name in
            probe) rm -f "$OUTDIR"/gpu-probe.json ;;
            bench) rm -f "$OUTDIR"/gpu-bench.json ;;
            tf32) rm -f "$OUTDIR"/gpu-bench-tf32.json ;;
            gate) rm -f "$OUTDIR"/gate.jsonl ;;
            numpy) rm -f "$OUTDIR"/cpu-numpy.json ;;
            scaling) rm -f "$OUTDIR"/cpu-scaling.json ;;
        esac
    done
    # shellcheck disable=SC2086
    step "probe" 60 "$PY" "$REPO/scripts/gpu_probe.py" "$OUTDIR/gpu-probe.json" $GPU_BACKENDS
    # shellcheck disable=SC2086
    step "check" 60 "$PY" -m mlpbench check --backend $GPU_BACKENDS
    # jax apart, after the others: XLA compiles (and autotunes) every shape anew, seconds a point
    local eager=${GPU_BACKENDS//jax/}
    eager=$(echo $eager)
    [ -n "$eager" ] && \
        step "bench" 120 "$PY" -m mlpbench bench --backend "${eager// /,}" \
        --batch-size 1,64,1024,4096 --hidden 100,1024,4096 --min-time 0.05 --repeat 3 \
        --timeout 60 --output "$OUTDIR/gpu-bench.json"
    case " $GPU_BACKENDS " in
        *" jax "*) step "jax" 200 "$PY" -m mlpbench bench --backend jax \
            --batch-size 1,64,1024,4096 --hidden 100,1024,4096 --min-time 0.05 --repeat 3 \
            --timeout 60 --output "$OUTDIR/gpu-bench.json" --resume ;;
    esac
    [ -n "$eager" ] && \
        step "tf32" 60 "$PY" -m mlpbench bench --backend "${eager// /,}" --dtype float32 \
        --batch-size 1024,4096 --hidden 1024,4096 --min-time 0.05 --repeat 3 --timeout 60 \
        --allow-tf32 --output "$OUTDIR/gpu-bench-tf32.json"
    step "gate" 150 bash -c gate_trials
    step "numpy" 15 env CUDA_VISIBLE_DEVICES= "$PY" -m mlpbench bench --backend numpy --quick \
        --threads 1 --output "$OUTDIR/cpu-numpy.json"
    step "scaling" 220 bash -c cpu_scaling

    # faulthandler: a test that hangs shows where, in the log
    step "pytest" 150 "$PY" -m pytest -q -rs -p no:cacheprovider -m "not slow" -n 0 \
        -o faulthandler_timeout=15 $(printf -- '--backend %s ' $GPU_BACKENDS) \
        "$REPO/tests/test_backends_contract.py" "$REPO/tests/test_cupy.py" \
        "$REPO/tests/test_graphs.py" "$REPO/tests/test_torch.py" "$REPO/tests/test_jax.py"
    rm -f "$OUTDIR"/*.lock  # the results files' locks: only the results come back

    echo; echo "=== summary"
    if [ "$DRY_RUN" = 1 ]; then
        echo "gpu-check: dry run finished; nothing was run"
        return 0
    fi
    summary || FAILED+=("summary")
    if [ ${#FAILED[@]} -gt 0 ]; then
        echo "gpu-check: FAILED: ${FAILED[*]}"
        return 1
    fi
    echo "gpu-check: all steps passed in $((SECONDS - START))s; results in $OUTDIR"
}

cd "$REPO" || die "cannot enter $REPO"
if [ "$SUMMARIZE" = 1 ]; then
    summary
    exit
fi
export -f gate_trials cpu_scaling 2>/dev/null
export REPO PY OUTDIR CPU_THREADS
main 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
