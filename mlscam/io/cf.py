"""The one CF-1.8 NetCDF writer core: the attribute table and the pieces every mlscam writer is built from.

Writers built on it: :class:`mlscam.io.forecast.ForecastWriter` (forecasts),
``mlscam.datagen.cf_writer.CFStateWriter`` (training data, optional extra),
``mlscam.data.stats.write_stats`` (normalization statistics) and
``mlscam.data.subset.subset`` (time steps cut out of a file).

* :data:`CF_ATTRIBUTES`: ``standard_name``, ``long_name``, ``units``, ``axis``,
  ``positive`` of every coordinate and state variable mlscam writes, by name;
  :func:`cf_attributes` looks a name up (unknown names get a ``long_name`` made
  from the name).  Writers add what only they know (``calendar``, ``bounds``,
  ``formula_terms``, a more specific ``long_name`` of a coordinate).
* :class:`AtomicDataset` / :func:`atomic_dataset`: a ``netCDF4.Dataset`` written
  under a temporary name beside its destination (``mlscam.atomic``) and renamed
  into place only when complete; :func:`to_netcdf_atomic` does the same for an
  ``xarray.Dataset``.
* :func:`add_dimensions`, :func:`add_variable`, :func:`add_coordinate`,
  :func:`add_bounds`, :func:`add_lat_lon`, :func:`add_field`,
  :func:`set_global_attributes` define the file.

netCDF4 and xarray are imported only by the functions that open files.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlscam.atomic import atomic_path, finish_part, temp_path_beside

__all__ = [
    "CONVENTIONS", "CF_ATTRIBUTES", "cf_attributes", "AtomicDataset", "atomic_dataset", "to_netcdf_atomic",
    "add_dimensions", "add_variable", "add_coordinate", "add_bounds", "add_lat_lon", "add_field",
    "set_global_attributes", "attribute_value", "add_sigma_coordinate",
]

#: The ``Conventions`` global attribute of every CF file mlscam writes.
CONVENTIONS = "CF-1.8"

#: CF attributes of every coordinate and state variable mlscam writes, by variable name.
CF_ATTRIBUTES: dict[str, dict[str, str]] = {
    # coordinates
    "time": {"standard_name": "time", "long_name": "time", "axis": "T"},
    "lat": {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north", "axis": "Y"},
    "lon": {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east", "axis": "X"},
    "level": {"standard_name": "atmosphere_sigma_coordinate", "long_name": "sigma level", "units": "1",
              "positive": "down", "axis": "Z"},
    "lead_time": {"standard_name": "forecast_period", "long_name": "forecast lead time", "units": "hours"},
    "forecast_reference_time": {"standard_name": "forecast_reference_time"},
    "ptop": {"long_name": "pressure at the model top", "units": "Pa"},
    # state variables
    "u": {"standard_name": "eastward_wind", "long_name": "eastward wind", "units": "m s-1"},
    "v": {"standard_name": "northward_wind", "long_name": "northward wind", "units": "m s-1"},
    "temperature": {"standard_name": "air_temperature", "long_name": "air temperature", "units": "K"},
    "surface_pressure": {"standard_name": "surface_air_pressure", "long_name": "surface air pressure", "units": "Pa"},
    "specific_humidity": {"standard_name": "specific_humidity", "long_name": "specific humidity"},
    "geopotential": {"standard_name": "geopotential", "long_name": "geopotential"},
}

#: Attributes come in this order, then any others in the order given.
_ORDER = ("standard_name", "long_name", "units", "calendar", "positive", "axis")


def cf_attributes(name: str, units: str | None = None, **extra: Any) -> dict[str, Any]:
    """The CF attributes of variable ``name``: the table's, then ``extra`` (which wins).

    ``units`` given (e.g. the units of the data a state came from) replaces the
    table's; ``""`` means dimensionless (``"1"``).  A name the table does not
    know gets ``long_name`` = the name with spaces.  Keys come in the order
    standard_name, long_name, units, calendar, positive, axis, then the rest.

    >>> cf_attributes("temperature")
    {'standard_name': 'air_temperature', 'long_name': 'air temperature', 'units': 'K'}
    >>> cf_attributes("cloud_fraction", "")
    {'long_name': 'cloud fraction', 'units': '1'}
    """
    attrs = dict(CF_ATTRIBUTES.get(name, {"long_name": name.replace("_", " ")}))
    if units is not None:
        attrs["units"] = units or "1"
    attrs.update(extra)
    first = [k for k in _ORDER if k in attrs]
    return {k: attrs[k] for k in (*first, *(k for k in attrs if k not in _ORDER))}


def attribute_value(value: Any) -> Any:
    """A value NetCDF can store as an attribute: numbers and strings as they are, anything else as ``str``."""
    return value if isinstance(value, (int, float, str, np.integer, np.floating)) else str(value)


# --------------------------------------------------------------------------- atomic files

class AtomicDataset:
    """A ``netCDF4.Dataset`` (format NETCDF4) written beside ``path``; ``commit()`` moves it into place.

    Until :meth:`commit` the data live in a temporary file in the destination
    directory (created if missing); :meth:`discard` drops it, leaving whatever
    was at ``path`` untouched.  A file at ``path`` is therefore complete or absent.

    Attributes:
      path: the destination.
      ds: the open dataset (write to it, then commit).
    """

    def __init__(self, path: str | os.PathLike):
        import netCDF4

        self.path = Path(path)
        self._tmp = temp_path_beside(self.path)
        try:
            self.ds = netCDF4.Dataset(self._tmp, "w", format="NETCDF4")
        except BaseException:
            finish_part(self._tmp)
            raise

    def commit(self) -> Path:
        """Close the dataset and rename it to ``path`` (atomic)."""
        self.ds.close()
        finish_part(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Close the dataset (if open) and remove the temporary file: nothing appears at ``path``."""
        try:
            if self.ds.isopen():
                self.ds.close()
        except Exception:  # noqa: BLE001 - a broken dataset; the file goes anyway
            pass
        finish_part(self._tmp)


