"""evaluate_forecast and ``python -m mlscam.evaluate`` on tiny synthetic NetCDF files."""
from __future__ import annotations

import csv
import datetime as dt
import json

import cftime
import numpy as np
import pytest
import xarray as xr

from mlscam.evaluate import EvaluationError, evaluate_forecast, open_dataset, series
from mlscam.evaluate.cli import main

LAT = np.array([-67.5, -22.5, 22.5, 67.5])
LON = np.arange(8) * 45.0
LEV = np.array([0.3, 0.8])
UNITS = "hours since 2000-01-01 00:00:00"


def truth_dataset(nt=6, calendar="noleap", seed=0) -> xr.Dataset:
    """Truth every 6 h: u, temperature [time, level, lat, lon], surface_pressure [time, lat, lon]."""
    rng = np.random.default_rng(seed)
    times = [cftime.datetime(2000, 1, 1, calendar=calendar) + dt.timedelta(hours=6 * k) for k in range(nt)]
    shape3, shape2 = (nt, 2, 4, 8), (nt, 4, 8)
    ds = xr.Dataset(
        {"u": (("time", "level", "lat", "lon"), 10 + rng.normal(size=shape3), {"units": "m s-1"}),
         "temperature": (("time", "level", "lat", "lon"), 250 + 5 * rng.normal(size=shape3), {"units": "K"}),
         "surface_pressure": (("time", "lat", "lon"), 1e5 + 100 * rng.normal(size=shape2), {"units": "Pa"})},
        coords={"time": times, "level": LEV, "lat": LAT, "lon": LON})
    return ds


def forecast_from(truth: xr.Dataset, start: int, n: int, offset: float = 0.0) -> xr.Dataset:
    """A forecast initialised at truth time ``start``: the truth plus ``offset`` at leads 0, 6, ... h."""
    fc = truth.isel(time=slice(start, start + n)) + offset
    for v in fc.data_vars:
        fc[v].attrs = truth[v].attrs
    fc = fc.assign_coords(lead_time=("time", 6.0 * np.arange(n), {"units": "hours"}))
    fc.attrs["initial_time"] = truth["time"].values[start].isoformat()
    return fc


def write(ds: xr.Dataset, path, calendar="noleap"):
    ds.to_netcdf(path, encoding={"time": {"units": UNITS, "calendar": calendar}})
    return path


def test_constant_offset_and_persistence_at_lead_zero():
    tr = truth_dataset()
    res = evaluate_forecast(forecast_from(tr, 1, 4, offset=0.5), tr, variables=["u", "surface_pressure"])
    lead, r = series(res, "u", 0.3, "rmse")
    np.testing.assert_array_equal(lead, [0, 6, 12, 18])
    np.testing.assert_allclose(r, 0.5, rtol=1e-12)
    np.testing.assert_allclose(series(res, "surface_pressure", None, "bias")[1], 0.5, rtol=1e-8)
    pers = res["metrics"]["u"]["0.8"]["rmse"]["persistence"]
    assert pers["0"] == 0.0 and pers["6"] > 0
    # persistence at lead 0 is the truth itself: ACC 1, CCC 1
    assert res["metrics"]["u"]["0.8"]["ccc"]["persistence"]["0"] == pytest.approx(1.0)
    assert res["metrics"]["u"]["0.8"]["acc"]["climatology"]["6"] is None
    assert "time mean of the truth" in res["meta"]["climatology"]
    # zonal-mean bias of a constant offset is the offset everywhere
    np.testing.assert_allclose(res["zonal_mean"]["u"]["bias"]["forecast"]["12"], 0.5, rtol=1e-12)


def test_climatology_baseline_uses_the_given_field():
    tr = truth_dataset()
    clim = tr.mean("time") * 0 + 1.0  # a constant climatology of 1
    res = evaluate_forecast(forecast_from(tr, 0, 3), tr, climatology=clim, variables=["temperature"], levels=[0.8])
    assert list(res["metrics"]["temperature"]) == ["0.8"]
    t = tr["temperature"].isel(time=2, level=1)
    from mlscam.evaluate import area_weights
    expect = float(np.sqrt(((1.0 - t) ** 2).weighted(area_weights(LAT, LON)).mean()))
    assert res["metrics"]["temperature"]["0.8"]["rmse"]["climatology"]["12"] == pytest.approx(expect, rel=1e-12)


