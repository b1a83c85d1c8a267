"""Single-column training tiles: the 3x3 stencil tile at t and the centre column at t+1.

A tile is exactly what :meth:`mlscam.grid.LatLonGrid.stencil` gathers: token
order ``3*(dlat+1) + (dlon+1)``, longitude periodic, folded across the poles,
with the ``crossed`` flags.  A shard is one ``.npy`` file per array
(``shard_00000.x_tile.npy``, ...), so readers can memory-map them and draw
random tiles without loading whole shards:

* ``x_tile`` ``[n, 9, n_state]`` float32, states at ``t``
* ``static_tile`` ``[n, 9, n_static]`` float32
* ``crossed`` ``[n, 9]`` bool
* ``x_next_centre`` ``[n, n_state]`` float32, the centre column at ``t+1``
* ``time_index`` ``[n]`` int64 and ``j``, ``i`` ``[n]`` int64 (the centre column)

listed in ``manifest.json`` (written last: a directory without it is incomplete).
"""
from __future__ import annotations

import json
import os

import numpy as np

from mlscam.atomic import atomic_path
from mlscam.data.errors import DataError
from mlscam.grid import LatLonGrid

__all__ = ["MANIFEST", "FORMAT", "select_columns", "cut_tiles", "ShardWriter", "read_manifest", "load_shard"]

MANIFEST = "manifest.json"
FORMAT = "mlscam-columns-1"
KEYS = ("x_tile", "static_tile", "crossed", "x_next_centre", "time_index", "j", "i")


def select_columns(ncol: int, per_time: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted flat column indices: all of them (``per_time <= 0`` or ``>= ncol``) or ``per_time`` drawn without replacement."""
    if per_time <= 0 or per_time >= ncol:
        return np.arange(ncol, dtype=np.int64)
    return np.sort(rng.choice(ncol, size=per_time, replace=False)).astype(np.int64)


def cut_tiles(x_t: np.ndarray, x_next: np.ndarray, static: np.ndarray, grid: LatLonGrid, cols: np.ndarray, t: int) -> dict[str, np.ndarray]:
    """Tiles of ``cols`` from global fields.

    Args:
      x_t, x_next: ``[nlat, nlon, n_state]`` states at ``t`` and ``t+1``.
      static: ``[nlat, nlon, n_static]``.
      cols: ``[n]`` flat column indices ``j * nlon + i``.
    Returns the shard arrays (see module docstring) for these columns.
    """
    st = grid.stencil()
    idx = st.index[cols]  # [n, 9]
    flat = x_t.reshape(grid.ncol, -1)
    return {
        "x_tile": flat[idx].astype(np.float32),
        "static_tile": static.reshape(grid.ncol, -1)[idx].astype(np.float32),
        "crossed": st.crossed_pole[cols].copy(),
        "x_next_centre": x_next.reshape(grid.ncol, -1)[cols].astype(np.float32),
        "time_index": np.full(cols.shape, t, dtype=np.int64),
        "j": (cols // grid.nlon).astype(np.int64),
        "i": (cols % grid.nlon).astype(np.int64),
    }


class ShardWriter:
    """Buffers tiles and writes shards of ``shard_size`` tiles atomically into ``directory``."""

    def __init__(self, directory: str, shard_size: int):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.directory, self.shard_size = directory, shard_size
        self.shards: list[dict] = []
        self._buf: list[dict[str, np.ndarray]] = []
        self._n = 0
        os.makedirs(directory, exist_ok=True)

    def add(self, tiles: dict[str, np.ndarray]) -> None:
        self._buf.append(tiles)
        self._n += len(tiles["j"])
        while self._n >= self.shard_size:
            self._flush(self.shard_size)

    def _flush(self, n: int) -> None:
        merged = {k: np.concatenate([b[k] for b in self._buf]) for k in KEYS}
        name = f"shard_{len(self.shards):05d}"
        files = {k: f"{name}.{k}.npy" for k in KEYS}
        for k in KEYS:
            with atomic_path(os.path.join(self.directory, files[k]), ".npy") as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, np.ascontiguousarray(merged[k][:n]))
        self.shards.append({"name": name, "count": int(n), "files": files})
        rest = {k: v[n:] for k, v in merged.items()}
        self._buf = [rest] if len(rest["j"]) else []
        self._n -= n

    def close(self, manifest: dict) -> dict:
        """Write the last shard and ``manifest.json`` (after every shard); returns the manifest."""
        if self._n:
            self._flush(self._n)
        manifest = {**manifest, "format": FORMAT, "shards": self.shards,
                    "count": int(sum(s["count"] for s in self.shards))}
        with atomic_path(os.path.join(self.directory, MANIFEST), ".json") as tmp:
            with open(tmp, "w") as fh:
                json.dump(manifest, fh, indent=1)
        return manifest


def read_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        raise DataError(f"no {MANIFEST} in {directory}; create the shards with python -m mlscam.data.prepare_columns NAMELIST")
    with open(path) as fh:
        manifest = json.load(fh)
    if manifest.get("format") != FORMAT:
        raise DataError(f"{path} has format {manifest.get('format')!r}, expected {FORMAT!r}; re-run prepare_columns")
    return manifest


def load_shard(directory: str, entry: dict, mmap: bool = False) -> dict[str, np.ndarray]:
    """The arrays of one shard (memory-mapped read-only when ``mmap``)."""
    out = {}
    for k in KEYS:
        path = os.path.join(directory, entry["files"][k])
        if not os.path.exists(path):
            raise DataError(f"shard file {path} listed in {MANIFEST} is missing; re-run prepare_columns")
        out[k] = np.load(path, mmap_mode="r" if mmap else None)
        if out[k].shape[0] != entry["count"]:
            raise DataError(f"{path} holds {out[k].shape[0]} tiles, the manifest says {entry['count']}; re-run prepare_columns")
    return out
