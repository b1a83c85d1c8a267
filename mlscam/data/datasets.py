"""Torch datasets for the one training loop.

* :class:`GlobalWindows` -- whole-globe windows ``x[t : t+k+1]`` (``global``, ``global_rollout``).
* :class:`ColumnTiles` -- prepared 3x3 tiles from shards (``single_column``).
* :class:`OnTheFlyTiles` -- the same tiles sampled directly from the files.

States are in physical units; normalisation happens in the model.  Tile items
are dicts with the shard keys of :mod:`mlscam.data.columns` (one tile each);
``gather(indices)`` returns the batch of the training loop's ``TileBatches``:
``x_tile [B, 9, S]``, ``static_tile [B, 9, F]``, ``crossed [B, 9]``,
``x_next [B, S]`` (the shards' ``x_next_centre``), ``time_index``, ``j``, ``i`` ``[B]``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from mlscam.data.columns import KEYS, load_shard, read_manifest
from mlscam.data.errors import DataError
from mlscam.data.source import DataSource
from mlscam.data.tiles import tile_cells
from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout

__all__ = ["GlobalWindows", "ColumnTiles", "OnTheFlyTiles", "to_batch"]


def to_batch(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Stacked tile arrays (shard keys) -> the training batch (``x_next_centre`` becomes ``x_next``)."""
    return {("x_next" if k == "x_next_centre" else k): torch.as_tensor(np.ascontiguousarray(v)) for k, v in arrays.items()}


class GlobalWindows(Dataset):
    """Item ``t``: states ``x[t : t+k+1]`` as float32 ``[k+1, nlat, nlon, n_state]`` (``k`` steps ahead)."""

    def __init__(self, source: DataSource, k: int = 1):
        if k < 1:
            raise ValueError(f"k (steps ahead) must be >= 1, got {k}")
        if source.ntime < k + 1:
            raise DataError(f"windows of {k + 1} times need at least {k + 1} times, the files have {source.ntime}")
        self.source, self.k = source, k

    def __len__(self) -> int:
        return self.source.ntime - self.k

    def __getitem__(self, t: int) -> torch.Tensor:
        if not 0 <= t < len(self):
            raise IndexError(f"window {t} outside 0..{len(self) - 1}")
        return torch.from_numpy(self.source.read_window(int(t), self.k + 1))


class ColumnTiles(Dataset):
    """Tiles from the shards of ``columns_dir`` (``python -m mlscam.data.prepare_columns``).

    Item: ``{x_tile [9, n_state], static_tile [9, n_static], crossed [9], x_next_centre [n_state],
    time_index [], j [], i []}``.  Shards are memory-mapped, so random access reads only the
    requested tiles.
    """

    def __init__(self, columns_dir: str):
        self.directory = columns_dir
        self.manifest = read_manifest(columns_dir)
        self.layout = ColumnLayout.from_dict(self.manifest["layout"])
        self.grid = LatLonGrid(tuple(self.manifest["grid"]["lat"]), tuple(self.manifest["grid"]["lon"]))
        self.dt_seconds = float(self.manifest["dt_seconds"])
        self._shards = [load_shard(columns_dir, s, mmap=True) for s in self.manifest["shards"]]
        self._starts = np.cumsum([0] + [s["count"] for s in self.manifest["shards"]])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, indices) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"tile indices must lie in 0..{len(self) - 1}, got {idx.min()}..{idx.max()}")
        shard = np.searchsorted(self._starts, idx, side="right") - 1
        return shard, idx - self._starts[shard]

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        (s,), (r,) = self._locate([n])
        return {k: torch.as_tensor(np.array(self._shards[s][k][r])) for k in KEYS}

    def gather(self, indices) -> dict[str, torch.Tensor]:
        """The training batch of tiles ``indices`` in the given order (see module docstring)."""
        shard, row = self._locate(indices)
        out = {k: np.empty((row.size, *self._shards[0][k].shape[1:]), self._shards[0][k].dtype) for k in KEYS}
        for s in np.unique(shard):
            sel = np.flatnonzero(shard == s)
            order = np.argsort(row[sel], kind="stable")  # ascending rows: sequential reads of the map
            for k in KEYS:
                out[k][sel[order]] = self._shards[s][k][row[sel][order]]
        return to_batch(out)

    def centres(self, indices) -> np.ndarray:
        """Global flat index ``j * nlon + i`` of the centre column of tiles ``indices`` (reads only j and i)."""
        indices = np.asarray(indices, dtype=np.int64)
        shard, row = self._locate(indices)
        nlon = self.grid.nlon
        out = np.empty(indices.size, np.int64)
        for s in np.unique(shard):
            sel = np.flatnonzero(shard == s)
            j, i = np.asarray(self._shards[s]["j"][row[sel]]), np.asarray(self._shards[s]["i"][row[sel]])
            out[sel] = j * nlon + i
        return out

    def order(self, seed: int, epoch: int = 0) -> np.ndarray:
        """A permutation of all items: shards in random order, tiles shuffled within each shard."""
        rng = np.random.default_rng([seed, epoch])
        out = [self._starts[s] + rng.permutation(self._starts[s + 1] - self._starts[s]) for s in rng.permutation(len(self._starts) - 1)]
        return np.concatenate(out) if out else np.zeros(0, np.int64)


