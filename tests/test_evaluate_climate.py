"""Climate mode of mlscam.evaluate: closed-form checks on tiny synthetic runs, and the CLI.

Runs are 8 latitudes x 16 longitudes x 2 levels, daily (or 6-hourly) for a few
hundred days; fields are built from zonal means plus cosine waves, whose zonal
means, eddy variances and spectra are known exactly.
"""
from __future__ import annotations

import datetime as dt
import json

import cftime
import numpy as np
import pytest
import xarray as xr

from mlscam.evaluate import EvaluationError, evaluate_climate, open_dataset, read_run_climate
from mlscam.evaluate.cli import main

NLAT, NLON = 8, 16
LAT = -90.0 + 180.0 * (np.arange(NLAT) + 0.5) / NLAT
LON = 360.0 * np.arange(NLON) / NLON
LEV = np.array([0.25, 0.75])
RAD = np.deg2rad(LON)
# exact cell areas of the latitude rows, by hand: sin(north edge) - sin(south edge)
W_LAT = np.diff(np.sin(np.deg2rad(np.linspace(-90.0, 90.0, NLAT + 1))))
BASE_T = 250.0 + 30.0 * np.cos(np.deg2rad(LAT))[None, :] - 40.0 * LEV[:, None]  # [level, lat]
BASE_U = 20.0 * np.sin(2 * np.deg2rad(LAT))[None, :] * LEV[::-1, None]
A1, A2 = 3.0, 1.5  # eddy amplitudes of cos(lon) and cos(2 lon - phase)


def waves(days):
    """``[t, level, lat, lon]`` eddies with zero zonal mean and variance along longitude (A1^2 + A2^2) / 2."""
    phase = 0.3 * np.asarray(days, float)[:, None, None, None]
    e = A1 * np.cos(RAD - phase) + A2 * np.cos(2 * RAD + 2 * phase)
    return np.broadcast_to(e, (len(days), LEV.size, NLAT, NLON))


def make_run(days, offset=None, *, lead=False, extra=None, lat=LAT) -> xr.Dataset:
    """temperature and u ``[time, level, lat, lon]`` at ``days`` (days since 2000-01-01, noleap).

    ``offset(days) -> [t, level, lat]`` is added to both zonal means; ``extra`` (``[t, level, lat, lon]``)
    is added to the temperature only.  ``lead=True`` makes it a forecast initialised at day 0.
    """
    days = np.asarray(days, float)
    t0 = cftime.datetime(2000, 1, 1, calendar="noleap")
    times = [t0 + dt.timedelta(days=float(d)) for d in days]
    off = np.zeros((days.size, LEV.size, NLAT)) if offset is None else offset(days)
    temp = BASE_T[None, :, :, None] + off[..., None] + waves(days)
    u = BASE_U[None, :, :, None] + off[..., None] + 2.0 * waves(days)
    if extra is not None:
        temp = temp + extra
    dims = ("time", "level", "lat", "lon")
    ds = xr.Dataset({"temperature": (dims, temp, {"units": "K"}), "u": (dims, u, {"units": "m s-1"})},
                    coords={"time": times, "level": LEV, "lat": lat, "lon": LON})
    if lead:
        ds = ds.assign_coords(lead_time=("time", days, {"units": "days"}))
        ds.attrs["initial_time"] = t0.isoformat()
    return ds


def write(ds: xr.Dataset, path):
    ds.to_netcdf(path, encoding={"time": {"units": "days since 2000-01-01 00:00:00", "calendar": "noleap"}})
    return str(path)


def climate(forecasts, truth, *, spinup=0.0, truth_spinup=0.0, truncation=5, chunk_times=None):
    runs = [read_run_climate(f, ["temperature", "u"], spinup_days=spinup, chunk_times=chunk_times, progress=False)
            for f in forecasts]
    tr = read_run_climate(truth, ["temperature", "u"], spinup_days=truth_spinup, chunk_times=chunk_times,
                          progress=False)
    return evaluate_climate(runs, tr, truncation=truncation)


def rms_by_hand(d):
    """RMS of ``d [level, lat]``: area-weighted over latitude, plain mean over levels."""
    return np.sqrt(np.mean((d ** 2 * W_LAT).sum(-1) / W_LAT.sum()))


DAYS2 = np.arange(730.0)


