"""mlscam.datagen: Courant numbers, the CF writer, and a Held-Suarez smoke run on dinosaur."""
from __future__ import annotations

import time

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from mlscam.datagen.cf_writer import CFStateWriter
from mlscam.datagen.courant import (
    EARTH_RADIUS_M,
    RunningMaxAbs,
    courant_numbers,
    courant_table_from_file,
    summary_rows,
)
from mlscam.datagen.held_suarez import HeldSuarezRun
from mlscam.grid import LatLonGrid


# -- Courant numbers (closed forms) ------------------------------------------
def test_courant_numbers_closed_form():
    grid = LatLonGrid.equiangular(4, 8)
    lat = grid.lat_array()  # -67.5, -22.5, 22.5, 67.5
    u = np.full(4, 20.0)
    v = np.array([1.0, 2.0, 3.0, 4.0])
    table = courant_numbers(u, v, lat, 8, 6 * 3600.0, radius_m=6.4e6)
    dx = 6.4e6 * np.cos(np.deg2rad(lat)) * (2 * np.pi / 8)
    dy = 6.4e6 * np.pi / 4
    np.testing.assert_allclose(table.courant_u, 20.0 * 21600.0 / dx)
    np.testing.assert_allclose(table.courant_v, v * 21600.0 / dy)
    # Same speed, smaller cell towards the poles: cos(22.5)/cos(67.5) times larger.
    assert table.courant_u[0] / table.courant_u[1] == pytest.approx(np.cos(np.pi / 8) / np.cos(3 * np.pi / 8))


def test_courant_numbers_rejects_bad_interval():
    with pytest.raises(ValueError, match="dt_seconds=0"):
        courant_numbers(np.ones(2), np.ones(2), np.array([-45.0, 45.0]), 4, 0.0)


def test_running_max_abs_reduces_all_but_latitude():
    acc = RunningMaxAbs(3)
    a = np.zeros((2, 3, 4))  # [level, lat, lon]
    a[1, 0, 2] = -7.0
    a[0, 2, 3] = 2.0
    acc.update(a)
    acc.update(np.full((2, 3, 4), 3.0) * np.array([0.0, 1.0, 0.0])[:, None])
    np.testing.assert_array_equal(acc.value, [7.0, 3.0, 2.0])


def test_summary_rows_include_both_rows_around_equator_and_poles():
    lat = LatLonGrid.equiangular(32, 64).lat_array()
    table = courant_numbers(np.ones(32), np.ones(32), lat, 64, 3600.0)
    rows = summary_rows(table)
    assert {0, 1, 30, 31, 15, 16} <= set(rows)  # poles' neighbours and the two rows at +-2.8125
    assert {7, 8, 23, 24} <= set(rows)  # -47.8/-42.2 and 42.2/47.8 around +-45


# -- CF writer ---------------------------------------------------------------
def _sample(grid: LatLonGrid, nlev: int, k: int) -> dict[str, np.ndarray]:
    j = np.arange(grid.nlat)[:, None]
    i = np.arange(grid.nlon)[None, :]
    lev = np.arange(nlev)[:, None, None]
    return {
        "u": (10.0 + k + lev + 0 * j + 0 * i).astype(np.float32),
        "v": (np.broadcast_to(-2.0 * (j + 1) + 0 * i, (nlev, grid.nlat, grid.nlon))).astype(np.float32),
        "temperature": np.full((nlev, grid.nlat, grid.nlon), 250.0 + k, np.float32),
        "surface_pressure": np.full((grid.nlat, grid.nlon), 1e5, np.float32),
    }


def _write_small(path, grid, nlev=3, ntime=3, interval=6.0):
    sigma_b = np.linspace(0.0, 1.0, nlev + 1)
    with CFStateWriter(
        path, grid, 0.5 * (sigma_b[1:] + sigma_b[:-1]), sigma_b,
        time_units="hours since 2000-01-01 00:00:00", calendar="360_day", global_attrs={"seed": 3},
    ) as w:
        for k in range(ntime):
            w.append(k * interval, _sample(grid, nlev, k))
        w.commit()


def test_writer_layout_and_courant_from_file(tmp_path):
    grid = LatLonGrid.equiangular(4, 8)
    path = tmp_path / "small.nc"
    _write_small(path, grid)
    with xr.open_dataset(path) as ds:
        assert ds["u"].dims == ("time", "level", "lat", "lon")
        assert ds["surface_pressure"].dims == ("time", "lat", "lon")
        assert ds["u"].dtype == np.float32
        np.testing.assert_allclose(ds["level"].values, [1 / 6, 0.5, 5 / 6])
        assert ds.attrs["Conventions"] == "CF-1.8" and int(ds.attrs["seed"]) == 3
        assert ds["time"].encoding["calendar"] == "360_day"
    table = courant_table_from_file(str(path))  # interval from the time axis: 6 h
    lat = grid.lat_array()
    dx = EARTH_RADIUS_M * np.cos(np.deg2rad(lat)) * 2 * np.pi / 8
    np.testing.assert_allclose(table.courant_u, 14.0 * 21600.0 / dx, rtol=1e-6)  # max u = 10 + k=2 + lev=2
    np.testing.assert_allclose(table.courant_v, 2.0 * np.arange(1, 5) * 21600.0 / (EARTH_RADIUS_M * np.pi / 4), rtol=1e-6)
    half = courant_table_from_file(str(path), interval_hours=3.0)
    np.testing.assert_allclose(half.courant_u, 0.5 * table.courant_u)