def test_cli_end_to_end(tmp_path, capsys):
    tr = truth_dataset(calendar="360_day")
    tpath = write(tr, tmp_path / "truth.nc", "360_day")
    f1 = write(forecast_from(tr, 0, 4, offset=0.25), tmp_path / "f1.nc", "360_day")
    f2 = write(forecast_from(tr, 2, 3, offset=-0.25), tmp_path / "f2.nc", "360_day")
    out = tmp_path / "out" / "eval"
    assert main(["--forecast", str(f1), str(f2), "--truth", str(tpath), "--out", str(out),
                 "--variables", "u", "surface_pressure"]) == 0
    names = ["metrics.json", "metrics.csv", "skill_u.png", "zonal_mean_u.png", "spectra_u.png",
             "skill_surface_pressure.png", "zonal_mean_surface_pressure.png", "spectra_surface_pressure.png",
             "map_u.png"]
    for n in names:
        assert (out / n).stat().st_size > 0, n
    assert not list(out.glob(".*part"))
    with open(out / "metrics.json") as f:
        js = json.load(f)
    assert js["meta"]["n_forecasts"] == {"0": 2, "6": 2, "12": 2, "18": 1}
    # one number against the API: file 2 alone at lead 18 h is f1 alone
    api = evaluate_forecast(open_dataset(f1), open_dataset(tpath), variables=["u"])
    assert js["metrics"]["u"]["0.3"]["acc"]["forecast"]["18"] == api["metrics"]["u"]["0.3"]["acc"]["forecast"]["18"]
    # averaged over the two forecasts: offsets +-0.25 -> RMSE 0.25 (float32 file), bias 0
    assert js["metrics"]["u"]["0.8"]["rmse"]["forecast"]["6"] == pytest.approx(0.25, rel=1e-5)
    assert js["metrics"]["u"]["0.8"]["bias"]["forecast"]["6"] == pytest.approx(0.0, abs=1e-5)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert set(rows[0]) == {"variable", "level", "metric", "lead_hours", "source", "value"}
    row = [r for r in rows if (r["variable"], r["level"], r["metric"], r["lead_hours"], r["source"])
           == ("u", "0.8", "rmse", "6", "forecast")]
    assert len(row) == 1 and float(row[0]["value"]) == js["metrics"]["u"]["0.8"]["rmse"]["forecast"]["6"]
    assert {r["source"] for r in rows} == {"forecast", "persistence", "climatology"}
    printed = capsys.readouterr().out
    assert "time mean of the truth file" in printed


def test_lead_times_from_forecast_reference_time_and_timedelta():
    tr = truth_dataset()
    fc = forecast_from(tr, 2, 3)
    del fc.attrs["initial_time"]
    fc = fc.assign_coords(lead_time=("time", np.array([0, 6, 12], "timedelta64[h]").astype("timedelta64[ns]")))
    res = evaluate_forecast(fc, tr, variables=["u"])
    assert res["meta"]["lead_hours"] == [0.0, 6.0, 12.0]
    assert res["meta"]["initial_times"] == [str(tr["time"].values[2])]


def test_missing_variable_lists_the_files_variables():
    tr = truth_dataset()
    with pytest.raises(EvaluationError, match=r"\['vorticity'\] are not fields of the forecast.*'u', 'temperature'"):
        evaluate_forecast(forecast_from(tr, 0, 2), tr, variables=["vorticity"])
    with pytest.raises(EvaluationError, match=r"\['temperature'\] are not fields of the truth.*\['u', 'surface"):
        evaluate_forecast(forecast_from(tr, 0, 2), tr.drop_vars("temperature"))


def test_mismatched_grid_prints_both():
    tr = truth_dataset()
    fc = forecast_from(tr, 0, 2).assign_coords(lat=LAT + 1.0)
    with pytest.raises(EvaluationError, match=r"different grids: lat of .* is \[-66\.5.*but lat of .* is \[-67\.5"):
        evaluate_forecast(fc, tr)


def test_no_overlapping_and_missing_times(tmp_path, capsys):
    tr = truth_dataset(nt=6)
    fc = forecast_from(tr, 3, 3)
    with pytest.raises(EvaluationError, match=r"2 of the forecast valid times are missing in the truth .*2000-01-02 00:00:00.*2000-01-02 06:00:00"):
        evaluate_forecast(fc, tr.isel(time=slice(0, 4)))
    late = truth_dataset(nt=12).isel(time=slice(8, 12))
    with pytest.raises(EvaluationError, match="no overlapping times"):
        evaluate_forecast(forecast_from(late, 0, 3), tr)
    # the same through the CLI: exit status 2 and the message on stderr
    tpath = write(tr, tmp_path / "t.nc")
    fpath = write(forecast_from(late, 0, 3), tmp_path / "f.nc")
    assert main(["--forecast", str(fpath), "--truth", str(tpath), "--out", str(tmp_path / "o")]) == 2
    assert "no overlapping times" in capsys.readouterr().err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_leads_filter_and_missing_persistence():
    tr = truth_dataset(nt=6)
    res = evaluate_forecast(forecast_from(tr, 1, 5), tr, variables=["u"], leads=[6, 18])
    assert res["meta"]["lead_hours"] == [6.0, 18.0]
    assert set(res["metrics"]["u"]["0.3"]["rmse"]["forecast"]) == {"6", "18"}
    with pytest.raises(EvaluationError, match=r"none of the leads \[7\.0\] h.*'0', '6', '12', '18', '24'"):
        evaluate_forecast(forecast_from(tr, 1, 5), tr, variables=["u"], leads=[7.0])
    # the initial time is not in the truth: no persistence, and the result says why
    res = evaluate_forecast(forecast_from(tr, 1, 5), tr.isel(time=slice(2, 6)), variables=["u"], leads=[6, 18])
    assert "persistence" not in res["metrics"]["u"]["0.3"]["rmse"]
    assert res["meta"]["persistence"].startswith("not computed")


