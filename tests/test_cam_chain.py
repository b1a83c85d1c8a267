"""The whole chain on a CAM history file (issue 14, items 1-3): statistics, training, rollout, evaluation.

A tiny CAM-style file (``U, V, T, PS`` on ``lev`` with ``hyam, hybm, P0``, latitude north to south,
6-hourly, noleap) is mapped to the model's names once, in the training namelist.  The rollout namelist
and the evaluate command line repeat nothing: the map and the level source travel in the checkpoint,
the forecast records them, the evaluation reads the truth with them.  The forecast keeps the file's
latitude order, and a south-to-north copy of the file gives the same numbers once flipped.
"""
from __future__ import annotations

import json

import netCDF4
import numpy as np
import pytest
import xarray as xr

from mlscam.checkpoint import load_checkpoint
from mlscam.data.stats import main as stats_main
from mlscam.evaluate.cli import main as evaluate_main
from mlscam.grid import LatLonGrid
from mlscam.rollout.__main__ import main as rollout_main
from mlscam.train.__main__ import main as train_main
from synthetic import make_fields, write_file

GRID = LatLonGrid.equiangular(6, 12)
HYAM, HYBM = np.array([0.1, 0.05, 0.0]), np.array([0.0, 0.4, 0.9])
SIGMA = HYAM + HYBM  # hyam * P0 / 1e5 + hybm with P0 = 1e5 Pa
NT = 8
VARIABLES = ("u", "v", "temperature", "surface_pressure")

TRAIN = """
&data files = '{d}/cam.h0.nc' variables_3d = 'u', 'v', 'temperature' variables_2d = 'surface_pressure'
      file_names_3d = 'U', 'V', 'T' file_names_2d = 'PS' stats_path = '{d}/stats.nc' /
&model latent_dim = 8 encoder_hidden = 16 decoder_hidden = 16 channel_hidden = 16 mixer_blocks = 1 heads = 2
       chunk_size = 32 /
&train mode = 'global' batch_size = 2 max_steps = 3 warmup_steps = 1 val_every = 0 checkpoint_every = 3
       checkpoint_dir = '{d}/ck' /
&parallel device = 'cpu' threads = 1 /
&output progress = .false. quicklook = .false. /
"""

ROLLOUT = """
&rollout checkpoint_path = '{d}/ck/last.pt' input_nc_path = '{d}/cam.h0.nc' output_nc_path = '{d}/forecast.nc'
         start_time = 2 num_steps = 4 output_every = 2 /
&parallel device = 'cpu' threads = 1 /
&output progress = .false. quicklook = .false. /
"""


def write_cam(path, fields, *, north_to_south: bool) -> str:
    write_file(path, fields, GRID, 0.25 * np.arange(NT), style="cam", hyam=HYAM, hybm=HYBM, p0=1e5,
               time_units="days since 0001-01-01 00:00:00", calendar="noleap", flip_lat=north_to_south)
    return str(path)


def flat(tree, key="") -> dict:
    """``{path: number}`` of a nested dict of numbers (None kept)."""
    if isinstance(tree, dict):
        return {k: v for name, sub in tree.items() for k, v in flat(sub, f"{key}/{name}").items()}
    return {key: tree}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    d = tmp_path_factory.mktemp("cam_chain")
    fields = make_fields(NT, GRID, len(SIGMA), seed=4)
    cam = write_cam(d / "cam.h0.nc", fields, north_to_south=True)
    flipped = write_cam(d / "cam_south_to_north.nc", fields, north_to_south=False)
    (d / "train.nml").write_text(TRAIN.format(d=d))
    (d / "rollout.nml").write_text(ROLLOUT.format(d=d))
    assert stats_main([str(d / "train.nml")]) == 0
    assert train_main([str(d / "train.nml")]) == 0
    assert rollout_main([str(d / "rollout.nml")]) == 0  # no &data: the names come from the checkpoint
    assert rollout_main([str(d / "rollout.nml"), "--input-nc-path", flipped,
                         "--output-nc-path", str(d / "forecast_sn.nc")]) == 0
    return {"dir": d, "cam": cam, "flipped": flipped, "forecast": str(d / "forecast.nc"),
            "forecast_sn": str(d / "forecast_sn.nc"), "ckpt": str(d / "ck" / "last.pt")}


def test_the_checkpoint_keeps_the_name_map_and_the_level_source(chain):
    ckpt = load_checkpoint(chain["ckpt"])
    data = ckpt.config.data
    assert (data.file_names_3d, data.file_names_2d) == (("U", "V", "T"), ("PS",))
    assert data.level_source == "hybrid"  # 'auto' as the reader resolved it
    np.testing.assert_allclose(ckpt.layout.levels, SIGMA)


