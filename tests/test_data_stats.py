"""mlscam.data.stats: streaming statistics equal numpy's; NetCDF round trip; layout check."""
from __future__ import annotations

import netCDF4
import numpy as np
import pytest

from mlscam.config import DataConfig
from mlscam.data.errors import DataError
from mlscam.data.source import open_source
from mlscam.data.stats import compute_stats, load_stats, run, write_stats
from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout
from mlscam.normalization import Normalization
from synthetic import canonical_state, make_fields, write_file

GRID = LatLonGrid.equiangular(4, 8)


def _two_files(tmp_path):
    xs = []
    for n, t0 in enumerate((0.0, 24.0)):
        f = make_fields(4, GRID, 3, seed=n)
        write_file(tmp_path / f"s{n}.nc", f, GRID, [t0 + 6.0 * k for k in range(4)], levels=[0.2, 0.5, 0.9], flip_lat=True)
        xs.append(canonical_state(f))
    return np.concatenate(xs).astype(np.float64)  # [8, nlat, nlon, n_state]


def test_stats_equal_numpy(tmp_path):
    x = _two_files(tmp_path)
    with open_source(DataConfig(files=(str(tmp_path / "s*.nc"),))) as src:
        norm, extras = compute_stats(src, progress=False)
    flat = x.reshape(-1, x.shape[-1])
    dx = (x[1:] - x[:-1]).reshape(-1, x.shape[-1])  # tendencies cross the file boundary too
    np.testing.assert_allclose(norm.state_mean, flat.mean(0), rtol=1e-6)
    np.testing.assert_allclose(norm.state_std, flat.std(0), rtol=1e-6)
    np.testing.assert_allclose(norm.tendency_mean, dx.mean(0), rtol=1e-6)
    np.testing.assert_allclose(norm.tendency_std, dx.std(0), rtol=1e-6)
    assert extras["state_count"] == 8 * 32 and extras["tendency_count"] == 7 * 32
    np.testing.assert_array_equal(extras["state_max"], flat.max(0))


def test_write_load_round_trip_and_file_layout(tmp_path):
    _two_files(tmp_path)
    cfg = DataConfig(files=(str(tmp_path / "s*.nc"),), stats_path=str(tmp_path / "out" / "stats.nc"))
    norm = run(cfg, progress=False)
    with open_source(cfg) as src:
        layout = src.layout
    back = load_stats(cfg.stats_path, layout)
    for f in ("state_mean", "state_std", "tendency_mean", "tendency_std"):
        np.testing.assert_array_equal(getattr(back, f), getattr(norm, f))
    with netCDF4.Dataset(cfg.stats_path) as ds:
        assert ds["temperature_state_mean"].dimensions == ("level",)
        assert ds["temperature_state_mean"].units == "K"
        assert ds["surface_pressure_state_std"].dimensions == ()
        np.testing.assert_array_equal(ds["temperature_state_mean"][:], norm.state_mean[6:9])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["stats.nc"]  # no temporary left


def test_load_stats_refuses_other_layout(tmp_path):
    layout = ColumnLayout(("u",), ("ps",), (0.5, 0.9))
    write_stats(tmp_path / "st.nc", Normalization.identity(3), layout)
    other = ColumnLayout(("u",), ("ps",), (0.4, 0.9))
    with pytest.raises(DataError, match=r"another layout.*levels \[0\.5, 0\.9\].*\[0\.4, 0\.9\]"):
        load_stats(str(tmp_path / "st.nc"), other)


def test_constant_channel_is_a_clear_error(tmp_path):
    f = make_fields(3, GRID, 3, seed=0)
    f["surface_pressure"][:] = 1e5
    write_file(tmp_path / "c.nc", f, GRID, [0.0, 6.0, 12.0], levels=[0.2, 0.5, 0.9])
    with open_source(DataConfig(files=(str(tmp_path / "c.nc"),))) as src:
        with pytest.raises(DataError, match=r"state standard deviation is 0 for channels \['surface_pressure'\]"):
            compute_stats(src, progress=False)


def test_a_nan_names_file_variable_level_and_time_and_writes_nothing(tmp_path, capsys):
    from mlscam.data.stats import main

    good, bad = make_fields(3, GRID, 3, seed=0), make_fields(4, GRID, 3, seed=1)
    bad["temperature"][2, 1, 3, 5] = np.nan  # time 2 of the second file, level 1
    bad["temperature"][3, 0, 0, 0] = np.nan  # a later time: not the first
    write_file(tmp_path / "a.nc", good, GRID, [0.0, 6.0, 12.0], levels=[0.2, 0.5, 0.9])
    write_file(tmp_path / "b.nc", bad, GRID, [18.0, 24.0, 30.0, 36.0], levels=[0.2, 0.5, 0.9])
    nml = tmp_path / "s.nml"
    nml.write_text(f"&data\n  files = '{tmp_path / 'a.nc'}', '{tmp_path / 'b.nc'}'\n"
                   f"  stats_path = '{tmp_path / 'st.nc'}'\n/\n&output\n  progress = .false.\n/\n")
    assert main([str(nml)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'b.nc'}: temperature at level index 1 (sigma 0.5) ")
    assert "at time index 2 " in err and "1 value(s)" in err and "Traceback" not in err
    assert f"lat {GRID.lat_array()[3]:g}, lon {GRID.lon_array()[5]:g}" in err
    assert "No statistics file was written" in err
    assert not (tmp_path / "st.nc").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc", "b.nc", "s.nml"]


def test_an_unwritable_stats_path_fails_before_reading_the_data(tmp_path, capsys, monkeypatch):
    import mlscam.data.stats as stats_mod

    _two_files(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    read = []
    monkeypatch.setattr(stats_mod, "compute_stats", lambda *a, **k: read.append(1))
    nml = tmp_path / "s.nml"
    nml.write_text(f"&data\n  files = '{tmp_path / 's*.nc'}'\n  stats_path = '{tmp_path / 'file.txt/sub/st.nc'}'\n"
                   "/\n&output\n  progress = .false.\n/\n")
    assert stats_mod.main([str(nml)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: &data stats_path = ") and "cannot be written" in err and "Traceback" not in err
    assert "set &data stats_path to a file in a writable place" in err
    assert read == []  # nothing computed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "s.nml", "s0.nc", "s1.nc"]
