"""Self-contained checkpoints.

One file holds everything needed to rebuild and run a model: the format
version, the configuration it was trained with, the column layout, the
normalization statistics, the data time step, the training grid, the weights
and, optionally, optimizer/scheduler/training-loop state for an exact resume.

The file is a ``torch.save`` of plain containers (dicts, lists, str, numbers,
tensors), so it loads with ``torch.load(path, weights_only=True)``: opening a
checkpoint never executes code from it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .atomic import atomic_path
from .config import Config, config_from_dict, config_to_dict
from .grid import LatLonGrid
from .layout import ColumnLayout
from .model.correction import ClimateCorrection
from .normalization import Normalization

__all__ = ["FORMAT_VERSION", "Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint", "file_hash",
           "grow_checkpoint"]

#: Bump when the file layout changes; `_upgrade` keeps older files loading.
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message says why and what to do."""


@dataclass
class Checkpoint:
    """The content of one checkpoint file."""

    config: Config
    layout: ColumnLayout
    normalization: Normalization
    dt_seconds: float
    grid: LatLonGrid
    state_dict: dict[str, torch.Tensor]
    optimizer_state: dict | None = None
    scheduler_state: dict | None = None
    train_state: dict | None = None
    metadata: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    correction: ClimateCorrection | None = None  # a fixed zonal-mean forcing of the step (mlscam.model.correction)

    def build_model(self):
        """The network with the checkpoint's weights loaded (eval mode)."""
        model = self.config.model.build(self.layout)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "mlscam_version": __version__,
            "config": config_to_dict(self.config),
            "layout": self.layout.to_dict(),
            "normalization": self.normalization.to_dict(),
            "dt_seconds": float(self.dt_seconds),
            "grid": {"lat": list(self.grid.lat), "lon": list(self.grid.lon)},
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "optimizer_state": self.optimizer_state,
            "scheduler_state": self.scheduler_state,
            "train_state": self.train_state,
            "metadata": dict(self.metadata),
            "climate_correction": None if self.correction is None else self.correction.to_dict(),
        }


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` atomically (the file is complete or absent)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt.to_dict(), tmp)
    return path


def _upgrade(d: dict) -> dict:
    """Bring an older file's dict to the current format (none older exists yet)."""
    version = d.get("format_version")
    if version is None:
        raise CheckpointError("not an mlscam checkpoint (a torch file without 'format_version'); name a .pt file "
                              "written by mlscam.train or mlscam.checkpoint export")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {version} is newer than this mlscam ({__version__}) reads "
            f"(format {FORMAT_VERSION}); upgrade mlscam"
        )
    return d


def load_checkpoint(
    path: str | os.PathLike,
    *,
    expected_layout: ColumnLayout | None = None,
    grid: LatLonGrid | None = None,
    allow_other_grid: bool = False,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Read a checkpoint, checking it against what the caller will run it on.

    Args:
      expected_layout: the column layout of the data it will see; a different one is refused.
      grid: the grid it will run on; a grid other than the training grid is refused
        unless ``allow_other_grid`` (the stencil is in grid units, so the learned
        dynamics assume the training grid's cell size and time step).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        d = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - reported with the path
        with open(path, "rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
        what = "a damaged or truncated torch file" if zipped else "not a torch file"
        raise CheckpointError(f"{path} is not an mlscam checkpoint ({what}: {type(e).__name__}: {e}); "
                              "name a .pt file written by mlscam.train or mlscam.checkpoint export") from e
    if not isinstance(d, dict):
        raise CheckpointError(f"{path} is not an mlscam checkpoint (a torch file holding a {type(d).__name__}, "
                              "not a dict); name a .pt file written by mlscam.train or mlscam.checkpoint export")
    if "format_version" not in d:
        raise CheckpointError(f"{path} is not an mlscam checkpoint (a torch file without 'format_version'); name "
                              "a .pt file written by mlscam.train or mlscam.checkpoint export")
    d = _upgrade(d)
    missing = [k for k in ("config", "layout", "normalization", "dt_seconds", "grid", "state_dict") if k not in d]
    if missing:
        raise CheckpointError(f"{path} is not an mlscam checkpoint (a torch file without {missing}); name a .pt "
                              "file written by mlscam.train or mlscam.checkpoint export")
    ckpt = Checkpoint(
        config=config_from_dict(d["config"]),
        layout=ColumnLayout.from_dict(d["layout"]),
        normalization=Normalization.from_dict(d["normalization"]),
        dt_seconds=float(d["dt_seconds"]),
        grid=LatLonGrid(tuple(d["grid"]["lat"]), tuple(d["grid"]["lon"])),
        state_dict=d["state_dict"],
        optimizer_state=d.get("optimizer_state"),
        scheduler_state=d.get("scheduler_state"),
        train_state=d.get("train_state"),
        metadata=d.get("metadata") or {},
        format_version=d["format_version"],
        correction=_read_correction(d.get("climate_correction"), path),
    )
    if expected_layout is not None and not ckpt.layout.same_as(expected_layout):
        raise CheckpointError(
            f"checkpoint {path} was trained on another column layout:\n"
            f"{ckpt.layout.describe_difference(expected_layout)}\n"
            "(checkpoint != data). Use data with the checkpoint's variables and levels, "
            "or train a model for this layout."
        )
    if grid is not None and grid != ckpt.grid and not allow_other_grid:
        raise CheckpointError(
            f"checkpoint {path} was trained on a {ckpt.grid.nlat}x{ckpt.grid.nlon} (lat x lon) grid, "
            f"but the run is on a {grid.nlat}x{grid.nlon} grid. The 3x3 stencil is in grid units, so the "
            "learned dynamics assume the training grid; to run it anyway set "
            "&rollout allow_other_grid = .true. (or pass allow_other_grid=True)."
        )
    return ckpt


def _read_correction(d, path) -> ClimateCorrection | None:
    """The checkpoint's climate correction (``mlscam.model.correction``), if it has one."""
    if d is None:
        return None
    try:
        return ClimateCorrection.from_dict(d)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its climate correction cannot be read ({type(err).__name__}: {err}); "
                              "estimate it again (python -m mlscam.train.correction)") from None


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (restart files record the checkpoint they belong to)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _generator_attributes(path: str) -> dict:
    """The generator's attributes (tool, seed, command line, ...) that a data file carries."""
    import netCDF4

    out: dict[str, Any] = {}
    with netCDF4.Dataset(path) as ds:
        for key in ("tool", "seed", "resolution", "days", "interval_hours", "command_line"):
            if key in ds.ncattrs():
                value = ds.getncattr(key)
                out[key] = value.item() if hasattr(value, "item") else value
    return out


def _provenance(patterns) -> dict:
    """Files and the generator's attributes (tool, seed, command line) of training data files: those of the
    first file at the top level, and with several files every file's under ``per_file``."""
    import glob

    paths = sorted(p for pattern in patterns for p in glob.glob(pattern))
    out: dict[str, Any] = {"files": [os.path.basename(p) for p in paths]}
    if paths:
        out.update(_generator_attributes(paths[0]))
    if len(paths) > 1:
        out["per_file"] = [{"file": os.path.basename(p), **_generator_attributes(p)} for p in paths]
    return out


def export_for_inference(src, dst, model_settings: dict[str, str] | None = None) -> Path:
    """Copy a training checkpoint without optimizer/scheduler state (a smaller file to ship), recording
    how it was trained in ``metadata['training']``: mode, steps, best validation loss, and the data files
    with their generator's attributes (e.g. the dynamical core's seed).

    ``model_settings``: ``{key: text}`` of ``&model`` runtime keys (``ModelConfig.RUNTIME_KEYS``: settings of
    the step that change no parameter, e.g. ``mass_fixer``) to set in the exported file's configuration; each
    change is recorded in ``metadata['export_settings']``."""
    ckpt = load_checkpoint(src)
    if model_settings:
        ckpt.config = _with_model_settings(ckpt.config, model_settings)
    ts = ckpt.train_state or {}
    data = ckpt.config.data
    ckpt.metadata = {
        **ckpt.metadata,
        "training": {
            "mode": ckpt.config.train.mode,
            "steps": ts.get("step"),
            "best_val_loss": ts.get("best_val"),  # the best of the selected_by metric
            "selected_by": ckpt.config.train.select_by,
            "data": _provenance(data.files),
            "val_data": _provenance(data.val_files),
        },
        "exported_from": os.path.basename(str(src)),
    }
    if model_settings:
        ckpt.metadata["export_settings"] = {f"model.{k}": v for k, v in model_settings.items()}
    ckpt.optimizer_state = ckpt.scheduler_state = ckpt.train_state = None
    return save_checkpoint(dst, ckpt)


def grow_checkpoint(src, dst, *, channel_hidden: int | None = None, mixer_blocks: int | None = None,
                    seed: int = 0) -> Path:
    """Write ``src``'s model grown to ``channel_hidden`` hidden units per mixer block and ``mixer_blocks`` blocks
    (``mlscam.model.grow``: the grown model computes what ``src`` does, up to rounding), as a file to start a
    training run from (``&train init_from``, with the same two ``&model`` values). The new units' input
    weights are drawn with ``seed``; optimizer state and training state are dropped; ``metadata['grown_from']``
    records the source and the two sizes."""
    from .model.grow import grow_conv_mixer

    ckpt = load_checkpoint(src)
    model_cfg = ckpt.config.model
    if model_cfg.mixer != "conv":
        raise CheckpointError(f"grow works on a conv mixer (&model mixer = 'conv'), {src} has {model_cfg.mixer!r}")
    hidden = model_cfg.channel_hidden if channel_hidden is None else int(channel_hidden)
    blocks = model_cfg.mixer_blocks if mixer_blocks is None else int(mixer_blocks)
    if hidden < model_cfg.channel_hidden or blocks < model_cfg.mixer_blocks:
        raise CheckpointError(f"grow only grows: {src} has channel_hidden {model_cfg.channel_hidden} and mixer_blocks "
                              f"{model_cfg.mixer_blocks}, asked for {hidden} and {blocks}")
    if (hidden, blocks) == (model_cfg.channel_hidden, model_cfg.mixer_blocks):
        raise CheckpointError(f"nothing to grow: {src} already has channel_hidden {hidden} and mixer_blocks {blocks}; "
                              "give a larger --channel-hidden or --mixer-blocks")
    from .config import apply_overrides

    config = apply_overrides(ckpt.config, [f"model.channel_hidden={hidden}", f"model.mixer_blocks={blocks}"])
    torch.manual_seed(seed)
    fresh = config.model.build(ckpt.layout).state_dict()
    try:
        ckpt.state_dict = grow_conv_mixer(ckpt.state_dict, fresh)
    except ValueError as err:
        raise CheckpointError(f"cannot grow {src}: {err}") from None
    ckpt.config = config
    ckpt.metadata = {**ckpt.metadata, "grown_from": {"file": os.path.basename(str(src)), "sha256": file_hash(src),
                                                     "channel_hidden": [model_cfg.channel_hidden, hidden],
                                                     "mixer_blocks": [model_cfg.mixer_blocks, blocks],
                                                     "seed": int(seed)}}
    ckpt.correction = None  # estimated for the weights it grew from: a start for training, estimate it again
    ckpt.optimizer_state = ckpt.scheduler_state = ckpt.train_state = None
    return save_checkpoint(dst, ckpt)


def blend_checkpoints(first, second, dst, *, weight: float) -> Path:
    """Write ``(1 - weight) * first + weight * second`` (``mlscam.model.blend``) with ``second``'s configuration
    (its ``&model`` runtime keys included), layout, grid and normalization, as a model to validate or to train
    from. The two files must hold the same architecture (the runtime keys may differ), grid, time step, layout
    and normalization statistics (one training data set); optimizer and training state are dropped;
    ``metadata['blended_from']`` records both files (name, SHA-256) and the weight."""
    from .model.blend import blend_state_dicts

    a, b = load_checkpoint(first), load_checkpoint(second)
    if not a.config.model.same_parameters(b.config.model):  # runtime keys (the step's settings) may differ
        da, db = config_to_dict(a.config)["model"], config_to_dict(b.config)["model"]
        runtime = type(a.config.model).RUNTIME_KEYS
        key = next(k for k in sorted(set(da) | set(db)) if k not in runtime and da.get(k) != db.get(k))
        raise CheckpointError(f"cannot blend {first} and {second}: &model {key} is {da.get(key)!r} in the first and "
                              f"{db.get(key)!r} in the second: only one architecture blends (a smaller mixer can "
                              "be grown first: python -m mlscam.checkpoint grow)")
    if a.layout.to_dict() != b.layout.to_dict() or (a.grid.nlat, a.grid.nlon) != (b.grid.nlat, b.grid.nlon) \
            or a.dt_seconds != b.dt_seconds:
        raise CheckpointError(f"cannot blend {first} and {second}: their column layout, grid or time step differ")
    na, nb = a.normalization, b.normalization
    same_stats = all(np.array_equal(getattr(na, f), getattr(nb, f))
                     for f in ("state_mean", "state_std", "tendency_mean", "tendency_std"))
    if not same_stats:
        raise CheckpointError(f"cannot blend {first} and {second}: their normalization statistics differ (they were "
                              "trained on different data); only models of one training data set blend")
    try:
        b.state_dict = blend_state_dicts(a.state_dict, b.state_dict, weight)
    except ValueError as err:
        raise CheckpointError(f"cannot blend {first} and {second}: {err}") from None
    b.metadata = {**b.metadata, "blended_from": {
        "first": {"file": os.path.basename(str(first)), "sha256": file_hash(first)},
        "second": {"file": os.path.basename(str(second)), "sha256": file_hash(second)},
        "weight_of_second": float(weight)}}
    b.correction = None  # estimated for other weights: estimate it again for the blend
    b.optimizer_state = b.scheduler_state = b.train_state = None
    return save_checkpoint(dst, b)


def _describe_correction(corr: ClimateCorrection | None) -> dict | None:
    """The climate correction in a few numbers (``info``): variables, provenance without its history, and each
    evaluation's bias and largest rate."""
    if corr is None:
        return None
    prov = {k: v for k, v in corr.provenance.items() if k != "history"}
    history = corr.provenance.get("history") or []
    return {"variables": list(corr.variables), "step_seconds": corr.step_seconds, "eddy_rate": corr.eddy_rate,
            "provenance": prov, "evaluations": [{k: h.get(k) for k in ("evaluation", "bias_rms", "max_abs_rate")}
                                                for h in history]}


def _with_model_settings(config: Config, settings: dict[str, str]) -> Config:
    """``config`` with ``&model`` runtime keys set from their text (validated like any namelist value)."""
    from .config import ConfigError, apply_overrides

    runtime = type(config.model).RUNTIME_KEYS
    bad = [k for k in settings if k not in runtime]
    if bad:
        raise CheckpointError(f"export can set only the &model runtime keys {list(runtime)} (they change no "
                              f"parameter); got {bad}: retrain to change the others")
    try:
        return apply_overrides(config, [f"model.{k}={v}" for k, v in settings.items()])
    except ConfigError as err:
        raise CheckpointError(str(err)) from None


def main(argv=None) -> int:
    import argparse
    import json
    import sys

    p = argparse.ArgumentParser(prog="python -m mlscam.checkpoint",
                                description="inspect or export mlscam checkpoints")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="drop optimizer state and record training provenance (for shipping)")
    e.add_argument("src")
    e.add_argument("dst")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a &model runtime key in the exported file (e.g. mass_fixer=true); repeatable")
    g = sub.add_parser("grow", help="a larger mixer (wider or more blocks) that computes what the checkpoint does, "
                                    "to train from (&train init_from)")
    g.add_argument("src")
    g.add_argument("dst")
    g.add_argument("--channel-hidden", type=int, help="hidden units per mixer block (at least the checkpoint's)")
    g.add_argument("--mixer-blocks", type=int, help="mixer blocks (at least the checkpoint's)")
    g.add_argument("--seed", type=int, default=0, help="seed of the new units' input weights (default 0)")
    b = sub.add_parser("blend", help="(1 - W) * FIRST + W * SECOND, tensor by tensor, for two models of one "
                                     "architecture (e.g. a stable model and its fine-tuned successor)")
    b.add_argument("first")
    b.add_argument("second")
    b.add_argument("dst")
    b.add_argument("--weight", type=float, required=True, help="W in [0, 1]: the share of SECOND")
    i = sub.add_parser("info", help="print what a checkpoint holds")
    i.add_argument("path")
    a = p.parse_args(argv)
    try:
        if a.cmd == "export":
            settings = {}
            for item in a.set:
                key, eq, value = item.partition("=")
                if not eq:
                    raise CheckpointError(f"--set {item!r}: give KEY=VALUE (e.g. mass_fixer=true)")
                settings[key.removeprefix("model.")] = value
            print(f"wrote {export_for_inference(a.src, a.dst, settings)}")
        elif a.cmd == "grow":
            out = grow_checkpoint(a.src, a.dst, channel_hidden=a.channel_hidden, mixer_blocks=a.mixer_blocks,
                                  seed=a.seed)
            print(f"wrote {out}")
        elif a.cmd == "blend":
            print(f"wrote {blend_checkpoints(a.first, a.second, a.dst, weight=a.weight)}")
        else:
            ck = load_checkpoint(a.path)
            print(json.dumps({"format_version": ck.format_version, "layout": ck.layout.to_dict(),
                              "grid": [ck.grid.nlat, ck.grid.nlon], "dt_seconds": ck.dt_seconds,
                              "model": config_to_dict(ck.config)["model"], "metadata": ck.metadata,
                              "resumable": ck.optimizer_state is not None,
                              "climate_correction": _describe_correction(ck.correction)}, indent=1, default=str))
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
