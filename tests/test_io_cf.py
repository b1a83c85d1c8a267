"""The one CF writer core (mlscam.io.cf) and the writers built on it."""
import doctest

import cftime
import netCDF4
import numpy as np
import pytest
import xarray as xr

import mlscam.io.cf as cf
from mlscam.datagen.cf_writer import CFStateWriter
from mlscam.grid import LatLonGrid
from mlscam.io import ForecastWriter
from mlscam.layout import ColumnLayout

GRID = LatLonGrid.equiangular(4, 8)
LAYOUT = ColumnLayout(("u", "v", "temperature"), ("surface_pressure",), (0.25, 0.75),
                      units={"u": "m s-1", "v": "m s-1", "temperature": "K", "surface_pressure": "Pa"})


def test_doctests_pass():
    assert doctest.testmod(cf).failed == 0


def test_table_attributes_come_first_then_writer_specific_ones():
    attrs = cf.cf_attributes("level", bounds="level_bnds", long_name="sigma at layer midpoints")
    assert list(attrs) == ["standard_name", "long_name", "units", "positive", "axis", "bounds"]
    assert attrs["long_name"] == "sigma at layer midpoints" and attrs["positive"] == "down"
    assert cf.cf_attributes("u", "km h-1")["units"] == "km h-1"
    assert cf.cf_attributes("u")["units"] == "m s-1"


def _forecast(path):
    t0 = cftime.datetime(2000, 1, 1, calendar="360_day")
    with ForecastWriter(path, layout=LAYOUT, grid=GRID, initial_time=t0, time_units="hours since 2000-01-01",
                        calendar="360_day") as w:
        w.write(3600.0, np.zeros((4, 8, LAYOUT.n_state)))


def _training_data(path):
    sb = np.linspace(0.0, 1.0, 3)
    with CFStateWriter(path, GRID, 0.5 * (sb[1:] + sb[:-1]), sb, time_units="hours since 2000-01-01 00:00:00",
                       calendar="360_day", global_attrs={}) as w:
        w.append(0.0, {"u": np.zeros((2, 4, 8)), "v": np.zeros((2, 4, 8)), "temperature": np.zeros((2, 4, 8)),
                       "surface_pressure": np.zeros((4, 8))})
        w.commit()


def test_forecasts_and_training_data_carry_the_same_cf_attributes(tmp_path):
    """The drift this core removes: a forecast and the data it was trained on describe a variable alike."""
    _forecast(tmp_path / "f.nc")
    _training_data(tmp_path / "d.nc")
    with netCDF4.Dataset(tmp_path / "f.nc") as f, netCDF4.Dataset(tmp_path / "d.nc") as d:
        for name in ("u", "v", "temperature", "surface_pressure", "lat", "lon"):
            for key in ("standard_name", "long_name", "units"):
                assert f[name].getncattr(key) == d[name].getncattr(key) == cf.CF_ATTRIBUTES[name][key], (name, key)
        assert f.Conventions == d.Conventions == cf.CONVENTIONS


def test_atomic_dataset_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "x.nc"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with cf.atomic_dataset(path) as ds:
            cf.add_dimensions(ds, {"lat": 4})
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.nc"]
    with cf.atomic_dataset(path) as ds:
        cf.add_dimensions(ds, {"lat": 4, "lon": 8})
        cf.add_lat_lon(ds, GRID, bounds_dim=None)
    with netCDF4.Dataset(path) as ds:
        np.testing.assert_array_equal(ds["lat"][:], GRID.lat_array())
        assert ds["lon"].axis == "X"


def test_to_netcdf_atomic_compresses_every_data_variable(tmp_path):
    ds = xr.Dataset({"a": (("x",), np.arange(5.0, dtype=np.float32)), "b": (("x",), np.ones(5))})
    cf.to_netcdf_atomic(ds, tmp_path / "o.nc", complevel=4)
    with netCDF4.Dataset(tmp_path / "o.nc") as out:
        assert out["a"].filters()["complevel"] == 4 and out["b"].filters()["zlib"]
        np.testing.assert_array_equal(out["a"][:], np.arange(5.0))
    assert [p.name for p in tmp_path.iterdir()] == ["o.nc"]