@contextlib.contextmanager
def atomic_dataset(path: str | os.PathLike):
    """Yield an open ``netCDF4.Dataset`` that appears at ``path`` only if the block completes."""
    out = AtomicDataset(path)
    try:
        yield out.ds
    except BaseException:
        out.discard()
        raise
    out.commit()


def to_netcdf_atomic(dataset, path: str | os.PathLike, *, complevel: int | None = None) -> None:
    """Write the ``xarray.Dataset`` ``dataset`` to ``path`` atomically (NETCDF4, netCDF4 engine).

    ``complevel`` (1-9) zlib-compresses every data variable; None keeps the
    variables' own encodings.
    """
    encoding = {} if complevel is None else {v: {"zlib": True, "complevel": int(complevel)} for v in dataset.data_vars}
    with atomic_path(path) as tmp:
        dataset.to_netcdf(tmp, engine="netcdf4", encoding=encoding)


# --------------------------------------------------------------------------- definition

def add_dimensions(ds, sizes: Mapping[str, int | None]) -> None:
    """Create the dimensions ``{name: size}`` in order (``None`` = unlimited)."""
    for name, size in sizes.items():
        ds.createDimension(name, size)


def add_variable(ds, name: str, dims: tuple[str, ...], values=None, *, dtype: str = "f8",
                 attrs: Mapping[str, Any] | None = None, **encoding: Any):
    """Create variable ``name`` on ``dims`` with ``attrs`` and optional ``values``; returns the variable.

    ``encoding`` goes to ``createVariable`` (``zlib``, ``complevel``, ``chunksizes``, ...).
    A 0-d variable takes a scalar ``values``.
    """
    var = ds.createVariable(name, dtype, dims, **encoding)
    if attrs:
        var.setncatts({k: attribute_value(v) for k, v in attrs.items()})
    if values is not None:
        if dims:
            var[:] = values
        else:
            var.assignValue(values)
    return var


