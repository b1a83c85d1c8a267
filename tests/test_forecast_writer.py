import cftime
import numpy as np
import pytest
import xarray as xr

from mlscam.grid import LatLonGrid
from mlscam.io import ForecastWriter
from mlscam.layout import ColumnLayout

LAYOUT = ColumnLayout(("u", "temperature"), ("surface_pressure",), (0.25, 0.75),
                      units={"u": "m s-1", "temperature": "K", "surface_pressure": "Pa"})
GRID = LatLonGrid.equiangular(4, 8)


def _writer(path, calendar="noleap"):
    t0 = cftime.datetime(2001, 2, 28, 18, calendar=calendar)
    return ForecastWriter(path, layout=LAYOUT, grid=GRID, initial_time=t0,
                          time_units="hours since 2001-01-01 00:00:00", calendar=calendar, attrs={"seed": 3})


def test_cf_file_with_valid_times_in_the_calendar(tmp_path):
    rng = np.random.default_rng(0)
    states = [rng.normal(size=(4, 8, LAYOUT.n_state)).astype(np.float32) for _ in range(2)]
    with _writer(tmp_path / "f.nc") as w:
        for k, x in enumerate(states):
            w.write((k + 1) * 6 * 3600.0, x)
    ds = xr.open_dataset(tmp_path / "f.nc", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    # noleap: 2001-02-28 18:00 + 6 h = 2001-03-01 00:00 (no Feb 29 in any year)
    assert [str(t) for t in ds.time.values] == ["2001-03-01 00:00:00", "2001-03-01 06:00:00"]
    assert ds.time.values[0].calendar == "noleap"
    np.testing.assert_array_equal(ds.lead_time.values, [6.0, 12.0])
    assert ds.u.dims == ("time", "level", "lat", "lon")
    np.testing.assert_array_equal(ds.u.values[1], np.moveaxis(states[1][..., 0:2], -1, 0))
    np.testing.assert_array_equal(ds.surface_pressure.values[0], states[0][..., 4])
    assert ds.temperature.attrs["standard_name"] == "air_temperature"
    assert ds.temperature.attrs["units"] == "K"
    assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["seed"] == 3
    assert ds.lat.attrs["units"] == "degrees_north"


def test_an_interrupted_forecast_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        with _writer(tmp_path / "f.nc") as w:
            w.write(3600.0, np.zeros((4, 8, LAYOUT.n_state)))
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_wrong_shape_is_refused(tmp_path):
    w = _writer(tmp_path / "f.nc")
    with pytest.raises(ValueError, match=r"shape \(8, 4, 5\), expected \(4, 8, 5\)"):
        w.write(0.0, np.zeros((8, 4, 5)))
    w.abort()
