"""Reference forecasts every model must beat: persistence and climatology.

Both return fields shaped like the truth they are compared with,
``[time, level, lat, lon]`` (or ``[time, lat, lon]``), on ``time`` positions.
"""
from __future__ import annotations

import xarray as xr

from .inputs import EvaluationError, check_same_grid

__all__ = ["persistence", "climatology_field", "truth_climatology"]


def persistence(initial: xr.DataArray, like: xr.DataArray) -> xr.DataArray:
    """The initial truth state ``[level, lat, lon]`` held fixed at every time of ``like [time, ...]``."""
    return initial.broadcast_like(like).transpose(*like.dims)


def truth_climatology(truth: xr.Dataset, variables) -> xr.Dataset:
    """Time mean of the truth per ``(level, lat, lon)``: the fallback climatology."""
    return truth[list(variables)].mean("time")


def climatology_field(clim: xr.Dataset, name: str, like: xr.DataArray) -> xr.DataArray:
    """Field ``name`` of a climatology dataset as ``[level, lat, lon]`` (time-mean if it has times).

    ``like`` is a truth field ``[time, level, lat, lon]`` whose grid it must share.
    """
    if name not in clim.data_vars:
        raise EvaluationError(
            f"the climatology {clim.attrs.get('source_file', '<dataset>')!r} has no variable {name!r}; "
            f"it has {sorted(clim.data_vars)}")
    c = clim[name]
    if "time" in c.dims:
        c = c.mean("time")
    want = tuple(d for d in like.dims if d != "time")
    if set(c.dims) != set(want):
        raise EvaluationError(
            f"climatology variable {name!r} has dims {c.dims}; expected {want} (a time mean per grid point)")
    check_same_grid(c.to_dataset(name=name), like.to_dataset(name=name), "climatology and truth")
    return c.transpose(*want)
