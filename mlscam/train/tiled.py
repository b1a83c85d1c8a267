"""Tile-parallel training: N ranks, each owning one tile of the globe, train one model.

The same ``Trainer`` loop and ``Objective`` as a serial run, with four pieces swapped in:

* batches: :class:`TiledGlobalBatches` reads only the rank's own tile at the
  times of the seeded serial sampler (``GlobalBatches.times(step)``), so all
  ranks of a spatial group process the same times; in ``single_column`` mode
  :class:`OwnedTileBatches` draws the serial batch of tile indices and keeps the
  tiles whose centre column the rank owns (the union over ranks is exactly the
  serial batch);
* objective: :class:`TiledObjective` encodes and decodes own columns only and,
  before every latent step, runs the differentiable halo exchange
  (:func:`mlscam.parallel.autograd.halo_exchange`) and advances own columns
  with the halo plan's ``tile_index``/``crossed``; area weights are those of
  own columns; loss statistics go through a differentiable sum all-reduce, so
  the loss on N ranks equals the serial loss;
* gradients: :class:`GradientAverager` all-reduces (``torch.distributed``,
  SUM then divide by N) every parameter gradient after ``backward``.  Every
  rank back-propagates the same global loss through a reduce whose backward
  is again a sum all-reduce, so each rank's gradient is N times its share of
  the serial gradient and the average over ranks is the serial gradient
  (see ``mlscam.losses``);
* files: only rank 0 writes checkpoints and the log; a checkpoint holds no
  per-rank state and resumes on any rank count.

Time groups (``TileContext.build(..., time_groups=G)``): ``G`` spatial groups
of ``N/G`` ranks, group ``g`` on the times ``[g::G]`` of each batch, loss
statistics summed over all ``N`` ranks (docs/parallel_training.md).

The model has no dropout or noise, so nothing random depends on the rank.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..data.source import open_source
from ..parallel.autograd import halo_exchange, make_reduce
from ..parallel.decomposition import Decomposition
from ..parallel.halo import HaloExchange, HaloPlan
from .batches import GlobalBatches, batch_rng
from .objective import Objective

__all__ = ["TiledObjective", "TiledGlobalBatches", "OwnedTileBatches", "GradientAverager", "TileContext",
           "broadcast_parameters", "build_tiled_trainer", "objective_to_dtype", "run_parallel"]


@dataclass
class TileContext:
    """What a rank needs to know about its place in the decomposition.

    ``comm`` is the rank's *spatial group* (the ranks sharing the globe's tiles:
    halo exchanges run over it); ``world`` holds every rank of the run (loss
    statistics are summed over it).  Without time groups both are the same.
    With ``time_groups = G``, the ``N`` world ranks form ``G`` spatial groups of
    ``N / G`` ranks; group ``g`` (world ranks ``g P .. g P + P - 1``) takes the
    times ``times(step)[g::G]`` of every batch.
    """

    comm: Any
    decomposition: Decomposition
    plan: HaloPlan
    exchange: HaloExchange
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

    @property
    def rank(self) -> int:
        """This rank's index in its spatial group (= the tile it owns)."""
        return self.comm.Get_rank()

    @property
    def tile(self):
        return self.decomposition.tiles[self.rank]


@dataclass
class TiledObjective(Objective):
    """``Objective`` on one rank's tile: batches ``x [B, K+1, nlat_tile, nlon_tile, S]``.

    ``tile`` must be given; ``reduce`` defaults to the differentiable sum all-reduce over ``tile.world``
    (every rank: with time groups the other groups' times are more samples of the same statistics).
    """

    tile: TileContext | None = None

    def __post_init__(self):
        if self.tile is None:
            raise ValueError("TiledObjective needs tile=TileContext(...)")
        super().__post_init__()
        if self.reduce is None:
            self.reduce = make_reduce(self.tile.world)
        own = torch.as_tensor(np.array(self.tile.plan.local_columns))
        self._static = self._static[own].contiguous()
        self._area = self._area[own].contiguous()
        self._tile_index = torch.as_tensor(np.array(self.tile.plan.tile_index))
        self._crossed = torch.as_tensor(np.array(self.tile.plan.crossed))

    def _advance(self, z):
        """``z [B, n_local, L]`` -> ``dz [B, n_local, L]``: halo exchange, then the serial step code."""
        return super()._advance(halo_exchange(z, self.tile.exchange))


