"""Launch tests/mpi/test_halo_mpi.py under real mpirun (1, 2, 4 ranks) and compare with the fake communicator.

Every mpirun runs under ``timeout`` so a hang fails in two minutes.  Ranks are
not bound to cores and yield when idle (``--bind-to none``,
``mpi_yield_when_idle``): with more ranks than cores, busy-polling ranks bound
to the same core made a 4-rank run several times slower.
"""
from __future__ import annotations

import numpy as np
import pytest

from mlscam.parallel import Decomposition, HaloExchange, HaloPlan, run_fake_world
from mpirun import mpirun

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
    proc = mpirun(nranks, ["tests/mpi/test_halo_mpi.py", str(tmp_path)])
    output = proc.stdout + proc.stderr
    assert proc.returncode != 124, f"mpirun -n {nranks} timed out:\n{output[-3000:]}"
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
    missing = tmp_path / "does-not-exist"
    proc = mpirun(2, ["tests/mpi/test_halo_mpi.py", str(missing)])
    assert proc.returncode not in (0, 124), proc.stdout + proc.stderr
    assert proc.stdout.count("test_halo_mpi: FAILED on rank") == 2, proc.stdout + proc.stderr
    assert "rank 0 of 2 failed: FileNotFoundError" in proc.stdout
