#!/usr/bin/env bash
# Download the wheels of benchmarks/gpu/wheels.txt (f90nml, netCDF4, cftime: run.sh and train.sh) and of
# benchmarks/gpu/datagen_wheels.txt (dinosaur and what it imports: train.sh) into benchmarks/gpu/wheels/ (needs
# PyPI; run it here, before the device call that names benchmarks/gpu/wheels in `carry`: the GPU machine has no
# network). About 14 MB in all.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version "${WHEEL_PYTHON:-3.12}" \
    "${platforms[@]}" --require-hashes -r "$HERE/wheels.txt" -r "$HERE/datagen_wheels.txt" -d "$HERE/wheels"
ls -l "$HERE/wheels"
du -sh "$HERE/wheels"
