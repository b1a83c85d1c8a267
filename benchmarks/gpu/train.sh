#!/usr/bin/env bash
# Held-Suarez data from the dycore, then training, on one lent GPU machine in one call (under ~9 minutes);
# docs/benchmarks.md, "Training on a GPU", says how a session runs it.
#
#   bash benchmarks/gpu/train.sh [--set group.key=value ...]
#        on a GPU machine: installs the carried wheels, generates the training file (seed GPU_DATA_SEED,
#        default 10, GPU_DATA_DAYS days) and the validation file (seed 1, 10 days) with
#        `python -m mlscam.datagen.held_suarez` (JAX on the GPU, or on the CPU when a probe finds it faster
#        or the GPU run fails), then `python -m mlscam.train namelists/train_demo.nml` on CUDA for a wall
#        budget; extra arguments are --set overrides applied after TRAIN_SETS
#   bash benchmarks/gpu/train.sh --cpu [--set ...]
#        the tiny CPU mode (also what a machine without CUDA gets): 1 day of data after a 1-day spin-up, a few
#        training steps; a minute or two (tests/test_gpu_train_script.py runs it)
#
# Writes results.txt (timings, the GPU, data sizes, the training command, the validation numbers), run.log
# (every command's output), train_log.jsonl, best.pt and last.pt in $OUT when set (the device tool brings
# $OUT back), else in mlscam_output/gpu_train/. Fetches nothing: the packages the machine lacks (f90nml,
# netCDF4, cftime; dinosaur, pint, flexcache, flexparser, platformdirs, tree-math, dask) come from
# benchmarks/gpu/wheels/ (benchmarks/gpu/fetch_wheels.sh; the device call carries that folder).
#
# Environment (GPU mode defaults; --cpu has tiny ones):
#   GPU_DATA_DAYS (180)         days of hourly training data after the spin-up (one file, one seed: mlscam
#                               concatenates files in time and rejects repeated times, so seeds can't be mixed)
#   GPU_DATA_SEED (10)          dycore seed of the training data; 1, 2, 3 and 5 are refused (1 and 5 validation,
#                               2 test, 3 climate truth)
#   GPU_VAL_DAYS (10)           days of the validation file (seed 1, as the shipped data)
#   GPU_SPINUP_DAYS (200)       spin-up before the first sample (the shipped data's)
#   GPU_DATAGEN_PLATFORM (auto) auto: probe JAX on the GPU and on the CPU, use the faster; gpu; cpu
#   GPU_DATAGEN_TIMEOUT_S (330) limit of the data generation
#   GPU_TRAIN_S (300)           training wall budget: `timeout -s INT`, so last.pt is the last checkpoint_every
#                               multiple; the budget shrinks to fit GPU_TOTAL_S
#   GPU_TOTAL_S (540)           the whole script's target (training gets what is left minus 45 s)
#   TRAIN_NML (namelists/train_demo.nml), TRAIN_SETS (see DEFAULT_SETS; "" = the namelist as it is)
#   GPU_BASELINE (1)            1: validate the starting weights once before training (same windows)
#   GPU_WORK (a new /tmp dir)   where data and checkpoints go (removed at the end unless GPU_WORK was set)
#   GPU_FORCE_WHEELS (0)        1: install the carried wheels even if the packages import
#   PYTHON (python3)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
CPU=0
if [ "${1:-}" = "--cpu" ]; then CPU=1; shift; fi
EXTRA=("$@")
DEST=${OUT:-$ROOT/mlscam_output/gpu_train}
mkdir -p "$DEST" || exit 1
RESULTS=$DEST/results.txt
LOG=$DEST/run.log
PY=${PYTHON:-python3}
KEEP_WORK=${GPU_WORK:+1}
WORK=${GPU_WORK:-$(mktemp -d /tmp/mlscam-gpu-train.XXXXXX)}
mkdir -p "$WORK/data" || exit 1
# The GPU-made data of 2026-11-27 and 2026-11-28 held 4.2% more air than the CPU-made (global-mean surface
# pressure 1042 hPa); JAX_DEFAULT_MATMUL_PRECISION does not reach dinosaur's transforms. The generator now pins
# them to full float32 itself and refuses a run whose mass moves (mlscam/datagen/dycore.py,
# pin_transform_precision; docs/benchmarks.md, "Training on a GPU").
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false CUBLAS_WORKSPACE_CONFIG=:4096:8
T0=$(date +%s)
SITE=
: >"$LOG"

