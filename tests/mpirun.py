"""Launching ``mpirun`` from tests: one place for the environment, the flags and the timeout.

Every launch runs under ``timeout -k 10 T`` so a hang fails in T seconds
instead of eating CI's time; ``--bind-to none`` and yielding idle ranks keep
oversubscribed runs on this 2-core machine fast; one torch thread per rank.
Open MPI is part of the set-up (``make setup``), so a missing ``mpirun`` is a
failure, not a skip.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMPI_MCA_mpi_yield_when_idle": "1",
    "OMP_NUM_THREADS": "1",
}


def mpirun(nranks: int, args: list[str], *, timeout_s: int = 120, cwd: Path = ROOT,
           drop_env: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``mpirun -n nranks python ARGS`` from ``cwd``; returns the finished process (output captured)."""
    launcher, timeout = shutil.which("mpirun"), shutil.which("timeout")
    if launcher is None or timeout is None:
        pytest.fail("mpirun and timeout are needed: run `make setup` (Open MPI is part of it)")
    cmd = [timeout, "-k", "10", str(timeout_s), launcher, "--bind-to", "none", "-n", str(nranks),
           sys.executable, *args]
    env = {k: v for k, v in os.environ.items() if k not in drop_env}
    env.update(MPI_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s + 30)
