#!/usr/bin/env bash
# Prove the CuPy backend on a machine with an NVIDIA GPU: tests, check, a small bench, a summary.
#
# usage: scripts/gpu-check.sh [--wheels DIR] [--python PY] [--cuda 12|13] [--dry-run | --summarize] OUTDIR
#
#   OUTDIR            where gpu-check.log (all output), gpu-bench.json and gpu-bench-tf32.json
#                     (the same with --allow-tf32) are written
#   --wheels DIR      install missing Python packages from the wheels in DIR only (no network)
#   --python PY       the interpreter to use (default: $PYTHON, else python3)
#   --cuda 12|13      which CuPy to install from PyPI when cupy is missing (default 12)
#   --dry-run         print the steps instead of running them (works without a GPU)
#   --summarize       only print the summary of OUTDIR/gpu-bench*.json (from an earlier run)
#
# mlpbench runs from this source tree (PYTHONPATH), so the project itself is not installed.
# It needs numpy, array-api-compat, threadpoolctl, tqdm, pytest and cupy; array-api-strict
# is optional. What is missing is installed: from --wheels DIR (pip --no-index --no-deps
# --target, into a folder beside OUTDIR), or else from PyPI with pip install -e
# '.[test,cuda12]' (cupy only when it does not already import: two CuPy packages clash).
#
# A machine without network (this workplace's GPU machines have python3 3.12 with CuPy
# 14 for CUDA 13, numpy, pytest, threadpoolctl and tqdm, but not array-api-compat): fetch
# the pure-Python wheels where pip works, into a folder that travels with the tree:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl \
#       'array-api-compat>=1.9' 'array-api-strict>=2.0'
# then run there: bash scripts/gpu-check.sh --wheels .whl "$OUT"
#
# Steps and their time limits (seconds): install 60, pytest --backend cupy 140, mlpbench
# check --backend cupy 60, mlpbench bench numpy,cupy x batch 64,4096 x hidden 100,4096 150,
# TF32 bench 45: under 8 minutes in all, a few minutes on an H200.
# Exit status: 0 all passed; 1 a test, the check or the bench failed; 2 this machine cannot
# run it (no GPU, packages missing, bad usage). Without a GPU it stops at the first check.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
WHEELS=""
CUDA_MAJOR=12
DRY_RUN=0
SUMMARIZE=0
OUTDIR=""

die() { echo "gpu-check: error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
        --wheels) [ $# -ge 2 ] || die "--wheels needs a folder"; WHEELS=$2; shift 2 ;;
        --python) [ $# -ge 2 ] || die "--python needs an interpreter"; PY=$2; shift 2 ;;
        --cuda) [ $# -ge 2 ] || die "--cuda needs 12 or 13"; CUDA_MAJOR=$2; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        --summarize) SUMMARIZE=1; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$OUTDIR" ] || die "one OUTDIR only, got '$OUTDIR' and '$1'"; OUTDIR=$1; shift ;;
    esac
done
[ -n "$OUTDIR" ] || die "usage: scripts/gpu-check.sh [--wheels DIR] [--python PY] [--cuda 12|13] [--dry-run | --summarize] OUTDIR"
case $CUDA_MAJOR in 12|13) ;; *) die "--cuda must be 12 or 13, got '$CUDA_MAJOR'" ;; esac
if [ -n "$WHEELS" ]; then
    [ -d "$WHEELS" ] || die "--wheels: no folder '$WHEELS'"
    WHEELS=$(cd "$WHEELS" && pwd)
fi
command -v "$PY" >/dev/null 2>&1 || die "no Python interpreter '$PY' (use --python)"
mkdir -p "$OUTDIR" || die "cannot create '$OUTDIR'"
OUTDIR=$(cd "$OUTDIR" && pwd)
LOG=$OUTDIR/gpu-check.log
JSON=$OUTDIR/gpu-bench.json
JSON_TF32=$OUTDIR/gpu-bench-tf32.json
SITE=${GPU_CHECK_SITE:-${TMPDIR:-/tmp}/mlpbench-gpu-check-site}

export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

FAILED=()

# step NAME LIMIT CMD...: run CMD (printed first) with a time limit; a failure is recorded.
step() {
    local name=$1 limit=$2 rc
    shift 2
    echo
    echo "=== $name (limit ${limit}s): $(printf '%q ' "$@")"
    if [ "$DRY_RUN" = 1 ]; then return 0; fi
    if command -v timeout >/dev/null 2>&1; then
        timeout --kill-after=10 "$limit" "$@"
    else
        "$@"
    fi
    rc=$?
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "=== $name: ran past ${limit}s"
    fi
    [ "$rc" = 0 ] || FAILED+=("$name (exit $rc)")
    return "$rc"
}

# The modules a run needs, printed space-separated when missing.
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

summary() {
    local args=("$JSON")
    [ -e "$JSON_TF32" ] && args+=("$JSON_TF32")
    "$PY" -m mlpbench.gpu_summary "${args[@]}"
}

main() {
    echo "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), repo $REPO, python $PY"
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
    "$PY" -m pip list 2>/dev/null \
        | grep -i -E '^(numpy|cupy[-a-z0-9]*|array[-_]api[-_a-z]*|threadpoolctl|tqdm|pytest|cuda[-a-z]*) ' \
        || true

    echo; echo "=== the cupy backend"
    if ! "$PY" - <<'EOF'
import sys
import backends
b = backends.create("cupy")
ok, why = b.available()
if not ok:
    sys.exit(f"gpu-check: error: {why}")
print(f"{b.library} {b.version}; {b.describe('float32')}")
EOF
    then
        [ "$DRY_RUN" = 1 ] || die "the cupy backend cannot run here (reason above)"
        echo "(a real run stops at this point)"
    fi
    [ "$DRY_RUN" = 0 ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi

    rm -f "$JSON" "$JSON_TF32"  # never summarise an earlier run's results
    step "pytest --backend cupy" 140 "$PY" -m pytest -q -p no:cacheprovider --backend cupy \
        -m "not slow" "$REPO/tests"
    step "mlpbench check --backend cupy" 60 "$PY" -m mlpbench check --backend cupy
    step "mlpbench bench" 150 "$PY" -m mlpbench bench --backend numpy,cupy \
        --batch-size 64,4096 --hidden 100,4096 --min-time 0.1 --repeat 3 --timeout 30 \
        --output "$JSON"
    step "mlpbench bench --allow-tf32" 45 "$PY" -m mlpbench bench --backend cupy \
        --batch-size 4096 --hidden 4096 --dtype float32 --min-time 0.1 --repeat 3 \
        --timeout 30 --allow-tf32 --output "$JSON_TF32"

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
    echo "gpu-check: all steps passed; results in $OUTDIR"
}

cd "$REPO" || die "cannot enter $REPO"
if [ "$SUMMARIZE" = 1 ]; then
    summary
    exit
fi
main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
