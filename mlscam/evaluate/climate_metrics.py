"""Climate metrics of long rollouts against a truth run, from their :class:`RunClimate` statistics.

Weighting everywhere: latitude rows by their exact cell areas
(:func:`climate_stats.latitude_weights`), levels by a plain mean -- the mass
weighting for the equidistant sigma levels that ``mlscam.datagen`` writes (other
level sets are still averaged plainly).  Pure functions of numpy arrays, then
:func:`evaluate_climate`, which returns exactly what ``climate.json`` holds.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from .climate_stats import DAYS_PER_YEAR, FieldClimate, RunClimate, latitude_weights
from .inputs import EvaluationError

__all__ = ["rms_lat_level", "noise_floor", "eddy_variance", "mean_spectrum", "share_above", "trend_per_year",
           "end_minus_start", "std_ratio_max", "check_truncation", "evaluate_climate", "WINDOW_DAYS"]

WINDOW_DAYS = 30.0


def _num(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if not math.isfinite(x) else x


def _level_mean_of_lat_mean(a: np.ndarray, wlat: np.ndarray) -> tuple[float, np.ndarray]:
    """``a [level, lat]`` -> (plain level mean of the area-weighted latitude means, ``[level]`` latitude means)."""
    by_level = (a * wlat).sum(axis=-1) / wlat.sum()
    return float(by_level.mean()), by_level


def rms_lat_level(d: np.ndarray, wlat: np.ndarray) -> tuple[float, np.ndarray]:
    """RMS of ``d [level, lat]``: ``sqrt(mean_level <d^2>_lat)`` and ``[level]`` ``sqrt(<d^2>_lat)``."""
    total, by_level = _level_mean_of_lat_mean(np.asarray(d, float) ** 2, wlat)
    return math.sqrt(total), np.sqrt(by_level)


def noise_floor(year_means: np.ndarray, wlat: np.ndarray) -> tuple[float, np.ndarray, int] | None:
    """Mean over all pairs of years of the RMS of their zonal-time-mean difference.

    ``year_means [year, level, lat]`` -> ``(total, [level], n_pairs)``, or None with fewer than 2 years.
    """
    ny = year_means.shape[0]
    if ny < 2:
        return None
    pairs = list(itertools.combinations(range(ny), 2))
    rms = [rms_lat_level(year_means[i] - year_means[j], wlat) for i, j in pairs]
    return float(np.mean([r[0] for r in rms])), np.mean([r[1] for r in rms], axis=0), len(pairs)


def eddy_variance(power: np.ndarray, wlat: np.ndarray) -> tuple[float, np.ndarray]:
    """Eddy variance from ``power [level, lat, k]``: the variance along longitude (powers at k >= 1),
    area-weighted over latitude -> (plain mean over levels, ``[level]``)."""
    return _level_mean_of_lat_mean(power[..., 1:].sum(axis=-1), wlat)


def mean_spectrum(power: np.ndarray, wlat: np.ndarray) -> np.ndarray:
    """``power [level, lat, k]`` -> ``[k]``: area-weighted mean over latitude, plain mean over levels."""
    return ((power * wlat[:, None]).sum(axis=-2) / wlat.sum()).mean(axis=0)


def share_above(spectrum: np.ndarray, truncation: int) -> float:
    """Share of the eddy power (k >= 1) at wavenumbers above ``truncation``: ``sum_{k>T} / sum_{k>=1}``."""
    eddy = spectrum[1:].sum()
    return float(spectrum[truncation + 1:].sum() / eddy) if eddy > 0 else math.nan


def trend_per_year(days: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of ``values`` against time, per 365 days (NaN with fewer than 2 times)."""
    if len(days) < 2:
        return math.nan
    t = np.asarray(days, float) - np.mean(days)
    return float((t * (values - np.mean(values))).sum() / (t * t).sum() * DAYS_PER_YEAR)


def end_minus_start(days: np.ndarray, values: np.ndarray, window: float = WINDOW_DAYS) -> float:
    """Mean of ``values`` over the last ``window`` days minus the mean over the first ``window`` days.

    The first window is ``[days[0], days[0] + window)``, the last ``(days[-1] - window, days[-1]]``;
    NaN if they overlap (a run shorter than two windows).
    """
    days = np.asarray(days, float)
    first = days < days[0] + window
    last = days > days[-1] - window
    if (first & last).any():
        return math.nan
    return float(values[last].mean() - values[first].mean())


