"""Tile-parallel training pieces under real MPI (a script, run under mpirun by tests/test_tileparallel_mpi.py).

    mpirun -n N python tests/mpi/train_tileparallel_mpi.py DATA.nc OUT_DIR

On every rank: torch.distributed (gloo, loopback rendezvous) from MPI.COMM_WORLD;
then, for `global` and `global_rollout` in float64 and float32, the tiled
forward/backward of batch 0 on the rank's own tile, gradients averaged with
``TileContext.average_gradients`` (torch.distributed all_reduce); rank 0 writes the loss and
gradients to ``OUT_DIR/<mode>_<dtype>.npz`` for the launcher to compare with
the serial values.  Also checks, in float64, that halo gradients gathered from
all ranks equal serial autograd, that every rank has the same loss and the same
averaged gradients, and that torch.distributed runs on gloo.  On 4 ranks also
two time groups of 2 tiles (``global_rollout_float64_groups2.npz``).  Every check ends
in a collective ``agree``; rank 0 prints ``train_tileparallel_mpi: OK on N ranks``.
"""
from __future__ import annotations

import hashlib
import os
import sys
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tileparallel_case as case  # noqa: E402

SUCCESS = "train_tileparallel_mpi: OK on {} ranks"


def check_halo_gradients(comm) -> list[str]:
    import torch

    from mlscam.grid import LatLonGrid
    from mlscam.parallel import Decomposition, HaloExchange, HaloPlan
    from mlscam.parallel.autograd import halo_exchange

    rank, size = comm.Get_rank(), comm.Get_size()
    stencil = LatLonGrid.equiangular(case.NLAT, case.NLON).stencil()
    rng = np.random.default_rng(5)
    z_np = rng.standard_normal((2, case.NLAT * case.NLON, 3))
    w = torch.from_numpy(rng.standard_normal((9, 3)))
    problems = []
    z = torch.from_numpy(z_np).requires_grad_(True)
    (torch.tanh(z[:, torch.as_tensor(np.array(stencil.index))] * w) ** 2).sum().backward()
    serial = z.grad.numpy()
    for layout in [(0, 0)] + case.LAYOUTS.get(size, []):
        d = Decomposition.cartesian(case.NLAT, case.NLON, size, layout)
        plan = HaloPlan.build(d, rank)
        zl = torch.from_numpy(z_np[:, d.local_columns(rank)]).requires_grad_(True)
        z_src = halo_exchange(zl, HaloExchange(plan, comm))
        (torch.tanh(z_src[:, torch.as_tensor(np.array(plan.tile_index))] * w) ** 2).sum().backward()
        parts = comm.gather(zl.grad.numpy(), root=0)
        if rank == 0:
            got = np.zeros_like(serial)
            for r, g in enumerate(parts):
                got[:, d.local_columns(r)] = g
            err = np.abs(got - serial).max() / np.abs(serial).max()
            if not err <= 1e-13:
                problems.append(f"layout {layout}: gathered halo gradients differ from serial autograd by {err:.3g}")
    return problems


def check_training(comm, data: str, out_dir: str) -> list[str]:
    import torch.distributed as dist

    from mlscam.parallel.context import TileContext

    rank, size = comm.Get_rank(), comm.Get_size()
    problems = []
    if dist.get_backend() != "gloo":
        problems.append(f"torch.distributed backend is {dist.get_backend()}, expected gloo on CPU")
    for mode in ("global", "global_rollout"):
        cfg, source, norm, model = case.problem(data, mode)
        tile = TileContext.build(comm, case.NLAT, case.NLON)
        for dtype in ("float64", "float32"):
            loss, m = case.tiled_local(cfg, source, norm, model, tile, dtype)
            tile.average_gradients(m)
            grads = {n: p.grad.detach().numpy().copy() for n, p in m.named_parameters()}
            digest = hashlib.sha256(b"".join(g.tobytes() for g in grads.values())).hexdigest()
            losses, digests = comm.allgather(loss), comm.allgather(digest)
            if len(set(losses)) != 1:
                problems.append(f"{mode} {dtype}: the loss differs between ranks: {losses}")
            if len(set(digests)) != 1:
                problems.append(f"{mode} {dtype}: averaged gradients differ between ranks")
            if rank == 0:
                np.savez(os.path.join(out_dir, f"{mode}_{dtype}.npz"), loss=loss, **grads)
    if size == 4:  # two time groups of two tiles each, global_rollout, float64
        cfg, source, norm, model = case.problem(data, "global_rollout")
        tile = TileContext.build(comm, case.NLAT, case.NLON, (0, 0), time_groups=2)
        loss, m = case.tiled_local(cfg, source, norm, model, tile, "float64")
        tile.average_gradients(m)
        if rank == 0:
            np.savez(os.path.join(out_dir, "global_rollout_float64_groups2.npz"), loss=loss,
                     **{n: p.grad.detach().numpy() for n, p in m.named_parameters()})
    return problems


def main() -> int:
    from mpi4py import MPI

    import torch

    torch.set_num_threads(1)
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    from mlscam.parallel import agree
    from mlscam.parallel.torchdist import destroy_torch_distributed, init_torch_distributed

    data, out_dir = sys.argv[1], sys.argv[2]
    problems: list[str] = []
    try:
        init_torch_distributed(comm, "cpu")
        problems += check_halo_gradients(comm)
        problems += check_training(comm, data, out_dir)
    except Exception as e:  # noqa: BLE001 - agreed on below so no rank hangs
        traceback.print_exc()
        problems.append(f"{type(e).__name__}: {e}")
    code, text = agree(comm, not problems, "; ".join(problems))
    destroy_torch_distributed()
    if code:
        print(f"train_tileparallel_mpi: FAILED on rank {rank}: {text}", flush=True)
        return 1
    if rank == 0:
        print(SUCCESS.format(size), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
