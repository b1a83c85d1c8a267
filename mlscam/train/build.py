"""Build a training run from a namelist, serial or tile-parallel: data, statistics, batches, the Trainer.

ONE builder, :func:`build_trainer`, for every run: it is given the rank's tile
context (``mlscam.parallel.context.TileContext``; default: one rank owning the
whole grid) and builds the tile's batches, the trainer on that context, and
starts from ``&train resume`` or ``init_from`` on every rank alike.
:func:`run_training` is what ``python -m mlscam.train`` runs on the ranks of a
communicator (one rank = serial).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from ..atomic import check_writable
from ..config import Config
from ..data.datasets import ColumnTiles, OnTheFlyTiles
from ..data.finite import check_finite
from ..data.source import open_source
from ..data.stats import compute_stats, load_stats, write_stats
from ..parallel import agree, choose_device
from ..parallel.context import TileContext
from .batches import OwnedTileBatches, TiledGlobalBatches, mirror_channels
from .loop import Trainer, TrainResult

__all__ = ["build_trainer", "run_training", "train"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _has_stats(cfg: Config) -> bool:
    return bool(cfg.data.stats_path) and Path(cfg.data.stats_path).is_file()


def _check_data(cfg: Config, source, val_source, progress: bool) -> bool:
    """Every time of the training and validation files is finite, before any training (else a DataError
    naming file, variable, level, time and cell). Computing statistics checks the training files itself; a run
    that loads them (a stats file, or the resume / init_from checkpoint's) checks them here."""
    outcome = "Nothing was trained and no checkpoint was written"
    if val_source is not None:
        check_finite(val_source, needs="validation (&data val_files) needs", outcome=outcome, progress=progress)
    if _has_stats(cfg) or cfg.train.resume or cfg.train.init_from:  # no statistics computed from the files
        check_finite(source, needs="training (&data files) needs", outcome=outcome, progress=progress)
    return True


def _normalization(cfg: Config, source, progress: bool):
    """Statistics from data.stats_path, computed (and written there) when the file does not exist yet."""
    path = cfg.data.stats_path
    if _has_stats(cfg):
        return load_stats(path, source.layout)
    norm, _ = compute_stats(source, progress=progress)
    if path:
        write_stats(path, norm, source.layout)
    return norm


def _start_normalization(cfg: Config, source):
    """The statistics of a run that starts from a checkpoint (``&train resume`` or ``init_from``): the checkpoint's.

    Its weights were trained on inputs normalised with them; statistics of the data at hand differ whenever the
    data are not the files the checkpoint was trained on (on 2026-11-28 the demo's training data, made again on
    a new machine, moved the mean surface pressure by 65 Pa and the standard deviation of u by up to 0.5 m/s),
    and fine-tuning would then start from a model fed inputs it never saw. A ``&data stats_path`` file that disagrees is left as it is and named in a note."""
    path = cfg.train.resume or cfg.train.init_from
    key = "resume" if cfg.train.resume else "init_from"
    from ..checkpoint import load_checkpoint

    norm = load_checkpoint(path, expected_layout=source.layout, grid=source.grid).normalization
    if _has_stats(cfg):
        import numpy as np

        have = load_stats(cfg.data.stats_path, source.layout)
        # differences in units of the checkpoint's standard deviations, channel by channel
        shift = max(float(np.max(np.abs(getattr(have, f"{kind}_{part}") - getattr(norm, f"{kind}_{part}"))
                                 / getattr(norm, f"{kind}_std"))) for kind in ("state", "tendency")
                    for part in ("mean", "std"))
        if shift > 1e-6:
            print(f"note: &data stats_path {cfg.data.stats_path} differs from the normalization of the &train {key} "
                  f"checkpoint {path} (a mean or standard deviation moved by up to {shift:.3g} of the checkpoint's "
                  "standard deviation); the run uses the checkpoint's, which its weights were trained with",
                  flush=True)
    return norm


def _tile_store(cfg: Config, source, *, seed: int):
    if cfg.train.on_the_fly or not cfg.data.columns_dir:
        return OnTheFlyTiles(source, seed=seed)
    directory = Path(cfg.data.columns_dir)
    if not (directory / "manifest.json").is_file():
        raise FileNotFoundError(
            f"no prepared tiles in {directory} (data.columns_dir); run "
            "`python -m mlscam.data.prepare_columns NAMELIST` first, or set &train on_the_fly = .true."
        )
    return ColumnTiles(directory)


def _batches(cfg: Config, source, val_source, tile: TileContext, layout) -> tuple[Any, Any]:
    """``(train, validation or None)`` batches of the tile: the serial draws, the tile's share of them."""
    t = cfg.train
    if t.mode == "single_column":
        def owned(store, stream):
            return OwnedTileBatches(store, tile, batch_size=t.batch_size, seed=t.seed, stream=stream,
                                    n_state=layout.n_state, n_static=layout.n_static)
        val = owned(OnTheFlyTiles(val_source, seed=t.seed + 1), 1) if val_source is not None else None
        return owned(_tile_store(cfg, source, seed=t.seed), 0), val
    steps = t.pushforward_steps + t.rollout_steps if t.mode == "global_rollout" else 1
    val = (TiledGlobalBatches(val_source, tile, steps=steps, batch_size=t.batch_size, seed=t.seed, stream=1)
           if val_source is not None else None)
    negate = mirror_channels(layout, t.mirror_negate) if t.mirror else None  # validation is never mirrored
    return TiledGlobalBatches(source, tile, steps=steps, batch_size=t.batch_size, seed=t.seed, negate=negate), val


def build_trainer(cfg: Config, *, tile: TileContext | None = None, device: str | torch.device | None = None,
                  progress: bool | None = None) -> Trainer:
    """The ``Trainer`` of this rank, from the namelist alone.

    ``tile``: this rank's :class:`TileContext` (tile-parallel training; collective over its world, every
    rank must call); default one rank owning the whole grid (serial). ``device`` default: ``&parallel
    device`` (``mlscam.parallel.choose_device``). World rank 0 first reads every time of the training and
    validation files (in chunks) and refuses a NaN/Inf (``mlscam.data.finite``: a ``DataError`` naming file,
    variable, level, time and cell, before any training). Normalisation statistics are loaded (or computed and
    written) by world rank 0 and broadcast (a run from ``&train resume`` or ``init_from`` takes the checkpoint's:
    :func:`_start_normalization`); ``&train resume`` or ``init_from`` is read by every rank, then
    every rank takes rank 0's parameters.
    """
    t = cfg.train
    if t.resume and t.init_from:
        raise ValueError("&train resume and init_from are both set; resume continues a run exactly, init_from "
                         "starts a new run from its weights: set only one")
    progress = cfg.output.progress if progress is None else progress
    if tile is None or tile.is_root:  # the writer: fail now, not after computing statistics or training
        check_writable(t.checkpoint_dir, "&train checkpoint_dir", directory=True)
        if cfg.data.stats_path and not Path(cfg.data.stats_path).is_file():
            check_writable(cfg.data.stats_path, "&data stats_path")
    if not cfg.data.files:
        raise ValueError("&data files is empty: name the training NetCDF files (globs allowed)")
    source = open_source(cfg.data)
    # the checkpoint keeps &data as read: 'auto' becomes the level source used, so a rollout or an
    # evaluation reads its files' levels the same way (validation files too)
    cfg = replace(cfg, data=replace(cfg.data, level_source=source.level_source))
    val_source = open_source(cfg.data, files=cfg.data.val_files) if cfg.data.val_files else None
    if val_source is not None:
        val_source.check_compatible(source.layout, source.grid, source.dt_seconds)
    grid = source.grid
    if tile is None:
        tile = TileContext.serial(grid.nlat, grid.nlon)
    elif (tile.decomposition.nlat, tile.decomposition.nlon) != grid.shape:
        decomposed = (tile.decomposition.nlat, tile.decomposition.nlon)
        raise ValueError(f"the tile context decomposes a {decomposed} grid but the data's grid is "
                         f"{grid.shape}; build it with TileContext.build(comm, {grid.nlat}, {grid.nlon}, ...)")
    tile.from_root(lambda: _check_data(cfg, source, val_source, progress), "training data")
    if t.resume or t.init_from:  # the weights' own statistics, whatever the data's
        norm = tile.from_root(lambda: _start_normalization(cfg, source), "statistics")
    else:
        norm = tile.from_root(lambda: _normalization(cfg, source, progress), "statistics")
    train_batches, val_batches = _batches(cfg, source, val_source, tile, source.layout)
    if device is None:
        device = choose_device(tile.world, cfg.parallel.device)
    trainer = Trainer(cfg, layout=source.layout, grid=grid, normalization=norm, dt_seconds=source.dt_seconds,
                      train_batches=train_batches, val_batches=val_batches, device=device, tile=tile,
                      progress=progress)
    if t.resume:
        trainer.resume_from(t.resume)  # the same file on every rank: a checkpoint holds no per-rank state
    elif t.init_from:
        trainer.init_weights_from(t.init_from)
    tile.broadcast_parameters(trainer.model)  # every rank starts from rank 0's weights
    return trainer


def _agreed(comm: Any, build: Callable[[], T]) -> T:
    """``build()`` on every rank of ``comm``; a failure on any rank is raised on every rank (a ``ValueError``
    naming the ranks that failed), so no rank goes on into a collective alone. One rank: ``build()``."""
    if comm.Get_size() == 1:
        return build()
    value, message = None, ""
    try:
        value = build()
    except (ValueError, FileNotFoundError, OSError) as e:
        message = f"{type(e).__name__}: {e}"
    code, text = agree(comm, value is not None, message)
    if code:
        raise ValueError(text)
    return value


def run_training(cfg: Config, comm: Any = None, *, device: str | torch.device | None = None,
                 progress: bool | None = None) -> tuple[Trainer, TrainResult]:
    """Train on the ranks of ``comm`` (default, or a one-rank communicator: this process alone, serial);
    returns ``(trainer, result)``.

    On N ranks every rank owns one tile of the grid (``&parallel layout``, ``time_groups``) and
    ``torch.distributed`` runs for the duration; a failure to build on any rank is raised on every rank.
    The device and threads are the caller's (``python -m mlscam.train`` sets them once from ``&parallel``).
    Collective over ``comm``.
    """
    if comm is None or comm.Get_size() == 1:
        trainer = build_trainer(cfg, device=device, progress=progress)
        return trainer, trainer.run()
    if device is None:
        device = choose_device(comm, cfg.parallel.device)

    def data_grid():
        with open_source(cfg.data) as source:
            return source.grid

    grid = _agreed(comm, data_grid)  # every rank, or none, goes on into the collectives below
    tile = TileContext.build(comm, grid.nlat, grid.nlon, cfg.parallel.layout, cfg.parallel.time_groups)
    with tile.distributed(device):
        trainer = _agreed(comm, lambda: build_trainer(cfg, tile=tile, device=device, progress=progress))
        return trainer, trainer.run()


def train(cfg: Config, **kwargs) -> TrainResult:
    """Train as the namelist says; returns what happened (checkpoints are in train.checkpoint_dir)."""
    return run_training(cfg, **kwargs)[1]
