"""Reading and aligning forecast, truth and climatology datasets.

Files are read as the data layer reads CF and CAM files (:func:`mlscam.data.fields.model_fields`):
model names (a :class:`mlscam.data.naming.Naming` maps them to the file's, see
:mod:`mlscam.evaluate.naming`), the level dimension ``level`` with sigma values, latitude ascending.
A forecast dataset holds VALID times on ``time``, a ``lead_time`` coordinate
(dim ``time``; timedelta or numbers with CF units such as ``hours``) and its
initial time as a global attribute ``initial_time`` (ISO string), a scalar
coordinate/variable ``initial_time`` or ``forecast_reference_time``.  Fields are
``[time, level, lat, lon]`` (3-D) or ``[time, lat, lon]`` (2-D), latitude ascending.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cftime
import numpy as np
import xarray as xr

from ..data.errors import DataError
from ..data.fields import describe_variables, model_fields
from ..data.naming import Naming

__all__ = ["EvaluationError", "open_dataset", "ForecastTimes", "forecast_times", "field_variables",
           "select_variables", "check_same_grid", "truth_indices", "select_levels", "level_key"]


class EvaluationError(ValueError):
    """A problem with the inputs of an evaluation; the message says what and how to fix it."""


_UNIT_HOURS = {"hours": 1.0, "hour": 1.0, "h": 1.0, "hr": 1.0, "minutes": 1 / 60, "minute": 1 / 60,
               "min": 1 / 60, "seconds": 1 / 3600, "second": 1 / 3600, "s": 1 / 3600, "days": 24.0,
               "day": 24.0, "d": 24.0}


def open_dataset(path, naming: Naming | None = None) -> xr.Dataset:
    """Open a NetCDF file (CF or CAM style) with cftime times (any calendar) and undecoded lead times.

    Read as the data layer reads files (:func:`mlscam.data.fields.model_fields`): variables under their
    model names as ``naming`` says (default: the file's names), the level dimension of the 3-D fields
    (``level``, CAM's ``lev``) as ``level`` with sigma values (``naming.level_source``), latitude
    ascending (a file stored north to south is sorted), longitude ascending from 0 east.
    ``attrs["source_file"]`` is set to ``path`` (a file written from an opened dataset carries its
    parent's), ``attrs["file_variables"]`` lists every variable of the file (for error messages).
    """
    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"file not found: {path}")
    ds = xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True), decode_timedelta=False)
    try:
        ds = model_fields(ds, str(path), naming)
    except DataError as exc:
        raise EvaluationError(str(exc)) from None
    ds.attrs["source_file"] = str(path)  # the file read, even if it carries the attribute of another
    return ds


def level_key(level) -> str:
    """The key of a level in results: ``"2d"`` for 2-D fields, else the level value (``%g``)."""
    return "2d" if level is None else f"{float(level):g}"


def lead_key(hours: float) -> str:
    """The key of a lead time in results, e.g. ``"24"`` or ``"1.5"`` (hours)."""
    return f"{float(hours):g}"


def field_variables(ds: xr.Dataset) -> list[str]:
    """Data variables with dims ``(time, [level,] lat, lon)``, in file order."""
    out = []
    for name, v in ds.data_vars.items():
        if v.dims in (("time", "lat", "lon"), ("time", "level", "lat", "lon")):
            out.append(name)
    return out


def select_variables(forecast: xr.Dataset, truth: xr.Dataset, variables=None) -> list[str]:
    """The variables to evaluate: ``variables`` or all field variables of the forecast.

    Raises EvaluationError naming the missing ones and listing each file's variables.
    """
    fvars = field_variables(forecast)
    tvars = field_variables(truth)
    wanted = list(variables) if variables else fvars
    if not wanted:
        raise EvaluationError(
            f"the forecast {_name(forecast)} has no field variables with dims (time, [level,] lat, lon); "
            f"its variables: {_all_variables(forecast)}")
    miss_f = [v for v in wanted if v not in fvars]
    if miss_f:
        raise EvaluationError(
            f"variables {miss_f} are not fields of the forecast {_name(forecast)}; it has {fvars} as fields "
            f"(time, [level,] lat, lon), and in all the variables {_all_variables(forecast)}; pass --variables "
            "with fields it holds")
    miss_t = [v for v in wanted if v not in tvars]
    if miss_t:
        raise EvaluationError(
            f"variables {miss_t} are not fields of the truth {_name(truth)}; it has {tvars} as fields "
            f"(time, [level,] lat, lon), and in all the variables {_all_variables(truth)}. If the file names "
            "them otherwise (a CAM history file: T, U, V, PS on lev), map the names: --namelist NML (its &data "
            "file_names_3d/2d) or --checkpoint CKPT (the training's map); else pass --variables with the ones "
            "both files hold")
    for v in wanted:
        if forecast[v].dims != truth[v].dims:
            raise EvaluationError(
                f"variable {v!r} has dims {forecast[v].dims} in the forecast but {truth[v].dims} in the truth")
    return wanted


def _all_variables(ds: xr.Dataset) -> str:
    """Every variable of the file ``ds`` was opened from, with dims, under the file's names."""
    return ds.attrs.get("file_variables") or describe_variables(ds)


def _name(ds: xr.Dataset) -> str:
    return repr(ds.attrs.get("source_file", "<dataset>"))


def check_same_grid(a: xr.Dataset, b: xr.Dataset, what: str = "forecast and truth") -> None:
    """Raise EvaluationError (printing both) unless ``lat``, ``lon`` and ``level`` agree."""
    for c in ("lat", "lon", "level"):
        ina, inb = c in a.coords, c in b.coords
        if not ina and not inb:
            continue
        if ina != inb:
            if c == "level":
                continue  # a file of only 2-D fields has no level
            raise EvaluationError(f"{what}: only one of them has a {c!r} coordinate")
        va, vb = np.asarray(a[c], float), np.asarray(b[c], float)
        if va.shape != vb.shape or not np.allclose(va, vb, rtol=0, atol=1e-6):
            raise EvaluationError(
                f"{what} are on different grids: {c} of {_name(a)} is {np.array2string(va, precision=4)} "
                f"but {c} of {_name(b)} is {np.array2string(vb, precision=4)}; regrid one of them")


@dataclass(frozen=True)
class ForecastTimes:
    """Times of one forecast.

    Attributes:
      initial: the initial time (same type as the valid times: cftime or numpy datetime64).
      valid: ``[time]`` valid times.
      lead_hours: ``[time]`` float lead times in hours.
    """

    initial: object
    valid: np.ndarray
    lead_hours: np.ndarray


def _parse_iso(text: str, like):
    m = re.match(r"^\s*(-?\d+)-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?", text)
    if not m:
        raise EvaluationError(f"initial_time {text!r} is not an ISO date such as '2000-01-01T06:00:00'")
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups()[:6])
    if isinstance(like, cftime.datetime):
        return cftime.datetime(y, mo, d, h, mi, s, calendar=like.calendar)
    return np.datetime64(f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}", "ns")


def _lead_hours(lt: xr.DataArray) -> np.ndarray:
    vals = np.asarray(lt.values)
    if np.issubdtype(vals.dtype, np.timedelta64):
        return vals / np.timedelta64(1, "h")
    units = str(lt.attrs.get("units", "")).strip().split(" ")[0].lower()
    if units not in _UNIT_HOURS:
        raise EvaluationError(
            f"lead_time has units {lt.attrs.get('units')!r}; expected hours, minutes, seconds or days")
    return vals.astype(float) * _UNIT_HOURS[units]


def _to_hours(delta) -> float:
    if isinstance(delta, np.timedelta64):
        return float(delta / np.timedelta64(1, "h"))
    return delta.total_seconds() / 3600.0


def forecast_times(forecast: xr.Dataset) -> ForecastTimes:
    """Initial time, valid times and lead hours of a forecast dataset (one initial time)."""
    valid = np.asarray(forecast["time"].values)
    if valid.size == 0:
        raise EvaluationError(f"forecast {_name(forecast)} has no times")
    init = None
    for name in ("initial_time", "forecast_reference_time"):
        if name in forecast.variables and forecast[name].ndim == 0:
            init = forecast[name].values[()]
            if isinstance(init, np.ndarray):
                init = init.item()
            if not isinstance(init, (cftime.datetime, np.datetime64)):
                init = None
                continue
            break
    if init is None and "initial_time" in forecast.attrs:
        init = _parse_iso(str(forecast.attrs["initial_time"]), valid[0])
    if "lead_time" in forecast.variables:
        lead = _lead_hours(forecast["lead_time"])
        if init is None:
            inits = {valid[k] - _as_delta(lead[k], valid[k]) for k in range(valid.size)}
            if len(inits) != 1:
                raise EvaluationError(
                    f"forecast {_name(forecast)} has several initial times {sorted(inits)}; "
                    "split it into one file per initial time")
            init = inits.pop()
    elif init is not None:
        lead = np.array([_to_hours(t - init) for t in valid])
    else:
        raise EvaluationError(
            f"forecast {_name(forecast)} has neither a lead_time coordinate nor an initial_time "
            "(global attribute or scalar coordinate); one of them is needed to know the lead times")
    check = np.array([_to_hours(t - init) for t in valid])
    if not np.allclose(check, lead, atol=1e-6):
        bad = int(np.argmax(np.abs(check - lead) > 1e-6))
        raise EvaluationError(
            f"forecast {_name(forecast)}: valid time {valid[bad]} minus initial time {init} is {check[bad]} h "
            f"but lead_time says {lead[bad]} h; one file must hold one initial time")
    return ForecastTimes(initial=init, valid=valid, lead_hours=lead)


def _as_delta(hours: float, like):
    if isinstance(like, np.datetime64):
        return np.timedelta64(int(round(hours * 3600e9)), "ns")
    import datetime as _dt

    return _dt.timedelta(hours=float(hours))


def truth_indices(truth: xr.Dataset, times, *, what: str = "forecast valid times") -> np.ndarray:
    """Indices into ``truth.time`` of ``times`` (exact matches); EvaluationError naming the missing ones."""
    tvals = list(np.asarray(truth["time"].values))
    if tvals and times is not None and len(times):
        a, b = tvals[0], np.asarray(times)[0]
        if isinstance(a, cftime.datetime) != isinstance(b, cftime.datetime) or (
                isinstance(a, cftime.datetime) and a.calendar != b.calendar):
            cal = lambda t: getattr(t, "calendar", "numpy datetime64 (proleptic_gregorian)")  # noqa: E731
            raise EvaluationError(
                f"{what} use calendar {cal(b)} but the truth {_name(truth)} uses {cal(a)}; "
                "write both with the same calendar")
    pos = {t: k for k, t in enumerate(tvals)}
    idx = [pos.get(t, -1) for t in times]
    missing = [str(t) for t, k in zip(times, idx) if k < 0]
    if missing:
        if len(missing) == len(idx):
            span = f"{tvals[0]} .. {tvals[-1]}" if tvals else "none"
            raise EvaluationError(
                f"no overlapping times: none of the {what} ({missing[0]} .. {missing[-1]}) is in the truth "
                f"{_name(truth)}, whose times are {span}")
        raise EvaluationError(
            f"{len(missing)} of the {what} are missing in the truth {_name(truth)}: {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''}; use a truth file covering the forecast period")
    return np.asarray(idx, dtype=int)


def select_levels(ds: xr.Dataset, levels) -> xr.Dataset:
    """``ds`` restricted to the given level values (matched within 1e-6); error lists the available ones."""
    if levels is None or "level" not in ds.coords:
        return ds
    avail = np.asarray(ds["level"], float)
    idx = []
    for lv in levels:
        hit = np.nonzero(np.isclose(avail, float(lv), rtol=0, atol=1e-6))[0]
        if hit.size == 0:
            raise EvaluationError(f"level {lv} is not in the data; available levels: {[f'{a:g}' for a in avail]}")
        idx.append(int(hit[0]))
    return ds.isel(level=idx)
