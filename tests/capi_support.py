"""Shared helpers of the C-API tests: build libmlscam, compile host programs, launch them under mpirun.

Every mpirun runs under ``timeout -k 10 180`` with ``--bind-to none`` and the
environment of tests/test_mpi_launch.py, so a hang fails in three minutes.
The package is not pip-installed in the test environment: the children get
``PYTHONPATH=<checkout>`` so ``python -m mlscam.coupler.config`` works (the
embedded interpreter finds the package next to libmlscam by itself).
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOSTS = ROOT / "tests" / "hosts"
MPI_TIMEOUT_S = 180
from mpirun import MPI_ENV  # noqa: E402  (one definition of the Open MPI environment for all tests)


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **MPI_ENV, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONHOME", None)
    env.update(extra)
    return env


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")


def build_library() -> dict:
    """Build (or reuse an up-to-date) libmlscam for this python; returns its build info."""
    from mlscam.coupler.build import ensure_built

    return ensure_built(quiet=True)


@functools.lru_cache(maxsize=None)
def _config_flags(options: tuple[str, ...]) -> tuple[str, ...]:
    out = subprocess.run([sys.executable, "-m", "mlscam.coupler.config", *options], cwd=ROOT, env=child_env(),
                         capture_output=True, text=True, check=True)
    return tuple(out.stdout.split())


def config_flags(*options: str) -> list[str]:
    """``python -m mlscam.coupler.config OPTIONS`` split into arguments (each distinct call runs once:
    the CLI imports torch through ``mlscam.coupler``, ~2 s)."""
    return list(_config_flags(tuple(options)))


def compile_host(source: Path, exe: Path) -> Path:
    """Compile a test host (.f90 with mpif90, .c with mpicc) with the printed flags only."""
    if source.suffix == ".f90":
        cmd = ["mpif90", *config_flags("--fflags"), "-o", str(exe), str(source), *config_flags("--flibs")]
    else:
        cmd = ["mpicc", *config_flags("--cflags"), "-o", str(exe), str(source), *config_flags("--libs")]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


def mpirun(nranks: int, args: list[str], cwd: Path, env: dict[str, str] | None = None,
           forward: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``args`` on ``nranks`` ranks; ``forward``: environment variables passed with ``-x``."""
    require_tools("mpirun", "timeout")
    xs = [a for name in forward for a in ("-x", name)]
    cmd = ["timeout", "-k", "10", str(MPI_TIMEOUT_S), "mpirun", "--bind-to", "none", *xs, "-n", str(nranks), *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env or child_env(), capture_output=True, text=True,
                          timeout=MPI_TIMEOUT_S + 30)
    assert proc.returncode != 124, f"mpirun -n {nranks} {args} timed out:\n{(proc.stdout + proc.stderr)[-3000:]}"
    return proc


def toy_checkpoint(path: Path) -> Path:
    """The host examples' toy checkpoint (host_examples/make_toy_checkpoint.py)."""
    subprocess.run([sys.executable, str(ROOT / "host_examples" / "make_toy_checkpoint.py"), str(path)],
                   env=child_env(), check=True, capture_output=True, text=True)
    return path