def test_forecast_equal_to_truth_has_zero_bias_and_eddy_ratio_one():
    truth = make_run(DAYS2)
    res = climate([make_run(DAYS2, lead=True)], truth)
    for v in ("temperature", "u"):
        m = res["forecasts"][0]["variables"][v]
        assert m["zonal_mean_bias_rms"]["total"] == 0.0
        assert m["eddy_variance_ratio"]["total"] == pytest.approx(1.0, rel=1e-12)
        assert m["share_above_truncation"] == res["truth"][v]["share_above_truncation"]
        assert m["stability"]["finite"] and m["stability"]["std_ratio_max"] == pytest.approx(1.0)
    # the eddy variance is (A1^2 + A2^2) / 2 on every row (4x that for u)
    ev = res["truth"]["temperature"]["eddy_variance"]
    assert ev["total"] == pytest.approx((A1 ** 2 + A2 ** 2) / 2, rel=1e-12)
    assert res["truth"]["u"]["eddy_variance"]["by_level"]["0.25"] == pytest.approx(2 * (A1 ** 2 + A2 ** 2), rel=1e-12)
    # identical years: the noise floor is 0, over the one pair of the two full years
    assert res["noise_floor"]["temperature"]["n_years"] == 2
    assert res["noise_floor"]["temperature"]["n_pairs"] == 1
    assert res["noise_floor"]["temperature"]["rms"] == pytest.approx(0.0, abs=1e-10)


def test_noise_floor_of_a_constructed_two_year_truth_by_hand():
    # year 2 differs from year 1 by d(level, lat); a 100-day tail (not a full year) is far off and must not count
    d = np.zeros((LEV.size, NLAT))
    d[0, 1], d[1, 5], d[1, 6] = 2.0, -1.0, 0.5

    def offset(days):
        year = np.floor(days / 365.0)[:, None, None]
        return np.where(year == 1, d[None], 0.0) + np.where(year >= 2, 50.0, 0.0)

    truth = make_run(np.arange(830.0), offset)
    res = climate([make_run(DAYS2, lead=True)], truth)
    nf = res["noise_floor"]["temperature"]
    assert nf["n_years"] == 2 and nf["n_pairs"] == 1
    assert nf["rms"] == pytest.approx(rms_by_hand(d), rel=1e-12)
    by_level = np.sqrt((d ** 2 * W_LAT).sum(-1) / W_LAT.sum())
    assert nf["by_level"]["0.75"] == pytest.approx(by_level[1], rel=1e-12)
    assert res["noise_floor"]["u"]["rms"] == pytest.approx(rms_by_hand(d), rel=1e-12)
    # the forecast (offset 0) against the truth's zonal-time mean over all 830 days
    mean_off = (365 * d + 100 * 50.0) / 830
    bias = res["forecasts"][0]["variables"]["temperature"]["zonal_mean_bias_rms"]["total"]
    assert bias == pytest.approx(rms_by_hand(mean_off), rel=1e-12)
    assert res["forecasts"][0]["variables"]["temperature"]["bias_over_noise"] == pytest.approx(bias / nf["rms"])


