"""Smoke runs of the benchmark scripts (``--quick``: tiny grid, one repeat): they run and write their report.

These are not timings: the numbers are not checked, only that every script runs
end to end and its report names the command and the machine.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NAMELIST = str(ROOT / "namelists" / "train_demo.nml")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name, expect", [
    ("rollout_throughput", "latent-only"),
    ("latent_vs_reencode", "re-encoding every step costs"),
    ("flops", "% of peak"),
])
def test_script_runs_quick(name, expect, tmp_path):
    out = tmp_path / f"{name}.txt"
    assert load_script(name).main(["--random-weights", NAMELIST, "--quick", "--threads", "1",
                                   "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# ")
    assert "command: python benchmarks/" in text and "load average" in text and "torch" in text
    assert expect in text


@pytest.mark.slow
def test_memory_quick(tmp_path):
    from synthetic import make_fields, write_file

    from mlscam.grid import LatLonGrid

    grid = LatLonGrid.equiangular(8, 16)
    nc = tmp_path / "init.nc"
    write_file(nc, make_fields(2, grid, 10, seed=0), grid, np.arange(2) * 1.0, levels=(np.arange(10) + 0.5) / 10)
    out = tmp_path / "memory.txt"
    assert load_script("memory").main(["--random-weights", NAMELIST, "--quick", "--input-nc", str(nc),
                                       "--out", str(out)]) == 0
    text = out.read_text()
    assert "peak of the 4-step run vs the 2-step run" in text


def test_stencil_predictability_runs_and_its_3x3_stencil_is_the_grid_stencil(tmp_path):
    from mlscam.grid import LatLonGrid

    mod = load_script("stencil_predictability")
    for nlat, nlon in ((4, 8), (6, 12)):
        assert np.array_equal(mod.stencil_index(nlat, nlon, 1), LatLonGrid.equiangular(nlat, nlon).stencil().index)
    five = mod.stencil_index(4, 8, 2)
    assert five.shape == (32, 25)
    # two rows south of row 0 is row 1 on the opposite meridian; the centre is the column itself
    assert five[0 * 8 + 3, 2] == 1 * 8 + 7 and np.array_equal(five[:, 12], np.arange(32))
    from synthetic import make_fields, write_file

    grid = LatLonGrid.equiangular(32, 64)  # the demo checkpoint's grid
    data = str(tmp_path / "hourly.nc")
    write_file(data, make_fields(4, grid, 10, seed=1), grid, np.arange(4) * 1.0, levels=(np.arange(10) + 0.5) / 10)
    out = tmp_path / "stencil.txt"
    mod.main(["--train", data, "--val", data, "--steps", "3", "--batch", "64", "--radii", "1",
              "--checkpoint", str(ROOT / "mlscam" / "assets" / "demo" / "checkpoint.pt"), "--out", str(out)])
    text = out.read_text()
    assert "command: python benchmarks/stencil_predictability.py" in text
    assert "MLP, 3x3 stencil" in text and "linear, 3x3 stencil" in text and "emulator one step" in text


def _climate_json(path: Path, years: list[tuple[float, float, float, float, float]]) -> None:
    """A climate.json of ``years`` given as (T bias, T eddy ratio, u bias, u eddy ratio, T end - start)."""
    def var(bias, ratio, drift=0.0):
        return {"zonal_mean_bias_rms": {"total": bias}, "eddy_variance_ratio": {"total": ratio},
                "stability": {"finite": bool(np.isfinite(bias))}, "global_mean": {"end_minus_start": drift}}
    forecasts = [{"file": f"y{i}.nc", "variables": {"temperature": var(tb, te, d), "u": var(ub, ue)}}
                 for i, (tb, te, ub, ue, d) in enumerate(years)]
    path.mkdir(parents=True, exist_ok=True)
    (path / "climate.json").write_text(__import__("json").dumps({"forecasts": forecasts}))


def test_validation_score_adds_the_drift_to_the_training_score(tmp_path, capsys):
    mod = load_script("validation_score")
    # year 1 at every threshold (5 terms of 1), year 2 perfect but drifting 1 K (2) and a 1.4^2 eddy ratio (2)
    _climate_json(tmp_path / "a0", [(1.5, 1.4, 2.0, 1 / 1.4, -0.5)])
    _climate_json(tmp_path / "a1", [(0.0, 1.96, 0.0, 1.0, 1.0)])
    score, terms, n = mod.label_score([tmp_path / "a0", tmp_path / "a1"], 0.5)
    assert n == 2 and score == pytest.approx((5 + 4) / 2)
    assert terms["T drift"] == pytest.approx(1.5) and terms["temperature eddy"] == pytest.approx(1.5)
    _climate_json(tmp_path / "b", [(float("nan"), 1.0, 1.0, 1.0, 0.0)])
    assert mod.label_score([tmp_path / "b"], 0.5)[0] == float("inf")
    assert mod.main([f"A={tmp_path / 'a0'},{tmp_path / 'a1'}"]) == 0
    assert "4.500" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="climate_report.sh"):
        mod.main([f"C={tmp_path / 'missing'}"])


def test_validation_score_rule_needs_the_score_and_every_year_within_the_tolerances(tmp_path, capsys):
    mod = load_script("validation_score")
    # (T bias, T eddy, u bias, u eddy, drift): two good years, score 0.4 + 0 + 0.5 + 0 + 0 = 0.9
    _climate_json(tmp_path / "good", [(0.6, 1.0, 1.0, 1.0, 0.0), (0.6, 1.0, 1.0, 1.0, 0.0)])
    # a low mean score, but one year's u bias is 2.2 m/s: fails the rule
    _climate_json(tmp_path / "one_bad_year", [(0.3, 1.0, 2.2, 1.0, 0.0), (0.3, 1.0, 0.2, 1.0, 0.0)])
    assert mod.rule_verdict([tmp_path / "good"], 0.5, 3.0) == (True, "passes")
    ok, why = mod.rule_verdict([tmp_path / "one_bad_year"], 0.5, 3.0)
    assert not ok and "u bias 2.20 > 2" in why
    ok, why = mod.rule_verdict([tmp_path / "good"], 0.5, 0.5)
    assert not ok and "score 0.90 > 0.5" in why
    assert mod.main(["--rule", "3", f"A={tmp_path / 'good'}", f"B={tmp_path / 'one_bad_year'}"]) == 1
    out = capsys.readouterr().out
    assert "A                PASS" in out and "B                FAIL" in out and "not all pass" in out
    assert mod.main(["--rule", "3", f"A={tmp_path / 'good'}"]) == 0  # the exit status is the verdict
    assert "all pass" in capsys.readouterr().out


def test_skill_report_splits_day1_error_by_latitude_band(tmp_path):
    import xarray as xr

    mod = load_script("skill_report")
    lat = np.array([-85.0, -70.0, -45.0, -10.0, 10.0, 45.0, 70.0, 85.0])
    lon = np.arange(0.0, 360.0, 45.0)
    hours = np.arange(49)
    times = np.datetime64("2000-01-01T00") + hours.astype("timedelta64[h]")
    rate = {0: 0.1, 1: 0.2, 2: 0.5, 3: 1.0}  # persistence error per hour in each band (tropics .. poles)
    err = {0: 0.5, 1: 1.0, 2: 3.0, 3: 2.0}  # the forecast's error at day 1
    band = np.array([3, 2, 1, 0, 0, 1, 2, 3])
    a = np.array([rate[b] for b in band])[None, :, None]
    t = hours[:, None, None, None] * a[None]  # [time, level, lat, lon]
    t = np.broadcast_to(t, (49, 2, lat.size, lon.size)).astype(np.float64)
    coords = {"time": times, "level": [0.3, 0.7], "lat": lat, "lon": lon}
    dims = ("time", "level", "lat", "lon")
    truth = xr.Dataset({"temperature": (dims, t), "u": (dims, 2 * t)}, coords=coords)
    e = np.array([err[b] for b in band])[None, :, None]
    fc_vals = t[[24, 30]] + e  # leads 24 and 30 h from the initial hour 0
    fc = xr.Dataset({"temperature": (dims, fc_vals), "u": (dims, 2 * fc_vals)},
                    coords={**coords, "time": times[[24, 30]], "lead_time": ("time", [24.0, 30.0])})
    fc.to_netcdf(tmp_path / "fc.nc")
    split = mod.band_split([tmp_path / "fc.nc"], truth)
    for var, scale in (("temperature", 1.0), ("u", 2.0)):
        for b, (lo, hi) in enumerate(mod.BANDS):
            got = split[var][f"{lo:g}-{hi:g}"]
            assert got["forecast"] == pytest.approx(scale * err[b])
            assert got["persistence"] == pytest.approx(scale * 24 * rate[b])
        assert sum(v["area"] for v in split[var].values()) == pytest.approx(1.0)
    polar = mod.polar_split([tmp_path / "fc.nc"], truth)
    assert polar["temperature"]["forecast_polar"] == pytest.approx(2.0)
    assert polar["temperature"]["persistence_polar"] == pytest.approx(24.0)
    text = mod.summary_markdown({"command": "x", "models": {"m": {
        "checkpoint": "c", "rmse": {v: {} for v in mod.VARS}, "polar_rows_day1": polar,
        "latitude_bands_day1": split}}})
    assert "| 0-30 |" in text and "0.50 / 2.40 (0.21)" in text


def test_skill_report_zonal_split_separates_the_zonal_mean_error(tmp_path):
    import xarray as xr

    mod = load_script("skill_report")
    lat, lon = np.array([-45.0, 45.0]), np.arange(0.0, 360.0, 90.0)
    times = np.datetime64("2000-01-01T00") + np.arange(25).astype("timedelta64[h]")
    dims = ("time", "level", "lat", "lon")
    truth = xr.Dataset({v: (dims, np.zeros((25, 1, 2, 4))) for v in mod.VARS},
                       coords={"time": times, "level": [0.5], "lat": lat, "lon": lon})
    # forecast error: a zonal-mean part of 3 plus a wave of amplitude 4 (RMS 4 over the circle when it is +-4)
    err = 3.0 + 4.0 * np.array([1.0, -1.0, 1.0, -1.0])
    fc = xr.Dataset({v: (dims, np.broadcast_to(err, (1, 1, 2, 4)).copy()) for v in mod.VARS},
                    coords={"time": times[[24]], "level": [0.5], "lat": lat, "lon": lon, "lead_time": ("time", [24.0])})
    fc.to_netcdf(tmp_path / "fc.nc")
    z = mod.zonal_split([tmp_path / "fc.nc"], truth)["u"]
    assert z["forecast"] == pytest.approx(5.0) and z["forecast_zonal_mean"] == pytest.approx(3.0)
    assert z["persistence"] == 0.0 and z["persistence_zonal_mean"] == 0.0


def test_skill_report_autoencoder_error_is_the_reconstruction_rmse(tmp_path):
    import xarray as xr

    from mlscam.emulator import Emulator

    mod = load_script("skill_report")
    ckpt = ROOT / "mlscam" / "assets" / "demo" / "checkpoint.pt"
    init = xr.open_dataset(ROOT / "mlscam" / "assets" / "demo" / "initial_state.nc").load()
    got = mod.autoencoder_error(str(ckpt), init, [0])
    em = Emulator.from_checkpoint(str(ckpt))
    lay = em.layout
    x = np.concatenate([np.moveaxis(init[v].values[0], 0, -1) if init[v].ndim == 4 else init[v].values[0][..., None]
                        for v in lay.variables], -1).astype(np.float32)
    with torch.no_grad():
        rec = em.decode(em.encode(torch.from_numpy(x)), fix=False).numpy()
    w = np.cos(np.radians(init["lat"].values))[:, None, None]
    for v in mod.VARS:
        d = (rec - x)[..., lay.slice_of(v)]
        ref = np.sqrt((d ** 2 * w).sum() / (w.sum() * init.sizes["lon"] * d.shape[-1]))
        assert got[v] == pytest.approx(ref, rel=0.02)  # cos(lat) against exact cell areas
        assert 0.05 < got[v] < 2.0  # the shipped autoencoder: tenths of a kelvin / m/s, not zero
