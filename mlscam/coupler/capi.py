"""The Python side of every C entry point of ``libmlscam`` (``coupler/mlscam.h``).

``coupler/embedded_init.py`` forwards each ``extern "Python"`` call here.  Every
function takes the raw cffi arguments (pointers as cdata), returns an int
status (0 = ok; the codes of ``enum mlscam_status``) and never raises: a
failure sets this rank's last-error message (``lib._mlscam_error_set``) and
returns its code.

Collective rule, one agreement per call: each call validates its arguments
locally (no communication) and hands a failure to the component call as its
``caller_error``; the component agrees on it together with its own checks
(:func:`mlscam.runtime.collective.collect`) and raises the same
:class:`ComponentError` on every rank.  So every rank returns the same status
and message.  A NULL/unknown/finalized handle is detected locally, without
communication.  The component owns the one duplicate of the host communicator
(``Component.init`` dups it, ``Component.finalize`` frees it).

Array order: a host array of extents ``(nlon, nlat, nlev)`` in Fortran order is
viewed without a copy as ``view = np.frombuffer(buffer).reshape(nlev, nlat, nlon)``
(``view[k, j, i] == field(i+1, j+1, k+1)``) and handed to the component as
``view.transpose(1, 2, 0)``, i.e. ``[lat, lon, lev]``; results are written back
through the same view.  2-D variables have ``nlev = 1`` and go as ``view[0]``
(``[lat, lon]``).
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from mlscam.runtime import LocalError
from mlscam.status import Status

from .host_io import c_facing, copy_out, first_bad, host_view

__all__ = ["Status", "OP_NAMES", "init", "info", "variable", "tile", "array", "step", "finalize", "bind"]


# op codes of _mlscam_py_array (coupler/libmlscam.c)
OP_NAMES = {1: "mlscam_state_set", 2: "mlscam_state_set_all", 3: "mlscam_state_get",
            4: "mlscam_state_get_all", 5: "mlscam_tendency_get", 6: "mlscam_tendency_get_all"}
_SETS, _BY_NAME = (1, 2), (1, 3, 5)

_ffi: Any = None
_lib: Any = None


def bind(ffi: Any, lib: Any) -> None:
    """Use these cffi ``ffi``/``lib`` objects (default: the embedding module ``_mlscam_cffi``)."""
    global _ffi, _lib
    _ffi, _lib = ffi, lib


def _cffi() -> tuple[Any, Any]:
    if _ffi is None:
        from _mlscam_cffi import ffi, lib  # the module of the running libmlscam

        bind(ffi, lib)
    return _ffi, _lib


def _error(status: int, message: str) -> int:
    """Record ``message`` as this rank's last error; return ``status``."""
    _, lib = _cffi()
    lib._mlscam_error_set(str(message).encode("utf-8", "replace")[:16000])
    return int(status)


def _checked(fn: Callable[[], Any]) -> tuple[Any, LocalError | None]:
    """Run the local checks ``fn``: ``(result, None)``, or ``(None, failure)`` to hand to the component call."""
    try:
        return fn(), None
    except LocalError as exc:
        return None, exc
    except Exception as exc:  # noqa: BLE001 - any local failure becomes the agreed status
        return None, LocalError(f"{type(exc).__name__}: {exc}", Status.FAILED)


def _component_failure(what: str, exc: Exception) -> int:
    status = int(getattr(exc, "status", Status.FAILED))
    if status not in set(Status) - {Status.OK}:
        status = Status.FAILED
    return _error(status, f"{what}: {c_facing(str(exc))}")


# ------------------------------------------------------------------ instances
@dataclass
class _Instance:
    comp: Any          # mlscam.runtime.Component (it owns the duplicate of the host communicator)
    nlev_of: dict      # variable name -> levels (1 for 2-D)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.nlev_of)


_INSTANCES: dict[int, _Instance] = {}
_FINALIZED: set[int] = set()
_NEXT_ID = itertools.count(1)


def _instance(hid: int, what: str) -> _Instance:
    hid = int(hid)
    if hid in _INSTANCES:
        return _INSTANCES[hid]
    if hid in _FINALIZED:
        raise LocalError(f"{what}: the handle was finalized by mlscam_finalize; call mlscam_init again for a new "
                         "instance", Status.HANDLE)
    raise LocalError(f"{what}: {hid:#x} is not a handle returned by mlscam_init", Status.HANDLE)