def objective_to_dtype(objective: Objective, dtype: torch.dtype) -> Objective:
    """Cast the floating-point buffers (statistics, static features, areas) of an objective, e.g. to float64."""
    for name in ("_mean", "_std", "_tmean", "_tstd", "_static", "_area"):
        setattr(objective, name, getattr(objective, name).to(dtype))
    return objective


class TiledGlobalBatches:
    """The serial ``GlobalBatches`` times, own tile only: ``x [B, K+1, nlat_tile, nlon_tile, S]`` float32."""

    def __init__(self, source, tile: TileContext, *, steps: int, batch_size: int, seed: int, stream: int = 0):
        if batch_size < tile.groups:
            raise ValueError(f"batch_size={batch_size} is smaller than the {tile.groups} time groups: some group "
                             f"would get no time; use &train batch_size >= {tile.groups}")
        self.serial = GlobalBatches(source, steps=steps, batch_size=batch_size, seed=seed, stream=stream)
        self.source, self.steps, self.tile = source, steps, tile

    def times(self, step: int) -> np.ndarray:
        """This rank's times of batch ``step``: the serial ones, ``[group::groups]``."""
        return self.serial.times(step)[self.tile.group::self.tile.groups]

    def __call__(self, step: int) -> dict:
        t = self.tile.tile
        xs = [self.source.read_tile_window(int(s), self.steps + 1, (t.lat0, t.lat1), (t.lon0, t.lon1), halo=0)
              for s in self.times(step)]
        return {"x": torch.from_numpy(np.stack(xs).astype(np.float32, copy=False))}


class OwnedTileBatches:
    """``single_column`` on a rank: the serial batch of tile indices (``TileBatches``' rule), then only
    the tiles whose centre column this rank owns.  Local batches differ in size (about ``B x`` the
    rank's share of the columns, possibly 0); their union over ranks is the serial batch."""

    def __init__(self, store, tile: TileContext, *, batch_size: int, seed: int, stream: int = 0,
                 n_state: int, n_static: int):
        if len(store) < 1:
            raise ValueError("the single-column tile store is empty; run python -m mlscam.data.prepare_columns first")
        self.store, self.tile = store, tile
        self.batch_size, self.seed, self.stream = batch_size, seed, stream
        self.n_state, self.n_static = n_state, n_static
        owner = tile.decomposition.owner_map().reshape(-1)
        self._owner = owner

    def indices(self, step: int) -> np.ndarray:
        """The tile indices of this rank in batch ``step`` (sorted)."""
        idx = np.sort(batch_rng(self.seed, step, self.stream).integers(0, len(self.store), size=self.batch_size))
        idx = idx[self.tile.group::self.tile.groups]
        return idx[self._owner[self.store.centres(idx)] == self.tile.rank]

    def __call__(self, step: int) -> dict:
        idx = self.indices(step)
        if idx.size:
            batch = self.store.gather(idx)
            return {k: batch[k] for k in ("x_tile", "static_tile", "crossed", "x_next")}
        return {"x_tile": torch.zeros(0, 9, self.n_state), "static_tile": torch.zeros(0, 9, self.n_static),
                "crossed": torch.zeros(0, 9, dtype=torch.bool), "x_next": torch.zeros(0, self.n_state)}


class GradientAverager:
    """After ``backward``: every parameter gradient becomes its mean over the ranks (``torch.distributed``).

    One ``all_reduce(SUM)`` of all gradients flattened into one buffer, then a
    division by the world size.  Why not ``DistributedDataParallel``: the
    objective calls the model's parts (encoder, mixer, decoders) directly, not
    ``model.forward``, which DDP's reducer needs to be driven through; and the
    collectives in the backward (halo returns, loss reductions) would interleave
    with DDP's bucketed all-reduces.  The mathematics is DDP's: average of
    per-rank gradients.  A missing gradient counts as zero.
    """

    def __init__(self, world_size: int):
        self.world_size = int(world_size)

    def __call__(self, model: torch.nn.Module) -> None:
        import torch.distributed as dist

        params = list(model.parameters())
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n


def broadcast_parameters(model: torch.nn.Module, root: int = 0) -> None:
    """Make every rank's parameters rank ``root``'s (``torch.distributed.broadcast``)."""
    import torch.distributed as dist

    for p in model.parameters():
        dist.broadcast(p.data, root)


