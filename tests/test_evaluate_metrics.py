"""Metrics of mlscam.evaluate against hand-computed values on tiny fields."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from mlscam.evaluate import acc, area_weights, bias, ccc, rmse, std_ratio, weighted_mean, zonal_spectrum


def field(values, lat, lon, extra=None):
    """``[(extra,) lat, lon]`` DataArray."""
    dims = ("lat", "lon") if extra is None else (extra, "lat", "lon")
    return xr.DataArray(np.asarray(values, float), dims=dims, coords={"lat": lat, "lon": lon})


LAT4 = np.array([-67.5, -22.5, 22.5, 67.5])
LON8 = np.arange(8) * 45.0


def random_field(seed, extra=None):
    rng = np.random.default_rng(seed)
    shape = (4, 8) if extra is None else (3, 4, 8)
    return field(rng.normal(size=shape), LAT4, LON8, extra)


@pytest.mark.parametrize("c", [0.7, -2.5])
def test_rmse_and_bias_of_constant_offset(c):
    tr = random_field(0, extra="time")
    w = area_weights(LAT4, LON8)
    fc = tr + c
    np.testing.assert_allclose(rmse(fc, tr, w).values, [abs(c)] * 3, rtol=1e-12)
    np.testing.assert_allclose(bias(fc, tr, w).values, [c] * 3, rtol=1e-12)
    assert rmse(fc, tr, w).dims == ("time",)


def test_two_latitude_grid_has_equal_weights_and_weighted_mean_by_hand():
    lat, lon = np.array([-45.0, 45.0]), np.array([0.0, 180.0])
    w = area_weights(lat, lon)
    np.testing.assert_allclose(w.values, np.ones((2, 2)))
    x = field([[1.0, 3.0], [10.0, 30.0]], lat, lon)
    assert float(weighted_mean(x, w)) == pytest.approx((1 + 3 + 10 + 30) / 4)


def test_asymmetric_grid_weights_are_cell_areas():
    # cells [-90, -30] and [-30, 90] (edges at the midpoint of -60 and 0): areas ~ sin(-30)-sin(-90) = 0.5
    # and sin(90)-sin(-30) = 1.5, so the weighted mean of (a, b) is (0.5 a + 1.5 b) / 2
    lat, lon = np.array([-60.0, 0.0]), np.array([0.0, 180.0])
    w = area_weights(lat, lon)
    np.testing.assert_allclose(w.values[:, 0], [0.5, 1.5])
    x = field([[4.0, 4.0], [8.0, 8.0]], lat, lon)
    assert float(weighted_mean(x, w)) == pytest.approx((0.5 * 4 + 1.5 * 8) / 2)
    # RMSE of an error 2 in the south and 0 in the north: sqrt(0.5 * 4 / 2) = 1
    tr = field(np.zeros((2, 2)), lat, lon)
    fc = field([[2.0, 2.0], [0.0, 0.0]], lat, lon)
    assert float(rmse(fc, tr, w)) == pytest.approx(1.0)


def test_acc_perfect_is_one_and_flipped_anomaly_is_minus_one():
    w = area_weights(LAT4, LON8)
    clim = random_field(1)
    tr = random_field(2, extra="time") + clim
    assert np.allclose(acc(tr, tr, clim, w), 1.0)
    flipped = clim - (tr - clim)
    assert np.allclose(acc(flipped, tr, clim, w), -1.0)
    # the climatology has no anomaly: its ACC is undefined
    assert np.isnan(float(acc(clim, tr.isel(time=0), clim, w)))


def test_acc_by_hand_on_two_cells():
    lat, lon = np.array([-45.0, 45.0]), np.array([0.0, 180.0])
    w = area_weights(lat, lon)
    clim = field(np.zeros((2, 2)), lat, lon)
    tr = field([[1.0, 0.0], [0.0, 0.0]], lat, lon)
    fc = field([[1.0, 1.0], [0.0, 0.0]], lat, lon)
    # <ab> = 1/4, <a^2> = 2/4, <b^2> = 1/4 -> 0.25 / sqrt(0.125) = 1/sqrt(2)
    assert float(acc(fc, tr, clim, w)) == pytest.approx(1 / np.sqrt(2))


def test_ccc_identical_is_one_and_offset_lowers_it():
    w = area_weights(LAT4, LON8)
    tr = random_field(3, extra="time")
    np.testing.assert_allclose(ccc(tr, tr, w).values, 1.0)
    # CCC of a shifted copy: 2 var / (2 var + c^2)
    var = weighted_mean((tr - weighted_mean(tr, w)) ** 2, w)
    np.testing.assert_allclose(ccc(tr + 1.5, tr, w).values, (2 * var / (2 * var + 1.5 ** 2)).values)


def test_std_ratio_of_scaled_field_is_two():
    w = area_weights(LAT4, LON8)
    tr = random_field(4, extra="time")
    np.testing.assert_allclose(std_ratio(2 * tr + 3.0, tr, w).values, 2.0)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_zonal_spectrum_of_cosine_is_all_at_k(k):
    lon = np.arange(8) * 45.0
    x = field(np.cos(k * np.deg2rad(lon))[None, :] * np.ones((4, 1)), LAT4, lon)
    p = zonal_spectrum(x, area_weights(LAT4, lon))
    assert p.dims == ("wavenumber",) and p.sizes["wavenumber"] == 5
    expect = np.zeros(5)
    expect[k] = 1.0 if k == 4 else 0.5  # Nyquist cos(pi i) = (-1)^i has mean square 1
    np.testing.assert_allclose(p.values, expect, atol=1e-14)


def test_zonal_spectrum_parseval_equals_weighted_mean_square():
    w = area_weights(LAT4, LON8)
    x = random_field(5, extra="time")
    p = zonal_spectrum(x, w)
    assert p.dims == ("time", "wavenumber")
    np.testing.assert_allclose(p.sum("wavenumber").values, weighted_mean(x ** 2, w).values, rtol=1e-12)
