"""The tiny tile-parallel training problem shared by tests/test_tileparallel*.py and the mpirun scripts.

A 6x12 grid, 2 levels (7 state channels), 10 six-hourly times of seeded random
fields; a tiny conv-mixer model (latent 8); loss terms that exercise every kind
of reduction (area-weighted MSE and CCC, Barlow Twins on the encoded-truth
latent increments, tendency MSE).
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

NLAT, NLON, NLEV, NT = 6, 12, 2, 10
SEED = 3
BATCH, ROLLOUT = 2, 3
LAYOUTS = {2: [(1, 2), (2, 1)], 3: [(3, 1)], 4: [(1, 4), (2, 2)]}


def write_data(path) -> str:
    """Write the synthetic CF file (six-hourly) and return its path."""
    from synthetic import make_fields, write_file

    from mlscam.grid import LatLonGrid

    grid = LatLonGrid.equiangular(NLAT, NLON)
    fields = make_fields(NT, grid, NLEV, seed=11)
    write_file(path, fields, grid, np.arange(NT) * 6.0, levels=np.linspace(0.2, 0.9, NLEV))
    return str(path)


def config_dict(data_path: str, mode: str = "global", model: dict | None = None, **train) -> dict:
    return {
        "data": {"files": [data_path], "time_step_hours": 6.0},
        "model": {"latent_dim": 8, "encoder_hidden": 16, "encoder_layers": 1, "decoder_hidden": 16,
                  "decoder_layers": 1, "mixer": "conv", "mixer_blocks": 1, "channel_hidden": 16, "chunk_size": 16,
                  **(model or {})},
        "loss": {"mse": 1.0, "ccc": 0.5, "barlow": 0.05, "tendency_mse": 0.2},
        "train": {"mode": mode, "rollout_steps": ROLLOUT, "batch_size": BATCH, "seed": SEED,
                  "warmup_steps": 0, "schedule": "constant", "lr": 3e-3, **train},
        "output": {"progress": False},
    }


def config(data_path: str, mode: str = "global", model: dict | None = None, **train):
    from mlscam.config import config_from_dict

    return config_from_dict(config_dict(data_path, mode, model, **train))


def problem(data_path: str, mode: str, model: dict | None = None):
    """``(cfg, source, normalization, model)``: the model seeded by ``SEED``, float32 (``model``: &model
    values over the tiny defaults, e.g. the stabilisers)."""
    import torch

    from mlscam.data.source import open_source
    from mlscam.data.stats import compute_stats
    from mlscam.model import build_model

    cfg = config(data_path, mode, model)
    source = open_source(cfg.data)
    norm, _ = compute_stats(source, progress=False)
    torch.manual_seed(SEED)
    model = build_model(cfg.model, source.layout)
    return cfg, source, norm, model


def objective(cfg, source, norm, model, *, tile=None):
    """The serial ``Objective`` (``tile=None``) or this rank's (``tile``: its ``TileContext``)."""
    from mlscam.losses import LossComputer, needs_latent_truth
    from mlscam.model.filters import LatentFilter
    from mlscam.train.objective import Objective

    kw = dict(model=model, layout=source.layout, grid=source.grid, normalization=norm,
              loss=LossComputer(cfg.loss), mode=cfg.train.mode, chunk_size=cfg.model.chunk_size,
              latent_truth=needs_latent_truth(cfg.loss), latent_filter=LatentFilter.of(cfg.model))
    return Objective(**kw, tile=tile)


def steps_of(mode: str) -> int:
    return ROLLOUT if mode == "global_rollout" else 1


def serial_loss_and_grads(data_path: str, mode: str, dtype: str, step: int = 0, model: dict | None = None):
    """Serial reference: loss and parameter gradients ``{name: array}`` of batch ``step``."""
    import torch

    from mlscam.train.batches import GlobalBatches
    from mlscam.train.objective import objective_to_dtype

    cfg, source, norm, model = problem(data_path, mode, model)
    tdtype = getattr(torch, dtype)
    model = model.to(tdtype)
    obj = objective_to_dtype(objective(cfg, source, norm, model), tdtype)
    batch = GlobalBatches(source, steps=steps_of(mode), batch_size=BATCH, seed=SEED)(step)
    loss, _ = obj({"x": batch["x"].to(tdtype)})
    loss.backward()
    return float(loss.detach()), {n: p.grad.detach().numpy().copy() for n, p in model.named_parameters()}


def tiled_local(cfg, source, norm, model, tile, dtype: str, step: int = 0, batch=None):
    """One rank's forward and backward: ``(loss, {name: local grad})`` (not yet averaged)."""
    import torch

    from mlscam.train.batches import TiledGlobalBatches
    from mlscam.train.objective import objective_to_dtype

    tdtype = getattr(torch, dtype)
    model = copy.deepcopy(model).to(tdtype)
    obj = objective_to_dtype(objective(cfg, source, norm, model, tile=tile), tdtype)
    if batch is None:
        batch = TiledGlobalBatches(source, tile, steps=steps_of(cfg.train.mode), batch_size=BATCH, seed=SEED)(step)
    loss, _ = obj({"x": batch["x"].to(tdtype)})
    loss.backward()
    return float(loss.detach()), model


class RankOnly:
    """Just enough of a communicator for TileContext.tile in the main thread (rank ``rank`` of ``size``)."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size