def test_writer_is_atomic_on_error(tmp_path):
    grid = LatLonGrid.equiangular(4, 8)
    path = tmp_path / "data.nc"
    path.write_bytes(b"old")
    sigma_b = np.linspace(0, 1, 3)
    with pytest.raises(ValueError, match=r"temperature has shape \(2, 8, 4\), expected \(2, 4, 8\)"):
        with CFStateWriter(path, grid, 0.5 * (sigma_b[1:] + sigma_b[:-1]), sigma_b,
                           time_units="hours since 2000-01-01", calendar="standard", global_attrs={}) as w:
            bad = _sample(grid, 2, 0)
            bad["temperature"] = np.zeros((2, 8, 4), np.float32)
            w.append(0.0, bad)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.nc"]


def test_writer_refuses_non_finite_values(tmp_path):
    grid = LatLonGrid.equiangular(4, 8)
    sigma_b = np.linspace(0, 1, 3)
    with pytest.raises(FloatingPointError, match="u has non-finite values at time 12.0 h"):
        with CFStateWriter(tmp_path / "x.nc", grid, 0.5 * (sigma_b[1:] + sigma_b[:-1]), sigma_b,
                           time_units="hours since 2000-01-01", calendar="standard", global_attrs={}) as w:
            s = _sample(grid, 2, 0)
            s["u"][0, 0, 0] = np.nan
            w.append(12.0, s)
    assert list(tmp_path.iterdir()) == []


# -- run configuration -------------------------------------------------------
def test_run_counts_samples():
    run = HeldSuarezRun(spinup_days=200, days=200, interval_hours=6)
    assert (run.n_samples, run.n_spinup_intervals) == (800, 800)


def test_run_rejects_partial_intervals():
    with pytest.raises(ValueError, match=r"days=1.1 is not a whole number of 6.0-hour intervals"):
        HeldSuarezRun(days=1.1, interval_hours=6.0)


# -- smoke run on the real dynamical core --------------------------------------
# About 21 s on an idle 2-core machine (JAX start-up, three compilations, 3 x 2 simulated days);
# not marked slow so that CI exercises the tool whenever the datagen extra is installed.
SMOKE = ["--resolution", "T21", "--levels", "10", "--spinup-days", "0", "--days", "2", "--interval-hours", "6",
         "--no-progress"]


def test_held_suarez_smoke_run(tmp_path, monkeypatch, capsys):
    pytest.importorskip("dinosaur")
    from mlscam.datagen.held_suarez import main

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    t0 = time.perf_counter()
    paths = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        paths[name] = tmp_path / f"{name}.nc"
        assert main(SMOKE + ["--seed", str(seed), "--output", str(paths[name])]) == 0
    elapsed = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert "Courant numbers for dt = 6 h" in out

    grid = LatLonGrid.equiangular(32, 64)
    with xr.open_dataset(paths["a"]) as a, xr.open_dataset(paths["b"]) as b, xr.open_dataset(paths["c"]) as c:
        assert dict(a.sizes) == {"time": 8, "level": 10, "lat": 32, "lon": 64, "nv": 2}
        for name in ("u", "v", "temperature"):
            assert a[name].dims == ("time", "level", "lat", "lon") and a[name].dtype == np.float32
        assert a["surface_pressure"].dims == ("time", "lat", "lon")
        # Equiangular cell-centred coordinates, not the Gaussian grid.
        np.testing.assert_allclose(a["lat"].values, -90 + 180 * (np.arange(32) + 0.5) / 32)
        np.testing.assert_allclose(a["lon"].values, 5.625 * np.arange(64))
        np.testing.assert_allclose(a["lat"].values, grid.lat_array())
        # Equidistant sigma midpoints, top first as in the dycore.
        np.testing.assert_allclose(a["level"].values, (np.arange(10) + 0.5) / 10, atol=1e-6)
        # CF attributes.
        assert a["time"].encoding["units"] == "hours since 2000-01-01 00:00:00"
        assert a["time"].encoding["calendar"] == "proleptic_gregorian"
        np.testing.assert_array_equal(np.diff(a["time"].values), np.timedelta64(6, "h"))
        assert a["lat"].attrs["units"] == "degrees_north" and a["lat"].attrs["standard_name"] == "latitude"
        assert a["lon"].attrs["units"] == "degrees_east" and a["lon"].attrs["standard_name"] == "longitude"
        assert a["level"].attrs["standard_name"] == "atmosphere_sigma_coordinate"
        assert a["level"].attrs["positive"] == "down"
        expected = {"u": ("m s-1", "eastward_wind"), "v": ("m s-1", "northward_wind"),
                    "temperature": ("K", "air_temperature"), "surface_pressure": ("Pa", "surface_air_pressure")}
        for name, (units, std) in expected.items():
            assert (a[name].attrs["units"], a[name].attrs["standard_name"]) == (units, std)
            assert a[name].attrs["long_name"]
            assert np.isfinite(a[name].values).all()
        for key in ("tool", "dinosaur_version", "resolution", "seed", "spinup_days", "interval_hours",
                    "command_line", "created"):
            assert key in a.attrs, key
        assert a.attrs["Conventions"] == "CF-1.8" and int(a.attrs["seed"]) == 0
        assert "--seed 0" in a.attrs["command_line"]
        # Physically plausible: rest state plus 2 days of forcing.
        assert 95000 < float(a["surface_pressure"].mean()) < 105000
        assert 150 < float(a["temperature"].min()) and float(a["temperature"].max()) < 330
        assert a["courant_u"].dims == ("lat",) and np.all(a["courant_u"].values >= 0)
        # Seeded: same seed -> identical data and attributes, different seed -> different data.
        for name in ("u", "v", "temperature", "surface_pressure", "courant_u", "courant_v"):
            np.testing.assert_array_equal(a[name].values, b[name].values)
        assert a.attrs == {**b.attrs, "command_line": a.attrs["command_line"], "history": a.attrs["history"]}
        assert not np.array_equal(a["surface_pressure"].values, c["surface_pressure"].values)
    print(f"smoke: 3 runs of 2 simulated days in {elapsed:.1f} s")


