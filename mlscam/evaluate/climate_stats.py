"""Time statistics of one long run (a rollout or the truth), read in time chunks.

:func:`read_run_climate` walks a run's time axis in slices (never the whole file
at once: a one-year hourly T21 rollout is gigabytes) and keeps only running sums,
so memory is bounded by one slice.  The result, :class:`RunClimate`, holds what the
climate metrics (:mod:`mlscam.evaluate.climate_metrics`) need and nothing that
grows with the number of grid points times the number of times; it round-trips
through JSON (``to_dict`` / ``from_dict``), which is the truth "summary" that
``python -m mlscam.evaluate climate --truth truth_summary.json`` accepts.

Times of a run are counted in days from its *origin*: the initial time of a
forecast (its ``lead_time`` / ``initial_time``, see :mod:`mlscam.evaluate.inputs`),
else the file's first time.  Times before ``spinup_days`` are dropped from every
statistic except the blow-up indicators (finiteness, max |value|, and the spatial
standard deviations at the first and last time), which see every time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from .inputs import EvaluationError, forecast_times, level_key
from .metrics import area_weights, zonal_power

__all__ = ["DAYS_PER_YEAR", "SUMMARY_FORMAT", "FieldClimate", "RunClimate", "run_days", "spinup_mask",
           "read_run_climate", "latitude_weights"]

DAYS_PER_YEAR = 365.0
SUMMARY_FORMAT = "mlscam.evaluate climate summary"
_CHUNK_VALUES = 2 ** 22  # values of one variable per time slice (32 MB as float64)


def latitude_weights(lat) -> np.ndarray:
    """``[lat]`` exact cell-area weights of latitude rows (mean 1), as :func:`metrics.area_weights`."""
    return area_weights(lat, [0.0, 180.0]).values[:, 0]


@dataclass
class FieldClimate:
    """Statistics of one variable of one run; 2-D fields have the one level ``"2d"``.

    Attributes (float64 numpy arrays; NaN where a non-finite value entered a sum):
      levels: level keys (``"%g"`` of sigma, or ``["2d"]``).
      zonal_mean: ``[level, lat]`` zonal-time mean over the times after the spin-up.
      power: ``[level, lat, wavenumber]`` time mean of the one-sided zonal power of each
        latitude row (:func:`metrics.zonal_power`); ``power[..., 1:].sum(-1)`` is the eddy
        variance (variance along longitude) of the row, averaged over time.
      year_means: ``[year, level, lat]`` zonal-time mean of each full 365-day year after the spin-up.
      global_mean: ``[time]`` area-weighted mean over lat and lon, then the plain mean over levels,
        at every time after the spin-up (``RunClimate.days``).
      std_start, std_end: ``[level, lat]`` standard deviation along longitude at the file's first
        and last time (spin-up included).
      n_nonfinite: non-finite values at any time; first_nonfinite_day: the day of the first time
        holding one (None if none); max_abs: the largest |value| among the finite values.
    """

    levels: list
    zonal_mean: np.ndarray
    power: np.ndarray
    year_means: np.ndarray
    global_mean: np.ndarray
    std_start: np.ndarray
    std_end: np.ndarray
    n_nonfinite: int = 0
    first_nonfinite_day: float | None = None
    max_abs: float | None = None


@dataclass
class RunClimate:
    """The time statistics of one run: grid, times after the spin-up, and one :class:`FieldClimate` per variable.

    ``days`` are the times kept (days since ``origin``, all ``>= spinup_days``);
    ``n_years`` full 365-day years start at ``days[0]``; ``n_times`` counts every time of the file.
    """

    source: str
    origin: str
    lat: np.ndarray
    lon: np.ndarray
    level: np.ndarray | None
    spinup_days: float
    n_times: int
    days: np.ndarray
    interval_days: float
    n_years: int
    fields: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-able dict (NaN as None) that :meth:`from_dict` reads back."""
        return {
            "format": SUMMARY_FORMAT, "version": 1, "source": self.source, "origin": self.origin,
            "lat": _list(self.lat), "lon": _list(self.lon),
            "level": None if self.level is None else _list(self.level),
            "spinup_days": self.spinup_days, "n_times": self.n_times, "days": _list(self.days),
            "interval_days": self.interval_days, "n_years": self.n_years, "units": dict(self.units),
            "fields": {name: {"levels": list(f.levels), "zonal_mean": _list(f.zonal_mean), "power": _list(f.power),
                              "year_means": _list(f.year_means), "global_mean": _list(f.global_mean),
                              "std_start": _list(f.std_start), "std_end": _list(f.std_end),
                              "n_nonfinite": f.n_nonfinite, "first_nonfinite_day": f.first_nonfinite_day,
                              "max_abs": f.max_abs}
                       for name, f in self.fields.items()},
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "<summary>") -> "RunClimate":
        if not isinstance(d, dict) or d.get("format") != SUMMARY_FORMAT:
            raise EvaluationError(
                f"{source} is not a climate summary (no \"format\": \"{SUMMARY_FORMAT}\"); pass the truth_summary.json "
                "that `python -m mlscam.evaluate climate` wrote, or the truth NetCDF file")
        nlat = len(d["lat"])
        fields = {}
        for name, f in d["fields"].items():
            nlev = len(f["levels"])
            fields[name] = FieldClimate(
                levels=list(f["levels"]), zonal_mean=_array(f["zonal_mean"]), power=_array(f["power"]),
                year_means=_array(f["year_means"]).reshape(-1, nlev, nlat), global_mean=_array(f["global_mean"]),
                std_start=_array(f["std_start"]), std_end=_array(f["std_end"]), n_nonfinite=int(f["n_nonfinite"]),
                first_nonfinite_day=f["first_nonfinite_day"], max_abs=f["max_abs"])
        return cls(source=d.get("source", source), origin=d["origin"], lat=_array(d["lat"]), lon=_array(d["lon"]),
                   level=None if d["level"] is None else _array(d["level"]), spinup_days=float(d["spinup_days"]),
                   n_times=int(d["n_times"]), days=_array(d["days"]), interval_days=float(d["interval_days"]),
                   n_years=int(d["n_years"]), fields=fields, units=dict(d.get("units", {})))