def add_coordinate(ds, name: str, values=None, dims: tuple[str, ...] | None = None, **extra: Any):
    """A float64 coordinate ``name`` (on dimension ``name`` unless ``dims``) with the table's attributes + ``extra``."""
    return add_variable(ds, name, (name,) if dims is None else dims, values, attrs=cf_attributes(name, **extra))


def add_bounds(ds, name: str, edges, coordinate_dim: str, bounds_dim: str):
    """Cell bounds ``name [n, 2]`` (float64, no attributes) from the ``n + 1`` cell edges ``edges``."""
    edges = np.asarray(edges, dtype=np.float64)
    return add_variable(ds, name, (coordinate_dim, bounds_dim), np.stack([edges[:-1], edges[1:]], axis=-1))


def add_lat_lon(ds, grid, *, bounds_dim: str | None = None, lat_descending: bool = False) -> None:
    """The ``lat`` and ``lon`` coordinates of ``grid`` (a ``LatLonGrid``, cell centres in degrees).

    With ``bounds_dim``, also ``lat_bnds [lat, bounds_dim]`` from ``grid.lat_bounds()``.
    ``lat_descending``: latitude north to south (the grid's rows reversed; the writer must reverse
    the data's latitude axis too). The dimensions ``lat`` and ``lon`` must exist.
    """
    order = slice(None, None, -1) if lat_descending else slice(None)
    if bounds_dim is None:
        add_coordinate(ds, "lat", grid.lat_array()[order])
    else:
        add_coordinate(ds, "lat", grid.lat_array()[order], bounds="lat_bnds")
        add_bounds(ds, "lat_bnds", np.asarray(grid.lat_bounds())[order], "lat", bounds_dim)
    add_coordinate(ds, "lon", grid.lon_array())


def add_sigma_coordinate(ds, levels, *, ps: str | None = None, ps_units: str = "Pa"):
    """The sigma coordinate ``level`` (CF 4.3.3, Appendix D "atmosphere_sigma_coordinate").

    With ``ps`` (the name of the file's surface pressure variable), ``level``
    gets ``formula_terms = "sigma: level ps: <ps> ptop: ptop"`` and
    ``computed_standard_name = "air_pressure"``, and a scalar ``ptop = 0`` (in
    ``ps_units``, the units of ``ps`` as CF requires) is added, so CF tools
    compute the pressure ``p = ptop + sigma * (ps - ptop)``.  Without ``ps`` the
    file has no surface pressure: ``formula_terms`` is left out (CF requires
    every term to name a variable of the file), and ``level`` stays a plain
    sigma coordinate that CF tools cannot turn into pressure.
    The dimension ``level`` must exist.  Returns the ``level`` variable.
    """
    if ps is None:
        return add_coordinate(ds, "level", np.asarray(levels, dtype=np.float64))
    var = add_coordinate(ds, "level", np.asarray(levels, dtype=np.float64),
                         formula_terms=f"sigma: level ps: {ps} ptop: ptop", computed_standard_name="air_pressure")
    add_variable(ds, "ptop", (), 0.0, attrs=cf_attributes("ptop", ps_units))
    return var


def add_field(ds, name: str, dims: tuple[str, ...], *, units: str | None = None, extra: Mapping[str, Any] | None = None,
              **encoding: Any):
    """A float32 data variable ``name`` on ``dims`` with the table's attributes (``units`` and ``extra`` win)."""
    return add_variable(ds, name, dims, dtype="f4", attrs=cf_attributes(name, units, **(extra or {})), **encoding)


def set_global_attributes(ds, attrs: Mapping[str, Any]) -> None:
    """Set the global attributes ``attrs`` (in order; values as :func:`attribute_value` makes them)."""
    ds.setncatts({k: attribute_value(v) for k, v in attrs.items()})
