"""``evaluate_forecast``: every score of one forecast against the truth, as a nested dict.

Result layout (string keys, identical to ``metrics.json``)::

    meta        initial times, lead hours, climatology source, units, ...
    metrics     variable -> level -> metric -> source -> {lead_hours: value}
    zonal_mean  variable -> {"lat", "levels", "truth": {lead: [level][lat]},
                             "bias": {source: {lead: [level][lat]}}}
    spectra     variable -> level -> {"wavenumber", "forecast": {lead: [k]}, "truth": {lead: [k]}}

Levels are keyed ``"%g" % sigma`` (``"2d"`` for 2-D fields), leads ``"%g" % hours``;
metrics are ``rmse``, ``bias``, ``acc``, ``ccc``, ``std_ratio``; sources are
``forecast``, ``persistence`` and ``climatology``.  Undefined values (the ACC of
the climatology itself) are None.
"""
from __future__ import annotations

import math

import numpy as np
import xarray as xr

from . import metrics as M
from .baselines import climatology_field, persistence, truth_climatology
from .inputs import (EvaluationError, check_same_grid, forecast_times, lead_key, level_key, select_levels,
                     select_variables, truth_indices)

__all__ = ["METRICS", "SOURCES", "evaluate_forecast", "evaluate_forecasts", "combine_results", "series"]

METRICS = ("rmse", "bias", "acc", "ccc", "std_ratio")
SOURCES = ("forecast", "persistence", "climatology")


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _clean(da: xr.DataArray) -> xr.DataArray:
    """Float64 copy keeping only the dims' coordinates lat/lon/level; time becomes positional."""
    coords = {c: da[c].values for c in ("level", "lat", "lon") if c in da.dims}
    return xr.DataArray(np.asarray(da.values, dtype=np.float64), dims=da.dims, coords=coords, name=da.name)


def evaluate_forecast(forecast: xr.Dataset, truth: xr.Dataset, *, climatology: xr.Dataset | None = None,
                      variables=None, levels=None, leads=None) -> dict:
    """Score one forecast (one initial time) against the truth.

    Args:
      forecast: fields ``[time, level, lat, lon]`` / ``[time, lat, lon]`` on valid times, with
        ``lead_time`` and/or an initial time (see :mod:`mlscam.evaluate.inputs`).
      truth: the same fields on a time axis containing every valid time (exact match)
        and, for the persistence baseline, the initial time.
      climatology: time-mean fields ``[level, lat, lon]``; None uses the time mean of ``truth``.
      variables: names to score (default: all fields of the forecast).
      levels: level values to keep (default: all).
      leads: lead times in hours to keep (default: all; those the forecast lacks are skipped).

    Returns the nested dict described in the module docstring.
    """
    check_same_grid(forecast, truth)
    names = select_variables(forecast, truth, variables)
    forecast, truth = select_levels(forecast, levels), select_levels(truth, levels)
    times = forecast_times(forecast)
    if leads is not None:
        keep = [k for k, h in enumerate(times.lead_hours) if np.any(np.isclose(h, np.asarray(leads, float)))]
        if not keep:
            raise EvaluationError(
                f"none of the leads {list(leads)} h is in the forecast {forecast.attrs.get('source_file', '')!r}; "
                f"its leads: {[f'{h:g}' for h in times.lead_hours]} h")
        forecast = forecast.isel(time=keep)
        times = forecast_times(forecast)
    idx = truth_indices(truth, times.valid)
    leads = [lead_key(h) for h in times.lead_hours]
    try:
        i0 = int(truth_indices(truth, [times.initial], what="initial time")[0])
        pers_note = "truth at the initial time, held fixed"
    except EvaluationError as exc:
        i0, pers_note = None, f"not computed: {exc}"
    if climatology is None:
        clim_ds = truth_climatology(truth, names)
        clim_note = (f"time mean of the truth file ({truth.sizes['time']} times; includes the verifying "
                     "times); pass --climatology for an independent one")
    else:
        clim_ds = select_levels(climatology, levels)
        clim_note = f"from {climatology.attrs.get('source_file', 'the given dataset')}"

    w = M.area_weights(truth["lat"].values, truth["lon"].values)
    out = {
        "meta": {
            "initial_times": [str(times.initial)],
            "lead_hours": [float(h) for h in times.lead_hours],
            "n_forecasts": {k: 1 for k in leads},
            "variables": names,
            "units": {v: str(truth[v].attrs.get("units", forecast[v].attrs.get("units", ""))) for v in names},
            "climatology": clim_note,
            "persistence": pers_note,
            "acc": "uncentred: <a b>/sqrt(<a^2><b^2>), anomalies from the climatology, area-weighted",
            "weights": "exact cell areas (mlscam.grid.LatLonGrid.area_weights)",
        },
        "metrics": {}, "zonal_mean": {}, "spectra": {},
    }
    for name in names:
        fc = _clean(forecast[name])
        tr = _clean(truth[name].isel(time=idx))
        clim = _clean(climatology_field(clim_ds, name, truth[name]))
        sources = {"forecast": fc}
        if i0 is not None:
            sources["persistence"] = persistence(_clean(truth[name].isel(time=i0)), tr)
        sources["climatology"] = clim.broadcast_like(tr).transpose(*tr.dims)
        lev_keys = [level_key(x) for x in fc["level"].values] if "level" in fc.dims else [level_key(None)]
        table = {lk: {m: {} for m in METRICS} for lk in lev_keys}
        zm = {"lat": [float(x) for x in tr["lat"].values], "levels": lev_keys, "bias": {}}
        for src, f in sources.items():
            scores = {"rmse": M.rmse(f, tr, w), "bias": M.bias(f, tr, w), "acc": M.acc(f, tr, clim, w),
                      "ccc": M.ccc(f, tr, w), "std_ratio": M.std_ratio(f, tr, w)}
            for m, s in scores.items():
                arr = _levels_last(s)  # [time, nlev]
                for j, lk in enumerate(lev_keys):
                    table[lk][m][src] = {leads[t]: _num(arr[t, j]) for t in range(len(leads))}
            zb = _levels_last(M.zonal_mean(f - tr), extra="lat")  # [time, nlev, lat]
            zm["bias"][src] = {leads[t]: _nested(zb[t]) for t in range(len(leads))}
        ztr = _levels_last(M.zonal_mean(tr), extra="lat")
        zm["truth"] = {leads[t]: _nested(ztr[t]) for t in range(len(leads))}
        out["metrics"][name] = table
        out["zonal_mean"][name] = zm
        sf = _levels_last(M.zonal_spectrum(fc, w), extra="wavenumber")
        st = _levels_last(M.zonal_spectrum(tr, w), extra="wavenumber")
        out["spectra"][name] = {
            lk: {"wavenumber": list(range(sf.shape[-1])),
                 "forecast": {leads[t]: _nested(sf[t, j]) for t in range(len(leads))},
                 "truth": {leads[t]: _nested(st[t, j]) for t in range(len(leads))}}
            for j, lk in enumerate(lev_keys)}
    return out


