"""A NetCDF file as whole fields under model names (xarray), read as the data layer reads CF and CAM files.

For tools that work on whole fields rather than columns (``mlscam.evaluate``): the same names
(:class:`mlscam.data.naming.Naming`), dimension names and levels (:func:`mlscam.data.levels.sigma_levels`)
as :class:`mlscam.data.ncfile.NcFile`, on a lazily opened ``xarray.Dataset``:

* file variables are renamed to their model names (``T`` -> ``temperature`` when the naming says so);
* the latitude / longitude dimensions are called ``lat`` / ``lon``;
* the level dimension of the 3-D fields (``lev`` in CAM files) is called ``level`` and holds the
  sigma values, from ``hyam``/``hybm``/``P0`` or the level coordinate as ``level_source`` says;
* latitude ascends (south to north) and longitude ascends from 0 east, as in the canonical layout.

``attrs["file_variables"]`` lists every variable of the file with its dimensions, under the file's
own names, for error messages.
"""
from __future__ import annotations

import numpy as np

from mlscam.data.errors import DataError
from mlscam.data.levels import sigma_levels
from mlscam.data.naming import Naming
from mlscam.data.ncfile import LAT_DIMS, LON_DIMS, TIME_DIMS

__all__ = ["model_fields", "describe_variables"]


def describe_variables(ds) -> str:
    """``'PS(time, lat, lon), T(time, lev, lat, lon), ...'``: every variable of ``ds`` with its dimensions."""
    return ", ".join(f"{name}({', '.join(map(str, ds[name].dims))})" for name in sorted(ds.variables, key=str))


def _level_dim(ds, preferred: list[str]) -> str | None:
    """The level dimension of the 3-D fields ``(time, level, lat, lon)``: the one of ``preferred`` variables
    (the mapped ones), else the only one there is; None for a file of 2-D fields or an ambiguous file."""
    def level_of(v):
        d = ds[v].dims
        return d[1] if len(d) == 4 and d[0] in TIME_DIMS and d[2:] == ("lat", "lon") else None

    for group in (preferred, list(ds.data_vars)):
        dims = {level_of(v) for v in group if v in ds.variables} - {None}
        if len(dims) == 1:
            return dims.pop()
        if "level" in dims:
            return "level"
    return None


def model_fields(ds, path: str, naming: Naming | None = None):
    """``ds`` (an ``xarray.Dataset`` opened from ``path``) with model names, ``lat``/``lon``/``level``
    dimensions, sigma levels and canonical latitude/longitude order (see the module docstring).

    ``naming`` (default: model names, ``level_source = 'auto'``) maps model names to the file's names;
    a variable the file does not hold is left out here (the caller says which ones it needs).
    Raises :class:`DataError` when the levels cannot be read as ``naming.level_source`` says.
    """
    naming = naming or Naming()
    listing = describe_variables(ds)
    horizontal = {d: c for names, c in ((LAT_DIMS, "lat"), (LON_DIMS, "lon")) for d in names[1:]
                  if d in ds.dims and c not in ds.dims}
    ds = ds.rename(horizontal)
    renamed = {f: m for m, f in naming.names if f != m and f in ds.variables and m not in ds.variables}
    ds = ds.rename(renamed)
    dim = _level_dim(ds, [m for m, _ in naming.names])
    if dim is not None and (dim in ds.variables or "hyam" in ds.variables or naming.level_source != "auto"):
        def lookup(name: str):
            if name not in ds.variables:
                return None
            return np.asarray(ds[name].values), str(ds[name].attrs.get("units", ""))

        levels, source = sigma_levels(lookup, dim, ds.sizes[dim], str(path), naming.level_source)
        if dim != "level":
            if "level" in ds.variables:
                raise DataError(f"{path}: the 3-D fields are on {dim!r}, but the file also has a variable 'level'; "
                                "rename one of them (e.g. with ncrename)")
            ds = ds.rename({dim: "level"})
        ds = ds.assign_coords(level=("level", np.asarray(levels, np.float64),
                                     {"long_name": f"sigma (from the file's {source} levels)", "units": "1"}))
    if "lat" in ds.coords and ds.sizes["lat"] > 1 and float(ds["lat"][0]) > float(ds["lat"][-1]):
        ds = ds.sortby("lat")
    if "lon" in ds.coords and ds.sizes["lon"] > 1:
        lon = np.asarray(ds["lon"].values, np.float64)
        if lon.min() < 0 or lon.max() >= 360 or np.any(np.diff(lon) <= 0):
            ds = ds.assign_coords(lon=("lon", np.mod(lon, 360.0), ds["lon"].attrs)).sortby("lon")
    ds.attrs["file_variables"] = listing
    return ds