say() { echo "$*" | tee -a "$RESULTS"; }
now() { date +%s; }
elapsed() { echo $(( $(now) - T0 )); }
finish() {  # $1 = exit code
    say "total $(elapsed) s"
    [ -z "$KEEP_WORK" ] && rm -rf "$WORK"
    [ -n "$SITE" ] && rm -rf "$SITE"
    exit "$1"
}

{
    echo "# benchmarks/gpu/train.sh$([ $CPU = 1 ] && echo " --cpu")${EXTRA[*]:+ ${EXTRA[*]}}"
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); host: $(hostname); cores: $(nproc)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo 'unknown (no .git in this copy)')"
} | tee "$RESULTS"

# the dycore seeds: training never touches the test run (2) or the climate truth (3)
SEED=${GPU_DATA_SEED:-10}
VSEED=${GPU_VAL_SEED:-1}
if ! [[ "$SEED" =~ ^[0-9]+$ && "$VSEED" =~ ^[0-9]+$ ]]; then
    say "GPU_DATA_SEED=$SEED, GPU_VAL_SEED=$VSEED: seeds are whole numbers >= 0"; finish 2
fi
case " 1 2 3 5 " in *" $SEED "*)
    say "GPU_DATA_SEED=$SEED refused: seeds 1 and 5 are the validation runs, 2 the test run, 3 the climate truth"
    finish 2;;
esac
case " 2 3 $SEED " in *" $VSEED "*)
    say "GPU_VAL_SEED=$VSEED refused: seeds 2 and 3 are the test run and the climate truth (and not the training seed)"
    finish 2;;
esac

# -- 1. the packages this machine lacks, from wheels in the tree (no network) ----------------------
T=$(now)
if [ "${GPU_FORCE_WHEELS:-0}" = 1 ] || ! "$PY" -c "import f90nml, netCDF4, cftime, dinosaur, pint, tree_math, dask" \
        >>"$LOG" 2>&1; then
    if ls benchmarks/gpu/wheels/*.whl >/dev/null 2>&1; then
        SITE=$(mktemp -d /tmp/mlscam-site.XXXXXX)
        if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
            benchmarks/gpu/wheels/*.whl >>"$LOG" 2>&1; then
            export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
            say "wheels: installed $(ls benchmarks/gpu/wheels | sed 's/-py.*\|-cp.*//' | tr '\n' ' ')into $SITE" \
                "in $(( $(now) - T )) s"
        else
            say "wheels: pip install from benchmarks/gpu/wheels failed (see run.log)"; finish 2
        fi
    else
        say "missing packages (see run.log) and no wheels in benchmarks/gpu/wheels: run"
        say "benchmarks/gpu/fetch_wheels.sh on a machine with PyPI and name benchmarks/gpu/wheels in the carry"
        finish 2
    fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import mlscam; print('mlscam from', mlscam.__file__)" 2>&1 | tee -a "$RESULTS"
"$PY" - <<'EOF' 2>&1 | tee -a "$RESULTS"
import importlib
for name in ("dinosaur", "pint", "tree_math", "dask", "netCDF4", "jax", "torch"):
    try:
        m = importlib.import_module(name)
        print(f"  {name} {getattr(m, '__version__', '?')} from {m.__file__}")
    except Exception as e:  # the step that needs it fails with its own message
        print(f"  {name}: cannot import ({type(e).__name__}: {e})")
EOF