def _levels_last(s: xr.DataArray, extra: str | None = None) -> np.ndarray:
    """``[time, level(, extra)]`` numpy array; a 2-D field gets a level axis of length 1."""
    if "level" not in s.dims:
        s = s.expand_dims("level", axis=1)
    order = ("time", "level") + ((extra,) if extra else ())
    return s.transpose(*order).values


def _nested(a: np.ndarray):
    return [_nested(x) for x in a] if a.ndim > 1 else [_num(x) for x in a]


# -- several initial times ------------------------------------------------------------------------

def _mean(values, rms: bool):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return math.sqrt(sum(v * v for v in vals) / len(vals)) if rms else sum(vals) / len(vals)


def _mean_nested(items):
    if isinstance(items[0], list):
        return [_mean_nested([it[k] for it in items]) for k in range(len(items[0]))]
    return _mean(items, rms=False)


def combine_results(results: list[dict]) -> dict:
    """Average the results of several initial times by lead time.

    RMSE combines as ``sqrt(mean(rmse^2))`` (root of the mean MSE); every other
    score, zonal mean and spectrum as the plain mean over the forecasts holding that lead.
    """
    if not results:
        raise EvaluationError("no forecasts to combine")
    if len(results) == 1:
        return results[0]
    first = results[0]
    leads = sorted({k for r in results for k in r["meta"]["n_forecasts"]}, key=float)
    meta = dict(first["meta"])
    meta["initial_times"] = [t for r in results for t in r["meta"]["initial_times"]]
    meta["lead_hours"] = [float(k) for k in leads]
    meta["n_forecasts"] = {k: sum(r["meta"]["n_forecasts"].get(k, 0) for r in results) for k in leads}
    meta["persistence"] = "; ".join(sorted({r["meta"]["persistence"] for r in results}))
    out = {"meta": meta, "metrics": {}, "zonal_mean": {}, "spectra": {}}
    for name, table in first["metrics"].items():
        out["metrics"][name] = {
            lk: {m: {src: {k: _mean([r["metrics"][name][lk][m].get(src, {}).get(k) for r in results], m == "rmse")
                           for k in leads}
                     for src in SOURCES if any(src in r["metrics"][name][lk][m] for r in results)}
                 for m in table[lk]}
            for lk in table}
        zm = first["zonal_mean"][name]
        out["zonal_mean"][name] = {
            "lat": zm["lat"], "levels": zm["levels"],
            "truth": _by_lead([r["zonal_mean"][name]["truth"] for r in results], leads),
            "bias": {src: _by_lead([r["zonal_mean"][name]["bias"][src] for r in results
                                    if src in r["zonal_mean"][name]["bias"]], leads)
                     for src in zm["bias"]}}
        out["spectra"][name] = {
            lk: {"wavenumber": sp["wavenumber"],
                 **{s: _by_lead([r["spectra"][name][lk][s] for r in results], leads) for s in ("forecast", "truth")}}
            for lk, sp in first["spectra"][name].items()}
    return out


def _by_lead(dicts: list[dict], leads) -> dict:
    out = {}
    for k in leads:
        items = [d[k] for d in dicts if k in d]
        if items:
            out[k] = _mean_nested(items)
    return out


def evaluate_forecasts(forecasts, truth: xr.Dataset, *, climatology=None, variables=None, levels=None,
                       leads=None, progress: bool = False) -> dict:
    """Score several forecasts (one initial time each) and average them by lead (:func:`combine_results`)."""
    forecasts = list(forecasts)
    it = forecasts
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(forecasts, desc="forecasts", unit="file")
    results = [evaluate_forecast(f, truth, climatology=climatology, variables=variables, levels=levels, leads=leads)
               for f in it]
    return combine_results(results)


def series(result: dict, variable: str, level, metric: str, source: str = "forecast"):
    """``(lead_hours [n], values [n])`` of one score; ``level`` a value, a key or None for 2-D fields."""
    lk = level if isinstance(level, str) else level_key(level)
    try:
        d = result["metrics"][variable][lk][metric][source]
    except KeyError as exc:
        raise EvaluationError(
            f"no {metric!r} of {source!r} for {variable!r} at level {lk!r} in this result (missing key {exc})"
        ) from None
    keys = sorted(d, key=float)
    return np.array([float(k) for k in keys]), np.array([np.nan if d[k] is None else d[k] for k in keys])