def _string(ptr: Any, what: str) -> str:
    ffi, _ = _cffi()
    if ptr == ffi.NULL:
        raise LocalError(f"{what} is NULL; pass a NUL-terminated string", Status.ARGUMENT)
    return ffi.string(ptr).decode("utf-8", "replace")


# ----------------------------------------------------------------------- init
def _load_config(path: str):
    from mlscam.config import ConfigError, load_config

    if path.strip() == "":
        raise LocalError("namelist_path is empty; pass the path of the namelist file", Status.FILE)
    if not os.path.isfile(path):
        raise LocalError(f"namelist file not found: '{path}' (working directory {os.getcwd()}); pass the path of "
                         "the namelist file that holds the &rollout, &coupler and host groups", Status.FILE)
    try:
        return load_config(path)
    except ConfigError as exc:
        raise LocalError(f"bad namelist: {exc}", Status.CONFIG) from None


def _host_bounds(nlon: int, nlat: int, nlev: int, lon_start: int, lon_end: int, lat_start: int,
                 lat_end: int, interval: float):
    """This rank's (lat0, lat1, lon0, lon1) or None for the default layout; local checks only."""
    if min(nlon, nlat, nlev) < 1:
        raise LocalError(f"global grid nlon={nlon}, nlat={nlat}, nlev={nlev}: all must be >= 1", Status.ARGUMENT)
    if not math.isfinite(interval) or interval < 0:
        raise LocalError(f"coupling_interval_seconds={interval}: must be finite and >= 0 (0 = the checkpoint's "
                         "step)", Status.ARGUMENT)
    given = (lon_start, lon_end, lat_start, lat_end)
    if given == (0, 0, 0, 0):
        return None
    if not (1 <= lon_start <= lon_end <= nlon and 1 <= lat_start <= lat_end <= nlat):
        raise LocalError(f"tile bounds lon {lon_start}:{lon_end}, lat {lat_start}:{lat_end} are not inside the "
                         f"{nlon} x {nlat} grid: need 1 <= lon_start <= lon_end <= {nlon} and "
                         f"1 <= lat_start <= lat_end <= {nlat} (1-based, inclusive), or all four 0 for the "
                         "emulator's default decomposition", Status.DECOMPOSITION)
    return (lat_start - 1, lat_end, lon_start - 1, lon_end)


def init(path: Any, fcomm: int, nlon: int, nlat: int, nlev: int, lon_start: int, lon_end: int,
         lat_start: int, lat_end: int, interval: float, id_out: Any) -> int:
    """``mlscam_init``: see coupler/mlscam.h.  ``id_out[0]`` holds the host's handle on entry: a live
    instance there is refused (collectively, ``MLSCAM_ERR_HANDLE``) and kept; otherwise it receives the new
    handle id, or 0 on failure."""
    prior = int(id_out[0])
    prior = prior if prior in _INSTANCES else 0
    status = _init(path, fcomm, nlon, nlat, nlev, lon_start, lon_end, lat_start, lat_end, interval, id_out, prior)
    if status != Status.OK:
        id_out[0] = prior  # the live instance stays the host's; anything else becomes NULL
    return status


def _init(path: Any, fcomm: int, nlon: int, nlat: int, nlev: int, lon_start: int, lon_end: int,
          lat_start: int, lat_end: int, interval: float, id_out: Any, prior: int) -> int:
    what = "mlscam_init"
    try:
        from mlscam import blas

        blas.pin()  # before the first matmul unless the host computed already (Component.init says so)
        from mlscam.parallel.hostcomm import HostCommError, host_comm

        try:
            comm = host_comm(fcomm)
        except HostCommError as exc:
            return _error(Status.MPI, f"{what}: {exc}")
        return _init_on(comm, path, nlon, nlat, nlev, lon_start, lon_end, lat_start, lat_end, interval, id_out,
                        prior)
    except Exception as exc:  # noqa: BLE001 - nothing crosses the boundary
        return _error(Status.FAILED, f"{what}: {type(exc).__name__}: {exc}")


