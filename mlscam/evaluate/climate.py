"""The climate of a long rollout against the truth's: time-mean zonal means, and finiteness.

Unlike the skill scores, nothing is matched in time: each dataset is averaged
over its own time axis (e.g. a one-year rollout against a long truth run).
"""
from __future__ import annotations

import math

import numpy as np
import xarray as xr

from .inputs import check_same_grid, level_key, select_variables
from .metrics import area_weights

__all__ = ["zonal_mean_climate"]


def zonal_mean_climate(forecast: xr.Dataset, truth: xr.Dataset, *, variables=None) -> dict:
    """Time-mean zonal means of forecast and truth ``[level, lat]`` and how far apart they are.

    Returns ``{variable: {"lat": [lat], "levels": [key], "forecast": [level][lat],
    "truth": [level][lat], "rmse": {level: value}, "finite": bool, "n_times": {...}}}``
    where ``rmse`` is the area-weighted (over latitude) RMS of the zonal-mean difference
    and ``finite`` says whether every forecast value is finite.
    """
    check_same_grid(forecast, truth)
    names = select_variables(forecast, truth, variables)
    wlat = area_weights(truth["lat"].values, truth["lon"].values).isel(lon=0).values
    out = {}
    for name in names:
        f = forecast[name].astype(np.float64)
        t = truth[name].astype(np.float64)
        zf = f.mean(("time", "lon"))
        zt = t.mean(("time", "lon"))
        if "level" not in zf.dims:
            zf, zt = zf.expand_dims("level"), zt.expand_dims("level")
            keys = [level_key(None)]
        else:
            keys = [level_key(x) for x in zf["level"].values]
        zf, zt = zf.transpose("level", "lat").values, zt.transpose("level", "lat").values
        d2 = (zf - zt) ** 2
        rms = np.sqrt((d2 * wlat).sum(-1) / wlat.sum())
        out[name] = {
            "lat": [float(x) for x in truth["lat"].values],
            "levels": keys,
            "forecast": [[_num(v) for v in row] for row in zf],
            "truth": [[_num(v) for v in row] for row in zt],
            "rmse": {k: _num(r) for k, r in zip(keys, rms)},
            "finite": bool(np.isfinite(f.values).all()),
            "n_times": {"forecast": int(forecast.sizes["time"]), "truth": int(truth.sizes["time"])},
        }
    return out


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x
