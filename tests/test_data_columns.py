"""mlscam.data.columns / prepare_columns: shards hold exactly the tiles of the global stencil."""
from __future__ import annotations

import os

import numpy as np
import pytest

from mlscam.config import DataConfig
from mlscam.data.columns import load_shard, read_manifest
from mlscam.data.errors import DataError
from mlscam.data.prepare_columns import prepare_columns
from mlscam.grid import LatLonGrid
from synthetic import canonical_state, make_fields, write_file

GRID = LatLonGrid.equiangular(4, 8)


def _cfg(tmp_path, **kw):
    f = make_fields(5, GRID, 3, seed=3)
    # stored with descending latitude and -180..180 longitude: the shards must still be canonical
    write_file(tmp_path / "d.nc", f, GRID, [6.0 * n for n in range(5)], levels=[0.2, 0.5, 0.9], flip_lat=True, lon_from_minus180=True)
    cfg = DataConfig(files=(str(tmp_path / "d.nc"),), columns_dir=str(tmp_path / "cols"),
                     static_features=("sin_lat", "cos_lat", "sin_lon"), **kw)
    return cfg, canonical_state(f)


def _all_tiles(directory):
    m = read_manifest(directory)
    shards = [load_shard(directory, s) for s in m["shards"]]
    return m, {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}


def test_all_columns_equal_global_stencil_gather(tmp_path):
    cfg, x = _cfg(tmp_path)
    manifest = prepare_columns(cfg, shard_size=50, progress=False)
    m, tiles = _all_tiles(cfg.columns_dir)
    assert m == manifest and m["count"] == 4 * GRID.ncol and [s["count"] for s in m["shards"]] == [50, 50, 28]
    st = GRID.stencil()
    feats = GRID.static_features()
    static = np.stack([feats[k] for k in ("sin_lat", "cos_lat", "sin_lon")], -1).reshape(GRID.ncol, 3)
    for t in range(4):
        rows = tiles["time_index"] == t
        cols = tiles["j"][rows] * GRID.nlon + tiles["i"][rows]
        np.testing.assert_array_equal(cols, np.arange(GRID.ncol))
        flat_t, flat_n = x[t].reshape(GRID.ncol, -1), x[t + 1].reshape(GRID.ncol, -1)
        np.testing.assert_array_equal(tiles["x_tile"][rows], flat_t[st.index])
        np.testing.assert_array_equal(tiles["crossed"][rows], st.crossed_pole)
        np.testing.assert_array_equal(tiles["x_next_centre"][rows], flat_n)
        np.testing.assert_allclose(tiles["static_tile"][rows], static[st.index], rtol=1e-6, atol=1e-7)
    assert tiles["x_tile"].dtype == np.float32 and tiles["x_tile"].shape == (128, 9, 10)
    # the pole rows carry crossed flags on their outer tokens only
    assert tiles["crossed"][(tiles["j"] == 0)][:, :3].all() and not tiles["crossed"][(tiles["j"] == 0)][:, 3:].any()


def test_random_columns_are_seeded_and_manifest_complete(tmp_path):
    cfg, x = _cfg(tmp_path, columns_per_time=5, seed=7)
    prepare_columns(cfg, progress=False)
    m, a = _all_tiles(cfg.columns_dir)
    assert m["count"] == 20 and m["seed"] == 7 and m["columns_per_time"] == 5
    assert m["layout"]["levels"] == [0.2, 0.5, 0.9] and m["grid"]["lat"] == list(GRID.lat)
    assert m["dt_seconds"] == 21600.0 and m["source_files"] == list(cfg.files)
    for t in range(4):
        assert len(set((a["j"] * 8 + a["i"])[a["time_index"] == t])) == 5  # drawn without replacement
    flat = x.reshape(5, GRID.ncol, -1)
    col = a["j"] * 8 + a["i"]
    np.testing.assert_array_equal(a["x_tile"], flat[a["time_index"][:, None], GRID.stencil().index[col]])
    prepare_columns(cfg, progress=False)
    _, b = _all_tiles(cfg.columns_dir)
    np.testing.assert_array_equal(a["x_tile"], b["x_tile"])  # same seed, same tiles
    other = DataConfig(**{**cfg.__dict__, "seed": 8, "columns_dir": str(tmp_path / "c8")})
    prepare_columns(other, progress=False)
    _, c = _all_tiles(other.columns_dir)
    assert not np.array_equal(a["j"] * 8 + a["i"], c["j"] * 8 + c["i"])
    assert not [f for f in os.listdir(cfg.columns_dir) if f.endswith(".tmp") or ".tmp." in f]


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"no manifest\.json in .*prepare_columns"):
        read_manifest(str(tmp_path))
