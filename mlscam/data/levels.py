"""The sigma value of each level of a file: from CAM's hybrid coefficients or from the level coordinate.

``&data level_source`` (:data:`mlscam.config.LEVEL_SOURCES`) says which:

* ``'hybrid'``: ``sigma = hyam * P0 / 1e5 + hybm`` (``P0`` = 1e5 Pa when the file has none), the
  hybrid coefficients of a CAM history file at the level midpoints;
* ``'coordinate'``: the coordinate variable of the level dimension, divided by the surface value
  when its units are a pressure (Pa: 1e5, hPa / mb / mbar / millibar: 1e3), as they are;
* ``'auto'``: ``'hybrid'`` when the file has ``hyam`` and ``hybm``, else ``'coordinate'``.

One implementation for both readers of files: :class:`mlscam.data.ncfile.NcFile` (netCDF4, training
and initial states) and :func:`mlscam.data.fields.model_fields` (xarray, evaluation). Each passes a
*lookup*: ``lookup(name)`` is ``(values, units)`` of the file's variable ``name``, or None when the
file has no such variable.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlscam.data.errors import DataError

__all__ = ["sigma_levels", "Lookup"]

#: ``lookup(name) -> (values, units)`` of a file variable, or None when the file has none.
Lookup = Callable[[str], "tuple[np.ndarray, str] | None"]

_PRESSURE_UNITS = {"pa": 1e5, "hpa": 1e3, "mb": 1e3, "millibar": 1e3, "mbar": 1e3}


def sigma_levels(lookup: Lookup, dim: str, size: int, path: str, source: str = "auto") -> tuple[tuple[float, ...], str]:
    """``(sigma of each level, the source used: 'hybrid' or 'coordinate')`` of level dimension ``dim``.

    ``size`` is the length of ``dim``; ``path`` names the file in errors; ``source`` is
    ``&data level_source`` (``'auto'``, ``'hybrid'`` or ``'coordinate'``).
    """
    hyam, hybm = lookup("hyam"), lookup("hybm")
    if source == "hybrid" or (source == "auto" and hyam is not None and hybm is not None):
        missing = [n for n, v in (("hyam", hyam), ("hybm", hybm)) if v is None]
        if missing:
            raise DataError(
                f"{path}: level_source = 'hybrid' (sigma = hyam*P0/1e5 + hybm) but the file has no "
                f"{' and no '.join(missing)}; set &data level_source = 'coordinate' to take sigma from the level "
                f"coordinate {dim!r} (mlscam.rollout and mlscam.evaluate take 'hybrid' from a checkpoint trained "
                "on CAM files; set it in the namelist to read other files)")
        p0 = lookup("P0")
        p0 = float(np.asarray(p0[0]).reshape(-1)[0]) if p0 is not None else 1e5
        sigma = np.asarray(hyam[0], np.float64).reshape(-1) * p0 / 1e5 + np.asarray(hybm[0], np.float64).reshape(-1)
        if sigma.shape != (size,):
            raise DataError(f"{path}: hyam/hybm have shape {sigma.shape}, expected ({size},) like the level "
                            f"dimension {dim!r}")
        return tuple(float(s) for s in sigma), "hybrid"
    coord = lookup(dim)
    if coord is None:
        fix = (f"add a sigma-valued coordinate variable {dim!r}, or hyam/hybm coefficients"
               if source == "auto" else f"add a sigma-valued coordinate variable {dim!r}, or set &data "
                                        "level_source = 'hybrid' for a file with hyam/hybm")
        raise DataError(f"{path}: the level dimension {dim!r} has no coordinate variable"
                        + (" and there are no hyam/hybm coefficients" if source == "auto" else "")
                        + f"; {fix}")
    values, units = coord
    scale = _PRESSURE_UNITS.get(str(units).strip().lower(), 1.0)
    return tuple(float(v) for v in np.asarray(values, np.float64).reshape(-1) / scale), "coordinate"