def test_the_forecast_keeps_the_files_north_to_south_latitudes_and_records_the_names(chain):
    with netCDF4.Dataset(chain["cam"]) as src:
        file_lat = np.asarray(src["lat"][:])
    assert file_lat[0] > file_lat[-1]
    with xr.open_dataset(chain["forecast"]) as fc:
        np.testing.assert_array_equal(fc["lat"].values, file_lat)
        assert fc["lat_bnds"].values[0].tolist() == [90.0, float(np.mean(file_lat[:2]))]
        np.testing.assert_allclose(fc["level"].values, SIGMA)
        assert fc.attrs["input_file_names"] == "u=U v=V temperature=T surface_pressure=PS"
        assert fc.attrs["input_level_source"] == "hybrid"
        assert set(VARIABLES) <= set(fc.data_vars) and fc.sizes["time"] == 2


def test_a_south_to_north_copy_gives_the_same_numbers_once_flipped(chain):
    with xr.open_dataset(chain["forecast"]) as ns, xr.open_dataset(chain["forecast_sn"]) as sn:
        assert sn["lat"].values[0] < sn["lat"].values[-1]
        np.testing.assert_array_equal(sn["lat"].values[::-1], ns["lat"].values)
        for v in VARIABLES:
            assert np.all(np.isfinite(ns[v].values))
            np.testing.assert_array_equal(sn[v].isel(lat=slice(None, None, -1)).values, ns[v].values, err_msg=v)


def test_evaluate_reads_the_cam_truth_with_the_forecasts_record(chain, capsys):
    out, out_sn = chain["dir"] / "eval", chain["dir"] / "eval_sn"
    assert evaluate_main(["--forecast", chain["forecast"], "--truth", chain["cam"], "--out", str(out),
                          "--no-plots"]) == 0
    res = json.loads((out / "metrics.json").read_text())
    assert sorted(res["metrics"]) == sorted(VARIABLES)
    assert sorted(res["metrics"]["temperature"]) == sorted(f"{s:g}" for s in SIGMA)
    assert res["meta"]["lead_hours"] == [12.0, 24.0]
    # the south-to-north forecast against the north-to-south truth: the same scores (to rounding: the
    # sorted copy of a north-to-south field sums in another memory order)
    assert evaluate_main(["--forecast", chain["forecast_sn"], "--truth", chain["cam"], "--out", str(out_sn),
                          "--no-plots"]) == 0
    assert flat(json.loads((out_sn / "metrics.json").read_text())["metrics"]) == pytest.approx(
        flat(res["metrics"]), rel=1e-12, abs=1e-12)
    capsys.readouterr()


def test_evaluate_takes_the_map_from_the_checkpoint_or_says_how_to_give_it(chain, capsys):
    bare = chain["dir"] / "forecast_without_record.nc"
    with xr.open_dataset(chain["forecast"]) as fc:
        fc = fc.load()
    del fc.attrs["input_file_names"], fc.attrs["input_level_source"]
    fc.to_netcdf(bare)
    common = ["--forecast", str(bare), "--truth", chain["cam"], "--no-plots"]
    assert evaluate_main(common + ["--out", str(chain["dir"] / "e1"), "--checkpoint", chain["ckpt"]]) == 0
    assert evaluate_main(common + ["--out", str(chain["dir"] / "e2"),
                                   "--namelist", str(chain["dir"] / "train.nml")]) == 0
    capsys.readouterr()
    assert evaluate_main(common + ["--out", str(chain["dir"] / "e3")]) == 2
    err = capsys.readouterr().err
    for listed in ("T(time, lev, lat, lon)", "U(time, lev, lat, lon)", "V(time, lev, lat, lon)", "PS(time, lat, lon)",
                   "hyam(lev)", "--namelist", "--checkpoint"):
        assert listed in err, (listed, err)


def test_the_rollout_namelist_overrides_the_checkpoints_level_source(chain, capsys):
    # the synthetic file's lev coordinate has no units (1000 * sigma): read as the coordinate, the levels
    # differ from the checkpoint's, and the run says so instead of reading them as the checkpoint says
    status = rollout_main([str(chain["dir"] / "rollout.nml"), "--set", "data.level_source=coordinate",
                           "--output-nc-path", str(chain["dir"] / "never.nc")])
    assert status != 0
    assert "levels differ" in capsys.readouterr().err
    assert not (chain["dir"] / "never.nc").exists()
