#!/usr/bin/env bash
# Install everything mlscam needs on a fresh Debian machine (as root), quickly when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

apt_pkgs="libopenmpi-dev openmpi-bin gfortran pkg-config libnetcdf-dev libnetcdff-dev cmake"
missing=""
for p in $apt_pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "[setup] apt-get install$missing"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

findlinks=""
[ -d /opt/wheels ] && findlinks="--find-links /opt/wheels"
if ! $PY -c 'import torch' >/dev/null 2>&1; then
    echo "[setup] pip install torch==2.13.0 (the CPU wheel)"
    $PY -m pip install -q $findlinks torch==2.13.0
fi
echo "[setup] pip install -e .[test,datagen]"
$PY -m pip install -q $findlinks -e '.[test,datagen]'
echo "[setup] done"
