#!/usr/bin/env bash
# The GPU measurements of issue 15 in one command; docs/benchmarks.md, "GPU", says how a session runs it.
#
#   bash benchmarks/gpu/run.sh          on a GPU machine: the CUDA tests, then benchmarks/gpu_throughput.py
#                                       (T21..T170, fp32/bf16, eager/CUDA graph, 1 vs 2 ranks): under 8 minutes
#   bash benchmarks/gpu/run.sh --tests-only   on a GPU machine: the CUDA tests alone (about 20 s)
#   bash benchmarks/gpu/run.sh --cpu    the CPU mode (also what a machine without CUDA gets): no tests, a tiny
#                                       run of the same script in seconds (tests/test_gpu_script.py runs it)
#
# Writes ONE file, results.txt, in $OUT when set (the device tool brings $OUT back), else next to this script;
# run.log beside it holds the full pytest output. Fetches nothing: f90nml, netCDF4 and cftime, when missing, are
# installed from benchmarks/gpu/wheels/ (benchmarks/gpu/fetch_wheels.sh; the device call carries that folder).
# Environment: PYTHON (default python3), GPU_BUDGET_S (seconds of throughput measurements, default 240).
# Worst case 150 s of tests + 300 s of measurements (both under `timeout`); expected about 5 minutes
# (the demo's step since stage 9 filters and projects every step: 737 kernels per eager T21 step, 159 before).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
DEST=${OUT:-$ROOT/benchmarks/gpu}
mkdir -p "$DEST"
RESULTS=$DEST/results.txt
LOG=$DEST/run.log
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
T0=$(date +%s)
: >"$LOG"

say() { echo "$*" | tee -a "$RESULTS"; }

{
    echo "# benchmarks/gpu/run.sh $*"
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); host: $(hostname)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo 'unknown (no .git in this copy)')"
} | tee "$RESULTS"

# -- 1. the packages this machine lacks, from wheels in the tree (no network) ----------------------
if ! "$PY" -c "import f90nml, netCDF4, cftime" 2>>"$LOG"; then
    if ls benchmarks/gpu/wheels/*.whl >/dev/null 2>&1; then
        SITE=$(mktemp -d /tmp/mlscam-site.XXXXXX)
        if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
            benchmarks/gpu/wheels/*.whl >>"$LOG" 2>&1; then
            export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
            say "wheels: installed $(ls benchmarks/gpu/wheels | tr '\n' ' ')into $SITE"
        else
            say "wheels: pip install from benchmarks/gpu/wheels failed (see run.log)"; exit 2
        fi
    else
        say "missing f90nml/netCDF4/cftime and no wheels in benchmarks/gpu/wheels: run benchmarks/gpu/fetch_wheels.sh"
        say "on a machine with PyPI and name benchmarks/gpu/wheels in the device call's carry"; exit 2
    fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import mlscam, sys; print('mlscam from', mlscam.__file__)" | tee -a "$RESULTS"

# -- 2. CUDA or the CPU mode -------------------------------------------------------------------------
CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>>"$LOG" || echo 0)
if [ "${1:-}" = "--cpu" ]; then CUDA=0; fi
if [ "$CUDA" != 1 ]; then
    say "CUDA not available (or --cpu): skipping the CUDA tests and the GPU measurements; CPU mode runs a tiny"
    say "version of benchmarks/gpu_throughput.py (its numbers mean nothing)"
    "$PY" benchmarks/gpu_throughput.py --quick --device cpu --out "$DEST/throughput.txt" >"$DEST/bench.out" 2>&1
    rc=$?
else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | sed 's/^/gpu: /' \
        | tee -a "$RESULTS"
    # the CUDA tests (tests/test_gpu_cuda.py), the CPU halves and the device choice: by file, not the whole suite
    timeout -k 10 150 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_gpu_cuda.py tests/test_gpu_path.py \
        tests/test_parallel_device.py >>"$LOG" 2>&1
    prc=$?
    say "CUDA tests (pytest tests/test_gpu_cuda.py tests/test_gpu_path.py tests/test_parallel_device.py): exit $prc:"
    grep -E "^(FAILED|ERROR)|passed|failed|error" "$LOG" | tail -12 | sed 's/^/  /' | tee -a "$RESULTS"
    if [ "${1:-}" = "--tests-only" ]; then say "total $(( $(date +%s) - T0 )) s"; exit $prc; fi
    timeout -k 10 300 "$PY" benchmarks/gpu_throughput.py --budget "${GPU_BUDGET_S:-240}" \
        --out "$DEST/throughput.txt" >"$DEST/bench.out" 2>&1
    rc=$?
fi
cat "$DEST/bench.out" >>"$LOG"
echo | tee -a "$RESULTS"
if [ -f "$DEST/throughput.txt" ]; then
    tee -a "$RESULTS" <"$DEST/throughput.txt"
else  # stopped or failed before writing its report: keep what it printed
    say "(no report written; the script's output follows)"
    tee -a "$RESULTS" <"$DEST/bench.out"
fi
rm -f "$DEST/throughput.txt" "$DEST/bench.out"
say "benchmarks/gpu_throughput.py: exit $rc"
[ $rc -eq 124 ] && say "(stopped by its 300 s timeout: the lines above are what it had measured)"
say "total $(( $(date +%s) - T0 )) s"
exit $rc