def _list(a):
    a = np.asarray(a, dtype=float)
    if a.ndim == 0:
        return None if math.isnan(a) else float(a)
    return [_list(x) for x in a] if a.ndim > 1 else [None if math.isnan(x) else float(x) for x in a]


def _array(x) -> np.ndarray:
    return np.array(x, dtype=float)


def _hours(delta) -> float:
    if isinstance(delta, np.timedelta64):
        return float(delta / np.timedelta64(1, "h"))
    return delta.total_seconds() / 3600.0


def run_days(ds: xr.Dataset) -> tuple[np.ndarray, str]:
    """``[time]`` days since the run's origin, and a description of the origin.

    A file with ``lead_time`` or an initial time (a forecast) counts from its initial
    time (lead time in days); any other file counts from its first time.
    """
    name = ds.attrs.get("source_file", "<dataset>")
    if "lead_time" in ds.variables or "initial_time" in ds.attrs or any(
            n in ds.variables and ds[n].ndim == 0 for n in ("initial_time", "forecast_reference_time")):
        ft = forecast_times(ds)
        days, origin = np.asarray(ft.lead_hours, float) / 24.0, f"initial time {ft.initial}"
    else:
        times = np.asarray(ds["time"].values)
        if times.size == 0:
            raise EvaluationError(f"{name!r} has no times")
        days = np.array([_hours(t - times[0]) for t in times]) / 24.0
        origin = f"first time {times[0]}"
    if days.size > 1 and not np.all(np.diff(days) > 0):
        k = int(np.argmax(np.diff(days) <= 0))
        raise EvaluationError(f"the times of {name!r} are not increasing (time {k + 1} is not after time {k}); "
                              "sort the file by time")
    return days, origin


def spinup_mask(ds: xr.Dataset, spinup_days: float, *, what: str = "run",
                spinup_option: str = "--spinup-days") -> tuple[np.ndarray, str, np.ndarray]:
    """``(days, origin, keep)`` of :func:`run_days`, ``keep`` marking the times at or after the spin-up.

    Raises EvaluationError, naming the file, its span and the option to change, if no time is left.
    """
    days, origin = run_days(ds)
    keep = days >= spinup_days - 1e-9
    if not keep.any():
        name = ds.attrs.get("source_file", "<dataset>")
        raise EvaluationError(
            f"the {what} {name!r} is shorter than the spin-up: its times span {days[0]:g} .. {days[-1]:g} days "
            f"from its {origin}, and {spinup_option} {spinup_days:g} drops every one of them; pass a longer {what} "
            f"or a smaller {spinup_option}")
    return days, origin, keep


