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


def _writer(path, calendar="noleap", lat_descending=False):
    t0 = cftime.datetime(2001, 2, 28, 18, calendar=calendar)
    return ForecastWriter(path, layout=LAYOUT, grid=GRID, initial_time=t0,
                          time_units="hours since 2001-01-01 00:00:00", calendar=calendar, attrs={"seed": 3},
                          lat_descending=lat_descending)


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


def test_lat_descending_writes_north_to_south_the_canonical_states(tmp_path):
    """States are given south to north (canonical); the file stores them north to south, bounds too."""
    x = np.random.default_rng(1).normal(size=(4, 8, LAYOUT.n_state)).astype(np.float32)
    with _writer(tmp_path / "f.nc", lat_descending=True) as w:
        w.write(6 * 3600.0, x)
    with xr.open_dataset(tmp_path / "f.nc") as ds:
        np.testing.assert_array_equal(ds.lat.values, GRID.lat_array()[::-1])
        assert ds.lat_bnds.values[0].tolist() == [90.0, 45.0] and ds.lat_bnds.values[-1].tolist() == [-45.0, -90.0]
        np.testing.assert_array_equal(ds.u.values[0], np.moveaxis(x[::-1, :, 0:2], -1, 0))
        np.testing.assert_array_equal(ds.surface_pressure.values[0], x[::-1, :, 4])


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


def test_sigma_coordinate_has_cf_formula_terms_for_pressure(tmp_path):
    """CF 4.3.3 atmosphere_sigma_coordinate: p = ptop + sigma * (ps - ptop) is computable from the file alone."""
    import netCDF4

    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 8, LAYOUT.n_state)).astype(np.float32)
    x[..., 4] = 1.0e5 + 100.0 * x[..., 4]
    with _writer(tmp_path / "f.nc") as w:
        w.write(6 * 3600.0, x)
    with netCDF4.Dataset(tmp_path / "f.nc") as ds:
        level = ds["level"]
        assert level.standard_name == "atmosphere_sigma_coordinate"
        assert level.units == "1" and level.positive == "down" and level.axis == "Z"
        assert level.computed_standard_name == "air_pressure"
        assert level.formula_terms == "sigma: level ps: surface_pressure ptop: ptop"
        terms = dict(zip(*[iter(level.formula_terms.replace(":", "").split())] * 2))
        sigma, ps, ptop = (ds[terms[k]] for k in ("sigma", "ps", "ptop"))
        assert ptop.dimensions == () and float(ptop[...]) == 0.0 and ptop.units == ps.units == "Pa"
        p = float(ptop[...]) + sigma[:][None, :, None, None] * (ps[:][:, None] - float(ptop[...]))
        assert p.shape == (1, 2, 4, 8)
        np.testing.assert_allclose(p[0, 1], 0.75 * x[..., 4], rtol=1e-6)


def test_without_surface_pressure_level_has_no_formula_terms(tmp_path):
    import netCDF4

    layout = ColumnLayout(("u",), (), (0.25, 0.75), units={"u": "m s-1"})
    t0 = cftime.datetime(2001, 1, 1, calendar="noleap")
    with ForecastWriter(tmp_path / "f.nc", layout=layout, grid=GRID, initial_time=t0,
                        time_units="hours since 2001-01-01 00:00:00", calendar="noleap") as w:
        w.write(3600.0, np.zeros((4, 8, layout.n_state), np.float32))
    with netCDF4.Dataset(tmp_path / "f.nc") as ds:
        assert ds["level"].standard_name == "atmosphere_sigma_coordinate"
        assert "formula_terms" not in ds["level"].ncattrs() and "ptop" not in ds.variables


@pytest.mark.parametrize("lat_descending", [False, True])
def test_ioos_compliance_checker_finds_no_cf18_errors(tmp_path, lat_descending):
    """``compliance-checker --test=cf:1.8`` (the ``test`` extra): no error and no warning on a forecast,
    latitude either way."""
    pytest.importorskip("compliance_checker")
    import json

    from compliance_checker.runner import CheckSuite, ComplianceChecker

    with _writer(tmp_path / "f.nc", lat_descending=lat_descending) as w:
        w.write(6 * 3600.0, np.full((4, 8, LAYOUT.n_state), 1.0, np.float32))
    CheckSuite.load_all_available_checkers()
    report = tmp_path / "cc.json"
    passed, _ = ComplianceChecker.run_checker(str(tmp_path / "f.nc"), ["cf:1.8"], 0, "strict",
                                              output_filename=str(report), output_format="json")
    result = json.loads(report.read_text())["cf:1.8"]
    assert (result["high_count"], result["medium_count"]) == (0, 0), result["high_priorities"] + result["medium_priorities"]
    assert passed
