"""An incremental, atomic CF-1.8 NetCDF writer for sigma-level lat-lon states.

Layout written (float32 data)::

    time(time)                      hours since <reference>, with a calendar
    level(level)                    sigma at layer midpoints, as given (not re-sorted)
    level_bnds(level, nv)           sigma at layer edges
    ptop()                          0 Pa (CF sigma formula_terms)
    lat(lat), lon(lon)              cell centres, degrees_north / degrees_east
    u, v, temperature(time, level, lat, lon)
    surface_pressure(time, lat, lon)
    courant_u(lat), courant_v(lat)  optional, see mlscam.datagen.courant

The file is written to a temporary file in the destination directory and moved
into place with ``os.replace`` only by :meth:`CFStateWriter.commit`; on an
error (or a missing commit) the temporary file is removed and an existing file
at the destination is left untouched.  One time sample is written per
:meth:`CFStateWriter.append`, so memory stays bounded.
"""
from __future__ import annotations

import os
from typing import Mapping

import netCDF4
import numpy as np

from mlscam.atomic import temp_path_beside
from mlscam.grid import LatLonGrid

__all__ = ["CFStateWriter", "VARIABLE_ATTRS"]

#: CF attributes of the data variables.
VARIABLE_ATTRS: dict[str, dict[str, str]] = {
    "u": {"standard_name": "eastward_wind", "long_name": "eastward wind", "units": "m s-1"},
    "v": {"standard_name": "northward_wind", "long_name": "northward wind", "units": "m s-1"},
    "temperature": {"standard_name": "air_temperature", "long_name": "air temperature", "units": "K"},
    "surface_pressure": {
        "standard_name": "surface_air_pressure",
        "long_name": "surface air pressure",
        "units": "Pa",
    },
}
_LEVEL_VARS = ("u", "v", "temperature")
_SURFACE_VARS = ("surface_pressure",)


