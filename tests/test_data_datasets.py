"""mlscam.data.datasets: global windows, shard tiles and on-the-fly tiles agree with the stencil."""
from __future__ import annotations

import numpy as np
import torch

from mlscam.config import DataConfig
from mlscam.data.datasets import ColumnTiles, GlobalWindows, OnTheFlyTiles
from mlscam.data.prepare_columns import prepare_columns
from mlscam.data.source import open_source
from mlscam.grid import LatLonGrid
from synthetic import canonical_state, make_fields, write_file

GRID = LatLonGrid.equiangular(4, 8)


def _cfg(tmp_path):
    f = make_fields(6, GRID, 3, seed=4)
    write_file(tmp_path / "d.nc", f, GRID, [6.0 * n for n in range(6)], levels=[0.2, 0.5, 0.9])
    return DataConfig(files=(str(tmp_path / "d.nc"),), columns_dir=str(tmp_path / "cols")), canonical_state(f)


def test_global_windows(tmp_path):
    cfg, x = _cfg(tmp_path)
    with open_source(cfg) as src:
        ds = GlobalWindows(src, k=2)
        assert len(ds) == 4
        item = ds[3]
        assert item.dtype == torch.float32 and tuple(item.shape) == (3, 4, 8, 10)
        np.testing.assert_array_equal(item.numpy(), x[3:6])


def test_on_the_fly_tiles_equal_prepared_tiles(tmp_path):
    cfg, x = _cfg(tmp_path)
    prepare_columns(cfg, shard_size=40, progress=False)
    shards = ColumnTiles(cfg.columns_dir)
    assert len(shards) == 5 * 32 and shards.layout.n_state == 10 and shards.grid == GRID
    by_key = {(int(shards[n]["time_index"]), int(shards[n]["j"]), int(shards[n]["i"])): n for n in range(len(shards))}
    with open_source(cfg) as src:
        fly = OnTheFlyTiles(src, seed=1, num_samples=25)
        again = OnTheFlyTiles(src, seed=1, num_samples=25)
        assert len(fly) == 25
        keys = []
        for n in range(len(fly)):
            a = fly[n]
            key = (int(a["time_index"]), int(a["j"]), int(a["i"]))
            keys.append(key)
            b = shards[by_key[key]]
            for k in ("x_tile", "static_tile", "crossed", "x_next_centre"):
                assert torch.equal(a[k], b[k]), k
            assert torch.equal(again[n]["x_tile"], a["x_tile"])  # seeded: same order
        assert len(set(keys)) == 25


def test_column_tiles_order_is_seeded_permutation(tmp_path):
    cfg, _ = _cfg(tmp_path)
    prepare_columns(cfg, shard_size=40, progress=False)
    ds = ColumnTiles(cfg.columns_dir)
    o = ds.order(seed=3, epoch=0)
    assert sorted(o.tolist()) == list(range(160))
    np.testing.assert_array_equal(o, ds.order(seed=3, epoch=0))
    assert not np.array_equal(o, ds.order(seed=3, epoch=1))
    assert set((o[:40] // 40).tolist()) == {o[0] // 40}  # one shard at a time
    batch = torch.utils.data.default_collate([ds[int(n)] for n in o[:4]])
    assert tuple(batch["x_tile"].shape) == (4, 9, 10) and batch["crossed"].dtype == torch.bool


def test_gather_gives_training_batches_in_requested_order(tmp_path):
    cfg, x = _cfg(tmp_path)
    prepare_columns(cfg, shard_size=40, progress=False)
    ds = ColumnTiles(cfg.columns_dir)
    idx = [150, 3, 41, 3, 80]  # across shards, unsorted, repeated
    batch = ds.gather(idx)
    assert set(batch) == {"x_tile", "static_tile", "crossed", "x_next", "time_index", "j", "i"}
    assert tuple(batch["x_tile"].shape) == (5, 9, 10) and tuple(batch["x_next"].shape) == (5, 10)
    for row, n in enumerate(idx):
        item = ds[n]
        assert torch.equal(batch["x_tile"][row], item["x_tile"]) and torch.equal(batch["x_next"][row], item["x_next_centre"])
        t, j, i = int(item["time_index"]), int(item["j"]), int(item["i"])
        np.testing.assert_array_equal(batch["x_next"][row].numpy(), x[t + 1, j, i])
    with open_source(cfg) as src:
        fly = OnTheFlyTiles(src, seed=0, num_samples=6)
        fb = fly.gather([5, 0])
        assert torch.equal(fb["x_tile"][1], fly[0]["x_tile"]) and torch.equal(fb["x_next"][0], fly[5]["x_next_centre"])


def test_centres_name_the_centre_column_of_each_tile(tmp_path):
    cfg, _ = _cfg(tmp_path)
    prepare_columns(cfg, shard_size=40, progress=False)
    shards = ColumnTiles(cfg.columns_dir)
    idx = np.array([3, 77, 41, 159, 0])
    want = [int(shards[n]["j"]) * GRID.nlon + int(shards[n]["i"]) for n in idx]
    assert shards.centres(idx).tolist() == want
    with open_source(cfg) as src:
        fly = OnTheFlyTiles(src, seed=2, num_samples=30)
        idx = np.arange(0, 30, 7)
        assert fly.centres(idx).tolist() == [int(fly[n]["j"]) * GRID.nlon + int(fly[n]["i"]) for n in idx]
