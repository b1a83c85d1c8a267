"""An incremental, atomic, CF-1.8 forecast writer.

Each output step is appended to an unlimited ``time`` dimension as soon as it
is decoded, so memory stays flat in the number of steps.  The file is written
under a temporary name in the destination directory and renamed into place by
``close()``: a forecast file is complete or absent.
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import cftime
import numpy as np

from .. import __version__
from ..atomic import temp_path_beside
from ..grid import LatLonGrid
from ..layout import ColumnLayout

__all__ = ["ForecastWriter", "cf_attributes"]

_KNOWN = {
    "u": ("eastward_wind", "zonal wind"),
    "v": ("northward_wind", "meridional wind"),
    "temperature": ("air_temperature", "air temperature"),
    "surface_pressure": ("surface_air_pressure", "surface pressure"),
    "specific_humidity": ("specific_humidity", "specific humidity"),
    "geopotential": ("geopotential", "geopotential"),
}


def cf_attributes(name: str, units: str) -> dict[str, str]:
    """CF attributes of a state variable (standard_name where one exists)."""
    attrs = {"units": units or "1", "long_name": name.replace("_", " ")}
    if name in _KNOWN:
        attrs["standard_name"], attrs["long_name"] = _KNOWN[name]
    return attrs


class ForecastWriter:
    """Write decoded states ``[nlat, nlon, S]`` (canonical layout) as CF NetCDF, one lead at a time.

    Args:
      path: final file name; the data go to a temporary file beside it until ``close()``.
      layout, grid: the column layout and grid of the states.
      initial_time: a cftime datetime (its calendar is kept).
      time_units: CF units of the time axis, e.g. ``"hours since 2000-01-01 00:00:00"``.
      attrs: extra global attributes (provenance).
    """

    def __init__(self, path, *, layout: ColumnLayout, grid: LatLonGrid, initial_time, time_units: str,
                 calendar: str, attrs: dict | None = None):
        import netCDF4

        self.path = Path(path)
        self.layout, self.grid = layout, grid
        self.time_units, self.calendar = time_units, calendar
        self.initial_time = initial_time
        self._tmp = tmp = temp_path_beside(self.path)
        self._n = 0
        ds = self._ds = netCDF4.Dataset(tmp, "w", format="NETCDF4")
        ds.createDimension("time", None)
        ds.createDimension("lat", grid.nlat)
        ds.createDimension("lon", grid.nlon)
        ds.createDimension("bnds", 2)
        if layout.variables_3d:
            ds.createDimension("level", layout.nlev)
        t = ds.createVariable("time", "f8", ("time",))
        t.setncatts({"standard_name": "time", "long_name": "valid time", "units": time_units,
                     "calendar": calendar, "axis": "T"})
        lt = ds.createVariable("lead_time", "f8", ("time",))
        lt.setncatts({"long_name": "forecast lead time", "units": "hours", "standard_name": "forecast_period"})
        ref = ds.createVariable("forecast_reference_time", "f8", ())
        ref.setncatts({"standard_name": "forecast_reference_time", "units": time_units, "calendar": calendar})
        ref.assignValue(cftime.date2num(initial_time, time_units, calendar))
        lat = ds.createVariable("lat", "f8", ("lat",))
        lat.setncatts({"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north",
                       "axis": "Y", "bounds": "lat_bnds"})
        lat[:] = grid.lat_array()
        b = grid.lat_bounds()
        ds.createVariable("lat_bnds", "f8", ("lat", "bnds"))[:] = np.stack([b[:-1], b[1:]], axis=-1)
        lon = ds.createVariable("lon", "f8", ("lon",))
        lon.setncatts({"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east",
                       "axis": "X"})
        lon[:] = grid.lon_array()
        if layout.variables_3d:
            lev = ds.createVariable("level", "f8", ("level",))
            lev.setncatts({"standard_name": "atmosphere_sigma_coordinate", "long_name": "sigma level",
                           "units": "1", "positive": "down", "axis": "Z"})
            lev[:] = np.asarray(layout.levels)
        self._vars = {}
        for name in layout.variables:
            dims = ("time", "level", "lat", "lon") if name in layout.variables_3d else ("time", "lat", "lon")
            var = ds.createVariable(name, "f4", dims, zlib=True, complevel=1)
            # records are only appended: a cache of about one record keeps memory flat in the number of
            # steps (netCDF's default per-variable cache grows to 64 MiB; benchmarks/netcdf_chunk_cache.py)
            var.set_var_chunk_cache(size=max(1 << 20, 4 * layout.nlev * grid.ncol))
            var.setncatts({**cf_attributes(name, layout.units_of(name)), "coordinates": "lead_time"})
            self._vars[name] = var
        ds.setncatts({
            "Conventions": "CF-1.8",
            "title": "mlscam forecast",
            "source": f"mlscam {__version__}",
            "history": f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} written by mlscam",
            "initial_time": initial_time.isoformat(),
            **{k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in (attrs or {}).items()},
        })

    def write(self, lead_seconds: float, x: np.ndarray) -> None:
        """Append the state ``x [nlat, nlon, S]`` valid at ``initial_time + lead_seconds``."""
        x = np.asarray(x)
        expect = (self.grid.nlat, self.grid.nlon, self.layout.n_state)
        if x.shape != expect:
            raise ValueError(f"forecast state has shape {x.shape}, expected {expect} (lat, lon, state)")
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
        self._ds.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file: nothing appears at ``path``."""
        try:
            self._ds.close()
        except Exception:  # noqa: BLE001 - already closed or broken; the file goes anyway
            pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
