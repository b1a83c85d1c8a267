"""&train mirror: hemispheric mirror augmentation of whole-globe training windows (serial and per tile)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mlscam.config import DataConfig, TrainConfig
from mlscam.data.source import open_source
from mlscam.grid import LatLonGrid
from mlscam.parallel import Decomposition, HaloPlan
from mlscam.parallel.context import TileContext
from mlscam.train.batches import GlobalBatches, TiledGlobalBatches, batch_rng, mirror_channels
from synthetic import canonical_state, make_fields, write_file

sys.path.insert(0, str(Path(__file__).resolve().parent / "mpi"))
import tileparallel_case as case  # noqa: E402

GRID = LatLonGrid.equiangular(4, 8)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    fields = make_fields(6, GRID, 3, seed=4)
    path = tmp_path_factory.mktemp("mirror") / "d.nc"
    write_file(path, fields, GRID, [6.0 * n for n in range(6)], levels=[0.2, 0.5, 0.9])
    return str(path), canonical_state(fields)


def _source(path):
    return open_source(DataConfig(files=(path,), time_step_hours=6.0))


def _mirror(x, negate):
    y = x[:, ::-1].copy()  # [k+1, lat, lon, S]: north and south swap
    y[..., negate] *= -1.0
    return y


def test_mirrored_windows_are_the_flipped_globe_with_v_negated(data):
    path, x = data
    with _source(path) as src:
        negate = mirror_channels(src.layout, ("v",))
        assert negate.tolist() == [3, 4, 5]  # v's three levels follow u's
        serial = TileContext.serial(GRID.nlat, GRID.nlon)
        plain = TiledGlobalBatches(src, serial, steps=2, batch_size=8, seed=1)
        mirrored = TiledGlobalBatches(src, serial, steps=2, batch_size=8, seed=1, negate=negate)
        for step in range(3):
            times, flips = mirrored.draw(step)
            np.testing.assert_array_equal(times, plain.times(step))  # the same times with or without mirroring
            assert not plain.draw(step)[1].any()
            got = mirrored(step)["x"].numpy()
            for t, f, w in zip(times, flips, got):
                want = x[t:t + 3]
                np.testing.assert_array_equal(w, _mirror(want, negate) if f else want)
        flips = np.concatenate([mirrored.draw(s)[1] for s in range(50)])
        assert 0.35 < flips.mean() < 0.65  # about half the windows


def test_each_tile_reads_its_part_of_the_mirrored_globe(data):
    path, _ = data
    with _source(path) as src:
        negate = mirror_channels(src.layout, ("v",))
        whole = TiledGlobalBatches(src, TileContext.serial(GRID.nlat, GRID.nlon), steps=1, batch_size=6, seed=2,
                                   negate=negate)(0)["x"].numpy()
        d = Decomposition.cartesian(GRID.nlat, GRID.nlon, 4, (2, 2))
        for r in range(4):
            ctx = TileContext(comm=case.RankOnly(r, 4), decomposition=d, plan=HaloPlan.build(d, r), exchange=None)
            t = ctx.tile
            part = TiledGlobalBatches(src, ctx, steps=1, batch_size=6, seed=2, negate=negate)(0)["x"].numpy()
            np.testing.assert_array_equal(part, whole[:, :, t.lat0:t.lat1, t.lon0:t.lon1])


def test_mirror_settings_are_checked(data):
    path, _ = data
    with _source(path) as src, pytest.raises(ValueError, match=r"mirror_negate names \['vv'\]"):
        mirror_channels(src.layout, ("vv",))
    with pytest.raises(ValueError, match="mirror"):
        TrainConfig(mode="single_column", mirror=True)
    TrainConfig(mode="global_rollout", mirror=True)  # fine


def test_serial_draws_match_the_old_sampler(data):
    path, _ = data
    with _source(path) as src:
        b = GlobalBatches(src, steps=1, batch_size=5, seed=7)
        np.testing.assert_array_equal(b.times(3), batch_rng(7, 3, 0).integers(0, 5, size=5))
