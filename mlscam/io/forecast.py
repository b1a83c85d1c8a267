"""An incremental, atomic, CF-1.8 forecast writer.

Each output step is appended to an unlimited ``time`` dimension as soon as it
is decoded, so memory stays flat in the number of steps.  The file is written
under a temporary name in the destination directory and renamed into place by
``close()``: a forecast file is complete or absent.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

import cftime
import numpy as np

from .. import __version__
from ..grid import LatLonGrid
from ..layout import ColumnLayout
from .cf import (CONVENTIONS, AtomicDataset, add_coordinate, add_dimensions, add_field, add_lat_lon, add_sigma_coordinate,
                 cf_attributes, set_global_attributes)

__all__ = ["ForecastWriter", "cf_attributes"]


class ForecastWriter:
    """Write decoded states ``[nlat, nlon, S]`` (canonical layout) as CF NetCDF, one lead at a time,
    latitude south to north, or north to south with ``lat_descending``.

    Args:
      path: final file name; the data go to a temporary file beside it until ``close()``.
      layout, grid: the column layout and grid of the states.
      initial_time: a cftime datetime (its calendar is kept).
      time_units: CF units of the time axis, e.g. ``"hours since 2000-01-01 00:00:00"``.
      attrs: extra global attributes (provenance).
      lat_descending: store latitude north to south (the order of the file the run started from);
        the states given to :meth:`write` are south to north all the same (canonical).
    """

    def __init__(self, path, *, layout: ColumnLayout, grid: LatLonGrid, initial_time, time_units: str,
                 calendar: str, attrs: dict | None = None, lat_descending: bool = False):
        self.path = Path(path)
        self.layout, self.grid = layout, grid
        self.lat_descending = bool(lat_descending)
        self.time_units, self.calendar = time_units, calendar
        self.initial_time = initial_time
        self._n = 0
        self._file = AtomicDataset(self.path)
        ds = self._ds = self._file.ds
        add_dimensions(ds, {"time": None, "lat": grid.nlat, "lon": grid.nlon, "bnds": 2})
        if layout.variables_3d:
            add_dimensions(ds, {"level": layout.nlev})
        add_coordinate(ds, "time", long_name="valid time", units=time_units, calendar=calendar)
        add_coordinate(ds, "lead_time", dims=("time",))
        add_coordinate(ds, "forecast_reference_time", cftime.date2num(initial_time, time_units, calendar), dims=(),
                       units=time_units, calendar=calendar)
        add_lat_lon(ds, grid, bounds_dim="bnds", lat_descending=self.lat_descending)
        if layout.variables_3d:
            # CF 4.3.3 atmosphere_sigma_coordinate: formula_terms only when the file has the surface pressure
            # (every term must name a variable of the file); without it level stays a bare sigma coordinate
            ps = "surface_pressure" if "surface_pressure" in layout.variables_2d else None
            add_sigma_coordinate(ds, layout.levels, ps=ps,
                                 ps_units=layout.units_of("surface_pressure") if ps else "Pa")
        self._vars = {}
        for name in layout.variables:
            dims = ("time", "level", "lat", "lon") if name in layout.variables_3d else ("time", "lat", "lon")
            var = add_field(ds, name, dims, units=layout.units_of(name), extra={"coordinates": "lead_time"},
                            zlib=True, complevel=1)
            # records are only appended: a cache of about one record keeps memory flat in the number of
            # steps (netCDF's default per-variable cache grows to 64 MiB; benchmarks/netcdf_chunk_cache.py)
            var.set_var_chunk_cache(size=max(1 << 20, 4 * layout.nlev * grid.ncol))
            self._vars[name] = var
        set_global_attributes(ds, {
            "Conventions": CONVENTIONS,
            "title": "mlscam forecast",
            "source": f"mlscam {__version__}",
            "history": f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} written by mlscam",
            "initial_time": initial_time.isoformat(),
            **(attrs or {}),
        })

    def write(self, lead_seconds: float, x: np.ndarray) -> None:
        """Append the state ``x [nlat, nlon, S]`` valid at ``initial_time + lead_seconds``."""
        x = np.asarray(x)
        expect = (self.grid.nlat, self.grid.nlon, self.layout.n_state)
        if x.shape != expect:
            raise ValueError(f"forecast state has shape {x.shape}, expected {expect} (lat, lon, state)")
        if self.lat_descending:
            x = x[::-1]  # canonical south to north -> the file's north to south
        k = self._n
        valid = self.initial_time + _dt.timedelta(seconds=float(lead_seconds))
        self._ds["time"][k] = cftime.date2num(valid, self.time_units, self.calendar)
        self._ds["lead_time"][k] = lead_seconds / 3600.0
        for name, var in self._vars.items():
            field = x[..., self.layout.slice_of(name)]
            if name in self.layout.variables_3d:
                var[k] = np.moveaxis(field, -1, 0).astype(np.float32)
            else:
                var[k] = field[..., 0].astype(np.float32)
        self._n += 1

    @property
    def n_written(self) -> int:
        return self._n

    def close(self) -> Path:
        """Finish the file and move it into place (atomic)."""
        return self._file.commit()

    def abort(self) -> None:
        """Drop the partial file: nothing appears at ``path``."""
        self._file.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