def std_ratio_max(start: np.ndarray, end: np.ndarray) -> tuple[float, np.ndarray]:
    """``max_lat std_end / std_start`` per level and its max over levels (rows with std_start = 0 skipped)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(start > 0, end / np.where(start > 0, start, 1.0), np.nan)
    by_level = np.array([np.nanmax(row) if np.isfinite(row).any() else np.nan for row in r])
    return (float(np.nanmax(by_level)) if np.isfinite(by_level).any() else math.nan), by_level


def _by_level(keys, values) -> dict:
    return {k: _num(v) for k, v in zip(keys, values)}


def _nested(a) -> list:
    a = np.asarray(a, float)
    return [_nested(x) for x in a] if a.ndim > 1 else [_num(x) for x in a]


def _run_numbers(run: RunClimate, f: FieldClimate, wlat, truncation: int, window: float) -> dict:
    """The numbers of one run alone: eddy variance, spectrum, drift and the blow-up indicators."""
    ev, ev_lev = eddy_variance(f.power, wlat)
    spec = mean_spectrum(f.power, wlat)
    sr, sr_lev = std_ratio_max(f.std_start, f.std_end)
    return {
        "eddy_variance": {"total": _num(ev), "by_level": _by_level(f.levels, ev_lev)},
        "spectrum": _nested(spec),
        "share_above_truncation": _num(share_above(spec, truncation)),
        "global_mean": {"trend_per_year": _num(trend_per_year(run.days, f.global_mean)),
                        "end_minus_start": _num(end_minus_start(run.days, f.global_mean, window)),
                        "mean": _num(np.mean(f.global_mean)),
                        "days": _nested(run.days), "values": _nested(f.global_mean)},
        "stability": {"finite": f.n_nonfinite == 0, "n_nonfinite": f.n_nonfinite,
                      "first_nonfinite_day": f.first_nonfinite_day, "max_abs": _num(f.max_abs),
                      "std_ratio_max": _num(sr), "std_ratio_by_level": _by_level(f.levels, sr_lev)},
    }


def _run_meta(run: RunClimate) -> dict:
    return {"file": run.source, "origin": run.origin, "spinup_days": run.spinup_days, "n_times": run.n_times,
            "n_used": int(run.days.size), "days": [_num(run.days[0]), _num(run.days[-1])],
            "interval_hours": _num(run.interval_days * 24.0), "full_years": run.n_years}


# key in the "mean" block -> where the number sits in each forecast's block
_MEAN_KEYS = {"zonal_mean_bias_rms": ("zonal_mean_bias_rms", "total"),
              "eddy_variance_ratio": ("eddy_variance_ratio", "total"),
              "share_above_truncation": ("share_above_truncation",),
              "trend_per_year": ("global_mean", "trend_per_year"),
              "end_minus_start": ("global_mean", "end_minus_start"),
              "max_abs": ("stability", "max_abs"), "std_ratio_max": ("stability", "std_ratio_max")}


def _get(d, path):
    for p in path:
        d = d[p]
    return d


def _mean_over(items: list) -> float | None:
    """Plain mean, None if any member is undefined (a blown-up member is not hidden)."""
    return None if any(x is None for x in items) else float(np.mean(items))


def check_truncation(truncation: int, nlon: int) -> None:
    """EvaluationError unless ``0 < truncation < nlon // 2`` (some resolved wavenumbers lie above it)."""
    nk = nlon // 2
    if not 0 < truncation < nk:
        raise EvaluationError(f"--truncation {truncation} must be between 1 and {nk - 1}: the grid's {nlon} "
                              f"longitudes resolve wavenumbers up to {nk}; use the truth's truncation (21 at T21)")


