"""The file side of a component: its tile of an initial state, forecast output, restarts (all collective).

Functions of a :class:`~mlscam.runtime.component.Component` ``c``; the
component's methods of the same names call them.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mlscam.restart import Restart
from mlscam.restart import read_restart as _read_restart_file
from mlscam.restart import write_restart as _write_restart_file
from mlscam.status import Status

from .collective import LocalError, check_array

if TYPE_CHECKING:
    from .component import Component

__all__ = ["read_tile", "read_initial_tile", "gather_state", "gather_latent", "write_output", "write_restart",
           "read_restart", "parse_time"]

#: netCDF4/HDF5 is not thread-safe: ranks of an in-process (fake) world read one at a time.
_FILE_LOCK = threading.Lock()


def parse_time(iso: str, units: str, calendar: str):
    """A cftime datetime from its ISO string in ``calendar`` ("" -> None)."""
    import cftime

    if not iso:
        return None
    return cftime.num2date(0, f"seconds since {iso}", calendar, only_use_cftime_datetimes=True)


def read_tile(c: "Component", path: str, time_index: int):
    """This rank's tile of ``path`` at ``time_index``:
    ``(x [nlat_t, nlon_t, n_state], time, units, calendar, lat_descending)``.

    The file is read with the component's naming (:attr:`Component.naming`: the namelist's ``&data``
    file names and level source where it sets them, else the checkpoint's), so a model trained on CAM
    files reads CAM files without repeating the map.
    """
    from mlscam.data import open_source

    if not Path(path).is_file():
        raise LocalError(f"initial-state file not found: {path}; set &rollout input_nc_path "
                         "(or --input-nc-path)", Status.FILE)
    data = c.naming.data_config(c.config.data, c.layout, c.dt_seconds)
    with _FILE_LOCK, open_source(data, [str(path)], states_only=True) as src:
        if src.grid.shape != c.grid.shape:
            raise LocalError(
                f"{path} is on a {src.grid.nlat}x{src.grid.nlon} grid, the component runs on "
                f"{c.grid.nlat}x{c.grid.nlon} (the checkpoint's training grid unless another was given); "
                "use an initial state on that grid, or set &rollout allow_other_grid = .true. to run the "
                "drivers on the file's grid", Status.CHECKPOINT)
        src.check_compatible(c.layout, c.grid, c.dt_seconds)
        if not 0 <= time_index < src.ntime:
            raise LocalError(f"time index {time_index} is outside 0..{src.ntime - 1} of {path}; set "
                             "&rollout start_time (or --start-time)", Status.ARGUMENT)
        t = c.tile
        x = src.read_tile(time_index, (t.lat0, t.lat1), (t.lon0, t.lon1), halo=0)
        return x, src.times[time_index], src.time_units, src.calendar, src.lat_descending


def read_initial_tile(c: "Component", path: str, time_index: int):
    """:func:`read_tile` through the component's ``_read_tile`` (tests replace it), checked (local)."""
    x, time, units, calendar, lat_descending = c._read_tile(path, time_index)
    t = c.tile

    def where(idx: tuple[int, ...]) -> str:  # variable, level and global cell of the first non-finite value
        j, i, k = idx
        jg, ig = t.lat0 + j, t.lon0 + i
        lat, lon = float(c.grid.lat_array()[jg]), float(c.grid.lon_array()[ig])
        return (f"{c.layout.describe_feature(k)}, global cell (lat index {jg}, lon index {ig}; lat {lat:g}, "
                f"lon {lon:g} degrees)")

    check_array(x, (t.nlat, t.nlon, c.n_state), f"the initial state of {path} at time index {time_index}", where)
    return x, time, units, calendar, lat_descending


def gather_state(c: "Component", root: int) -> np.ndarray | None:
    """The decoded global state ``[nlat, nlon, n_state]`` on ``root``, ``None`` elsewhere (collective)."""
    x = c._decoded("gather_state")
    parts = c.comm.gather((c.tile.bounds, x), root=root)
    if c.rank != root:
        return None
    out = np.empty((c.grid.nlat, c.grid.nlon, c.n_state), x.dtype)
    for (lat0, lat1, lon0, lon1), part in parts:
        out[lat0:lat1, lon0:lon1] = part
    return out


def gather_latent(c: "Component", root: int) -> torch.Tensor | None:
    """The latents of the whole grid in global column order ``[nlat * nlon, L]`` on ``root`` (collective)."""
    parts = c.comm.gather(c._z.reshape(c.tile.ncol, -1).detach().cpu().numpy(), root=root)
    if c.rank != root:
        return None
    out = np.empty((c.grid.ncol, c.latent_dim), parts[0].dtype)
    for r, part in enumerate(parts):
        out[c.decomposition.local_columns(r)] = part
    return torch.from_numpy(out)


def write_output(c: "Component", path: Path, attrs: dict | None) -> Path:
    """See :meth:`Component.write_output`."""
    from mlscam.io.forecast import ForecastWriter

    def check() -> None:
        if c.initial_time is None:
            raise LocalError("write_output needs the state's valid time; call set_time (or set the state from "
                             "a file or a restart)", Status.NO_STATE)

    c._collect(check, "write_output", Status.NO_STATE)
    x = c.gather_state(0)

    def write() -> None:
        if c.rank != 0:
            return
        with ForecastWriter(path, layout=c.layout, grid=c.grid, initial_time=c.initial_time,
                            time_units=c.time_units, calendar=c.calendar, lat_descending=c.lat_descending,
                            attrs={"checkpoint": c.checkpoint_path, "checkpoint_sha256": c.checkpoint_hash,
                                   "mpi_ranks": c.size, **(attrs or {})}) as w:
            w.write(c.step_count * c.dt_seconds, x)

    c._collect(write, "write_output", Status.FILE)
    return path


def write_restart(c: "Component", path: Path) -> Path:
    """See :meth:`Component.write_restart`."""
    z = c.gather_latent(0)
    target = c._resolve_mass_target("write_restart")  # collective: every rank, after gather_latent's agreement

    def write() -> None:
        if c.rank != 0:
            return
        valid = c.valid_time
        _write_restart_file(path, Restart(
            z=z, step=c.step_count, time=valid.isoformat() if valid is not None else "",
            time_units=c.time_units, calendar=c.calendar, checkpoint_hash=c.checkpoint_hash,
            grid_shape=c.grid.shape,
            initial_time=c.initial_time.isoformat() if c.initial_time is not None else "",
            lat_descending=c.lat_descending, mass_target=None if target is None else float(target[0])))

    c._collect(write, "write_restart", Status.FILE)
    return path


def read_restart(c: "Component", path) -> tuple[torch.Tensor, Restart]:
    """This rank's latents ``[nlat_t, nlon_t, L]`` of a restart written on any number of ranks, and the restart."""
    def read() -> tuple[torch.Tensor, Restart]:
        r = _read_restart_file(path, checkpoint_hash=c.checkpoint_hash, grid_shape=c.grid.shape)
        if tuple(r.z.shape) != (c.grid.ncol, c.latent_dim):
            raise LocalError(f"restart {path} holds latents {tuple(r.z.shape)}, this run needs "
                             f"({c.grid.ncol}, {c.latent_dim})", Status.CHECKPOINT)
        cols = torch.from_numpy(c.decomposition.local_columns(c.rank))
        z = r.z[cols].reshape(c.tile.nlat, c.tile.nlon, c.latent_dim)
        return z.to(device=c.device, dtype=next(c.model.parameters()).dtype), r

    return c._collect(read, "read_restart", Status.CHECKPOINT)
