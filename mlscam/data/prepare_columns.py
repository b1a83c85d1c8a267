"""``python -m mlscam.data.prepare_columns NAMELIST [--set group.key=value ...]``.

Cuts, for every time ``t`` but the last, the 3x3 tiles at ``t`` with their
centre column at ``t+1`` (all columns, or ``data.columns_per_time`` drawn with
``data.seed``) into shards under ``data.columns_dir`` (see
:mod:`mlscam.data.columns`).
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from mlscam.config import DataConfig
from mlscam.data.columns import ShardWriter, cut_tiles, select_columns
from mlscam.data.errors import DataError
from mlscam.data.source import DataSource, open_source

__all__ = ["prepare_columns", "write_columns", "main"]

DEFAULT_SHARD_SIZE = 65536


def write_columns(source: DataSource, directory: str, *, columns_per_time: int = 0, seed: int = 0,
                  shard_size: int = DEFAULT_SHARD_SIZE, progress: bool = True) -> dict:
    """Cut tiles from ``source`` into shards in ``directory``; returns the manifest."""
    if source.ntime < 2:
        raise DataError(f"column tiles need at least 2 times (t and t+1), the files have {source.ntime}")
    grid = source.grid
    rng = np.random.default_rng(seed)
    static = source.static()
    writer = ShardWriter(directory, shard_size)
    x_next, t_next = None, -1
    for t in tqdm(source.window_starts(1).tolist(), desc="columns", disable=not progress, unit="time"):
        # pairs (t, t+1) inside one trajectory; the state read as t+1 is reused as the next t
        x_t = x_next if t == t_next else source.read(t)
        x_next, t_next = source.read(t + 1), t + 1
        writer.add(cut_tiles(x_t, x_next, static, grid, select_columns(grid.ncol, columns_per_time, rng), t))
    return writer.close({
        "layout": source.layout.to_dict(),
        "grid": {"lat": list(grid.lat), "lon": list(grid.lon)},
        "dt_seconds": source.dt_seconds,
        "time_units": source.time_units,
        "calendar": source.calendar,
        "ntime": source.ntime,
        "columns_per_time": int(columns_per_time),
        "seed": int(seed),
        "source_files": list(source.paths),
    })


def prepare_columns(data_cfg: DataConfig, *, shard_size: int = DEFAULT_SHARD_SIZE, progress: bool = True) -> dict:
    """Cut the tiles of ``data_cfg.files`` into ``data_cfg.columns_dir``; returns the manifest."""
    if not data_cfg.columns_dir:
        raise DataError("data.columns_dir is empty; set where the column shards go")
    with open_source(data_cfg) as src:
        return write_columns(src, data_cfg.columns_dir, columns_per_time=data_cfg.columns_per_time,
                             seed=data_cfg.seed, shard_size=shard_size, progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    from mlscam.data.cli import run_data_command

    def work(cfg, data_cfg) -> str:
        manifest = prepare_columns(data_cfg, progress=cfg.output.progress)
        return f"wrote {manifest['count']} tiles in {len(manifest['shards'])} shards to {data_cfg.columns_dir}"

    return run_data_command("python -m mlscam.data.prepare_columns", "cut 3x3 training tiles into data.columns_dir",
                            argv, work)


if __name__ == "__main__":
    sys.exit(main())