# -- 2. CUDA or the tiny CPU mode ------------------------------------------------------------------------
if [ $CPU = 0 ] && [ "$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>>"$LOG")" != 1 ]; then
    say "CUDA not available: running the tiny CPU mode (--cpu) instead"
    CPU=1
fi
if [ $CPU = 1 ]; then
    DATA_DAYS=${GPU_DATA_DAYS:-1}; VAL_DAYS=${GPU_VAL_DAYS:-1}; SPINUP=${GPU_SPINUP_DAYS:-1}
    PLATFORM=${GPU_DATAGEN_PLATFORM:-cpu}; DATAGEN_TIMEOUT=${GPU_DATAGEN_TIMEOUT_S:-240}
    TRAIN_S=${GPU_TRAIN_S:-150}; TOTAL_S=${GPU_TOTAL_S:-600}; DEVICE=cpu
    DEFAULT_SETS="--set model.stencil_width=128 --set loss.increment=0.2 --set loss.latent_mse=0.1
        --set train.mode=global_rollout --set train.rollout_steps=2 --set train.batch_size=1 --set train.lr=1e-4
        --set train.schedule=constant --set train.warmup_steps=0 --set train.max_steps=4 --set train.val_every=2
        --set train.val_batches=1 --set train.checkpoint_every=2 --set train.init_from=mlscam/assets/demo/checkpoint.pt"
    say "CPU mode: tiny data and a few steps on the CPU (its numbers mean nothing)"
else
    DATA_DAYS=${GPU_DATA_DAYS:-180}; VAL_DAYS=${GPU_VAL_DAYS:-10}; SPINUP=${GPU_SPINUP_DAYS:-200}
    PLATFORM=${GPU_DATAGEN_PLATFORM:-auto}; DATAGEN_TIMEOUT=${GPU_DATAGEN_TIMEOUT_S:-330}
    TRAIN_S=${GPU_TRAIN_S:-300}; TOTAL_S=${GPU_TOTAL_S:-540}; DEVICE=cuda
    # stage 9's settings (docs/demo_model.md), continued from the shipped checkpoint on the new data: the step's
    # stabilisers (filter and manifold projection: runtime keys the namelist must repeat, init_from does not
    # copy them), 24 pushforward + 12 graded steps, 8 windows per step, one 16384-column chunk per latent step
    # (a GPU runs large chunks faster; chunk_size is a runtime key, so init_from accepts it), a constant
    # learning rate (the wall budget stops it). The 2026-11-27 run used these settings from stage 9's weights.
    DEFAULT_SETS="--set model.stencil_width=128 --set loss.increment=0.2 --set loss.latent_mse=0.1
        --set model.latent_filter=0.05 --set model.latent_filter_polar_lat=60 --set model.latent_projection=0.1
        --set train.mode=global_rollout --set train.pushforward_steps=24 --set train.rollout_steps=12
        --set train.batch_size=8 --set train.lr=1e-4
        --set train.schedule=constant --set train.warmup_steps=20 --set train.max_steps=100000
        --set train.val_every=100 --set train.val_batches=4 --set train.checkpoint_every=50
        --set model.chunk_size=16384 --set train.init_from=mlscam/assets/demo/checkpoint.pt"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | sed 's/^/gpu: /' \
        | tee -a "$RESULTS"
fi
NML=${TRAIN_NML:-namelists/train_demo.nml}
read -r -d '' -a USER_SETS <<<"${TRAIN_SETS-$DEFAULT_SETS}"  # words over lines; no value may hold a space
TRAIN_FILE=$WORK/data/hs_train_seed$SEED.nc
VAL_FILE=$WORK/data/hs_val_seed$VSEED.nc

