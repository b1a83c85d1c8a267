"""Build a training run from a namelist: data sources, statistics, batches, the Trainer."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..config import Config
from ..data.datasets import ColumnTiles, OnTheFlyTiles
from ..data.source import open_source
from ..data.stats import compute_stats, load_stats, write_stats
from .batches import GlobalBatches, TileBatches
from .loop import Trainer, TrainResult

__all__ = ["build_trainer", "train"]

log = logging.getLogger(__name__)


def _normalization(cfg: Config, source, progress: bool):
    """Statistics from data.stats_path, computed (and written there) when the file does not exist yet."""
    path = cfg.data.stats_path
    if path and Path(path).is_file():
        return load_stats(path, source.layout)
    norm, _ = compute_stats(source, progress=progress)
    if path:
        write_stats(path, norm, source.layout)
    return norm


def _tile_store(cfg: Config, source, *, files=None, seed: int):
    if cfg.train.on_the_fly or not cfg.data.columns_dir:
        src = source if files is None else open_source(cfg.data, files=files)
        return OnTheFlyTiles(src, seed=seed)
    directory = Path(cfg.data.columns_dir)
    if not (directory / "manifest.json").is_file():
        raise FileNotFoundError(
            f"no prepared tiles in {directory} (data.columns_dir); run "
            "`python -m mlscam.data.prepare_columns NAMELIST` first, or set &train on_the_fly = .true."
        )
    return ColumnTiles(directory)


def build_trainer(cfg: Config, *, device: str | torch.device | None = None, progress: bool | None = None,
                  reduce=None) -> Trainer:
    """Everything one run needs, from the namelist alone."""
    t = cfg.train
    progress = cfg.output.progress if progress is None else progress
    if not cfg.data.files:
        raise ValueError("&data files is empty: name the training NetCDF files (globs allowed)")
    source = open_source(cfg.data)
    val_source = open_source(cfg.data, files=cfg.data.val_files) if cfg.data.val_files else None
    if val_source is not None:
        val_source.check_compatible(source.layout, source.grid, source.dt_seconds)
    norm = _normalization(cfg, source, progress)
    if t.mode == "single_column":
        train_batches = TileBatches(_tile_store(cfg, source, seed=t.seed), batch_size=t.batch_size, seed=t.seed)
        val_batches = None
        if val_source is not None:
            store = OnTheFlyTiles(val_source, seed=t.seed + 1)
            val_batches = TileBatches(store, batch_size=t.batch_size, seed=t.seed, stream=1)
    else:
        steps = t.rollout_steps if t.mode == "global_rollout" else 1
        train_batches = GlobalBatches(source, steps=steps, batch_size=t.batch_size, seed=t.seed)
        val_batches = (GlobalBatches(val_source, steps=steps, batch_size=t.batch_size, seed=t.seed, stream=1)
                       if val_source is not None else None)
    if device is None:
        device = "cuda" if (cfg.parallel.device != "cpu" and torch.cuda.is_available()) else "cpu"
    trainer = Trainer(cfg, layout=source.layout, grid=source.grid, normalization=norm,
                      dt_seconds=source.dt_seconds, train_batches=train_batches, val_batches=val_batches,
                      device=device, reduce=reduce, progress=progress)
    if t.resume and t.init_from:
        raise ValueError("&train resume and init_from are both set; resume continues a run exactly, init_from "
                         "starts a new run from its weights: set only one")
    if t.resume:
        trainer.resume_from(t.resume)
    elif t.init_from:
        trainer.init_weights_from(t.init_from)
    return trainer


def train(cfg: Config, **kwargs) -> TrainResult:
    """Train as the namelist says; returns what happened (checkpoints are in train.checkpoint_dir)."""
    return build_trainer(cfg, **kwargs).run()
