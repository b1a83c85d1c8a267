#!/usr/bin/env bash
# Component scaling: N = 1, 2, 4 ranks x 1 thread at T21 (32x64) and T42 (64x128).
# Usage: benchmarks/component_scaling.sh > benchmarks/component_scaling.txt
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_mpi_yield_when_idle=1 OMP_NUM_THREADS=1
echo "# $(date -u +%FT%TZ) $(python -c "import os; print(len(os.sched_getaffinity(0)))") cores for this job, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(python -c 'import torch; print("torch", torch.__version__)')"
for grid in "32 64" "64 128"; do
  set -- $grid
  lines=()
  for n in 1 2 4; do
    line=$(timeout -k 10 600 mpirun --bind-to none -n "$n" python benchmarks/component_scaling.py \
           --nlat "$1" --nlon "$2" --steps "${STEPS:-10}" | grep '^N=')
    echo "$line"
    lines+=("$line")
  done
  python - "${lines[@]}" <<'PY'
import sys
rows = [dict(kv.split("=") for kv in line.split()) for line in sys.argv[1:]]
t1 = float(rows[0]["step_ms"])
for r in rows:
    n = int(r["N"])
    print(f"#   grid {r['grid']} N={n}: parallel efficiency T1/(N*TN) = {100 * t1 / (n * float(r['step_ms'])):.0f}%")
PY
done