def _init_on(comm: Any, path: Any, nlon: int, nlat: int, nlev: int, lon_start: int, lon_end: int,
             lat_start: int, lat_end: int, interval: float, id_out: Any, prior: int = 0) -> int:
    """``Component.init`` on the host's ``comm`` (it duplicates it) with this call's checks as its caller_error."""
    from mlscam.runtime.component import Component, ComponentError  # (tests/hosts put stand-ins there)

    what = "mlscam_init"

    def check():
        if prior:
            raise LocalError(f"the handle passed to mlscam_init already holds a live instance (handle {prior}); "
                             "call mlscam_finalize on it first, or pass another handle variable for a second, "
                             "independent instance", Status.HANDLE)
        config = _load_config(_string(path, "namelist_path"))
        return config, _host_bounds(nlon, nlat, nlev, lon_start, lon_end, lat_start, lat_end, interval)

    result, failure = _checked(check)
    config, bounds = result or (None, None)
    try:
        comp = Component.init(config, comm, bounds=bounds, coupling_interval_seconds=interval or None,
                              caller_error=failure, host_indices=True)
    except ComponentError as exc:
        return _component_failure(what, exc)
    layout, grid = comp.layout, comp.grid
    nlev_ckpt = layout.nlev if layout.variables_3d else 1
    if (grid.nlon, grid.nlat, nlev_ckpt) != (nlon, nlat, nlev):
        message = (f"{what}: the host's grid nlon={nlon}, nlat={nlat}, nlev={nlev} differs from the "
                   f"checkpoint's nlon={grid.nlon}, nlat={grid.nlat}, nlev={nlev_ckpt} "
                   f"({config.rollout.checkpoint_path}); pass the checkpoint's grid or use a checkpoint "
                   "trained on the host's grid")
        try:
            comp.finalize()
        except Exception:  # noqa: BLE001 - report the mismatch, not the cleanup
            pass
        return _error(Status.CHECKPOINT, message)
    nlev_of = {v: layout.nlev for v in layout.variables_3d}
    nlev_of.update({v: 1 for v in layout.variables_2d})
    hid = next(_NEXT_ID)
    _INSTANCES[hid] = _Instance(comp=comp, nlev_of=nlev_of)
    id_out[0] = hid
    return Status.OK


# -------------------------------------------------------------- local queries
def info(hid: int, nlev: Any, n_state: Any, n_variables: Any, dt: Any) -> int:
    """``mlscam_info_get`` (local)."""
    try:
        inst = _instance(hid, "mlscam_info_get")
        layout = inst.comp.layout
        _out(nlev, "nlev", layout.nlev if layout.variables_3d else 1)
        _out(n_state, "n_state", layout.n_state)
        _out(n_variables, "n_variables", len(layout.variables))
        _out(dt, "dt_seconds", float(inst.comp.dt_seconds))
        return Status.OK
    except LocalError as exc:
        return _error(exc.status, str(exc))


def _out(ptr: Any, what: str, value) -> None:
    ffi, _ = _cffi()
    if ptr == ffi.NULL:
        raise LocalError(f"output argument {what} is NULL", Status.ARGUMENT)
    ptr[0] = value


def variable(hid: int, index: int, name: Any, namelen: int, nlev: Any) -> int:
    """``mlscam_variable_get`` (local): name and levels of variable ``index`` (1-based)."""
    what = "mlscam_variable_get"
    try:
        inst = _instance(hid, what)
        names = inst.names
        if not 1 <= index <= len(names):
            raise LocalError(f"{what}: index {index} is out of range 1..{len(names)} (variables {list(names)})",
                             Status.ARGUMENT)
        text = names[index - 1].encode()
        ffi, _ = _cffi()
        if name == ffi.NULL or namelen < len(text) + 1:
            raise LocalError(f"{what}: name buffer of {namelen} bytes is too small for '{names[index - 1]}': "
                             f"pass at least {len(text) + 1} bytes", Status.ARGUMENT)
        ffi.memmove(name, text + b"\0", len(text) + 1)
        _out(nlev, "nlev_of_variable", inst.nlev_of[names[index - 1]])
        return Status.OK
    except LocalError as exc:
        return _error(exc.status, str(exc))


def tile(hid: int, lon_start: Any, lon_end: Any, lat_start: Any, lat_end: Any) -> int:
    """``mlscam_tile_get`` (local): this rank's tile, 1-based inclusive."""
    try:
        t = _instance(hid, "mlscam_tile_get").comp.tile
        for ptr, what, value in ((lon_start, "lon_start", t.lon0 + 1), (lon_end, "lon_end", t.lon1),
                                 (lat_start, "lat_start", t.lat0 + 1), (lat_end, "lat_end", t.lat1)):
            _out(ptr, what, value)
        return Status.OK
    except LocalError as exc:
        return _error(exc.status, str(exc))