# -- 3. data: the dycore on the GPU or on the CPU --------------------------------------------------------
section() { echo | tee -a "$RESULTS"; say "## $*"; }
section "data (python -m mlscam.datagen.held_suarez, T21 L10, hourly, spin-up $SPINUP days)"
jax_env() { if [ "$1" = gpu ]; then echo cuda; else echo cpu; fi; }
probe() {  # $1 = gpu|cpu: writes $WORK/probe_$1.txt
    JAX_PLATFORMS=$(jax_env "$1") timeout -k 5 120 "$PY" benchmarks/gpu/train_tools.py probe --seconds 4 \
        --spinup-days "$SPINUP" --days "$DATA_DAYS" >"$WORK/probe_$1.txt" 2>&1
}
estimate() { awk '/^estimate_s/ {print $2}' "$WORK/probe_$1.txt" 2>/dev/null; }
T=$(now)
if [ "$PLATFORM" = auto ]; then
    probe gpu & P1=$!
    probe cpu & P2=$!
    wait $P1; wait $P2
    EG=$(estimate gpu); EC=$(estimate cpu)
    for p in gpu cpu; do
        line=$(grep '^probe' "$WORK/probe_$p.txt")
        say "probe $p: ${line:-failed: $(tail -3 "$WORK/probe_$p.txt" | tr '\n' ' ')}"
        cat "$WORK/probe_$p.txt" >>"$LOG"
    done
    if [ -n "$EG" ] && { [ -z "$EC" ] || awk -v g="$EG" -v c="$EC" 'BEGIN {exit !(g <= c)}'; }; then
        PLATFORM=gpu
    elif [ -n "$EC" ]; then
        PLATFORM=cpu; say "JAX on the GPU $([ -n "$EG" ] && echo "is slower (estimate ${EG} s against ${EC} s)" \
            || echo failed): generating on the CPU"
    else
        PLATFORM=gpu; say "both probes failed: trying the GPU"
    fi
    say "probes: $(( $(now) - T )) s; platform: $PLATFORM"
elif [ $CPU = 1 ]; then  # the tiny mode runs the probe too, briefly, so that it is tested
    probe cpu; say "probe cpu: $(grep '^probe' "$WORK/probe_cpu.txt" || echo failed)"; cat "$WORK/probe_cpu.txt" >>"$LOG"
fi
T=$(now)
left=$(( TOTAL_S - $(elapsed) - 90 ))
[ "$DATAGEN_TIMEOUT" -gt "$left" ] && [ "$left" -gt 60 ] && DATAGEN_TIMEOUT=$left
# a probe too slow for the limit: fewer days, so that a file is written at all (with margins: the validation
# file is generated at the same time)
SAMP=
[ -f "$WORK/probe_$PLATFORM.txt" ] && read -r SPIN SAMP SETUP <<<"$(awk '/^rates/ {print $2, $3, $4}' "$WORK/probe_$PLATFORM.txt")"
if [ -n "$SAMP" ]; then
    fit=$(awk -v s="$SPIN" -v r="$SAMP" -v o="$SETUP" -v sp="$SPINUP" -v t="$DATAGEN_TIMEOUT" \
        'BEGIN {d = int((0.75 * t - 1.5 * o - 1.3 * sp / s) * r / 1.3); print (d < 2 ? 2 : d)}')
    if [ "$fit" -lt "$DATA_DAYS" ]; then
        say "GPU_DATA_DAYS=$DATA_DAYS would not fit the ${DATAGEN_TIMEOUT} s limit on $PLATFORM: $fit days instead"
        DATA_DAYS=$fit
    fi
