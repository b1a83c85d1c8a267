"""Which device and how many CPU threads each rank uses.

* Node-local rank: an MPI shared-memory split (``Split_type(COMM_TYPE_SHARED)``)
  for mpi4py communicators; for any other communicator (the fake one), an
  ``allgather`` of processor names.
* Device: ``cuda:<node-local rank % device_count>`` when CUDA is available,
  else ``cpu``; ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` override.
* Threads: the cores this process may run on (``os.sched_getaffinity``)
  divided by the ranks on the node, at least 1; an explicit request wins.

torch is imported only by the functions that need it.
"""
from __future__ import annotations

import os
import socket
from typing import Any

from .world import is_mpi

__all__ = ["node_local", "node_local_rank", "choose_device", "choose_threads", "configure_torch"]


def node_local(comm: Any) -> tuple[int, int]:
    """``(node-local rank, ranks on this node)`` of the calling rank.  Collective over ``comm``."""
    if is_mpi(comm):
        from mpi4py import MPI

        local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
        try:
            return local.Get_rank(), local.Get_size()
        finally:
            local.Free()
    get_name = getattr(comm, "Get_processor_name", None)
    name = get_name() if get_name is not None else socket.gethostname()
    names = comm.allgather(name)
    rank = comm.Get_rank()
    return sum(1 for n in names[:rank] if n == name), sum(1 for n in names if n == name)


def node_local_rank(comm: Any) -> int:
    """The rank of the caller among the ranks on its node.  Collective over ``comm``."""
    return node_local(comm)[0]


def choose_device(comm: Any, preference: str = "auto"):
    """The torch device of the calling rank.  Collective over ``comm``.

    ``preference``: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``,
    ``"cuda"`` (node-local rank modulo the device count) or ``"cuda:N"``.
    """
    import torch

    pref = str(preference).strip().lower()
    if pref not in ("auto", "cpu", "cuda") and not pref.startswith("cuda:"):
        raise ValueError(f"device preference must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {preference!r}")
    local_rank = node_local_rank(comm)  # collective: every rank calls it whatever its preference
    if pref == "cpu" or (pref == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"rank {comm.Get_rank()}: device {preference!r} requested but CUDA is not available "
            f"(torch {torch.__version__}); use device='auto' or 'cpu'"
        )
    count = torch.cuda.device_count()
    if pref.startswith("cuda:"):
        index = int(pref.split(":", 1)[1])
        if not 0 <= index < count:
            raise ValueError(f"rank {comm.Get_rank()}: {preference!r} requested but only {count} CUDA device(s) exist")
        return torch.device("cuda", index)
    return torch.device("cuda", local_rank % count)


def choose_threads(comm: Any, requested: int = 0) -> int:
    """CPU threads for the calling rank.  Collective over ``comm``.

    ``requested > 0`` wins; otherwise the cores this process may run on divided
    by the number of ranks on the node, at least 1.  (A launcher that binds each
    rank to its own core gives 1 core here already: the result is then 1.)
    """
    if requested < 0:
        raise ValueError(f"threads must be >= 0 (0 = choose), got {requested}")
    _, local_size = node_local(comm)
    if requested > 0:
        return int(requested)
    return max(1, len(os.sched_getaffinity(0)) // local_size)


def configure_torch(device: Any, threads: int, *, deterministic: bool | None = None) -> bool:
    """Set torch's process-wide settings for a run: CPU thread count, the current CUDA device and, when
    ``deterministic`` is given, deterministic algorithms (with cuBLAS's fixed workspace on a GPU).

    Returns whether deterministic algorithms were on before (to restore them).
    """
    import os

    import torch

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(int(threads))
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    was = torch.are_deterministic_algorithms_enabled()
    if deterministic:
        if device.type == "cuda":  # cuBLAS needs a fixed workspace to be deterministic
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    return was