# --------------------------------------------------------------------- arrays
def array(hid: int, op: int, name: Any, data: Any, dtype: int, nlon: int, nlat: int, nlev: int) -> int:
    """Every array entry point (``op``: see ``OP_NAMES``): validate locally, call the component (one
    agreement), copy out."""
    from mlscam.runtime.component import ComponentError

    what = OP_NAMES.get(int(op), f"mlscam array op {op}")
    try:
        inst = _instance(hid, what)
        if int(op) not in OP_NAMES:
            raise LocalError(f"{what}: unknown operation {op}", Status.ARGUMENT)
    except LocalError as exc:
        return _error(exc.status, str(exc))
    try:
        return _array(inst, int(op), what, name, data, int(dtype), (int(nlon), int(nlat), int(nlev)))
    except ComponentError as exc:
        return _component_failure(what, exc)
    except Exception as exc:  # noqa: BLE001 - nothing crosses the boundary
        return _error(Status.FAILED, f"{what}: {type(exc).__name__}: {exc}")


def _array(inst: _Instance, op: int, what: str, name: Any, data: Any, dtype: int, extents: tuple[int, int, int]
           ) -> int:
    comp = inst.comp
    t = comp.tile

    def check():
        var = None
        if op in _BY_NAME:
            var = _string(name, f"{what}: name")
            if var not in inst.nlev_of:
                raise LocalError(f"{what}: unknown variable '{var}'; the checkpoint's variables are "
                                 f"{list(inst.names)}", Status.ARGUMENT)
            want = (t.nlon, t.nlat, inst.nlev_of[var])
            third = "nlev" if var in comp.layout.variables_3d else "nlev (1 for a 2-D variable)"
        else:
            want = (t.nlon, t.nlat, comp.layout.n_state)
            third = "n_state"
        if extents != want:
            raise LocalError(f"{what}{'(' + repr(var) + ')' if var else ''}: extents (nlon, nlat, {third}) = "
                             f"{extents} but this rank's tile needs {want} (tile lon {t.lon0 + 1}:{t.lon1}, "
                             f"lat {t.lat0 + 1}:{t.lat1}, 1-based); pass this rank's tile in Fortran order "
                             "(lon, lat, lev)", Status.ARGUMENT)
        view = host_view(_cffi()[0], data, dtype, extents, what)
        if op in _SETS and not np.isfinite(view).all():
            raise LocalError(f"{what}{'(' + repr(var) + ')' if var else ''}: {first_bad(view, t)}", Status.VALUE)
        return var, view

    result, failure = _checked(check)
    var, view = result or (None, None)
    host = None if view is None else view.transpose(1, 2, 0)  # [lat, lon, lev], a view of the host array
    if op == 1:
        values = host if var in comp.layout.variables_3d or view is None else view[0]
        comp.set_variable(var, values, caller_error=failure)
    elif op == 2:
        comp.set_state(host, caller_error=failure)
    elif op == 3:
        copy_out(comp.get_variable(var, caller_error=failure), host)
    elif op == 4:
        copy_out(comp.get_state(caller_error=failure), host)
    elif op == 5:
        copy_out(comp.get_tendencies(caller_error=failure)[..., comp.layout.slice_of(var)], host)
    else:
        copy_out(comp.get_tendencies(caller_error=failure), host)
    return Status.OK


# ------------------------------------------------------------------ step, end
def step(hid: int, n: int) -> int:
    """``mlscam_step``."""
    from mlscam.runtime.component import ComponentError

    what = "mlscam_step"
    try:
        inst = _instance(hid, what)
        failure = None if n >= 0 else LocalError(f"{what}: n = {n}; pass the number of steps, n >= 0",
                                                 Status.ARGUMENT)
        inst.comp.step(int(n), caller_error=failure)
        return Status.OK
    except LocalError as exc:
        return _error(exc.status, str(exc))
    except ComponentError as exc:
        return _component_failure(what, exc)
    except Exception as exc:  # noqa: BLE001
        return _error(Status.FAILED, f"{what}: {type(exc).__name__}: {exc}")


def finalize(hid: int) -> int:
    """``mlscam_finalize``: finalize the component (it frees its communicator), retire the handle."""
    what = "mlscam_finalize"
    try:
        inst = _instance(hid, what)
    except LocalError as exc:
        return _error(exc.status, str(exc))
    del _INSTANCES[int(hid)]
    _FINALIZED.add(int(hid))
    try:
        inst.comp.finalize()
    except Exception as exc:  # noqa: BLE001
        return _component_failure(what, exc)
    return Status.OK
