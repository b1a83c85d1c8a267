"""torch.distributed from an MPI world, and how this process was launched.

* :func:`mpi_world_size` -- the size of the MPI world this process belongs to,
  read from the launcher's environment (Open MPI, MPICH/Hydra, PMI/PMIx,
  Slurm's srun) without initialising MPI when no launcher set one.
* :func:`launch_world` -- the communicator to train on: ``None`` for a single
  process, ``MPI.COMM_WORLD`` under ``mpirun``/``srun``; several processes
  started without MPI (``torchrun``: ``WORLD_SIZE > 1``) are refused, because
  the halo exchange and loss reductions run over MPI.
* :func:`init_torch_distributed` -- ``torch.distributed`` on the ranks of an
  MPI communicator: ``gloo`` for CPU devices, ``nccl`` for CUDA.  The
  rendezvous is TCP: rank 0 picks a free port and broadcasts it (with its
  address) over MPI.  When every rank is on one node the address is the
  loopback ``127.0.0.1``; otherwise rank 0's host name, or ``MASTER_ADDR``
  when set (``MASTER_PORT`` likewise fixes the port).
"""
from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

__all__ = ["mpi_world_size", "launch_world", "init_torch_distributed", "destroy_torch_distributed",
           "LaunchError", "MPI_SIZE_VARIABLES"]

#: Environment variables in which MPI launchers publish the world size (first found wins).
MPI_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS_WORLD", "SLURM_NTASKS")
_MPI_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")


class LaunchError(RuntimeError):
    """Processes were started in a way this program cannot train with."""


def mpi_world_size(environ: dict | None = None) -> int:
    """The MPI world size named by the launcher's environment; 1 when none is set.

    Slurm's ``SLURM_NTASKS`` counts only when ``SLURM_PROCID`` is also set (a
    process started by ``srun``, not a batch script).
    """
    env = os.environ if environ is None else environ
    for name in MPI_SIZE_VARIABLES:
        value = env.get(name)
        if value is None or (name == "SLURM_NTASKS" and "SLURM_PROCID" not in env):
            continue
        try:
            return max(1, int(value))
        except ValueError:
            continue
    return 1


def launch_world(environ: dict | None = None) -> Any:
    """``MPI.COMM_WORLD`` when launched by MPI with more than one rank, else ``None`` (serial).

    Raises :class:`LaunchError` for several processes without MPI (torchrun's
    ``WORLD_SIZE > 1``): each would otherwise train on the whole globe alone.
    """
    env = os.environ if environ is None else environ
    size = mpi_world_size(env)
    torch_world = env.get("WORLD_SIZE")
    if size <= 1:
        if torch_world is not None and torch_world.strip() not in ("", "1"):
            raise LaunchError(
                f"WORLD_SIZE={torch_world} says {torch_world} processes were started (torchrun?), but none was "
                "launched by MPI. Tile-parallel training exchanges halos and loss statistics over MPI: launch "
                "with `mpirun -n N python -m mlscam.train NAMELIST` (or `srun -n N ...`), or run one process"
            )
        return None
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.Get_size() != size:
        raise LaunchError(
            f"the launcher's environment says {size} MPI ranks but MPI.COMM_WORLD has {comm.Get_size()}: "
            "mpi4py is probably built against another MPI than the launcher's mpirun/srun; rebuild it with "
            "`MPICC=$(which mpicc) pip install --no-binary mpi4py --force-reinstall mpi4py`"
        )
    if torch_world is not None and torch_world.strip() not in ("", "1", str(size)):
        raise LaunchError(f"WORLD_SIZE={torch_world} disagrees with the {size} MPI ranks; unset WORLD_SIZE")
    return comm


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def init_torch_distributed(comm: Any, device: Any, *, timeout_s: float = 300.0, environ: dict | None = None) -> str:
    """Initialise the default ``torch.distributed`` process group on the ranks of ``comm``.

    ``gloo`` when ``device`` is a CPU, ``nccl`` for CUDA.  Collective over
    ``comm`` (a ``bcast`` of the rendezvous address and an ``allgather`` of host
    names).  Returns the backend name.  Does nothing (and returns the backend
    in use) if a process group is already initialised with the same size and rank.
    """
    import torch
    import torch.distributed as dist

    env = os.environ if environ is None else environ
    rank, size = comm.Get_rank(), comm.Get_size()
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if dist.is_initialized():
        if dist.get_world_size() != size or dist.get_rank() != rank:
            raise LaunchError(
                f"torch.distributed is already initialised as rank {dist.get_rank()} of {dist.get_world_size()}, "
                f"but the MPI communicator is rank {rank} of {size}"
            )
        return dist.get_backend()
    hosts = comm.allgather(socket.gethostname())
    if rank == 0:
        if env.get("MASTER_ADDR"):
            addr = env["MASTER_ADDR"]
        elif len(set(hosts)) == 1:
            addr = "127.0.0.1"
        else:
            addr = socket.gethostname()
        port = int(env["MASTER_PORT"]) if env.get("MASTER_PORT") else _free_port("127.0.0.1" if addr == "127.0.0.1" else "")
        rendezvous = (addr, port)
    else:
        rendezvous = None
    addr, port = comm.bcast(rendezvous, root=0)
    dist.init_process_group(backend, init_method=f"tcp://{addr}:{port}", rank=rank, world_size=size,
                            timeout=timedelta(seconds=timeout_s))
    return backend


def destroy_torch_distributed() -> None:
    """Tear down the default process group if one exists."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