class CFStateWriter:
    """Writes states one time sample at a time; use as a context manager.

    Args:
      path: destination file.
      grid: the lat-lon grid of the data (cell centres, latitude ascending).
      sigma: ``[level]`` sigma at layer midpoints, in the order of the data.
      sigma_bounds: ``[level + 1]`` sigma at layer edges, same order.
      time_units: CF time units, e.g. ``"hours since 2000-01-01 00:00:00"``.
      calendar: CF calendar name.
      global_attrs: global attributes (provenance); ``Conventions`` is set here.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        grid: LatLonGrid,
        sigma: np.ndarray,
        sigma_bounds: np.ndarray,
        *,
        time_units: str,
        calendar: str,
        global_attrs: Mapping[str, object],
    ):
        self.path = os.fspath(path)
        sigma = np.asarray(sigma, dtype=np.float64)
        sigma_bounds = np.asarray(sigma_bounds, dtype=np.float64)
        if sigma.ndim != 1 or sigma_bounds.shape != (sigma.size + 1,):
            raise ValueError(
                f"sigma must be [level] and sigma_bounds [level + 1], got {sigma.shape} and {sigma_bounds.shape}"
            )
        if not time_units.startswith("hours since "):
            raise ValueError(f"time_units must be 'hours since <date>', got {time_units!r}")
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"output directory {directory!r} does not exist; create it first")
        self._tmp = str(temp_path_beside(self.path, ".tmp"))
        self.grid = grid
        self.nlevel = sigma.size
        self.ntime = 0
        self._committed = False
        try:
            self._ds = netCDF4.Dataset(self._tmp, "w", format="NETCDF4")
            self._define(sigma, sigma_bounds, time_units, calendar, global_attrs)
        except BaseException:
            self._discard()
            raise

    # -- definition ---------------------------------------------------------
    def _define(self, sigma, sigma_bounds, time_units, calendar, global_attrs) -> None:
        ds, grid = self._ds, self.grid
        ds.createDimension("time", None)
        ds.createDimension("level", self.nlevel)
        ds.createDimension("lat", grid.nlat)
        ds.createDimension("lon", grid.nlon)
        ds.createDimension("nv", 2)

        t = ds.createVariable("time", "f8", ("time",))
        t.setncatts({"standard_name": "time", "long_name": "time", "units": time_units, "calendar": calendar, "axis": "T"})

        lev = ds.createVariable("level", "f8", ("level",))
        lev.setncatts(
            {
                "standard_name": "atmosphere_sigma_coordinate",
                "long_name": "sigma at layer midpoints",
                "units": "1",
                "positive": "down",
                "axis": "Z",
                "bounds": "level_bnds",
                "formula_terms": "sigma: level ps: surface_pressure ptop: ptop",
            }
        )
        lev[:] = sigma
        bnds = ds.createVariable("level_bnds", "f8", ("level", "nv"))
        bnds[:] = np.stack([sigma_bounds[:-1], sigma_bounds[1:]], axis=1)
        ptop = ds.createVariable("ptop", "f8", ())
        ptop.setncatts({"long_name": "pressure at the model top", "units": "Pa"})
        ptop.assignValue(0.0)

        lat = ds.createVariable("lat", "f8", ("lat",))
        lat.setncatts({"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north", "axis": "Y"})
        lat[:] = grid.lat_array()
        lon = ds.createVariable("lon", "f8", ("lon",))
        lon.setncatts({"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east", "axis": "X"})
        lon[:] = grid.lon_array()

        for name in _LEVEL_VARS:
            var = ds.createVariable(name, "f4", ("time", "level", "lat", "lon"), chunksizes=(1, self.nlevel, grid.nlat, grid.nlon))
            var.setncatts(VARIABLE_ATTRS[name])
        for name in _SURFACE_VARS:
            var = ds.createVariable(name, "f4", ("time", "lat", "lon"), chunksizes=(1, grid.nlat, grid.nlon))
            var.setncatts(VARIABLE_ATTRS[name])

        attrs = dict(global_attrs)
        attrs["Conventions"] = "CF-1.8"
        ds.setncatts({k: (v if isinstance(v, (int, float, np.integer, np.floating)) else str(v)) for k, v in attrs.items()})

    # -- writing ------------------------------------------------------------
    def append(self, hours: float, fields: Mapping[str, np.ndarray]) -> None:
        """Write one time sample.

        Args:
          hours: the sample's time in ``time_units``.
          fields: ``u, v, temperature`` ``[level, lat, lon]`` and
            ``surface_pressure`` ``[lat, lon]``, in SI units.
        """
        expected = {**{n: (self.nlevel, *self.grid.shape) for n in _LEVEL_VARS}, **{n: self.grid.shape for n in _SURFACE_VARS}}
        missing = sorted(set(expected) - set(fields))
        if missing:
            raise KeyError(f"sample lacks {missing}; got {sorted(fields)}")
        k = self.ntime
        for name, shape in expected.items():
            arr = np.asarray(fields[name], dtype=np.float32)
            if arr.shape != shape:
                raise ValueError(f"{name} has shape {arr.shape}, expected {shape} (level, lat, lon order)")
            if not np.all(np.isfinite(arr)):
                raise FloatingPointError(f"{name} has non-finite values at time {hours} h; the simulation diverged")
            self._ds.variables[name][k] = arr
        self._ds.variables["time"][k] = hours
        self.ntime += 1

    def set_courant(self, courant_u: np.ndarray, courant_v: np.ndarray, dt_seconds: float) -> None:
        """Store the per-latitude maximum Courant numbers ``[lat]`` (see mlscam.datagen.courant)."""
        for name, values, direction, size in (
            ("courant_u", courant_u, "zonal: max |u| dt / (a cos(lat) dlon)", "a cos(lat) dlon"),
            ("courant_v", courant_v, "meridional: max |v| dt / (a dlat)", "a dlat"),
        ):
            values = np.asarray(values, dtype=np.float32)
            if values.shape != (self.grid.nlat,):
                raise ValueError(f"{name} must be [lat]=({self.grid.nlat},), got {values.shape}")
            var = self._ds.createVariable(name, "f4", ("lat",))
            var.setncatts(
                {
                    "long_name": f"maximum {direction} over time, level and longitude",
                    "units": "1",
                    "interval_seconds": float(dt_seconds),
                    "cell_size": size,
                    "comment": "one-cell-per-step domain of dependence of the 3x3 stencil; > 1 violates it",
                }
            )
            var[:] = values

    def commit(self) -> None:
        """Close the file and move it into place atomically."""
        self._ds.close()
        os.replace(self._tmp, self.path)
        self._committed = True

    # -- cleanup ------------------------------------------------------------
    def _discard(self) -> None:
        ds = getattr(self, "_ds", None)
        if ds is not None and ds.isopen():
            ds.close()
        if os.path.exists(self._tmp):
            os.remove(self._tmp)

    def __enter__(self) -> "CFStateWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:
            self._discard()
