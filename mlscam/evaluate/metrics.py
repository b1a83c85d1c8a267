"""Skill metrics as pure functions of xarray DataArrays.

Every function reduces over the horizontal dims ``("lat", "lon")`` and keeps
all other dims (e.g. ``time``, ``level``), so a forecast ``[time, level, lat, lon]``
gives a score ``[time, level]``.  ``weights`` is a ``[lat, lon]`` DataArray of
cell areas (any normalisation; see :func:`area_weights`); NaNs in the fields are
skipped together with their weights.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from ..grid import LatLonGrid

__all__ = [
    "HORIZONTAL",
    "area_weights",
    "weighted_mean",
    "rmse",
    "mse",
    "bias",
    "acc",
    "ccc",
    "std_ratio",
    "zonal_mean",
    "zonal_spectrum",
    "zonal_power",
]

HORIZONTAL = ("lat", "lon")


def area_weights(lat, lon) -> xr.DataArray:
    """``[lat, lon]`` exact cell-area weights (mean 1) of a cell-centred grid.

    Uses :meth:`mlscam.grid.LatLonGrid.area_weights`; ``lat`` ascending in degrees north.
    """
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    w = LatLonGrid(tuple(lat), tuple(lon)).area_weights()
    return xr.DataArray(w, dims=HORIZONTAL, coords={"lat": lat, "lon": lon}, name="area_weight")


def weighted_mean(x: xr.DataArray, weights: xr.DataArray) -> xr.DataArray:
    """Area-weighted mean of ``x [..., lat, lon]`` over lat and lon -> ``[...]``.

    ``weights`` is ``[lat, lon]`` (or ``[lat]``) on the same lat/lon as ``x``;
    NaN points of ``x`` drop out with their weights (all NaN -> NaN).
    """
    if "lon" not in weights.dims:
        weights = weights.expand_dims(lon=x["lon"].values).transpose("lat", "lon")
    for c in HORIZONTAL:
        if c in x.coords and c in weights.coords and (
                x.sizes[c] != weights.sizes[c] or not np.array_equal(x[c].values, weights[c].values)):
            raise ValueError(f"weights and field have different {c}: {weights[c].values} vs {x[c].values}")
    xt = x.transpose(..., *HORIZONTAL)
    xv = np.asarray(xt.values, dtype=float)
    wv = np.asarray(weights.transpose(*HORIZONTAL).values, dtype=float)
    ok = np.isfinite(xv)
    num = np.where(ok, xv * wv, 0.0).sum(axis=(-2, -1))
    den = np.where(ok, wv, 0.0).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        val = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    dims = xt.dims[:-2]
    coords = {k: v for k, v in xt.coords.items() if not (set(v.dims) & set(HORIZONTAL))}
    return xr.DataArray(val, dims=dims, coords=coords)


def mse(fc: xr.DataArray, tr: xr.DataArray, weights: xr.DataArray) -> xr.DataArray:
    """Area-weighted mean squared error of ``fc`` against ``tr`` ``[..., lat, lon]`` -> ``[...]``."""
    return weighted_mean((fc - tr) ** 2, weights)


def rmse(fc: xr.DataArray, tr: xr.DataArray, weights: xr.DataArray) -> xr.DataArray:
    """Area-weighted root mean squared error ``sqrt(<(fc - tr)^2>)``: ``[..., lat, lon]`` -> ``[...]``."""
    return np.sqrt(mse(fc, tr, weights))


def bias(fc: xr.DataArray, tr: xr.DataArray, weights: xr.DataArray) -> xr.DataArray:
    """Area-weighted mean error ``<fc - tr>``: ``[..., lat, lon]`` -> ``[...]``."""
    return weighted_mean(fc - tr, weights)


def acc(fc: xr.DataArray, tr: xr.DataArray, clim: xr.DataArray, weights: xr.DataArray) -> xr.DataArray:
    """Anomaly correlation coefficient (uncentred) -> ``[...]``.

    With anomalies ``a = fc - clim`` and ``b = tr - clim`` (``clim`` broadcasts,
    e.g. ``[level, lat, lon]``): ``<a b> / sqrt(<a^2> <b^2>)``, ``<.>`` the
    area-weighted mean over lat and lon.  NaN where an anomaly is identically 0
    (e.g. for the climatology forecast itself).
    """
    a = fc - clim
    b = tr - clim
    num = weighted_mean(a * b, weights)
    den = np.sqrt(weighted_mean(a * a, weights) * weighted_mean(b * b, weights))
    return num / den.where(den > 0)


def _moments(fc: xr.DataArray, tr: xr.DataArray, weights: xr.DataArray):
    mf = weighted_mean(fc, weights)
    mt = weighted_mean(tr, weights)
    vf = weighted_mean((fc - mf) ** 2, weights)
    vt = weighted_mean((tr - mt) ** 2, weights)
    cov = weighted_mean((fc - mf) * (tr - mt), weights)
    return mf, mt, vf, vt, cov


def ccc(fc: xr.DataArray, tr: xr.DataArray, weights: xr.DataArray) -> xr.DataArray:
    """Lin's concordance correlation coefficient over space -> ``[...]``.

    ``2 cov(fc, tr) / (var(fc) + var(tr) + (mean(fc) - mean(tr))^2)`` with
    area-weighted moments over lat and lon; 1 only for identical fields.
    """
    mf, mt, vf, vt, cov = _moments(fc, tr, weights)
    den = vf + vt + (mf - mt) ** 2
    return 2.0 * cov / den.where(den > 0)


def std_ratio(fc: xr.DataArray, tr: xr.DataArray, weights: xr.DataArray) -> xr.DataArray:
    """Ratio of the area-weighted spatial standard deviations ``std(fc) / std(tr)`` -> ``[...]``."""
    _, _, vf, vt, _ = _moments(fc, tr, weights)
    return np.sqrt(vf) / np.sqrt(vt.where(vt > 0))


def zonal_mean(x: xr.DataArray) -> xr.DataArray:
    """Mean over longitude: ``[..., lat, lon]`` -> ``[..., lat]``."""
    return x.mean("lon")


def zonal_spectrum(x: xr.DataArray, weights: xr.DataArray | None = None) -> xr.DataArray:
    """Zonal power spectrum ``[..., lat, lon]`` -> ``[..., wavenumber]``, averaged over latitude.

    On every latitude circle with ``nlon`` points, ``X_k = fft(x)_k / nlon`` and the
    one-sided power is ``|X_0|^2`` at k = 0, ``2 |X_k|^2`` for ``0 < k < nlon/2`` and
    ``|X_{nlon/2}|^2`` at the Nyquist wavenumber, so the powers of a row sum to its
    mean square (Parseval).  Rows are averaged with the latitude part of ``weights``
    (``[lat, lon]`` or ``[lat]``; equal weights if None), so the total power equals
    the area-weighted mean square of ``x``.  ``cos(k lon)`` puts all its power, 1/2,
    at wavenumber k.
    """
    power = zonal_power(x.transpose(..., "lon").values)
    dims = [d for d in x.transpose(..., "lon").dims if d != "lon"] + ["wavenumber"]
    coords = {d: x[d] for d in dims[:-1] if d in x.coords}
    coords["wavenumber"] = np.arange(power.shape[-1])
    p = xr.DataArray(power, dims=dims, coords=coords, name="power")
    if weights is None:
        wlat = xr.ones_like(x["lat"], dtype=float)
    else:
        wlat = weights.mean("lon") if "lon" in weights.dims else weights
    return p.weighted(wlat).mean("lat")


def zonal_power(values: np.ndarray) -> np.ndarray:
    """One-sided zonal power of a numpy array ``[..., lon]`` -> ``[..., nlon // 2 + 1]`` (no averaging).

    ``|X_0|^2``, ``2 |X_k|^2`` for ``0 < k < nlon/2`` and ``|X_{nlon/2}|^2`` (even nlon), with
    ``X = fft(x) / nlon``: a row's powers sum to its mean square, and the powers at ``k >= 1``
    sum to the variance along longitude (the eddy variance of that row).
    """
    nlon = values.shape[-1]
    power = np.abs(np.fft.rfft(values, axis=-1) / nlon) ** 2
    power[..., 1 : (nlon + 1) // 2] *= 2.0  # both signs of k, but not k=0 nor the Nyquist (even nlon)
    return power
