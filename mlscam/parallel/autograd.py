"""Differentiable collectives for tile-parallel training: the halo exchange and a sum all-reduce.

Both work on any communicator of ``mlscam.parallel`` (an mpi4py ``Comm`` or a
:class:`~mlscam.parallel.fake.FakeComm`) and copy through host memory.

Halo exchange (:func:`halo_exchange`)
-------------------------------------
Forward: ``z_local [B, n_local, L] -> z_src [B, n_local + n_halo, L]``, the
source buffer of :class:`~mlscam.parallel.halo.HaloPlan` (own columns, then the
halo cells received from their owners).  It only copies, so its adjoint is the
reverse plan: every rank sends the gradients of its halo cells
``g_src[:, n_local + start : n_local + start + count]`` back to the owner
``peer`` of each ``plan.recv`` entry, and each owner adds what it receives from
every ``plan.send`` peer onto the positions it sent::

    g_local = g_src[:, :n_local];  g_local[:, positions_p] += g_from_p   (peers ascending)

so a column's gradient is the sum over every tile that read it, on whichever
rank.  The backward is a collective (every rank must back-propagate through
the same exchanges in the same order, which autograd does: it runs nodes in
reverse creation order, the same program order on every rank).  Backward
messages use tag ``HALO_TAG + 1``, so they never match a forward message.

Sum all-reduce (:func:`allreduce_sum`, :func:`make_reduce`)
-----------------------------------------------------------
Forward: the sum over ranks of ``x`` (any shape).  Backward: the sum over ranks
of the incoming gradients -- the adjoint when every rank computes the same
function of the sum, the contract of ``mlscam.losses``.  The sum is an
``allgather`` followed by a sum in rank order, so every rank gets bit-identical
values whatever MPI's reduction algorithm (every rank then takes the same
branch on a loss value, e.g. for early stopping).  Meant for loss statistics
(vectors of a few hundred numbers); parameter gradients go through
``torch.distributed`` (:mod:`mlscam.parallel.torchdist`).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from .halo import HALO_TAG, HaloExchange
from .world import is_mpi

__all__ = ["halo_exchange", "halo_exchange_backward", "allreduce_sum", "make_reduce", "rank_ordered_sum"]

#: Tag of the backward (gradient-return) messages of the halo exchange.
HALO_GRAD_TAG = HALO_TAG + 1


def halo_exchange_backward(exchange: HaloExchange, g_src: np.ndarray, tag: int = HALO_GRAD_TAG) -> np.ndarray:
    """The adjoint of one exchange (numpy): ``g_src [B, n_src, L] -> g_local [B, n_local, L]``.

    Collective over ``exchange.comm``.
    """
    plan, comm = exchange.plan, exchange.comm
    n_local = plan.n_local
    g_src = np.ascontiguousarray(g_src)
    batch, _, latent = g_src.shape
    requests, recv_bufs, send_bufs = [], [], []
    for peer, positions in plan.send:  # they read these cells: their gradients come back
        buf = np.empty((batch, positions.size, latent), dtype=g_src.dtype)
        recv_bufs.append((positions, buf))
        requests.append(comm.Irecv(buf, source=peer, tag=tag))
    for peer, start, count in plan.recv:  # cells we read from `peer`: send their gradients home
        buf = np.ascontiguousarray(g_src[:, n_local + start:n_local + start + count])
        send_bufs.append(buf)  # alive until the sends complete
        requests.append(comm.Isend(buf, dest=peer, tag=tag))
    for req in requests:
        req.Wait()
    g_local = np.array(g_src[:, :n_local], copy=True)
    for positions, buf in recv_bufs:  # peers ascending; positions within a peer are distinct
        g_local[:, positions] += buf
    return g_local


_WIRE_DTYPE = {torch.float16: torch.float32, torch.bfloat16: torch.float32}  # numpy has no bfloat16


class _HaloFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z_local: torch.Tensor, exchange: HaloExchange) -> torch.Tensor:
        ctx.exchange = exchange
        wire = _WIRE_DTYPE.get(z_local.dtype, z_local.dtype)
        return exchange.exchange(z_local.to(wire)).to(z_local.dtype)

    @staticmethod
    def backward(ctx, g_src: torch.Tensor):
        wire = _WIRE_DTYPE.get(g_src.dtype, g_src.dtype)
        g = halo_exchange_backward(ctx.exchange, g_src.detach().to(wire).cpu().numpy())
        return torch.from_numpy(g).to(device=g_src.device, dtype=g_src.dtype), None


def halo_exchange(z_local: torch.Tensor, exchange: HaloExchange) -> torch.Tensor:
    """Differentiable halo exchange: ``z_local [B, n_local, L] -> z_src [B, n_local + n_halo, L]``.

    Collective over ``exchange.comm`` in the forward and in the backward pass.
    float32 or float64 (float16/bfloat16, e.g. under autocast, travel as float32
    and come back in their dtype), any device (copied through host memory).
    """
    return _HaloFunction.apply(z_local, exchange)


def rank_ordered_sum(comm: Any, x: np.ndarray) -> np.ndarray:
    """``sum over ranks of x`` in rank order (bit-identical on every rank).  Collective over ``comm``.

    ``x`` must have the same shape and dtype on every rank.
    """
    x = np.ascontiguousarray(x)
    size = comm.Get_size()
    if size == 1:
        return x.copy()
    if is_mpi(comm):
        gathered = np.empty((size, *x.shape), dtype=x.dtype)
        comm.Allgather(x, gathered)
        parts = list(gathered)
    else:
        parts = comm.allgather(x)
    shapes = {tuple(np.shape(p)) for p in parts}
    if len(shapes) != 1:
        raise ValueError(f"rank {comm.Get_rank()}: all-reduce of tensors of different shapes across ranks {sorted(shapes)}; "
                         "every rank must reduce the same statistics")
    out = np.array(parts[0], copy=True)
    for p in parts[1:]:
        out += p
    return out


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, comm: Any) -> torch.Tensor:
        ctx.comm = comm
        out = rank_ordered_sum(comm, x.detach().cpu().numpy())
        return torch.from_numpy(out).to(device=x.device)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        out = rank_ordered_sum(ctx.comm, g.detach().cpu().numpy())
        return torch.from_numpy(out).to(device=g.device), None


def allreduce_sum(x: torch.Tensor, comm: Any) -> torch.Tensor:
    """Differentiable sum all-reduce over ``comm``; the backward is again a sum all-reduce."""
    return _AllReduceSum.apply(x, comm)


def make_reduce(comm: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The ``reduce`` hook of ``mlscam.losses`` for the ranks of ``comm``."""

    def reduce(x: torch.Tensor) -> torch.Tensor:
        return allreduce_sum(x, comm)

    return reduce