def build_tiled_trainer(cfg: Config, tile_comm: Any, *, device: str | torch.device = "cpu",
                        progress: bool | None = None, grad_reduce=None):
    """The ``Trainer`` of this rank: serial pieces from ``build_trainer``'s helpers, tiled batches and objective.

    ``grad_reduce(model)`` averages gradients across ranks (default :class:`GradientAverager`, which
    needs ``torch.distributed`` initialised, e.g. by :func:`mlscam.parallel.torchdist.init_torch_distributed`).
    Collective over ``tile_comm``: every rank must call it.
    """
    from ..data.datasets import OnTheFlyTiles
    from .build import _normalization, _tile_store
    from .loop import Trainer

    t = cfg.train
    progress = cfg.output.progress if progress is None else progress
    if not cfg.data.files:
        raise ValueError("&data files is empty: name the training NetCDF files (globs allowed)")
    rank = tile_comm.Get_rank()
    source = open_source(cfg.data)
    val_source = open_source(cfg.data, files=cfg.data.val_files) if cfg.data.val_files else None
    if val_source is not None:
        val_source.check_compatible(source.layout, source.grid, source.dt_seconds)
    # statistics: rank 0 loads or computes (and writes) them, everyone gets rank 0's
    from ..parallel import agree

    norm, message = None, ""
    if rank == 0:
        try:
            norm = _normalization(cfg, source, progress)
        except (ValueError, OSError) as e:
            message = f"{type(e).__name__}: {e}"
    code, text = agree(tile_comm, rank != 0 or norm is not None, message)
    if code:
        raise ValueError(f"statistics: {text}")
    norm = tile_comm.bcast(norm, root=0)
    time_groups = int(getattr(cfg.parallel, "time_groups", 1))  # &parallel time_groups once config.py has it
    tile = TileContext.build(tile_comm, source.grid.nlat, source.grid.nlon, cfg.parallel.layout, time_groups)
    layout = source.layout
    if t.mode == "single_column":
        def owned(store, stream):
            return OwnedTileBatches(store, tile, batch_size=t.batch_size, seed=t.seed,
                                    stream=stream, n_state=layout.n_state, n_static=layout.n_static)
        train_batches = owned(_tile_store(cfg, source, seed=t.seed), 0)
        val_batches = owned(OnTheFlyTiles(val_source, seed=t.seed + 1), 1) if val_source is not None else None
    else:
        steps = t.rollout_steps if t.mode == "global_rollout" else 1
        train_batches = TiledGlobalBatches(source, tile, steps=steps, batch_size=t.batch_size, seed=t.seed)
        val_batches = (TiledGlobalBatches(val_source, tile, steps=steps, batch_size=t.batch_size, seed=t.seed,
                                          stream=1) if val_source is not None else None)
    trainer = Trainer(cfg, layout=layout, grid=source.grid, normalization=norm, dt_seconds=source.dt_seconds,
                      train_batches=train_batches, val_batches=val_batches, device=device,
                      progress=progress and rank == 0)
    serial = trainer.objective
    fields = {f.name: getattr(serial, f.name) for f in dataclasses.fields(Objective)}
    fields["reduce"] = None
    trainer.objective = TiledObjective(**fields, tile=tile).to(trainer.device)
    trainer.is_root = rank == 0
    trainer.after_backward = grad_reduce if grad_reduce is not None else GradientAverager(tile_comm.Get_size())
    if t.resume:
        trainer.resume_from(t.resume)  # the same file on every rank: no per-rank state
    if grad_reduce is None:
        broadcast_parameters(trainer.model)
    return trainer


def run_parallel(cfg: Config, comm: Any, *, progress: bool | None = None):
    """Train on the ranks of ``comm`` (``mpirun -n N python -m mlscam.train``): pick this rank's device
    and threads, initialise ``torch.distributed``, build the tiled trainer and run it.

    Returns ``(trainer, result)``.  Collective over ``comm``; a failure to build on any rank is agreed
    on and raised on every rank.
    """
    from ..parallel import agree, choose_device, choose_threads, configure_torch
    from ..parallel.torchdist import destroy_torch_distributed, init_torch_distributed

    device = choose_device(comm, cfg.parallel.device)
    configure_torch(device, choose_threads(comm, cfg.parallel.threads))
    init_torch_distributed(comm, device)
    trainer, message = None, ""
    try:
        trainer = build_tiled_trainer(cfg, comm, device=device, progress=progress)
    except (ValueError, FileNotFoundError, OSError) as e:
        message = f"{type(e).__name__}: {e}"
    code, text = agree(comm, trainer is not None, message)
    if code:
        destroy_torch_distributed()
        raise ValueError(text)
    try:
        return trainer, trainer.run()
    finally:
        destroy_torch_distributed()
