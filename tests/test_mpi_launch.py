"""Launch tests/mpi/test_halo_mpi.py under real mpirun (1, 2, 4 ranks) and compare with the fake communicator.

Every mpirun runs under ``timeout`` so a hang fails in two minutes.  Ranks are
not bound to cores and yield when idle (``--bind-to none``,
``mpi_yield_when_idle``): with more ranks than cores, busy-polling ranks bound
to the same core made a 4-rank run several times slower.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlscam.parallel import Decomposition, HaloExchange, HaloPlan, run_fake_world

ROOT = Path(__file__).resolve().parents[1]
MPI_TIMEOUT_S = 120
ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMPI_MCA_mpi_yield_when_idle": "1",
}
# mirrors tests/mpi/test_halo_mpi.py
NLAT, NLON, LATENT, BATCH = 6, 12, 3, 2
HOST_BOUNDS_4 = [(0, 1, 0, 12), (1, 4, 0, 5), (1, 4, 5, 12), (4, 6, 0, 12)]


def _fake_sources(decomp: Decomposition, z_global: np.ndarray) -> list[np.ndarray]:
    def fn(comm):
        plan = HaloPlan.build(decomp, comm.Get_rank())
        return HaloExchange(plan, comm).exchange(z_global[:, decomp.local_columns(comm.Get_rank())])

    return run_fake_world(decomp.nranks, fn)


@pytest.mark.mpi
@pytest.mark.parametrize("nranks", [1, 2, 4])
def test_halo_under_mpirun_matches_fake_comm(nranks, tmp_path):
    mpirun, timeout = shutil.which("mpirun"), shutil.which("timeout")
    if mpirun is None or timeout is None:
        pytest.skip("mpirun or timeout is not installed")
    cmd = [timeout, "-k", "10", str(MPI_TIMEOUT_S), mpirun, "--bind-to", "none", "-n", str(nranks),
           sys.executable, "tests/mpi/test_halo_mpi.py", str(tmp_path)]
    env = {**os.environ, **ENV, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=MPI_TIMEOUT_S + 30)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 124, f"mpirun -n {nranks} timed out after {MPI_TIMEOUT_S} s:\n{output[-3000:]}"
    assert proc.returncode == 0, f"mpirun -n {nranks} failed (exit {proc.returncode}):\n{output[-3000:]}"
    assert f"test_halo_mpi: OK on {nranks} ranks" in proc.stdout, output[-3000:]

    layouts = {"auto": Decomposition.cartesian(NLAT, NLON, nranks)}
    if nranks == 4:
        layouts["host"] = Decomposition.from_bounds(NLAT, NLON, HOST_BOUNDS_4)
    for dtype in ("float64", "float32"):
        z_global = np.random.default_rng(42).standard_normal((BATCH, NLAT * NLON, LATENT)).astype(dtype)
        for name, decomp in layouts.items():
            for rank, fake in enumerate(_fake_sources(decomp, z_global)):
                saved = np.load(tmp_path / f"halo_{name}_{dtype}_rank{rank}.npz")
                assert saved["z_src"].dtype == np.dtype(dtype)
                np.testing.assert_array_equal(saved["z_src"], fake, err_msg=f"{name} {dtype} rank {rank}")
                np.testing.assert_array_equal(saved["tile_index"], HaloPlan.build(decomp, rank).tile_index)


@pytest.mark.mpi
def test_mpi_script_reports_failure_on_every_rank(tmp_path):
    """A read-only output folder makes np.savez fail on every rank: all ranks exit 1 with the message."""
    mpirun, timeout = shutil.which("mpirun"), shutil.which("timeout")
    if mpirun is None or timeout is None:
        pytest.skip("mpirun or timeout is not installed")
    missing = tmp_path / "does-not-exist"
    cmd = [timeout, "-k", "10", str(MPI_TIMEOUT_S), mpirun, "--bind-to", "none", "-n", "2",
           sys.executable, "tests/mpi/test_halo_mpi.py", str(missing)]
    env = {**os.environ, **ENV, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=MPI_TIMEOUT_S + 30)
    assert proc.returncode not in (0, 124), proc.stdout + proc.stderr
    assert proc.stdout.count("test_halo_mpi: FAILED on rank") == 2, proc.stdout + proc.stderr
    assert "rank 0 of 2 failed: FileNotFoundError" in proc.stdout
