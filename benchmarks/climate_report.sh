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
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TRUTH=${1:-data/hs_climate_seed3_4y.nc}
OUT=${2:-docs/skill/climate}
CKPT=${3:-mlscam:demo/checkpoint.pt}
DAYS=${CLIMATE_DAYS:-365}
[ -f "$TRUTH" ] || { echo "error: truth run $TRUTH not found: make it with the seed-3 command of docs/demo_model.md" >&2; exit 2; }
mkdir -p mlscam_output/climate
forecasts=()
for day in 0 365 730; do
    f=mlscam_output/climate/year_from_day${day}.nc
    start=$(date +%s)
    python -m mlscam.rollout namelists/demo.nml --checkpoint-path "$CKPT" --input-nc-path "$TRUTH" \
        --start-time "$day" --num-steps $((DAYS * 24)) --output-every 24 --output-nc-path "$ROOT/$f" \
        --set output.quicklook=false --set output.progress=false --set parallel.threads=2
    echo "rollout from day $day of $TRUTH: $(( $(date +%s) - start )) s -> $f"
    forecasts+=("$f")
done
python -m mlscam.evaluate climate --forecast "${forecasts[@]}" --truth "$TRUTH" --truth-spinup-days 0 --out "$OUT"