def evaluate_climate(forecasts: list[RunClimate], truth: RunClimate, *, variables=None, truncation: int = 21,
                     window_days: float = WINDOW_DAYS) -> dict:
    """Compare each forecast run's climate with the truth's; returns the dict of ``climate.json``.

    Layout (levels keyed ``"%g"`` of sigma, ``"2d"`` for 2-D fields)::

        meta         variables, truncation, window_days, weighting, units, lat, levels, forecasts: [...], truth
        noise_floor  var -> {rms, by_level, n_years, n_pairs, note}
        forecasts    [ {file, variables: var -> {zonal_mean_bias_rms {total, by_level},
                        bias_over_noise, zonal_mean_bias [level][lat], eddy_variance {total, by_level},
                        eddy_variance_ratio {total, by_level}, spectrum [k], share_above_truncation,
                        global_mean {trend_per_year, end_minus_start, mean, days, values}, stability {...}}} ]
        mean         var -> {zonal_mean_bias_rms, eddy_variance_ratio, share_above_truncation, trend_per_year,
                        end_minus_start, max_abs, std_ratio_max}: plain means over the forecasts (None if a
                        member's is undefined); finite (all members); bias_over_noise; zonal_mean_bias
                        [level][lat] and bias_rms_of_mean_climate: of the forecasts' mean zonal-time mean
        truth        var -> {zonal_mean, eddy_variance, spectrum, share_above_truncation, global_mean, stability}
    """
    names = list(variables) if variables else list(forecasts[0].fields)
    check_truncation(truncation, truth.lon.size)
    nk = truth.lon.size // 2
    wlat = latitude_weights(truth.lat)
    out = {"meta": {"variables": names, "truncation": truncation, "window_days": window_days,
                    "weighting": "latitude rows by exact cell area; levels by a plain mean (mass-weighted for "
                                 "equidistant sigma levels)",
                    "units": {v: truth.units.get(v, "") for v in names}, "lat": _nested(truth.lat),
                    "levels": {v: list(truth.fields[v].levels) for v in names},
                    "wavenumber": list(range(nk + 1)),
                    "forecasts": [_run_meta(r) for r in forecasts], "truth": _run_meta(truth)},
           "noise_floor": {}, "forecasts": [], "mean": {}, "truth": {}}
    for v in names:
        t = truth.fields[v]
        nf = noise_floor(t.year_means, wlat)
        if nf is None:
            out["noise_floor"][v] = {"rms": None, "by_level": None, "n_years": truth.n_years, "n_pairs": 0,
                                     "note": f"the truth has {truth.n_years} full 365-day year(s) after its spin-up; "
                                             "the year-to-year noise floor needs at least 2"}
        else:
            out["noise_floor"][v] = {"rms": _num(nf[0]), "by_level": _by_level(t.levels, nf[1]),
                                     "n_years": truth.n_years, "n_pairs": nf[2],
                                     "note": "mean over all pairs of full 365-day years of the RMS of the "
                                             "difference of their zonal-time means"}
        out["truth"][v] = {"zonal_mean": _nested(t.zonal_mean), **_run_numbers(truth, t, wlat, truncation, window_days)}
    for run in forecasts:
        entry = {"file": run.source, "variables": {}}
        for v in names:
            f, t = run.fields[v], truth.fields[v]
            d = f.zonal_mean - t.zonal_mean
            rms, rms_lev = rms_lat_level(d, wlat)
            mine = _run_numbers(run, f, wlat, truncation, window_days)
            ev_t = out["truth"][v]["eddy_variance"]
            ratio = {"total": _ratio(mine["eddy_variance"]["total"], ev_t["total"]),
                     "by_level": {k: _ratio(mine["eddy_variance"]["by_level"][k], ev_t["by_level"][k])
                                  for k in f.levels}}
            floor = out["noise_floor"][v]["rms"]
            entry["variables"][v] = {
                "zonal_mean_bias_rms": {"total": _num(rms), "by_level": _by_level(f.levels, rms_lev)},
                "bias_over_noise": _ratio(_num(rms), floor),
                "zonal_mean_bias": _nested(d),
                "eddy_variance_ratio": ratio, **mine}
        out["forecasts"].append(entry)
    for v in names:
        members = [e["variables"][v] for e in out["forecasts"]]
        mean = {key: _mean_over([_get(m, path) for m in members]) for key, path in _MEAN_KEYS.items()}
        mean["finite"] = all(m["stability"]["finite"] for m in members)
        mean["bias_over_noise"] = _ratio(mean["zonal_mean_bias_rms"], out["noise_floor"][v]["rms"])
        d = np.mean([run.fields[v].zonal_mean for run in forecasts], axis=0) - truth.fields[v].zonal_mean
        mean["bias_rms_of_mean_climate"] = _num(rms_lat_level(d, wlat)[0])
        mean["zonal_mean_bias"] = _nested(d)
        out["mean"][v] = mean
    return out


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b
