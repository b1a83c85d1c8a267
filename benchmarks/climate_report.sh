#!/usr/bin/env bash
# The climate of the shipped demo (issue 13): one-year rollouts from three initial states of a run no model
# trained or was chosen on, scored by `python -m mlscam.evaluate climate` against a multi-year truth run.
#
#   bash benchmarks/climate_report.sh [TRUTH.nc] [OUT_DIR] [CHECKPOINT]
#
# TRUTH (default data/hs_climate_seed3_4y.nc, daily, seed 3, docs/demo_model.md gives its command): the initial
# states are its days 0, 365 and 730, and its whole record is the truth climate (its own year-to-year
# difference is the noise floor). OUT_DIR (default docs/skill/climate) gets the report, summary JSON and plots
# of mlscam.evaluate climate; the forecasts go to mlscam_output/climate/. About 4 minutes per year on 2 threads.
# Environment: CLIMATE_DAYS (365), CLIMATE_STARTS (initial days, "0 365 730"), CLIMATE_THREADS (2),
# CLIMATE_FORECAST_DIR (mlscam_output/climate), CLIMATE_ROLLOUT_ARGS (more arguments of mlscam.rollout, e.g.
# "--set rollout.mass_fixer=1"). Choosing between models uses a validation truth instead, e.g.
#   CLIMATE_STARTS=0 bash benchmarks/climate_report.sh data/hs_climate_seed1_2y.nc OUT CKPT   (seed 1 = validation)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TRUTH=${1:-data/hs_climate_seed3_4y.nc}
OUT=${2:-docs/skill/climate}
CKPT=${3:-mlscam:demo/checkpoint.pt}
DAYS=${CLIMATE_DAYS:-365}
STARTS=${CLIMATE_STARTS:-0 365 730}
THREADS=${CLIMATE_THREADS:-2}
FC_DIR=${CLIMATE_FORECAST_DIR:-mlscam_output/climate}
[ -f "$TRUTH" ] || { echo "error: truth run $TRUTH not found: make it with the seed-3 command of docs/demo_model.md" >&2; exit 2; }
mkdir -p "$FC_DIR"
forecasts=()
for day in $STARTS; do
    f=$FC_DIR/year_from_day${day}.nc
    start=$(date +%s)
    python -m mlscam.rollout namelists/demo.nml --checkpoint-path "$CKPT" --input-nc-path "$TRUTH" \
        --start-time "$day" --num-steps $((DAYS * 24)) --output-every 24 --output-nc-path "$ROOT/$f" \
        --set output.quicklook=false --set output.progress=false --set parallel.threads="$THREADS" ${CLIMATE_ROLLOUT_ARGS:-}
    echo "rollout from day $day of $TRUTH: $(( $(date +%s) - start )) s -> $f"
    forecasts+=("$f")
done
python -m mlscam.evaluate climate --forecast "${forecasts[@]}" --truth "$TRUTH" --truth-spinup-days 0 --out "$OUT"
