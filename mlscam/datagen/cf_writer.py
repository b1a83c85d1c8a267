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

Built on the writer core ``mlscam.io.cf`` (its attribute table and atomic file).
The file is written to a temporary file in the destination directory and moved
into place with ``os.replace`` only by :meth:`CFStateWriter.commit`; on an
error (or a missing commit) the temporary file is removed and an existing file
at the destination is left untouched.  One time sample is written per
:meth:`CFStateWriter.append`, so memory stays bounded.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from mlscam.grid import LatLonGrid
from mlscam.io.cf import (CONVENTIONS, AtomicDataset, add_bounds, add_coordinate, add_dimensions, add_field,
                          add_lat_lon, add_variable, cf_attributes, set_global_attributes)

__all__ = ["CFStateWriter", "VARIABLE_ATTRS"]

_LEVEL_VARS = ("u", "v", "temperature")
_SURFACE_VARS = ("surface_pressure",)
#: CF attributes of the data variables (from the table of ``mlscam.io.cf``).
VARIABLE_ATTRS: dict[str, dict[str, str]] = {name: cf_attributes(name) for name in (*_LEVEL_VARS, *_SURFACE_VARS)}


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
        self.grid = grid
        self.nlevel = sigma.size
        self.ntime = 0
        self._committed = False
        self._file = AtomicDataset(self.path)
        self._ds = self._file.ds
        try:
            self._define(sigma, sigma_bounds, time_units, calendar, global_attrs)
        except BaseException:
            self._file.discard()
            raise

    # -- definition ---------------------------------------------------------
    def _define(self, sigma, sigma_bounds, time_units, calendar, global_attrs) -> None:
        ds, grid = self._ds, self.grid
        add_dimensions(ds, {"time": None, "level": self.nlevel, "lat": grid.nlat, "lon": grid.nlon, "nv": 2})
        add_coordinate(ds, "time", units=time_units, calendar=calendar)
        add_coordinate(ds, "level", sigma, long_name="sigma at layer midpoints", bounds="level_bnds",
                       formula_terms="sigma: level ps: surface_pressure ptop: ptop")
        add_bounds(ds, "level_bnds", sigma_bounds, "level", "nv")
        add_coordinate(ds, "ptop", 0.0, dims=())
        add_lat_lon(ds, grid)
        for name in _LEVEL_VARS:
            add_field(ds, name, ("time", "level", "lat", "lon"), chunksizes=(1, self.nlevel, grid.nlat, grid.nlon))
        for name in _SURFACE_VARS:
            add_field(ds, name, ("time", "lat", "lon"), chunksizes=(1, grid.nlat, grid.nlon))
        set_global_attributes(ds, {**global_attrs, "Conventions": CONVENTIONS})

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
            add_variable(self._ds, name, ("lat",), values, dtype="f4", attrs={
                "long_name": f"maximum {direction} over time, level and longitude",
                "units": "1",
                "interval_seconds": float(dt_seconds),
                "cell_size": size,
                "comment": "one-cell-per-step domain of dependence of the 3x3 stencil; > 1 violates it",
            })

    def commit(self) -> None:
        """Close the file and move it into place atomically."""
        self._file.commit()
        self._committed = True

    def __enter__(self) -> "CFStateWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:
            self._file.discard()