fi
datagen() {  # $1 = gpu|cpu, $2 = seed, $3 = days, $4 = output, $5 = timeout: appends to $4.log
    echo "[$1] python -m mlscam.datagen.held_suarez --seed $2 --days $3 ..." >>"$4.log"
    JAX_PLATFORMS=$(jax_env "$1") timeout -k 10 "$5" "$PY" -m mlscam.datagen.held_suarez --resolution T21 \
        --levels 10 --spinup-days "$SPINUP" --days "$3" --interval-hours 1 --seed "$2" --output "$4" \
        --no-progress >>"$4.log" 2>&1
}
datagen "$PLATFORM" "$SEED" "$DATA_DAYS" "$TRAIN_FILE" "$DATAGEN_TIMEOUT" & P1=$!
datagen "$PLATFORM" "$VSEED" "$VAL_DAYS" "$VAL_FILE" "$DATAGEN_TIMEOUT" & P2=$!
wait $P1; RC_T=$?
wait $P2; RC_V=$?
if [ "$PLATFORM" = gpu ] && { { [ $RC_T != 0 ] && [ $RC_T != 124 ]; } || { [ $RC_V != 0 ] && [ $RC_V != 124 ]; }; }; then
    left=$(( TOTAL_S - $(elapsed) - 90 )); [ "$left" -lt 60 ] && left=60
    say "JAX on the GPU failed (exit $RC_T training, $RC_V validation; see run.log): rerunning on the CPU" \
        "(JAX_PLATFORMS=cpu, limit $left s)"
    if [ $RC_T != 0 ]; then datagen cpu "$SEED" "$DATA_DAYS" "$TRAIN_FILE" "$left" & P1=$!; fi
    if [ $RC_V != 0 ]; then datagen cpu "$VSEED" "$VAL_DAYS" "$VAL_FILE" "$left" & P2=$!; fi
    [ $RC_T != 0 ] && { wait $P1; RC_T=$?; }
    [ $RC_V != 0 ] && { wait $P2; RC_V=$?; }
    PLATFORM="gpu, then cpu"
