"""Courant numbers of a lat-lon data set for the one-cell-per-step stencil.

The emulator's 3x3 stencil lets information travel at most one cell per data
step.  For a data interval ``dt`` the condition is, per latitude row ``j``::

    C_u[j] = max |u| dt / dx[j] <= 1,   dx[j] = a cos(lat_j) dlon
    C_v[j] = max |v| dt / dy     <= 1,   dy    = a dlat

(the maximum over time, level and longitude).  ``dx`` shrinks to tens of km in
the rows next to the poles, so no practical interval satisfies the zonal
condition there; see docs/datagen.md.

``python -m mlscam.datagen.courant FILE.nc [--interval-hours H]`` prints the
table for any CF file with ``u``, ``v`` (dims ``time, [level,] lat, lon``).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EARTH_RADIUS_M",
    "CourantTable",
    "RunningMaxAbs",
    "courant_numbers",
    "courant_table_from_file",
    "format_summary",
    "main",
]

#: Earth radius (m) used for the cell sizes; dinosaur's value (scales.RADIUS).
EARTH_RADIUS_M = 6.37122e6


@dataclass(frozen=True)
class CourantTable:
    """Per-latitude Courant numbers.

    Attributes:
      lat: ``[nlat]`` degrees north.
      max_abs_u, max_abs_v: ``[nlat]`` m s-1, max over time, level, longitude.
      courant_u, courant_v: ``[nlat]`` dimensionless.
      dt_seconds: the data interval used.
    """

    lat: np.ndarray
    max_abs_u: np.ndarray
    max_abs_v: np.ndarray
    courant_u: np.ndarray
    courant_v: np.ndarray
    dt_seconds: float


def courant_numbers(
    max_abs_u: np.ndarray,
    max_abs_v: np.ndarray,
    lat_deg: np.ndarray,
    nlon: int,
    dt_seconds: float,
    radius_m: float = EARTH_RADIUS_M,
) -> CourantTable:
    """Courant numbers of a regular, cell-centred grid.

    Args:
      max_abs_u, max_abs_v: ``[nlat]`` maximum |u|, |v| per latitude (m s-1).
      lat_deg: ``[nlat]`` cell-centre latitudes (degrees), equally spaced.
      nlon: number of longitudes (``dlon = 2 pi / nlon``).
      dt_seconds: data interval (s).
      radius_m: planet radius (m).

    >>> t = courant_numbers(np.array([10.0]), np.array([5.0]), np.array([0.0]), 4, 3600.0, radius_m=1e6)
    >>> round(float(t.courant_u[0]), 6), round(float(t.courant_v[0]), 6)   # dx = pi/2 * 1e6, dy = pi * 1e6
    (0.022918, 0.00573)
    """
    lat_deg = np.asarray(lat_deg, dtype=np.float64)
    nlat = lat_deg.size
    if nlon < 1 or nlat < 1:
        raise ValueError(f"need nlat >= 1 and nlon >= 1, got nlat={nlat}, nlon={nlon}")
    if dt_seconds <= 0:
        raise ValueError(f"the data interval must be positive, got dt_seconds={dt_seconds}")
    max_abs_u = np.asarray(max_abs_u, dtype=np.float64)
    max_abs_v = np.asarray(max_abs_v, dtype=np.float64)
    if max_abs_u.shape != (nlat,) or max_abs_v.shape != (nlat,):
        raise ValueError(
            f"max_abs_u {max_abs_u.shape} and max_abs_v {max_abs_v.shape} must both be [nlat]=({nlat},)"
        )
    dx = radius_m * np.cos(np.deg2rad(lat_deg)) * (2.0 * np.pi / nlon)
    dy = radius_m * np.pi / nlat
    return CourantTable(
        lat=lat_deg,
        max_abs_u=max_abs_u,
        max_abs_v=max_abs_v,
        courant_u=max_abs_u * dt_seconds / dx,
        courant_v=max_abs_v * dt_seconds / dy,
        dt_seconds=float(dt_seconds),
    )


class RunningMaxAbs:
    """Running per-latitude maximum of |field| over every other axis.

    Feed it arrays ``[..., lat, lon]`` one sample at a time; ``value`` is ``[nlat]``.
    """

    def __init__(self, nlat: int):
        self.value = np.zeros(nlat, dtype=np.float64)

    def update(self, field: np.ndarray) -> None:
        field = np.asarray(field)
        if field.shape[-2] != self.value.size:
            raise ValueError(f"field has {field.shape[-2]} latitudes, expected {self.value.size} (shape {field.shape})")
        axes = tuple(a for a in range(field.ndim) if a != field.ndim - 2)
        self.value = np.maximum(self.value, np.abs(field).max(axis=axes).astype(np.float64))


def _interval_seconds(time_var) -> float:
    """The (uniform) data interval of a netCDF4 time variable, in seconds."""
    import cftime

    if time_var.size < 2:
        raise ValueError("the file has fewer than 2 times; pass --interval-hours to set the data interval")
    t = cftime.num2date(time_var[:2], time_var.units, getattr(time_var, "calendar", "standard"))
    return float((t[1] - t[0]).total_seconds())


def courant_table_from_file(
    path: str,
    interval_hours: float | None = None,
    u_name: str = "u",
    v_name: str = "v",
    radius_m: float = EARTH_RADIUS_M,
    chunk: int = 64,
) -> CourantTable:
    """Courant numbers of the ``u``, ``v`` of a NetCDF file, streamed over time.

    ``interval_hours`` defaults to the file's time step.  Latitudes may be in
    any order in the file; the table is returned south to north.
    """
    import netCDF4

    with netCDF4.Dataset(path) as ds:
        for name in (u_name, v_name, "lat", "lon", "time"):
            if name not in ds.variables:
                raise KeyError(f"{path} has no variable {name!r}; it has {sorted(ds.variables)}")
        u, v = ds.variables[u_name], ds.variables[v_name]
        for var in (u, v):
            if var.dimensions[0] != "time" or var.dimensions[-2:] != ("lat", "lon"):
                raise ValueError(f"{var.name} must have dims (time, ..., lat, lon), got {var.dimensions}")
        lat = np.asarray(ds.variables["lat"][:], dtype=np.float64)
        nlon = ds.dimensions["lon"].size
        dt = interval_hours * 3600.0 if interval_hours is not None else _interval_seconds(ds.variables["time"])
        umax, vmax = RunningMaxAbs(lat.size), RunningMaxAbs(lat.size)
        for start in range(0, u.shape[0], chunk):
            umax.update(np.asarray(u[start : start + chunk]))
            vmax.update(np.asarray(v[start : start + chunk]))
    order = np.argsort(lat)
    return courant_numbers(umax.value[order], vmax.value[order], lat[order], nlon, dt, radius_m)


def summary_rows(table: CourantTable) -> list[int]:
    """Row indices of the summary: the two rows next to each pole, and the rows nearest -45, 0 and 45 deg.

    On a cell-centred grid the equator and +-45 deg may fall between two rows; both are listed.
    """
    lat = table.lat
    n = lat.size
    half_cell = 0.5 * abs(lat[1] - lat[0]) if n > 1 else 0.0
    picks = {0, min(1, n - 1), max(n - 2, 0), n - 1}
    for target in (-45.0, 0.0, 45.0):
        picks.update(int(j) for j in np.flatnonzero(np.abs(lat - target) <= half_cell + 1e-9))
        picks.add(int(np.argmin(np.abs(lat - target))))
    return sorted(picks)


def format_summary(table: CourantTable, rows: list[int] | None = None) -> str:
    """A small text table (selected rows, or all rows when ``rows`` is None)."""
    rows = list(range(table.lat.size)) if rows is None else rows
    dt_h = table.dt_seconds / 3600.0
    lines = [
        f"Courant numbers for dt = {dt_h:g} h (one cell per data step; > 1 violates the stencil's domain of dependence)",
        f"{'lat':>9} {'max|u|':>8} {'C_u':>7} {'max|v|':>8} {'C_v':>7}",
    ]
    for j in rows:
        lines.append(
            f"{table.lat[j]:9.3f} {table.max_abs_u[j]:8.2f} {table.courant_u[j]:7.3f} "
            f"{table.max_abs_v[j]:8.2f} {table.courant_v[j]:7.3f}"
        )
    lines.append(
        f"rows with C_u > 1: {int(np.sum(table.courant_u > 1))} of {table.lat.size}; "
        f"rows with C_v > 1: {int(np.sum(table.courant_v > 1))}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlscam.datagen.courant",
        description="Per-latitude Courant numbers max|u| dt/dx and max|v| dt/dy of a lat-lon NetCDF file.",
    )
    parser.add_argument("file", help="NetCDF file with u, v (time, [level,] lat, lon)")
    parser.add_argument("--interval-hours", type=float, default=None, help="data interval (default: the file's time step)")
    parser.add_argument("--all", action="store_true", help="print every latitude row, not only the summary rows")
    args = parser.parse_args(argv)
    table = courant_table_from_file(args.file, interval_hours=args.interval_hours)
    print(format_summary(table, None if args.all else summary_rows(table)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