class OnTheFlyTiles(Dataset):
    """Tiles read directly from the files: item ``n`` is the ``n``-th ``(t, column)`` of a seeded permutation.

    Items have the :class:`ColumnTiles` format; ``num_samples`` (default all
    ``(ntime-1) * ncol`` pairs, fewer with independent files) limits the length.
    """

    def __init__(self, source: DataSource, seed: int = 0, num_samples: int | None = None):
        self.source = source
        self._times = source.window_starts(1)  # t with t+1 in the same trajectory
        total = self._times.size * source.grid.ncol
        if total <= 0:
            raise DataError(f"column tiles need at least 2 times in one trajectory, the files have {source.ntime}")
        self._pairs = np.random.default_rng(seed).permutation(total)[: num_samples or total]
        self._static = source.static()

    def __len__(self) -> int:
        return int(self._pairs.size)

    def centres(self, indices) -> np.ndarray:
        """Global flat index ``j * nlon + i`` of the centre column of items ``indices`` (no file read)."""
        return self._pairs[np.asarray(indices, dtype=np.int64)] % self.source.grid.ncol

    def gather(self, indices) -> dict[str, torch.Tensor]:
        """The training batch of items ``indices`` (see module docstring)."""
        items = [self[int(n)] for n in indices]
        return to_batch({k: np.stack([it[k].numpy() for it in items]) for k in KEYS})

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        src, g = self.source, self.source.grid
        k, col = divmod(int(self._pairs[n]), g.ncol)
        t = int(self._times[k])
        j, i = divmod(col, g.nlon)
        jj, ii, crossed = tile_cells(g.nlat, g.nlon, (j, j + 1), (i, i + 1), halo=1)
        both = src.read_tile_window(t, 2, (j, j + 1), (i, i + 1), halo=1)  # [2, 3, 3, n_state] at t, t+1
        tile = np.ascontiguousarray(both[0].reshape(9, -1))  # token = 3*(dlat+1)+(dlon+1)
        nxt = np.ascontiguousarray(both[1, 1, 1])  # the centre column at t+1
        return {
            "x_tile": torch.from_numpy(tile),
            "static_tile": torch.from_numpy(self._static[jj, ii].reshape(9, -1)),
            "crossed": torch.from_numpy(crossed.reshape(9)),
            "x_next_centre": torch.from_numpy(nxt),
            "time_index": torch.tensor(t, dtype=torch.int64),
            "j": torch.tensor(j, dtype=torch.int64),
            "i": torch.tensor(i, dtype=torch.int64),
        }
