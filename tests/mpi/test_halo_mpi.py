"""Halo exchange, status agreement and node-local rank under real MPI (a script, run under mpirun).

    mpirun -n 4 python tests/mpi/test_halo_mpi.py [OUT_DIR]

Any rank count that fits the 6x12 grid works; tests/test_mpi_launch.py runs
1, 2 and 4 ranks under ``timeout``.  Every check ends in a collective
``agree``, so all ranks pass or fail together and a failure on one rank
cannot leave the others waiting.  On success rank 0 prints
``test_halo_mpi: OK on N ranks`` and every rank exits 0; on failure every
rank prints the agreed message and exits 1.  With ``OUT_DIR`` each rank writes
its exchanged source buffers to ``OUT_DIR/halo_<layout>_<dtype>_rank<r>.npz``
so the launcher can compare them with the fake-communicator run.

Under pytest (not under mpirun) the module is skipped: it is not a pytest module.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

NLAT, NLON, LATENT, BATCH = 6, 12, 3, 2
HOST_BOUNDS_4 = [(0, 1, 0, 12), (1, 4, 0, 5), (1, 4, 5, 12), (4, 6, 0, 12)]
SUCCESS = "test_halo_mpi: OK on {} ranks"


def global_field(dtype) -> np.ndarray:
    """The same ``[BATCH, NLAT*NLON, LATENT]`` data on every rank (and in the launcher)."""
    return np.random.default_rng(42).standard_normal((BATCH, NLAT * NLON, LATENT)).astype(dtype)


def decompositions(nranks: int) -> dict:
    from mlscam.parallel import Decomposition

    out = {"auto": Decomposition.cartesian(NLAT, NLON, nranks)}
    if nranks == 4:
        out["host"] = Decomposition.from_bounds(NLAT, NLON, HOST_BOUNDS_4)
    return out


def check_halo(comm, out_dir: str | None) -> list[str]:
    from mlscam.grid import LatLonGrid
    from mlscam.parallel import HaloExchange, HaloPlan

    rank = comm.Get_rank()
    stencil = LatLonGrid.equiangular(NLAT, NLON).stencil()
    problems = []
    for dtype in ("float64", "float32"):
        z_global = global_field(dtype)
        for name, d in decompositions(comm.Get_size()).items():
            plan = HaloPlan.build(d, rank)
            exchange = HaloExchange(plan, comm)
            own = d.local_columns(rank)
            z_src = exchange.exchange(z_global[:, own])
            z_again = exchange.exchange(z_global[:, own])
            if not np.array_equal(z_src[:, plan.tile_index], z_global[:, stencil.index[own]]):
                problems.append(f"{name} {dtype}: tiles differ from the serial stencil")
            if not np.array_equal(plan.crossed, stencil.crossed_pole[own]) or z_src.dtype != np.dtype(dtype):
                problems.append(f"{name} {dtype}: crossed flags or dtype wrong")
            if not np.array_equal(z_src, z_again):
                problems.append(f"{name} {dtype}: a second exchange differs")
            if out_dir:
                np.savez(os.path.join(out_dir, f"halo_{name}_{dtype}_rank{rank}.npz"),
                         z_src=z_src, tile_index=plan.tile_index)
    return problems


def check_torch_transports(comm) -> list[str]:
    """The torch transports ('staged': host buffers, pinned on a GPU; 'device': the buffers handed to MPI)
    give the numpy exchange's bits; on a GPU the automatic choice too; CUDA-aware detection answers."""
    import torch

    from mlscam.parallel import HaloExchange, HaloPlan
    from mlscam.parallel.cuda_aware import cuda_aware_mpi

    rank = comm.Get_rank()
    problems = []
    aware, why = cuda_aware_mpi(comm)
    if not isinstance(aware, bool) or not why:
        problems.append(f"cuda_aware_mpi gave {(aware, why)}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dtype in ("float32", "float64"):
        z_global = global_field(dtype)
        for d in decompositions(comm.Get_size()).values():
            plan = HaloPlan.build(d, rank)
            local = z_global[:, d.local_columns(rank)]
            ref = HaloExchange(plan, comm).exchange(local)
            for device in devices:
                transports = ["staged", "device"] if device == "cpu" else ["auto", "staged"] + (["device"] if aware else [])
                for transport in transports:
                    ex = HaloExchange(plan, comm, transport=transport)
                    for _ in range(2):  # the second exchange reuses the kept buffers
                        got = ex.exchange(torch.from_numpy(local).to(device)).cpu().numpy()
                    if not np.array_equal(got, ref):
                        problems.append(f"{transport} on {device} {dtype}: differs from the numpy exchange")
    return problems


def check_agree(comm) -> list[str]:
    from mlscam.parallel import agree

    rank, size = comm.Get_rank(), comm.Get_size()
    failing = size - 1
    got = agree(comm, rank != failing, f"NaN injected on rank {rank}", code=2)
    expected = (2, f"rank {failing} of {size} failed: NaN injected on rank {failing}")
    return [] if got == expected else [f"agree gave {got}, expected {expected}"]


def check_node_local(comm) -> list[str]:
    from mpi4py import MPI

    from mlscam.parallel import choose_threads, node_local

    rank, size = comm.Get_rank(), comm.Get_size()
    local = node_local(comm)
    threads = choose_threads(comm)
    one_host = len(set(comm.allgather(MPI.Get_processor_name()))) == 1
    problems = []
    if one_host and local != (rank, size):
        problems.append(f"node_local gave {local} on a single host, expected {(rank, size)}")
    if threads < 1 or choose_threads(comm, requested=3) != 3:
        problems.append(f"choose_threads gave {threads}")
    return problems


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from mpi4py import MPI

    from mlscam.parallel import agree

    comm = MPI.COMM_WORLD
    out_dir = argv[1] if len(argv) > 1 else None
    for check in (lambda: check_halo(comm, out_dir), lambda: check_torch_transports(comm), lambda: check_agree(comm),
                  lambda: check_node_local(comm)):
        try:
            problems = check()
        except Exception as exc:  # noqa: BLE001 - reported collectively below
            problems = [f"{type(exc).__name__}: {exc}"]
        status, message = agree(comm, not problems, "; ".join(problems))
        if status:
            print(f"test_halo_mpi: FAILED on rank {comm.Get_rank()}: {message}", flush=True)
            return 1
    if comm.Get_rank() == 0:
        print(SUCCESS.format(comm.Get_size()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
elif "pytest" in sys.modules:
    import pytest

    pytest.skip("an MPI script, run under mpirun by tests/test_mpi_launch.py", allow_module_level=True)