def test_zonal_mean_climate_of_shifted_run():
    from mlscam.evaluate import zonal_mean_climate

    tr = truth_dataset(nt=6)
    fc = tr.isel(time=slice(0, 3)).copy(deep=True)
    fc["u"] = tr["u"].isel(time=slice(0, 3)) * 0 + tr["u"].mean("time") + 2.0
    res = zonal_mean_climate(fc, tr, variables=["u", "surface_pressure"])
    np.testing.assert_allclose(list(res["u"]["rmse"].values()), 2.0, rtol=1e-12)
    assert res["u"]["finite"] and res["u"]["n_times"] == {"forecast": 3, "truth": 6}
    fc["surface_pressure"][1, 0, 0] = np.nan
    assert zonal_mean_climate(fc, tr, variables=["surface_pressure"])["surface_pressure"]["finite"] is False


def test_an_unwritable_out_fails_before_reading_anything(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    # the forecast and truth do not even exist: --out is checked first, before the long work
    assert main(["--forecast", str(tmp_path / "f.nc"), "--truth", str(tmp_path / "t.nc"),
                 "--out", str(tmp_path / "file.txt" / "o")]) == 2
    err = capsys.readouterr().err
    assert "error: --out = " in err and "cannot be written" in err and "Traceback" not in err
    assert "set --out to a directory in a writable place" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def as_cam(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` in the style of a CAM history file: U, T, PS on ``lev`` (1000 * sigma, hPa) with hyam/hybm/P0
    giving the same sigma, latitude north to south."""
    cam = ds.rename({"u": "U", "temperature": "T", "surface_pressure": "PS", "level": "lev"})
    cam = cam.assign_coords(lev=("lev", 1000.0 * LEV, {"units": "hPa"}))
    cam["hyam"], cam["hybm"], cam["P0"] = ("lev", np.zeros(LEV.size)), ("lev", LEV), 1e5
    return cam.isel(lat=slice(None, None, -1))


CAM_NAMELIST = ("&data variables_3d = 'u', 'temperature' file_names_3d = 'U', 'T' variables_2d = 'surface_pressure' "
                "file_names_2d = 'PS' /\n")


def test_a_cam_truth_without_the_map_lists_every_variable_of_the_file(tmp_path, capsys):
    tr = truth_dataset()
    tpath = write(as_cam(tr), tmp_path / "cam.nc")
    fpath = write(forecast_from(tr, 1, 3), tmp_path / "f.nc")
    with pytest.raises(EvaluationError) as info:
        evaluate_forecast(open_dataset(fpath), open_dataset(tpath))
    message = str(info.value)
    assert "['u', 'temperature', 'surface_pressure'] are not fields of the truth" in message
    for listed in ("T(time, lev, lat, lon)", "U(time, lev, lat, lon)", "PS(time, lat, lon)", "hyam(lev)",
                   "P0()", "lev(lev)", "lat(lat)", "time(time)"):
        assert listed in message, (listed, message)
    assert "--namelist" in message and "--checkpoint" in message
    assert main(["--forecast", str(fpath), "--truth", str(tpath), "--out", str(tmp_path / "o"), "--no-plots"]) == 2
    assert "T(time, lev, lat, lon)" in capsys.readouterr().err


def test_a_cam_truth_with_the_namelists_map_scores_as_the_cf_truth(tmp_path, capsys):
    tr = truth_dataset()
    cf, cam = write(tr, tmp_path / "cf.nc"), write(as_cam(tr), tmp_path / "cam.nc")
    fpath = write(forecast_from(tr, 1, 4, offset=0.5), tmp_path / "f.nc")
    (tmp_path / "cam.nml").write_text(CAM_NAMELIST)
    assert main(["--forecast", str(fpath), "--truth", str(cf), "--out", str(tmp_path / "a"), "--no-plots"]) == 0
    assert main(["--forecast", str(fpath), "--truth", str(cam), "--out", str(tmp_path / "b"), "--no-plots",
                 "--namelist", str(tmp_path / "cam.nml")]) == 0
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("a", "b"))
    assert sorted(b["metrics"]) == ["surface_pressure", "temperature", "u"]
    for var, levels in a["metrics"].items():
        for lk, metrics in levels.items():
            for m, sources in metrics.items():
                for s, leads in sources.items():
                    assert list(leads.values()) == pytest.approx(list(b["metrics"][var][lk][m][s].values()),
                                                                 rel=1e-12, abs=1e-12), (var, lk, m, s)
    # a forecast that records the map (as mlscam.rollout writes it) needs no option
    rec = forecast_from(tr, 1, 4, offset=0.5)
    rec.attrs.update(input_file_names="u=U temperature=T surface_pressure=PS", input_level_source="hybrid")
    assert main(["--forecast", str(write(rec, tmp_path / "rec.nc")), "--truth", str(cam),
                 "--out", str(tmp_path / "c"), "--no-plots"]) == 0
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["metrics"]["temperature"].keys() == \
        a["metrics"]["temperature"].keys()
    capsys.readouterr()
