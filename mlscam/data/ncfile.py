"""One NetCDF file, opened lazily with netCDF4: names, dims, grid, levels, times, slab reads.

Supports CF-style files (``u, v, temperature, surface_pressure`` on dims
``time, level, lat, lon``) and CAM history files (``U, V, T, PS`` on dims
``time, lev, lat, lon`` with ``hyam, hybm, P0``); levels become sigma values as
``&data level_source`` says (:mod:`mlscam.data.levels`).  The file may store latitude
descending and longitude in any 360-degree range; :class:`NcFile` maps
canonical indices (latitude ascending, longitude ascending from 0 east) to
file indices and reads only the requested rows and columns.
"""
from __future__ import annotations

import threading

import cftime
import netCDF4
import numpy as np

from mlscam.data.errors import DataError
from mlscam.data.levels import sigma_levels
from mlscam.data.tiles import runs
from mlscam.grid import LatLonGrid

#: The netCDF-C/HDF5 libraries are not thread-safe: every open, read and close of this module holds this
#: lock (ranks of an in-process fake world are threads; MPI ranks are processes and never wait on it).
NETCDF_LOCK = threading.RLock()

__all__ = ["NcFile"]

TIME_DIMS = ("time",)
LAT_DIMS = ("lat", "latitude")
LON_DIMS = ("lon", "longitude")