def test_check_mass_accepts_the_cpu_made_mass_and_refuses_the_gpu_made():
    from mlscam.datagen.held_suarez import MASS_TOLERANCE, check_mass

    grid = LatLonGrid.equiangular(32, 64)
    area = grid.area_weights()
    rng = np.random.default_rng(0)
    wave = 800.0 * rng.standard_normal((32, 64))
    cpu = 100003.97 + wave - float(np.mean(wave * area))  # a seed-1 CPU sample's global mean
    check_mass(cpu, area, 1e5, hour=720)
    check_mass(1e5 * (1 + 0.9 * MASS_TOLERANCE) + 0 * wave, area, 1e5, hour=0)
    gpu = cpu * 1.0423  # the 2026-11-28 H200 sample (benchmarks/gpu/datagen_compare.txt)
    with pytest.raises(RuntimeError, match=r"1042\.\d\d hPa, \+4\.2\d% .*JAX_PLATFORMS=cpu"):
        check_mass(gpu, area, 1e5, hour=720)
    with pytest.raises(RuntimeError, match="not conserved"):
        check_mass(np.full((32, 64), np.nan), area, 1e5, hour=1)


def test_generator_refuses_a_run_whose_mass_moves_and_writes_nothing(tmp_path, monkeypatch):
    pytest.importorskip("dinosaur")
    from mlscam.datagen import dycore
    from mlscam.datagen.held_suarez import main

    to_latlon = dycore.HeldSuarezModel.to_latlon

    def heavier(self, state):  # what the GPU-made file held: 4.2% more air from the first sample on
        fields = to_latlon(self, state)
        return {**fields, "surface_pressure": fields["surface_pressure"] * 1.042}

    monkeypatch.setattr(dycore.HeldSuarezModel, "to_latlon", heavier)
    out = tmp_path / "heavy.nc"
    with pytest.raises(RuntimeError, match="mass is not conserved"):
        main(SMOKE + ["--seed", "1", "--output", str(out)])
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_transforms_are_full_float32_on_a_gpu_too(monkeypatch):
    pytest.importorskip("dinosaur")
    import jax
    import jax.numpy as jnp
    from dinosaur import jax_numpy_utils, spherical_harmonic

    from mlscam.datagen.dycore import pin_transform_precision

    x6 = jax.lax.DotAlgorithmPreset.BF16_BF16_F32_X6
    # dinosaur's own choice on a GPU (restored after the test), as on a process that never built the model
    monkeypatch.setattr(jax_numpy_utils, "FLOAT32_DOT_ALGORITHM", x6)
    monkeypatch.setattr(spherical_harmonic, "FAST_TRANSFORM_DOT_ALGORITHM", None)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(jax_numpy_utils, "_gpu_supports_bf16_dot_algorithms", lambda: True)
    a = jnp.ones((4, 4), jnp.float32)
    assert jax_numpy_utils.resolve_dot_precision(None, a, a) == x6
    pin_transform_precision()
    assert jax_numpy_utils.resolve_dot_precision(None, a, a) == jax.lax.Precision.HIGHEST
    fast = spherical_harmonic.FAST_TRANSFORM_DOT_ALGORITHM
    assert jax_numpy_utils.resolve_dot_precision(None, a, a, float32_algorithm=fast) == jax.lax.Precision.HIGHEST
