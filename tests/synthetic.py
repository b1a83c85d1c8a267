"""Writers of tiny synthetic NetCDF files (CF and CAM naming) for the data tests.

Fields are generated in the canonical layout (latitude ascending, longitude
from 0 east) and written in whatever order the file should have, so a test
knows exactly what the reader must return.
"""
from __future__ import annotations

import netCDF4
import numpy as np

from mlscam.grid import LatLonGrid

CF_NAMES = {"u": "u", "v": "v", "temperature": "temperature", "surface_pressure": "surface_pressure"}
CAM_NAMES = {"u": "U", "v": "V", "temperature": "T", "surface_pressure": "PS"}
UNITS = {"u": "m s-1", "v": "m s-1", "temperature": "K", "surface_pressure": "Pa"}


def make_fields(nt: int, grid: LatLonGrid, nlev: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random canonical fields: 3-D ``[nt, nlev, nlat, nlon]``, 2-D ``[nt, nlat, nlon]`` float32."""
    rng = np.random.default_rng(seed)
    shape3, shape2 = (nt, nlev, grid.nlat, grid.nlon), (nt, grid.nlat, grid.nlon)
    return {
        "u": (10 * rng.standard_normal(shape3)).astype(np.float32),
        "v": (5 * rng.standard_normal(shape3)).astype(np.float32),
        "temperature": (250 + 20 * rng.standard_normal(shape3)).astype(np.float32),
        "surface_pressure": (1e5 + 1e3 * rng.standard_normal(shape2)).astype(np.float32),
    }


def canonical_state(fields: dict[str, np.ndarray], vars3d=("u", "v", "temperature"), vars2d=("surface_pressure",)) -> np.ndarray:
    """``[nt, nlat, nlon, n_state]`` in ColumnLayout order (levels of each 3-D variable, then 2-D)."""
    parts = [np.moveaxis(fields[v], 1, -1) for v in vars3d] + [fields[v][..., None] for v in vars2d]
    return np.concatenate(parts, axis=-1)


def write_file(
    path,
    fields: dict[str, np.ndarray],
    grid: LatLonGrid,
    time_values,
    *,
    style: str = "cf",
    levels=None,
    hyam=None,
    hybm=None,
    p0: float = 1e5,
    time_units: str = "hours since 2000-01-01 00:00:00",
    calendar: str = "standard",
    flip_lat: bool = False,
    lon_from_minus180: bool = False,
    names: dict[str, str] | None = None,
    dims_override: dict[str, tuple[str, ...]] | None = None,
    extra_vars: bool = False,
    level_units: str | None = None,
) -> None:
    """Write canonical ``fields`` to ``path`` in CF (``style='cf'``) or CAM (``'cam'``) form.

    ``flip_lat`` stores latitude descending; ``lon_from_minus180`` stores
    longitudes in -180..180 (sorted ascending there).  ``dims_override`` gives
    a file variable other dims (for the mismatched-dims error).
    """
    names = names or (CAM_NAMES if style == "cam" else CF_NAMES)
    levdim = "lev" if style == "cam" else "level"
    lat, lon = grid.lat_array(), grid.lon_array()
    lat_order = np.arange(grid.nlat)[::-1] if flip_lat else np.arange(grid.nlat)
    if lon_from_minus180:
        flon = np.where(lon >= 180.0, lon - 360.0, lon)
        lon_order = np.argsort(flon)
        file_lon = flon[lon_order]
    else:
        lon_order, file_lon = np.arange(grid.nlon), lon
    nlev = next(a.shape[1] for a in fields.values() if a.ndim == 4)
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension(levdim, nlev)
        ds.createDimension("lat", grid.nlat)
        ds.createDimension("lon", grid.nlon)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar = time_units, calendar
        t[:] = np.asarray(time_values, np.float64)
        ds.createVariable("lat", "f8", ("lat",))[:] = lat[lat_order]
        ds.createVariable("lon", "f8", ("lon",))[:] = file_lon
        if style == "cam":
            ds.createVariable("hyam", "f8", (levdim,))[:] = hyam
            ds.createVariable("hybm", "f8", (levdim,))[:] = hybm
            ds.createVariable("P0", "f8", ())[...] = p0
            ds.createVariable(levdim, "f8", (levdim,))[:] = 1000.0 * (np.asarray(hyam) * p0 / 1e5 + np.asarray(hybm))
        else:
            lv = ds.createVariable(levdim, "f8", (levdim,))
            lv[:] = levels
            if level_units:
                lv.units = level_units
        if extra_vars:
            ds.createVariable("Z3" if style == "cam" else "geopotential", "f4", ("time", levdim, "lat", "lon"))[:] = 0.0
        for model, arr in fields.items():
            if model not in names:
                continue
            a = arr[..., lat_order, :][..., lon_order]
            dims = ("time", levdim, "lat", "lon") if a.ndim == 4 else ("time", "lat", "lon")
            if dims_override and names[model] in dims_override:
                dims = dims_override[names[model]]
                perm = [("time", levdim, "lat", "lon").index(d) if a.ndim == 4 else ("time", "lat", "lon").index(d)
                        for d in dims if d in ("time", levdim, "lat", "lon")]
                a = np.transpose(a, perm) if len(perm) == a.ndim else a[:, 0] if len(dims) == 3 else a
            v = ds.createVariable(names[model], "f4", dims)
            v.units = UNITS[model]
            v[:] = a
