#!/usr/bin/env bash
# Everything the demo's shipping rule reads for one candidate, on validation data only (issue 13,
# docs/demo_model.md "Choosing what ships" and "Alternating the two kinds of batches"):
#
#   bash benchmarks/validate_candidate.sh NAME CHECKPOINT [MAX_SCORE]
#
# 1. the export of CHECKPOINT with both fixers on, as it would ship (mlscam_output/val_candidates/NAME.pt);
# 2. day 1 on the seed-1 hourly validation run (data/h1_val.nc, initial hours 0 24 47) -> mlscam_output/val_day1/NAME;
# 3. the one-year validation climates from days 0 and 365 of seed 1 and of seed 5 (data/hs_climate_seed1_2y.nc,
#    data/hs_climate_seed5_2y.nc), side by side on one thread each -> mlscam_output/val_climate{,5}/stageNAME;
# 4. benchmarks/validation_score.py --rule MAX_SCORE (default 3) on both seeds: exit status 0 when the candidate
#    passes the climate rule on both, 1 when not.
# The test seeds (2 and 3) are never read here. About 7 minutes on the 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ $# -ge 2 ] || { echo "usage: bash benchmarks/validate_candidate.sh NAME CHECKPOINT [MAX_SCORE]" >&2; exit 2; }
NAME=$1
CKPT=$2
RULE=${3:-3}
[ -f "$CKPT" ] || { echo "error: checkpoint $CKPT not found" >&2; exit 2; }
for f in data/h1_val.nc data/h1_train.nc data/hs_climate_seed1_2y.nc data/hs_climate_seed5_2y.nc; do
    [ -f "$f" ] || { echo "error: $f not found: make it with the commands of docs/demo_model.md" >&2; exit 2; }
done
mkdir -p mlscam_output/val_candidates
EXPORT=mlscam_output/val_candidates/$NAME.pt
python -m mlscam.checkpoint export "$CKPT" "$EXPORT" --set mass_fixer=true --set polar_wind_fixer=2
OMP_NUM_THREADS=1 python benchmarks/skill_report.py --model "$NAME=$EXPORT" --truth data/h1_val.nc \
    --climatology-from data/h1_train.nc --inits 0 24 47 --days 2 --out "mlscam_output/val_day1/$NAME" > /dev/null
climate() {  # seed, output directory
    mkdir -p "$2"
    CLIMATE_STARTS="0 365" CLIMATE_THREADS=1 CLIMATE_FORECAST_DIR="$2" \
        CLIMATE_ROLLOUT_ARGS="--set rollout.mass_fixer=1 --set rollout.polar_wind_fixer=2" \
        bash benchmarks/climate_report.sh "data/hs_climate_seed$1_2y.nc" "$2" "$CKPT" > "$2/log.txt" 2>&1
}
climate 1 "mlscam_output/val_climate/stage$NAME" &
one=$!
climate 5 "mlscam_output/val_climate5/stage$NAME" &
five=$!
wait $one || { echo "error: the seed-1 climate failed, see mlscam_output/val_climate/stage$NAME/log.txt" >&2; exit 2; }
wait $five || { echo "error: the seed-5 climate failed, see mlscam_output/val_climate5/stage$NAME/log.txt" >&2; exit 2; }
echo "day 1 on the seed-1 validation run (mlscam_output/val_day1/$NAME/summary.md):"
grep "| 1 d |" "mlscam_output/val_day1/$NAME/summary.md"
python benchmarks/validation_score.py --rule "$RULE" "$NAME=mlscam_output/val_climate/stage$NAME" \
    "${NAME}_seed5=mlscam_output/val_climate5/stage$NAME"
