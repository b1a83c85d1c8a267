"""Launching ``mpirun`` from tests: one place for the environment, the flags and the timeout.

Every launch runs under ``timeout -k 10 T`` so a hang fails in T seconds
instead of eating CI's time (:func:`start_mpirun`, for a test that signals
mpirun, starts a session its caller waits for and ends instead); ``--bind-to
none`` and yielding idle ranks keep oversubscribed runs on this 2-core machine
fast; one torch thread per rank.
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


def _launch(nranks: int, args: list[str], drop_env: tuple[str, ...] = ()) -> tuple[list[str], dict[str, str]]:
    """The ``mpirun`` command line and its environment."""
    launcher = shutil.which("mpirun")
    if launcher is None:
        pytest.fail("mpirun is needed: run `make setup` (Open MPI is part of it)")
    env = {k: v for k, v in os.environ.items() if k not in drop_env}
    env.update(MPI_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    return [launcher, "--bind-to", "none", "-n", str(nranks), sys.executable, *args], env


def mpirun(nranks: int, args: list[str], *, timeout_s: int = 120, cwd: Path = ROOT,
           drop_env: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``mpirun -n nranks python ARGS`` from ``cwd``; returns the finished process (output captured)."""
    timeout = shutil.which("timeout")
    if timeout is None:
        pytest.fail("timeout (coreutils) is needed to launch mpirun from the tests")
    cmd, env = _launch(nranks, args, drop_env)
    return subprocess.run([timeout, "-k", "10", str(timeout_s), *cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout_s + 30)


def start_mpirun(nranks: int, args: list[str], *, cwd: Path = ROOT) -> subprocess.Popen:
    """``mpirun -n nranks python ARGS`` started, not awaited, for a test that signals ``mpirun`` itself.

    No ``timeout`` wrapper (it would pass a signal to the whole process group, ranks included); the
    launch is a session of its own instead, so the caller waits with a timeout and ends the lot with
    :func:`kill_mpirun` in a ``finally``.  Output is captured as text.
    """
    cmd, env = _launch(nranks, args)
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill_mpirun(proc: subprocess.Popen) -> None:
    """SIGKILL the session of :func:`start_mpirun` (mpirun and its ranks) if it is still running."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