def read_run_climate(ds: xr.Dataset, variables, *, spinup_days: float = 30.0, chunk_times: int | None = None,
                     what: str = "run", spinup_option: str = "--spinup-days", progress: bool = True) -> RunClimate:
    """Read ``variables`` of ``ds`` in time slices and return their :class:`RunClimate`.

    Args:
      ds: a lazily opened dataset (:func:`mlscam.evaluate.open_dataset`) with fields
        ``[time, level, lat, lon]`` / ``[time, lat, lon]``.
      spinup_days: times less than this many days after the origin are dropped (see module doc).
      chunk_times: times per slice (default: about 4 million values of one variable).
      what, spinup_option: how the run and the spin-up option are named in error messages.
      progress: show a tqdm bar over the times read.
    """
    from tqdm.auto import tqdm

    name = ds.attrs.get("source_file", "<dataset>")
    days, origin, keep = spinup_mask(ds, spinup_days, what=what, spinup_option=spinup_option)
    interval = float(np.median(np.diff(days))) if days.size > 1 else 0.0
    kept_days = days[keep]
    since = kept_days - kept_days[0]
    n_years = int(math.floor((since[-1] + interval) / DAYS_PER_YEAR + 1e-6))
    year = np.floor(since / DAYS_PER_YEAR + 1e-9).astype(int)  # [kept time]
    year_all = np.full(days.size, -1)
    year_all[keep] = year
    lat, lon = np.asarray(ds["lat"].values, float), np.asarray(ds["lon"].values, float)
    level = np.asarray(ds["level"].values, float) if "level" in ds.coords else None
    wlat = latitude_weights(lat)
    acc = {v: _Accumulator(ds[v], n_years) for v in variables}
    nvals = max(a.nlev for a in acc.values()) * lat.size * lon.size
    step = chunk_times or max(1, _CHUNK_VALUES // nvals)
    gm = {v: [] for v in variables}
    bar = tqdm(total=days.size, desc=f"reading {Path(name).name}", unit="time", disable=None if progress else True)
    with bar:
        for a in range(0, days.size, step):
            b = min(days.size, a + step)
            for v in variables:
                gm[v].append(acc[v].add(ds[v].isel(time=slice(a, b)).values, days[a:b], keep[a:b], year_all[a:b],
                                        wlat, first=a == 0, last=b == days.size))
            bar.update(b - a)
    fields = {v: acc[v].result(np.concatenate(gm[v]), int(keep.sum())) for v in variables}
    units = {v: str(ds[v].attrs.get("units", "")) for v in variables}
    return RunClimate(source=str(name), origin=origin, lat=lat, lon=lon, level=level, spinup_days=float(spinup_days),
                      n_times=int(days.size), days=kept_days, interval_days=interval, n_years=n_years,
                      fields=fields, units=units)


class _Accumulator:
    """Running sums of one variable over time slices."""

    def __init__(self, da: xr.DataArray, n_years: int):
        self.levels = [level_key(x) for x in da["level"].values] if "level" in da.dims else [level_key(None)]
        self.nlev = len(self.levels)
        nlat, nlon = da.sizes["lat"], da.sizes["lon"]
        self.zonal = np.zeros((self.nlev, nlat))
        self.power = np.zeros((self.nlev, nlat, nlon // 2 + 1))
        self.year_sum = np.zeros((n_years, self.nlev, nlat))
        self.year_n = np.zeros(n_years, dtype=int)
        self.n_nonfinite, self.first_bad, self.max_abs = 0, None, None
        self.std_start = self.std_end = None

    def add(self, values, days, keep, year, wlat, *, first: bool, last: bool) -> np.ndarray:
        """Add a slice ``[t, (level,) lat, lon]``; returns the global means of its kept times."""
        x = np.asarray(values, dtype=np.float64)
        if x.ndim == 3:
            x = x[:, None]
        bad = ~np.isfinite(x)
        nbad = int(bad.sum())
        if nbad:
            if self.first_bad is None:
                self.first_bad = float(days[int(np.argmax(bad.any(axis=(1, 2, 3))))])
            self.n_nonfinite += nbad
        if nbad < x.size:
            m = float(np.abs(x[~bad]).max())
            self.max_abs = m if self.max_abs is None else max(self.max_abs, m)
        if first:
            self.std_start = x[0].std(axis=-1)
        if last:
            self.std_end = x[-1].std(axis=-1)
        x = x[keep]
        if not x.shape[0]:
            return np.zeros(0)
        z = x.mean(axis=-1)  # [t, level, lat]
        self.zonal += z.sum(axis=0)
        self.power += zonal_power(x).sum(axis=0)
        year = year[keep]
        for y in range(self.year_n.size):
            sel = year == y
            if sel.any():
                self.year_sum[y] += z[sel].sum(axis=0)
                self.year_n[y] += int(sel.sum())
        return ((z * wlat).sum(axis=-1) / wlat.sum()).mean(axis=-1)

    def result(self, global_mean: np.ndarray, n: int) -> FieldClimate:
        years = self.year_sum / np.maximum(self.year_n, 1)[:, None, None]
        return FieldClimate(levels=self.levels, zonal_mean=self.zonal / n, power=self.power / n, year_means=years,
                            global_mean=global_mean, std_start=self.std_start, std_end=self.std_end,
                            n_nonfinite=self.n_nonfinite, first_nonfinite_day=self.first_bad, max_abs=self.max_abs)
