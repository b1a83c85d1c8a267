"""What the C entry points say and how they see host arrays: C names in messages, host array views.

Used by :mod:`mlscam.coupler.capi`; pure functions, no state.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mlscam.runtime import LocalError
from mlscam.status import Status

__all__ = ["c_facing", "host_view", "first_bad", "copy_out"]

_DTYPES = {4: np.dtype(np.float32), 8: np.dtype(np.float64)}

# Python names in the component's messages -> what a C or Fortran host calls (C-facing messages name C functions)
_C_NAMES = (
    ("call set_state, set_variable for every variable, set_state_from_file or read_restart first",
     "call mlscam_state_set for every variable, or mlscam_state_set_all, first"),
    ("set_variable was called for", "mlscam_state_set was called for"),
    ("get_tendencies needs at least one step since the state was set; call step first",
     "mlscam_tendency_get needs at least one mlscam_step since the state was set; call mlscam_step first"),
    ("Component.set_variable: ", ""), ("Component.set_state: ", ""), ("Component.step: ", ""),
    ("Component.get_variable: ", ""), ("Component.get_state: ", ""), ("Component.get_tendencies: ", ""),
    ("(or --checkpoint-path)", "in the namelist"),
)


def c_facing(message: str) -> str:
    """``message`` of the component with the Python names of its calls replaced by the C API's."""
    for python, c in _C_NAMES:
        message = message.replace(python, c)
    return message


def host_view(ffi: Any, data: Any, dtype: int, extents: tuple[int, int, int], what: str) -> np.ndarray:
    """The host array as ``[nlev, nlat, nlon]`` (a view, no copy): ``view[k, j, i] == field(i+1, j+1, k+1)``."""
    if dtype not in _DTYPES:
        raise LocalError(f"{what}: dtype {dtype} is not MLSCAM_FLOAT32 (4) or MLSCAM_FLOAT64 (8)", Status.ARGUMENT)
    if data == ffi.NULL:
        raise LocalError(f"{what}: data is NULL; pass the address of this rank's tile array", Status.ARGUMENT)
    nlon, nlat, nlev = extents
    n = nlon * nlat * nlev
    dt = _DTYPES[dtype]
    return np.frombuffer(ffi.buffer(ffi.cast("char *", data), n * dt.itemsize), dt).reshape(nlev, nlat, nlon)


def first_bad(view: np.ndarray, tile_: Any) -> str:
    k, j, i = (int(v) for v in np.argwhere(~np.isfinite(view))[0])
    return (f"{int((~np.isfinite(view)).sum())} non-finite value(s) (NaN/Inf), the first {view[k, j, i]} at "
            f"(lon={i + 1}, lat={j + 1}, lev={k + 1}) of this rank's tile = global (lon={tile_.lon0 + i + 1}, "
            f"lat={tile_.lat0 + j + 1}) (1-based); fix the input on this rank")


def copy_out(values: Any, host: np.ndarray) -> None:
    """Write ``values`` [lat, lon, lev] (or [lat, lon]) into the host's [lat, lon, lev] view."""
    values = np.asarray(values)
    host[...] = values.reshape(host.shape)
