"""A rank's place in (tile-parallel) training, and every collective training needs.

:class:`TileContext` is what the trainer is given: which tile of the globe this
rank owns (decomposition, halo plan and exchange), which times of each batch it
takes (time groups), and the collectives of a training step:

* :meth:`TileContext.domain`: the engine's :class:`~mlscam.model.engine.Domain`
  of the tile, with the differentiable halo exchange
  (:func:`mlscam.parallel.autograd.halo_exchange`) and the mass fixer's
  reproducible global sum over the spatial group
  (:func:`mlscam.parallel.reprosum.allreduce_sum`, no gradient);
* :meth:`TileContext.reduce`: the differentiable sum all-reduce of loss
  statistics over every rank (``None`` on one rank);
* :meth:`TileContext.average_gradients`: every parameter gradient becomes its
  mean over the ranks, after ``backward``;
* :meth:`TileContext.broadcast_parameters`: every rank takes world rank 0's
  parameters;
* :meth:`TileContext.from_root`: a value that world rank 0 computes (e.g. the
  normalisation statistics), failures agreed on by every rank;
* :meth:`TileContext.distributed`: ``torch.distributed`` for the duration of a
  ``with`` block.

Gradients and parameters travel with ``torch.distributed`` (gloo or nccl) when
the world is an mpi4py communicator of several ranks, and through the
communicator itself (host memory, rank-ordered sums) on any other one, e.g. the
fake in-process communicator of the tests. A serial run is a one-rank context
(:meth:`TileContext.serial`): every collective is then a no-op.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import torch

from .autograd import halo_exchange, make_reduce, rank_ordered_sum
from .decomposition import Decomposition, Tile
from .halo import HaloExchange, HaloPlan
from .reprosum import allreduce_sum
from .status import agree
from .world import SelfComm, is_mpi

__all__ = ["TileContext"]

T = TypeVar("T")


@dataclass
class TileContext:
    """What a rank needs to know about its place in the decomposition, and its collectives.

    ``comm`` is the rank's *spatial group* (the ranks sharing the globe's tiles:
    halo exchanges run over it); ``world`` holds every rank of the run (loss
    statistics, gradients and parameters travel over it). Without time groups
    both are the same. With ``time_groups = G``, the ``N`` world ranks form
    ``G`` spatial groups of ``N / G`` ranks; group ``g`` (world ranks
    ``g P .. g P + P - 1``) takes the times ``times(step)[g::G]`` of every batch.
    """

    comm: Any
    decomposition: Decomposition
    plan: HaloPlan
    exchange: HaloExchange | None
    world: Any = None
    group: int = 0
    groups: int = 1

    def __post_init__(self):
        if self.world is None:
            self.world = self.comm

    @classmethod
    def build(cls, comm: Any, nlat: int, nlon: int, layout=(0, 0), time_groups: int = 1) -> "TileContext":
        """Collective over ``comm`` (the world): splits it into ``time_groups`` spatial groups when > 1."""
        size, world_rank = comm.Get_size(), comm.Get_rank()
        if time_groups < 1 or size % time_groups:
            raise ValueError(f"time_groups={time_groups} must be >= 1 and divide the {size} ranks; "
                             f"choose a divisor of {size}")
        group, spatial = 0, comm
        if time_groups > 1:
            group = world_rank // (size // time_groups)
            spatial = comm.Split(group, world_rank)
        d = Decomposition.cartesian(nlat, nlon, spatial.Get_size(), tuple(layout))
        plan = HaloPlan.build(d, spatial.Get_rank())
        return cls(spatial, d, plan, HaloExchange(plan, spatial), world=comm, group=group, groups=time_groups)

    @classmethod
    def serial(cls, nlat: int, nlon: int) -> "TileContext":
        """One rank owning the whole ``(nlat, nlon)`` grid (:class:`SelfComm`): a serial run."""
        return cls.build(SelfComm(), nlat, nlon)

    # -- where this rank is -------------------------------------------------
    @property
    def rank(self) -> int:
        """This rank's index in its spatial group (= the tile it owns)."""
        return self.comm.Get_rank()

    @property
    def tile(self) -> Tile:
        return self.decomposition.tiles[self.rank]

    @property
    def world_size(self) -> int:
        return self.world.Get_size()

    @property
    def is_root(self) -> bool:
        """World rank 0: the rank that prints and writes files."""
        return self.world.Get_rank() == 0

    def domain(self):
        """The engine's :class:`~mlscam.model.engine.Domain` of the own tile (``[ncol]`` columns row-major in
        the tile, tiles from ``[own | halo]``); the exchange is the differentiable halo exchange over ``comm``
        (none when the spatial group is one rank: its tile is the whole grid)."""
        from mlscam.model.engine import Domain

        def exchange(z: torch.Tensor) -> torch.Tensor:  # z [B, ncol, L] -> [B, ncol + n_halo, L]
            return halo_exchange(z, self.exchange)

        p = self.plan
        several = self.comm.Get_size() > 1
        # the mass fixer's global mean: the reproducible sum over the spatial group (the whole globe)
        global_sum = functools.partial(allreduce_sum, self.comm, check=False) if several else None
        return Domain(shape=self.tile.shape, columns=p.local_columns, tile_index=p.tile_index, crossed=p.crossed,
                      exchange=exchange if several else None, global_sum=global_sum)

    # -- collectives ------------------------------------------------------------
    def reduce(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The ``reduce`` of ``mlscam.losses``: a differentiable sum over every world rank (with time groups
        the other groups' times are more samples of the same statistics); ``None`` on one rank."""
        return make_reduce(self.world) if self.world_size > 1 else None

    def _torch_distributed(self):
        """``torch.distributed`` when gradients travel through it (an mpi4py world), else ``None``."""
        if not is_mpi(self.world):
            return None
        import torch.distributed as dist

        if not dist.is_initialized():
            raise RuntimeError(
                f"rank {self.world.Get_rank()} of {self.world_size}: torch.distributed is not initialised; "
                "train inside `with tile.distributed(device):` (python -m mlscam.train does), or call "
                "mlscam.parallel.torchdist.init_torch_distributed(comm, device) first")
        return dist

    def average_gradients(self, model: torch.nn.Module) -> None:
        """After ``backward``: every parameter gradient becomes its mean over the world ranks.

        One ``all_reduce(SUM)`` of all gradients flattened into one buffer, then a
        division by the world size; a missing gradient counts as zero. Every rank
        back-propagates the same global loss through :meth:`reduce`, whose backward
        is again a sum, so each rank's gradient is N times its share and the mean
        is the serial gradient (docs/parallel_training.md). Not DDP: the objective
        calls the model's parts, not ``model.forward``, and the backward pass
        already holds collectives (halo returns, loss reductions) that DDP's
        bucketed all-reduces would interleave with. Collective over ``world``.
        """
        if self.world_size == 1:
            return
        params = list(model.parameters())
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist = self._torch_distributed()
        if dist is not None:
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        else:
            summed = rank_ordered_sum(self.world, flat.detach().cpu().numpy())
            flat = torch.from_numpy(summed).to(flat.device)
        flat /= self.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        """Every rank takes world rank 0's parameters. Collective over ``world``."""
        if self.world_size == 1:
            return
        dist = self._torch_distributed()
        if dist is not None:
            for p in model.parameters():
                dist.broadcast(p.data, 0)
            return
        mine = [p.detach().cpu().numpy() for p in model.parameters()] if self.is_root else None
        for p, value in zip(model.parameters(), self.world.bcast(mine, root=0)):
            p.data.copy_(torch.from_numpy(np.asarray(value)))

    def from_root(self, compute: Callable[[], T], what: str) -> T:
        """``compute()`` on world rank 0, its result on every rank. Collective over ``world``.

        A failure on rank 0 (``ValueError``, ``OSError``) is raised on every rank as a
        ``ValueError`` that starts with ``what``; on one rank, ``compute``'s own exception.
        """
        if self.world_size == 1:
            return compute()
        value, message = None, ""
        if self.is_root:
            try:
                value = compute()
            except (ValueError, OSError) as e:
                message = f"{type(e).__name__}: {e}"
        code, text = agree(self.world, not self.is_root or value is not None, message)
        if code:
            raise ValueError(f"{what}: {text}")
        return self.world.bcast(value, root=0)

    @contextmanager
    def distributed(self, device) -> Iterator["TileContext"]:
        """``torch.distributed`` over ``world`` inside the ``with`` block (gloo on CPU, nccl on CUDA), when
        gradients travel through it (an mpi4py world of several ranks); nothing otherwise. Collective."""
        if self.world_size == 1 or not is_mpi(self.world):
            yield self
            return
        from .torchdist import destroy_torch_distributed, init_torch_distributed

        init_torch_distributed(self.world, device)
        try:
            yield self
        finally:
            destroy_torch_distributed()