def test_noise_floor_is_the_mean_over_all_year_pairs():
    # three years shifted by 0, 1 and 3 everywhere: pair differences 1, 3 and 2 -> mean 2
    shift = np.array([0.0, 1.0, 3.0])
    truth = make_run(np.arange(1095.0), lambda days: np.broadcast_to(
        shift[(days // 365).astype(int)][:, None, None], (days.size, LEV.size, NLAT)))
    res = climate([make_run(DAYS2, lead=True)], truth)
    nf = res["noise_floor"]["temperature"]
    assert (nf["n_years"], nf["n_pairs"]) == (3, 3)
    assert nf["rms"] == pytest.approx(2.0, rel=1e-12)
    # one year: no noise floor, and the note says why
    one = climate([make_run(DAYS2, lead=True)], make_run(np.arange(400.0)))
    assert one["noise_floor"]["u"]["rms"] is None and "needs at least 2" in one["noise_floor"]["u"]["note"]
    assert one["forecasts"][0]["variables"]["u"]["bias_over_noise"] is None


def test_checkerboard_is_all_above_the_truncation():
    c = 0.8
    board = c * (-1.0) ** (np.arange(NLAT)[:, None] + np.arange(NLON)[None, :])  # k = 8 on every row
    days = np.arange(60.0)
    res = climate([make_run(days, lead=True, extra=board)], make_run(days), truncation=5)
    f, t = res["forecasts"][0]["variables"]["temperature"], res["truth"]["temperature"]
    eddy = (A1 ** 2 + A2 ** 2) / 2
    assert t["share_above_truncation"] == pytest.approx(0.0, abs=1e-14)
    assert f["share_above_truncation"] == pytest.approx(c ** 2 / (c ** 2 + eddy), rel=1e-12)
    np.testing.assert_allclose(f["spectrum"][:6], t["spectrum"][:6], rtol=1e-12, atol=1e-14)
    assert f["spectrum"][8] == pytest.approx(c ** 2, rel=1e-12)
    assert f["eddy_variance_ratio"]["total"] == pytest.approx((c ** 2 + eddy) / eddy, rel=1e-12)
    assert f["zonal_mean_bias_rms"]["total"] == pytest.approx(0.0, abs=1e-12)  # no zonal mean
    assert res["forecasts"][0]["variables"]["u"]["share_above_truncation"] == pytest.approx(0.0, abs=1e-14)
    # "above" is strict: the truth's cos(2 lon) wave counts above T1 but not above T2
    t2 = climate([make_run(days)], make_run(days), truncation=2)["truth"]["u"]["share_above_truncation"]
    assert t2 == pytest.approx(0.0, abs=1e-14)
    t1 = climate([make_run(days)], make_run(days), truncation=1)["truth"]["u"]["share_above_truncation"]
    assert t1 == pytest.approx(A2 ** 2 / (A1 ** 2 + A2 ** 2), rel=1e-12)


def test_linear_trend_of_the_global_mean_is_recovered_after_the_spinup():
    x = 1.7  # K per year; the forecast is 6-hourly for 400 days, the truth daily
    lead = np.arange(1, 1601) * 0.25
    fc = make_run(lead, lambda d: np.broadcast_to(x * d[:, None, None] / 365.0, (d.size, LEV.size, NLAT)), lead=True)
    res = climate([fc], make_run(DAYS2), spinup=30.0)
    gm = res["forecasts"][0]["variables"]["temperature"]["global_mean"]
    assert gm["trend_per_year"] == pytest.approx(x, rel=1e-9)
    assert gm["days"][0] == 30.0 and len(gm["days"]) == 1600 - 119
    # windows [30, 60) and (370, 400]: means of lead 44.875 and 385.125 days
    assert gm["end_minus_start"] == pytest.approx(x * (385.125 - 44.875) / 365.0, rel=1e-9)
    tg = res["truth"]["temperature"]["global_mean"]
    assert tg["trend_per_year"] == pytest.approx(0.0, abs=1e-9) and tg["end_minus_start"] == pytest.approx(0, abs=1e-9)
    # the global mean is the area-weighted mean over latitude, then the plain mean over levels
    assert tg["mean"] == pytest.approx(np.mean((BASE_T * W_LAT).sum(-1) / W_LAT.sum()), rel=1e-12)


def test_time_chunks_do_not_change_the_statistics():
    off = lambda d: np.sin(d / 50.0)[:, None, None] * np.cos(np.deg2rad(LAT))[None, None, :] * LEV[:, None]  # noqa
    truth = make_run(np.arange(800.0), off)
    ref = read_run_climate(truth, ["temperature"], spinup_days=10, progress=False)
    for chunk in (1, 7, 365):
        got = read_run_climate(truth, ["temperature"], spinup_days=10, chunk_times=chunk, progress=False)
        a, b = ref.fields["temperature"], got.fields["temperature"]
        for name in ("zonal_mean", "power", "year_means", "global_mean", "std_start", "std_end"):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-12, atol=1e-12, err_msg=name)
    assert ref.n_years == 2 and ref.days[0] == 10.0


def test_blow_up_is_reported_and_spinup_times_count_for_it():
    days = np.arange(100.0)
    extra = np.zeros((days.size, LEV.size, NLAT, NLON))
    extra[:10] = 1000.0  # inside the spin-up: no bias, but the largest value
    blown = extra.copy()
    blown[70, 1, 3, 4] = np.nan
    first = make_run(days, lead=True, extra=extra)
    res = climate([first, make_run(days, lead=True, extra=blown)], make_run(days), spinup=10.0)
    ok, bad = (e["variables"]["temperature"] for e in res["forecasts"])
    assert ok["zonal_mean_bias_rms"]["total"] == pytest.approx(0.0, abs=1e-10)
    assert ok["stability"]["max_abs"] == float(first["temperature"].max()) > 1000.0
    assert bad["stability"] == {**bad["stability"], "finite": False, "n_nonfinite": 1, "first_nonfinite_day": 70.0}
    assert bad["zonal_mean_bias_rms"]["total"] is None
    assert res["mean"]["temperature"]["finite"] is False and res["mean"]["temperature"]["zonal_mean_bias_rms"] is None
    assert res["mean"]["u"]["finite"] is True
    json.dumps(res, allow_nan=False)  # every NaN became None


def test_std_ratio_of_growing_eddies():
    days = np.arange(50.0)
    grow = (1 + 2 * days / days[-1])[:, None, None, None] * waves(days)  # eddies 1x at the start, 3x at the end
    res = climate([make_run(days, lead=True, extra=grow)], make_run(days), spinup=5.0)
    st = res["forecasts"][0]["variables"]["temperature"]["stability"]
    # std along longitude: 2x the waves at the start, 4x at the end -> ratio 2
    assert st["std_ratio_max"] == pytest.approx(2.0, rel=1e-12)
    assert res["forecasts"][0]["variables"]["u"]["stability"]["std_ratio_max"] == pytest.approx(1.0, rel=1e-12)


def test_summary_round_trips_through_json():
    truth = read_run_climate(make_run(np.arange(740.0)), ["temperature", "u"], spinup_days=5, progress=False)
    from mlscam.evaluate import RunClimate

    back = RunClimate.from_dict(json.loads(json.dumps(truth.to_dict())))
    assert back.n_years == truth.n_years == 2
    for name in ("zonal_mean", "power", "year_means", "global_mean"):
        np.testing.assert_array_equal(getattr(back.fields["u"], name), getattr(truth.fields["u"], name))
    with pytest.raises(EvaluationError, match="is not a climate summary"):
        RunClimate.from_dict({"meta": {}}, source="metrics.json")


def test_cli_writes_json_markdown_and_plots(tmp_path, capsys):
    truth = write(make_run(np.arange(740.0)), tmp_path / "truth.nc")
    f1 = write(make_run(np.arange(1.0, 200.0), lead=True), tmp_path / "f1.nc")
    f2 = write(make_run(np.arange(1.0, 200.0), lambda d: np.ones((d.size, LEV.size, NLAT)), lead=True),
               tmp_path / "f2.nc")
    out = tmp_path / "clim"
    assert main(["climate", "--forecast", f1, f2, "--truth", truth, "--out", str(out), "--spinup-days", "20",
                 "--truth-spinup-days", "0", "--truncation", "5", "--chunk-times", "50"]) == 0
    names = ["climate.json", "climate.md", "truth_summary.json"] + [
        f"climate_{k}_{v}.png" for k in ("bias", "spectra", "global_mean") for v in ("temperature", "u")]
    for n in names:
        assert (out / n).stat().st_size > 0, n
    assert not list(out.glob(".*part"))
    js = json.loads((out / "climate.json").read_text())
    assert set(js) == {"meta", "noise_floor", "forecasts", "mean", "truth"}
    assert js["meta"]["forecasts"][0]["n_used"] == 180 and js["meta"]["truth"]["full_years"] == 2
    rms = [e["variables"]["u"]["zonal_mean_bias_rms"]["total"] for e in js["forecasts"]]
    assert rms == [pytest.approx(0.0, abs=1e-10), pytest.approx(1.0, rel=1e-10)]
    assert js["mean"]["u"]["zonal_mean_bias_rms"] == pytest.approx(0.5, rel=1e-10)
    assert js["mean"]["u"]["bias_rms_of_mean_climate"] == pytest.approx(0.5, rel=1e-10)
    md = (out / "climate.md").read_text()
    assert "## temperature [K]" in md and "| f2.nc | 1 |" in md and "| **mean** | 0.5 |" in md
    assert "Noise floor (truth year-to-year RMS):" in md
    assert "zonal-mean bias RMS" in capsys.readouterr().out
    # the truth summary stands in for the truth file and gives the same numbers
    again = tmp_path / "again"
    assert main(["climate", "--forecast", f1, f2, "--truth", str(out / "truth_summary.json"), "--out", str(again),
                 "--spinup-days", "20", "--truncation", "5", "--chunk-times", "50", "--no-plots"]) == 0
    js2 = json.loads((again / "climate.json").read_text())
    assert js2["forecasts"] == js["forecasts"] and js2["noise_floor"] == js["noise_floor"]
    assert sorted(p.name for p in again.iterdir()) == ["climate.json", "climate.md"]


def test_files_are_named_by_their_own_path(tmp_path):
    # a slice written from an opened file carries the parent's source_file attribute
    parent = open_dataset(write(make_run(np.arange(30.0)), tmp_path / "parent.nc"))
    child = open_dataset(write(parent.isel(time=slice(0, 10)), tmp_path / "child.nc"))
    assert child.attrs["source_file"] == str(tmp_path / "child.nc")


def test_cli_too_short_truth_or_forecast_exits_with_the_fix(tmp_path, capsys):
    short = write(make_run(np.arange(20.0)), tmp_path / "short.nc")
    fc = write(make_run(np.arange(1.0, 100.0), lead=True), tmp_path / "fc.nc")
    out = tmp_path / "o"
    assert main(["climate", "--forecast", fc, "--truth", short, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the truth" in err and "is shorter than the spin-up: its times span 0 .. 19 days" in err
    assert "--spinup-days 30 drops every one of them; pass a longer truth or a smaller --spinup-days" in err
    assert not (out / "climate.json").exists()
    assert main(["climate", "--forecast", fc, "--truth", short, "--out", str(out), "--truth-spinup-days", "25"]) == 2
    assert "smaller --truth-spinup-days" in capsys.readouterr().err
    assert main(["climate", "--forecast", fc, "--truth", short, "--out", str(out), "--spinup-days", "120",
                 "--truth-spinup-days", "0"]) == 2
    assert "the forecast" in capsys.readouterr().err


def test_cli_mismatched_grid_missing_variable_and_truncation(tmp_path, capsys):
    truth = write(make_run(np.arange(40.0)), tmp_path / "t.nc")
    other = write(make_run(np.arange(1.0, 40.0), lead=True, lat=LAT + 1.0), tmp_path / "other.nc")
    fc = write(make_run(np.arange(1.0, 40.0), lead=True), tmp_path / "fc.nc")
    common = ["--truth", truth, "--out", str(tmp_path / "o"), "--spinup-days", "0"]
    assert main(["climate", "--forecast", other, *common]) == 2
    assert "different grids: lat of" in capsys.readouterr().err
    assert main(["climate", "--forecast", fc, *common, "--variables", "vorticity"]) == 2
    assert "['vorticity'] are not fields of the forecast" in capsys.readouterr().err
    assert main(["climate", "--forecast", fc, *common, "--truncation", "8"]) == 2
    assert "--truncation 8 must be between 1 and 7" in capsys.readouterr().err


def test_climate_mode_reads_a_cam_truth_with_the_forecasts_record_or_the_namelist(tmp_path, capsys):
    """A truth in CAM style (T, U on lev with hyam/hybm, latitude north to south) gives the numbers of its CF twin."""
    tr = make_run(np.arange(400.0))
    cam = tr.rename({"temperature": "T", "u": "U", "level": "lev"}).assign_coords(lev=("lev", 1000.0 * LEV))
    cam["hyam"], cam["hybm"] = ("lev", np.zeros(LEV.size)), ("lev", LEV)
    cam = write(cam.isel(lat=slice(None, None, -1)), tmp_path / "cam.nc")
    fc = make_run(np.arange(1.0, 200.0), lambda d: np.ones((d.size, LEV.size, NLAT)), lead=True)
    plain = write(fc, tmp_path / "fc.nc")
    fc.attrs.update(input_file_names="temperature=T u=U", input_level_source="hybrid")
    recorded = write(fc, tmp_path / "fc_recorded.nc")
    (tmp_path / "cam.nml").write_text("&data variables_3d = 'temperature', 'u' file_names_3d = 'T', 'U' "
                                      "variables_2d = '' /\n")
    common = ["--spinup-days", "20", "--truth-spinup-days", "0", "--truncation", "5", "--no-plots"]
    assert main(["climate", "--forecast", plain, "--truth", write(tr, tmp_path / "cf.nc"),
                 "--out", str(tmp_path / "cf"), *common]) == 0
    assert main(["climate", "--forecast", recorded, "--truth", cam, "--out", str(tmp_path / "rec"), *common]) == 0
    assert main(["climate", "--forecast", plain, "--truth", cam, "--out", str(tmp_path / "nml"), *common,
                 "--namelist", str(tmp_path / "cam.nml")]) == 0
    expect = json.loads((tmp_path / "cf" / "climate.json").read_text())["forecasts"][0]["variables"]
    for out in ("rec", "nml"):
        got = json.loads((tmp_path / out / "climate.json").read_text())["forecasts"][0]["variables"]
        for v in ("temperature", "u"):
            assert got[v]["zonal_mean_bias_rms"]["total"] == pytest.approx(expect[v]["zonal_mean_bias_rms"]["total"],
                                                                           rel=1e-12), (out, v)
    assert main(["climate", "--forecast", plain, "--truth", cam, "--out", str(tmp_path / "none"), *common]) == 2
    err = capsys.readouterr().err
    assert "are not fields of the truth" in err and "T(time, lev, lat, lon)" in err