class NcFile:
    """An open file with the variables of one column layout.

    Args:
      path: the file.
      names_3d: ``{model name: file name}`` of the 3-D variables.
      names_2d: ``{model name: file name}`` of the 2-D variables.
      level_source: ``&data level_source`` (:mod:`mlscam.data.levels`); ``self.level_source`` is the
        one used (``'hybrid'`` or ``'coordinate'``; as given when the file has no 3-D variables).

    Attributes besides those: ``levels`` (sigma), ``grid`` (canonical), ``lat_perm`` / ``lon_perm``
    (file index of each canonical row / column), ``lat_descending`` (the file stores latitude north
    to south), ``times``, ``time_units``, ``calendar``, ``units``.
    """

    def __init__(self, path: str, names_3d: dict[str, str], names_2d: dict[str, str], level_source: str = "auto"):
        self.path = str(path)
        self.names_3d, self.names_2d = dict(names_3d), dict(names_2d)
        with NETCDF_LOCK:
            self._open(level_source)

    def _open(self, level_source: str) -> None:
        try:
            self.ds = netCDF4.Dataset(self.path, "r")
        except OSError as e:
            raise DataError(f"cannot open NetCDF file {self.path}: {e}") from e
        self.ds.set_auto_mask(False)
        try:
            self._check_variables()
            self.level_dim = self._check_dims()
            self.levels, self.level_source = self._levels(level_source)
            self.grid, self.lat_perm, self.lon_perm = self._grid()
            self.lat_descending = bool(self.lat_perm.size > 1 and self.lat_perm[0] > self.lat_perm[-1])
            self.times, self.time_values, self.time_units, self.calendar = self._times()
            self.units = {m: str(getattr(self.ds[f], "units", "1")) for m, f in self._all_names().items()}
        except Exception:
            self.ds.close()
            raise

    # -- inspection -----------------------------------------------------------
    def _all_names(self) -> dict[str, str]:
        return {**self.names_3d, **self.names_2d}

    def _check_variables(self) -> None:
        missing = [(m, f) for m, f in self._all_names().items() if f not in self.ds.variables]
        if missing:
            desc = ", ".join(f"{f!r} (model variable {m!r})" for m, f in missing)
            raise DataError(
                f"{self.path}: variable(s) {desc} not found; the file has {sorted(self.ds.variables)}. "
                "Map model names to file names with data.file_names_3d / data.file_names_2d"
            )

    def _check_dims(self) -> str | None:
        dims = {f: self.ds[f].dimensions for f in self._all_names().values()}

        def ok(d, n):
            return (len(d) == n and d[0] in TIME_DIMS and d[-2] in LAT_DIMS and d[-1] in LON_DIMS)

        bad = [f for f in self.names_3d.values() if not ok(dims[f], 4)]
        bad += [f for f in self.names_2d.values() if not ok(dims[f], 3)]
        level_dims = {dims[f][1] for f in self.names_3d.values() if f not in bad}
        spatial = {dims[f][-2:] for f in dims if f not in bad}
        if bad or len(level_dims) > 1 or len(spatial) > 1:
            listing = "; ".join(f"{f}{tuple(d)}" for f, d in dims.items())
            raise DataError(
                f"{self.path}: variables have mismatched dimensions: {listing}. Expected 3-D variables "
                "(time, level, lat, lon) sharing one level dimension and 2-D variables (time, lat, lon); "
                "reorder or rename the dimensions (e.g. with ncpdq / ncrename)"
            )
        return level_dims.pop() if level_dims else None

    def _levels(self, source: str) -> tuple[tuple[float, ...], str]:
        if self.level_dim is None:
            return (), source
        ds = self.ds

        def lookup(name: str):
            if name not in ds.variables:
                return None
            return np.asarray(ds[name][...]), str(getattr(ds[name], "units", ""))

        return sigma_levels(lookup, self.level_dim, len(ds.dimensions[self.level_dim]), self.path, source)

    def _coord(self, names: tuple[str, ...]) -> np.ndarray:
        f = next(iter(self._all_names().values()))
        dim = next(d for d in self.ds[f].dimensions if d in names)
        if dim not in self.ds.variables:
            raise DataError(f"{self.path}: dimension {dim!r} has no coordinate variable {dim!r}")
        return np.asarray(self.ds[dim][:], np.float64)

    def _grid(self) -> tuple[LatLonGrid, np.ndarray, np.ndarray]:
        lat, lon = self._coord(LAT_DIMS), self._coord(LON_DIMS)
        if np.all(np.diff(lat) > 0):
            lat_perm = np.arange(lat.size)
        elif np.all(np.diff(lat) < 0):
            lat_perm = np.arange(lat.size)[::-1].copy()
        else:
            raise DataError(f"{self.path}: latitudes are not monotonic: {lat.tolist()}")
        lon_mod = np.mod(lon, 360.0)
        lon_perm = np.argsort(lon_mod, kind="stable")
        if np.any(np.diff(lon_mod[lon_perm]) <= 0):
            raise DataError(f"{self.path}: longitudes repeat modulo 360: {lon.tolist()}")
        try:
            grid = LatLonGrid(tuple(lat[lat_perm]), tuple(lon_mod[lon_perm]))
        except ValueError as e:
            raise DataError(f"{self.path}: {e}") from e
        return grid, lat_perm, lon_perm

    def _times(self):
        f = next(iter(self._all_names().values()))
        tdim = self.ds[f].dimensions[0]
        if tdim not in self.ds.variables:
            raise DataError(f"{self.path}: the time dimension {tdim!r} has no coordinate variable")
        tvar = self.ds[tdim]
        units = getattr(tvar, "units", None)
        if units is None:
            raise DataError(f"{self.path}: the time variable has no 'units' attribute (e.g. 'hours since 2000-01-01')")
        calendar = str(getattr(tvar, "calendar", "standard"))
        values = np.atleast_1d(np.asarray(tvar[:]))
        times = cftime.num2date(values, units, calendar, only_use_cftime_datetimes=True)
        return list(np.atleast_1d(times)), [v.item() for v in values], str(units), calendar

    @property
    def ntime(self) -> int:
        return len(self.times)

    # -- reading ----------------------------------------------------------------
    def read(self, t0: int, t1: int, rows: np.ndarray, cols: np.ndarray, order: list[str]) -> np.ndarray:
        """Read canonical ``rows`` x ``cols`` at local times ``t0:t1``.

        Returns ``[t1 - t0, len(rows), len(cols), n_state]`` float32 with the
        variables in ``order`` (3-D ones contribute every level).  Only the
        contiguous runs of the requested file rows and columns are read.
        """
        with NETCDF_LOCK:
            return self._read(t0, t1, rows, cols, order)

    def _read(self, t0: int, t1: int, rows: np.ndarray, cols: np.ndarray, order: list[str]) -> np.ndarray:
        frows = self.lat_perm[np.asarray(rows)]
        fcols = self.lon_perm[np.asarray(cols)]
        ur, rinv = np.unique(frows, return_inverse=True)
        uc, cinv = np.unique(fcols, return_inverse=True)
        parts = []
        for name in order:
            fname = self._all_names()[name]
            var = self.ds[fname]
            lead = var.shape[1:-2]
            block = np.empty((t1 - t0, *lead, ur.size, uc.size), np.float32)
            for ra, rb, ro in runs(ur):
                for ca, cb, co in runs(uc):
                    block[..., ro:ro + rb - ra, co:co + cb - ca] = var[t0:t1, ..., ra:rb, ca:cb]
            block = block[..., rinv, :][..., cinv]
            parts.append(np.moveaxis(block, 1, -1) if lead else block[..., None])
        return np.concatenate(parts, axis=-1)

    def close(self) -> None:
        with NETCDF_LOCK:
            if self.ds.isopen():
                self.ds.close()