fi
for f in "$TRAIN_FILE" "$VAL_FILE"; do cat "$f.log" >>"$LOG"; done
wrote() { grep '^wrote' "$1.log" | tail -1 | sed "s|$WORK/data/||"; }
say "training file (seed $SEED, $DATA_DAYS days): exit $RC_T; $(wrote "$TRAIN_FILE")"
say "validation file (seed $VSEED, $VAL_DAYS days): exit $RC_V; $(wrote "$VAL_FILE")"
say "data on $PLATFORM (JAX_PLATFORMS=$(jax_env "${PLATFORM##* }")), both files side by side: $(( $(now) - T )) s;" \
    "sizes: $(du -h "$TRAIN_FILE" "$VAL_FILE" 2>/dev/null | sed "s|$WORK/data/||" | tr '\t\n' ' ')"
[ $RC_T = 124 ] || [ $RC_V = 124 ] && say "(stopped by the ${DATAGEN_TIMEOUT} s limit: lower GPU_DATA_DAYS)"
if [ ! -f "$TRAIN_FILE" ]; then say "no training data: stopping"; finish 3; fi
VAL_SETS=(--set "data.val_files=$VAL_FILE")
if [ ! -f "$VAL_FILE" ]; then say "no validation data: training without validation (no best.pt)"; VAL_SETS=(--set train.val_every=0); fi

# -- 4. training ------------------------------------------------------------------------------------------
section "training (python -m mlscam.train on $DEVICE)"
OUTDIR=$WORK/out
CKPT=$OUTDIR/ckpt
SETS=(--set "data.files=$TRAIN_FILE" "${VAL_SETS[@]}" --set "data.stats_path=$WORK/stats.nc"
      --set "output.directory=$OUTDIR" --set "train.checkpoint_dir=$CKPT" --set output.progress=false
      --set "parallel.device=$DEVICE" "${USER_SETS[@]}" "${EXTRA[@]}")
T=$(now)
"$PY" benchmarks/gpu/train_tools.py stats "$NML" "${SETS[@]}" 2>&1 | tee -a "$RESULTS" "$LOG"
if [ "${PIPESTATUS[0]}" != 0 ]; then say "the statistics check failed: stopping"; finish 4; fi
if [ "${GPU_BASELINE:-1}" = 1 ]; then  # the starting weights on the same validation windows, for comparison
    timeout -k 10 120 "$PY" benchmarks/gpu/train_tools.py validate "$NML" "${SETS[@]}" >"$WORK/baseline.out" 2>&1
    cat "$WORK/baseline.out" >>"$LOG"
    b=$(grep -E '^(baseline|batch reads)' "$WORK/baseline.out")
    say "${b:-baseline: failed (see run.log)}"
fi
say "statistics and baseline: $(( $(now) - T )) s"
budget=$(( TOTAL_S - $(elapsed) - 45 ))
[ "$budget" -gt "$TRAIN_S" ] && budget=$TRAIN_S
floor=30; [ "$TRAIN_S" -lt $floor ] && floor=$TRAIN_S
[ "$budget" -lt $floor ] && budget=$floor
CMD=("$PY" -m mlscam.train "$NML" "${SETS[@]}")
say "command: timeout -s INT -k 30 $budget $(printf '%q ' "${CMD[@]}" | sed "s|$WORK|\$WORK|g")"
say "(\$WORK = the run's scratch folder; wall budget $budget s of GPU_TRAIN_S=$TRAIN_S)"
SMI=
if [ $CPU = 0 ]; then
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -l 5 >"$WORK/smi.csv" 2>/dev/null &
    SMI=$!
fi
T=$(now)
timeout -s INT -k 30 "$budget" "${CMD[@]}" >"$WORK/train.out" 2>&1
RC=$?
TRAIN_WALL=$(( $(now) - T ))
[ -n "$SMI" ] && kill "$SMI" 2>/dev/null
cat "$WORK/train.out" >>"$LOG"
if [ $RC = 124 ]; then
    say "training: stopped by the $budget s wall budget after $TRAIN_WALL s (SIGINT; last.pt is the last checkpoint_every multiple)"
else
    say "training: exit $RC after $TRAIN_WALL s$(grep '^trained' "$WORK/train.out" | sed 's/^/: /')"
    [ $RC != 0 ] && tail -5 "$WORK/train.out" | sed 's/^/  /' | tee -a "$RESULTS"
fi
if [ -f "$CKPT/train_log.jsonl" ]; then
    "$PY" benchmarks/gpu/train_tools.py summary "$CKPT/train_log.jsonl" 2>&1 | tee -a "$RESULTS"
    steps=$(wc -l <"$CKPT/train_log.jsonl")
    say "steps/s over the whole call (start-up and validation included): $(awk -v s="$steps" -v t="$TRAIN_WALL" \
        'BEGIN {printf "%.2f", (t > 0 ? s / t : 0)}')"
fi
if [ -s "$WORK/smi.csv" ]; then
    say "GPU while training (nvidia-smi every 5 s): $(awk -F', *' '{n++; u+=$1; if ($1>mu) mu=$1; if ($2>mm) mm=$2}
        END {printf "%d samples, utilisation mean %.0f%% max %d%%, memory used max %d MiB", n, u/n, mu, mm}' \
        "$WORK/smi.csv")"
fi

# -- 5. what comes back --------------------------------------------------------------------------------------
section "files"
T=$(now)
LIMIT=$(( 15 * 1024 * 1024 ))
for name in best.pt last.pt; do
    src=$CKPT/$name
    if [ ! -f "$src" ]; then say "$name: not written"; continue; fi
    if [ "$(stat -c %s "$src")" -gt $LIMIT ]; then
        "$PY" -m mlscam.checkpoint export "$src" "$DEST/$name" >>"$LOG" 2>&1 \
            && say "$name: exported without optimizer state (over 15 MiB)"
    else
        cp "$src" "$DEST/$name"
    fi
    say "$name: $(stat -c %s "$DEST/$name" 2>/dev/null) bytes, $("$PY" -c "
import torch, sys
d = torch.load(sys.argv[1], map_location='cpu', weights_only=True)
ts = d.get('train_state') or {}
print(f\"step {ts.get('step')}, best validation loss {ts.get('best_val')}\")" "$DEST/$name" 2>&1 | tail -1)"
done
[ -f "$CKPT/train_log.jsonl" ] && cp "$CKPT/train_log.jsonl" "$DEST/"
say "copied in $(( $(now) - T )) s: $(ls "$DEST" | tr '\n' ' ')"
if [ $RC = 0 ] || { [ $RC = 124 ] && [ -f "$DEST/last.pt" ]; }; then finish 0; fi
finish $RC
