"""The emulator as a climate-model component: one rank owns one tile of the grid.

Lifecycle (every call is collective over the component's communicator)::

    c = Component.init(config, comm)             # checkpoint, device, threads, tiles, halo plan
    c.set_state(x_tile)  or  c.set_state_from_file(path, t)  or  c.read_restart(path)
    c.step(n)                                    # latent steps: halo exchange + advance_columns
    x_tile = c.get_state()                       # decode this rank's tile (latents unchanged)
    c.write_output(path)                         # the whole grid, one CF file (rank 0 writes)
    c.write_restart(path)
    c.finalize()

Arrays are this rank's tile ``[tile.nlat, tile.nlon, feature]`` (latitude
ascending south -> north, longitude from 0 east; C order), features in the
checkpoint's :class:`ColumnLayout` order.  Latents live on the rank's device as
``z [1, tile.ncol, latent]`` (columns row-major in the tile).

Collective status: each rank validates locally, then the ranks agree on one
status (:func:`mlscam.parallel.agree`) before any halo exchange, so a failure
on one rank raises the same :class:`ComponentError` on every rank, naming the
failing rank.  Encode, decode and step run in fixed-size column chunks, so the
result does not depend on the number of ranks (bit for bit).
"""
from __future__ import annotations

import datetime as _dt
import enum
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mlscam import blas
from mlscam.checkpoint import Checkpoint, file_hash, load_checkpoint
from mlscam.config import Config
from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout
from mlscam.model.chunks import advance_columns, map_columns
from mlscam.parallel import (Decomposition, HaloExchange, HaloPlan, Tile, agree, choose_device, choose_threads,
                             configure_torch)
from mlscam.restart import Restart, RestartError, read_restart, write_restart

__all__ = ["Component", "ComponentError", "Status"]


#: netCDF4/HDF5 is not thread-safe: ranks of an in-process (fake) world read one at a time.
_FILE_LOCK = threading.Lock()


class Status(enum.IntEnum):
    """Non-zero status codes of :class:`ComponentError` (the C interface returns them)."""

    FAILED = 1            # anything not listed below
    BAD_ARGUMENT = 2      # shape, dtype, name, count
    NON_FINITE = 3        # NaN or Inf in an input or a decoded state
    NO_STATE = 4          # step/get before a complete state was set
    FILE_ERROR = 5        # missing or unreadable file
    CHECKPOINT = 6        # checkpoint or restart does not fit
    INTERVAL = 7          # coupling interval != checkpoint step
    DECOMPOSITION = 8     # bad layout or host bounds
    FINALIZED = 9         # call after finalize


class ComponentError(RuntimeError):
    """A component call that failed on at least one rank; raised on every rank alike.

    ``status`` is the non-zero :class:`Status` code; the message names the
    failing rank(s) and says what to do.
    """

    def __init__(self, message: str, status: int = Status.FAILED):
        super().__init__(message)
        self.status = int(status) or int(Status.FAILED)


class _Local(Exception):
    """A local validation failure, before the ranks agree."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = int(status)


def _dup(comm: Any) -> tuple[Any, bool]:
    dup = getattr(comm, "Dup", None)
    return (dup(), True) if dup is not None else (comm, False)


def _collect(comm: Any, fn: Callable[[], Any], what: str, default_status: int = Status.FAILED) -> Any:
    """Run ``fn`` locally; agree on the outcome over ``comm``; raise one ComponentError everywhere."""
    result, ok, message, status = None, True, "", 0
    try:
        result = fn()
    except _Local as exc:
        ok, message, status = False, str(exc), exc.status
    except (RestartError,) as exc:
        ok, message, status = False, str(exc), Status.CHECKPOINT
    except FileNotFoundError as exc:
        ok, message, status = False, str(exc), Status.FILE_ERROR
    except Exception as exc:  # noqa: BLE001 - every local failure becomes the collective status
        ok, message, status = False, f"{type(exc).__name__}: {exc}", default_status
    code, text = agree(comm, ok, message, status or default_status)
    if code:
        raise ComponentError(f"{what}: {text}", code)
    return result


def _check_array(a: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Shape, floating dtype and finite values of a host array (local check)."""
    if not isinstance(a, np.ndarray):
        raise _Local(f"{what} must be a numpy array, got {type(a).__name__}", Status.BAD_ARGUMENT)
    if tuple(a.shape) != tuple(shape):
        raise _Local(f"{what} has shape {tuple(a.shape)} but this rank's tile needs {tuple(shape)} "
                     "(lat, lon[, feature]); pass this rank's tile only", Status.BAD_ARGUMENT)
    if a.dtype not in (np.float32, np.float64):
        raise _Local(f"{what} has dtype {a.dtype}; pass float32 or float64 values", Status.BAD_ARGUMENT)
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(v) for v in np.argwhere(bad)[0])
        raise _Local(f"{what} has {int(bad.sum())} non-finite value(s) (NaN/Inf), first at tile index {idx}: "
                     f"{a[idx]}; fix the input on this rank", Status.NON_FINITE)
    return a


def _parse_time(iso: str, units: str, calendar: str):
    """A cftime datetime from its ISO string in ``calendar`` ("" -> None)."""
    import cftime

    if not iso:
        return None
    return cftime.num2date(0, f"seconds since {iso}", calendar, only_use_cftime_datetimes=True)


class Component:
    """One rank's part of the emulator component (see the module docstring).

    Attributes: ``grid``, ``layout``, ``decomposition``, ``tile`` (this rank's
    :class:`Tile`), ``plan`` (:class:`HaloPlan`), ``dt_seconds``, ``device``,
    ``threads``, ``step_count``, ``rank``, ``size``, ``checkpoint_path``,
    ``checkpoint_hash``, ``initial_time`` / ``time_units`` / ``calendar``
    (set by :meth:`set_state_from_file`, :meth:`read_restart` or :meth:`set_time`),
    ``timings`` (seconds this rank spent in halo exchanges and in latent compute during :meth:`step`).
    """

    def __init__(self):  # use Component.init
        self._finalized = True

    # ------------------------------------------------------------------ init
    @classmethod
    def init(cls, config: Config, comm: Any, *, bounds=None, coupling_interval_seconds: float | None = None,
             grid: LatLonGrid | None = None) -> "Component":
        """Build the component on every rank of ``comm`` (collective).

        Args:
          config: the run configuration (``&rollout checkpoint_path``, ``&parallel``, ``&coupler``).
          comm: mpi4py communicator, :class:`FakeComm` or :class:`SelfComm`; duplicated when it has ``Dup``.
          bounds: this rank's ``(lat0, lat1, lon0, lon1)`` (0-based, half-open, global emulator
            indices); ``None``: the Cartesian layout of ``config.parallel.layout``.
          coupling_interval_seconds: the host's coupling interval; must equal the checkpoint's step.
            ``None`` or 0 take ``config.coupler.coupling_interval_seconds`` (0 there = no check).
          grid: run on this grid instead of the training grid (needs ``&rollout allow_other_grid``).
        """
        self = cls()
        self.comm, self._owns_comm = _dup(comm)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self._finalized = False
        try:
            self._init(config, bounds, coupling_interval_seconds, grid)
        except BaseException:
            self._free_comm()
            self._finalized = True
            raise
        return self

    def _init(self, config: Config, bounds, interval, grid) -> None:
        self.config = config
        comm = self.comm
        path = config.rollout.checkpoint_path

        def load() -> Checkpoint:
            if not Path(path).is_file():
                raise _Local(f"checkpoint file not found: {path}; set &rollout checkpoint_path "
                             "(or --checkpoint-path)", Status.FILE_ERROR)
            ckpt = load_checkpoint(path, grid=grid, allow_other_grid=config.rollout.allow_other_grid)
            return ckpt, file_hash(path)

        ckpt, self.checkpoint_hash = _collect(comm, load, "Component.init (checkpoint)", Status.CHECKPOINT)
        self.checkpoint, self.checkpoint_path = ckpt, str(path)
        self.layout: ColumnLayout = ckpt.layout
        self.grid: LatLonGrid = grid or ckpt.grid
        self.dt_seconds = float(ckpt.dt_seconds)
        self.chunk_size = int(ckpt.config.model.chunk_size)

        def check_interval() -> None:
            want = interval if interval not in (None, 0) else config.coupler.coupling_interval_seconds
            if want not in (None, 0) and abs(float(want) - self.dt_seconds) > 1e-6:
                raise _Local(
                    f"coupling interval {float(want):g} s differs from the checkpoint's step {self.dt_seconds:g} s "
                    f"({path}); call the component every {self.dt_seconds:g} s of model time "
                    "(the emulator cannot take other steps)", Status.INTERVAL)

        _collect(comm, check_interval, "Component.init (coupling interval)", Status.INTERVAL)

        def decompose() -> Decomposition:
            if bounds is None:
                return Decomposition.cartesian(self.grid.nlat, self.grid.nlon, self.size, config.parallel.layout)
            if all_bounds[self.rank] is None:
                raise _Local(f"bounds must be 4 integers (lat0, lat1, lon0, lon1), got {bounds!r}",
                             Status.DECOMPOSITION)
            if any(b is None for b in all_bounds):
                return None  # another rank reports its bad bounds
            return Decomposition.from_bounds(self.grid.nlat, self.grid.nlon, all_bounds)

        all_bounds = None
        if bounds is not None:
            try:
                mine = tuple(int(v) for v in bounds)
            except (TypeError, ValueError):
                mine = None
            all_bounds = comm.allgather(mine)
        self.decomposition = _collect(comm, decompose, "Component.init (decomposition)", Status.DECOMPOSITION)
        self.tile: Tile = self.decomposition.tiles[self.rank]
        self.plan = _collect(comm, lambda: HaloPlan.build(self.decomposition, self.rank),
                             "Component.init (halo plan)", Status.DECOMPOSITION)
        self._exchange = HaloExchange(self.plan, comm)

        def device_and_threads():
            return choose_device(comm, config.parallel.device), choose_threads(comm, config.parallel.threads)

        # choose_device / choose_threads are collective; a local failure (no CUDA) is agreed on below.
        self.device, self.threads = _collect(comm, device_and_threads, "Component.init (device)")

        def build() -> None:
            configure_torch(self.device, self.threads)
            self.blas_mode = blas.check(warn=self.rank == 0)
            self._was_deterministic = torch.are_deterministic_algorithms_enabled()
            if config.parallel.deterministic:
                if self.device.type == "cuda":  # cuBLAS needs a fixed workspace to be deterministic
                    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.use_deterministic_algorithms(True)
            self.model = ckpt.build_model().to(self.device)
            param = next(self.model.parameters())
            as_t = lambda a: torch.tensor(np.asarray(a), dtype=param.dtype, device=self.device)  # noqa: E731
            norm = ckpt.normalization
            self._mean, self._std = as_t(norm.state_mean), as_t(norm.state_std)
            feats = self.grid.static_features()
            t = self.tile
            static = (np.stack([feats[k] for k in self.layout.static_features], axis=-1)
                      if self.layout.static_features else np.zeros(self.grid.shape + (0,)))
            self._static = as_t(static[t.lat0:t.lat1, t.lon0:t.lon1]).reshape(1, t.ncol, -1)
            self._tile_index = torch.tensor(np.array(self.plan.tile_index), device=self.device)
            self._crossed = torch.tensor(np.array(self.plan.crossed), device=self.device)

        _collect(comm, build, "Component.init (model)")
        self.step_count = 0
        self.timings = {"exchange": 0.0, "compute": 0.0}  # seconds spent in step(), this rank
        self.initial_time = None
        self.time_units = "hours since 2000-01-01 00:00:00"
        self.calendar = "standard"
        self._z: torch.Tensor | None = None          # [1, ncol, L]
        self._z_prev: torch.Tensor | None = None     # latents one step earlier (tendencies)
        self._pending: np.ndarray | None = None      # [nlat_t, nlon_t, n_state] float64 from set_variable
        self._pending_set: set[str] = set()

    # ------------------------------------------------------------ properties
    @property
    def n_state(self) -> int:
        return self.layout.n_state

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @property
    def has_state(self) -> bool:
        return self._z is not None

    @property
    def valid_time(self):
        """The valid time of the current state (cftime) or None when no time is known."""
        if self.initial_time is None:
            return None
        return self.initial_time + _dt.timedelta(seconds=self.step_count * self.dt_seconds)

    def __repr__(self) -> str:
        return (f"Component(rank {getattr(self, 'rank', '?')} of {getattr(self, 'size', '?')}, "
                f"{getattr(self, 'tile', None)}, step {getattr(self, 'step_count', '?')})")

    # --------------------------------------------------------------- helpers
    def _collect(self, fn: Callable[[], Any], what: str, default_status: int = Status.FAILED) -> Any:
        if self._finalized:
            raise ComponentError(f"Component.{what}: the component was finalized; call Component.init again",
                                 Status.FINALIZED)
        return _collect(self.comm, fn, f"Component.{what}", default_status)

    def _require_state(self) -> None:
        if self._pending_set:
            missing = [v for v in self.layout.variables if v not in self._pending_set]
            raise _Local(f"set_variable was called for {sorted(self._pending_set)} but not yet for {missing} "
                         "since the last encode; set every variable of the layout before stepping or reading",
                         Status.NO_STATE)
        if self._z is None:
            raise _Local("no state has been set; call set_state, set_variable for every variable, "
                         "set_state_from_file or read_restart first", Status.NO_STATE)

    def _tile_shape(self, width: int | None = None) -> tuple[int, ...]:
        shape = (self.tile.nlat, self.tile.nlon)
        return shape if width is None else shape + (width,)

    @torch.no_grad()
    def _encode(self, x: np.ndarray) -> torch.Tensor:
        """``x [nlat_t, nlon_t, n_state]`` physical -> ``z [1, ncol, L]`` (as Emulator.encode, per column)."""
        xt = torch.from_numpy(np.ascontiguousarray(x)).reshape(1, self.tile.ncol, self.n_state)
        x_n = (xt.to(self._mean) - self._mean) / self._std
        return map_columns(self.model.encoder, x_n, self._static, chunk_size=self.chunk_size)

    @torch.no_grad()
    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z [1, ncol, L]`` -> physical ``[1, ncol, n_state]`` (as Emulator.decode, per column)."""
        return map_columns(self.model.decoder, z, chunk_size=self.chunk_size) * self._std + self._mean

    def _to_tile(self, x: torch.Tensor) -> np.ndarray:
        return x.detach().cpu().numpy().reshape(self._tile_shape(x.shape[-1]))

    def _decoded(self, what: str) -> np.ndarray:
        """Decode this rank's tile, checking it is finite (collective)."""
        def decode() -> np.ndarray:
            self._require_state()
            x = self._to_tile(self._decode(self._z))
            bad = ~np.isfinite(x)
            if bad.any():
                j, i, k = (int(v) for v in np.argwhere(bad)[0])
                raise _Local(f"the decoded state at step {self.step_count} has {int(bad.sum())} non-finite "
                             f"value(s), first at global cell (lat {self.tile.lat0 + j}, lon {self.tile.lon0 + i}) "
                             f"feature {k}; the forecast blew up: use a shorter run or another checkpoint",
                             Status.NON_FINITE)
            return x

        return self._collect(decode, what, Status.NON_FINITE)

    # ----------------------------------------------------------------- state
    def set_state(self, x_local: np.ndarray) -> None:
        """Set and encode this rank's physical tile ``x_local [tile.nlat, tile.nlon, n_state]`` (float32/64)."""
        x = self._collect(lambda: _check_array(x_local, self._tile_shape(self.n_state), "set_state: x_local"),
                          "set_state", Status.BAD_ARGUMENT)
        self._set_encoded(x)

    def _set_encoded(self, x: np.ndarray) -> None:
        self._z = self._encode(x)
        self._z_prev = None
        self._pending, self._pending_set = None, set()

    def set_variable(self, name: str, values: np.ndarray) -> None:
        """Set one variable of this rank's tile: ``[tile.nlat, tile.nlon, nlev]`` (3-D) or ``[tile.nlat, tile.nlon]``.

        The state is encoded once every variable of the layout has been set
        since the last encode.
        """
        def check() -> tuple[slice, np.ndarray]:
            if name not in self.layout.variables:
                raise _Local(f"set_variable: unknown variable {name!r}; the checkpoint's variables are "
                             f"{list(self.layout.variables)}", Status.BAD_ARGUMENT)
            is3d = name in self.layout.variables_3d
            shape = self._tile_shape(self.layout.nlev) if is3d else self._tile_shape()
            a = _check_array(values, shape, f"set_variable({name!r})")
            return self.layout.slice_of(name), (a if is3d else a[..., None])

        where, a = self._collect(check, "set_variable", Status.BAD_ARGUMENT)
        if self._pending is None:
            self._pending = np.zeros(self._tile_shape(self.n_state), np.float64)
        self._pending[..., where] = a
        self._pending_set.add(name)
        if self._pending_set == set(self.layout.variables):
            x = self._pending
            self._set_encoded(x)

    def set_time(self, initial_time, time_units: str | None = None, calendar: str | None = None,
                 step_count: int = 0) -> None:
        """Set the valid time of the current state (cftime datetime) and its CF units/calendar (collective, no check)."""
        self._collect(lambda: None, "set_time")
        self.initial_time = initial_time
        self.time_units = time_units or self.time_units
        self.calendar = calendar or getattr(initial_time, "calendar", None) or self.calendar
        self.step_count = int(step_count)

    def _read_tile(self, path: str, time_index: int):
        """This rank's tile of ``path`` at ``time_index``: ``(x [nlat_t, nlon_t, n_state], time, units, calendar)``."""
        from mlscam.data import open_source

        if not Path(path).is_file():
            raise _Local(f"initial-state file not found: {path}; set &rollout input_nc_path "
                         "(or --input-nc-path)", Status.FILE_ERROR)
        data = self.config.data
        if (tuple(data.variables_3d), tuple(data.variables_2d)) != (self.layout.variables_3d, self.layout.variables_2d):
            data = replace(data, variables_3d=self.layout.variables_3d, variables_2d=self.layout.variables_2d,
                           file_names_3d=(), file_names_2d=())
        data = replace(data, time_step_hours=self.dt_seconds / 3600.0, static_features=self.layout.static_features)
        with _FILE_LOCK, open_source(data, [str(path)], states_only=True) as src:
            if src.grid.shape != self.grid.shape:
                raise _Local(
                    f"{path} is on a {src.grid.nlat}x{src.grid.nlon} grid, the component runs on "
                    f"{self.grid.nlat}x{self.grid.nlon} (the checkpoint's training grid unless another was given); "
                    "use an initial state on that grid, or set &rollout allow_other_grid = .true. to run the "
                    "drivers on the file's grid", Status.CHECKPOINT)
            src.check_compatible(self.layout, self.grid, self.dt_seconds)
            if not 0 <= time_index < src.ntime:
                raise _Local(f"time index {time_index} is outside 0..{src.ntime - 1} of {path}; set "
                             "&rollout start_time (or --start-time)", Status.BAD_ARGUMENT)
            t = self.tile
            x = src.read_tile(time_index, (t.lat0, t.lat1), (t.lon0, t.lon1), halo=0)
            return x, src.times[time_index], src.time_units, src.calendar

    def set_state_from_file(self, path, time_index: int = 0) -> None:
        """Read ONLY this rank's tile at ``time_index`` of a NetCDF file, encode it, take its valid time."""
        def read():
            x, time, units, calendar = self._read_tile(str(path), int(time_index))
            _check_array(x, self._tile_shape(self.n_state), f"the initial state of {path} at time index {time_index}")
            return x, time, units, calendar

        x, time, units, calendar = self._collect(read, "set_state_from_file", Status.FILE_ERROR)
        self._set_encoded(x)
        self.initial_time, self.time_units, self.calendar = time, units, calendar
        self.step_count = 0

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, n: int = 1) -> None:
        """``n`` latent steps: per step one halo exchange, ``advance_columns`` on local + halo, ``z += dz``."""
        def check() -> None:
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise _Local(f"step: n must be an integer >= 0, got {n!r}", Status.BAD_ARGUMENT)
            self._require_state()

        self._collect(check, "step", Status.NO_STATE)
        clock = time.perf_counter
        for _ in range(int(n)):
            z = self._z
            t0 = clock()
            z_src = self._exchange.exchange(z)
            t1 = clock()
            self._z = z + advance_columns(self.model.mixer, z_src, self._tile_index, self._crossed, self.chunk_size)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.timings["exchange"] += t1 - t0
            self.timings["compute"] += clock() - t1
            self._z_prev = z
            self.step_count += 1

    # ------------------------------------------------------------------- get
    def get_state(self) -> np.ndarray:
        """Decode this rank's tile: ``[tile.nlat, tile.nlon, n_state]`` float32 (the latents are unchanged)."""
        return self._decoded("get_state")

    def get_variable(self, name: str) -> np.ndarray:
        """One decoded variable of this rank's tile: ``[tile.nlat, tile.nlon, nlev]`` or ``[tile.nlat, tile.nlon]``."""
        def check() -> None:
            if name not in self.layout.variables:
                raise _Local(f"get_variable: unknown variable {name!r}; the checkpoint's variables are "
                             f"{list(self.layout.variables)}", Status.BAD_ARGUMENT)

        self._collect(check, "get_variable", Status.BAD_ARGUMENT)
        x = self._decoded("get_variable")[..., self.layout.slice_of(name)]
        return x if name in self.layout.variables_3d else x[..., 0]

    def get_tendencies(self) -> np.ndarray:
        """``(decode(z[t]) - decode(z[t-1])) / dt_seconds``: ``[tile.nlat, tile.nlon, n_state]``, SI units per second."""
        def check() -> None:
            self._require_state()
            if self._z_prev is None:
                raise _Local("get_tendencies needs at least one step since the state was set; call step first",
                             Status.NO_STATE)

        self._collect(check, "get_tendencies", Status.NO_STATE)
        with torch.no_grad():
            now = self._to_tile(self._decode(self._z)).astype(np.float64)
            before = self._to_tile(self._decode(self._z_prev)).astype(np.float64)
        return ((now - before) / self.dt_seconds).astype(np.float32)

    def gather_state(self, root: int = 0) -> np.ndarray | None:
        """The decoded global state ``[nlat, nlon, n_state]`` on ``root``, ``None`` elsewhere (collective)."""
        x = self._decoded("gather_state")
        parts = self.comm.gather((self.tile.bounds, x), root=root)
        if self.rank != root:
            return None
        out = np.empty((self.grid.nlat, self.grid.nlon, self.n_state), x.dtype)
        for (lat0, lat1, lon0, lon1), part in parts:
            out[lat0:lat1, lon0:lon1] = part
        return out

    def gather_latent(self, root: int = 0) -> torch.Tensor | None:
        """The latents of the whole grid in global column order ``[nlat * nlon, L]`` on ``root`` (collective)."""
        self._collect(self._require_state, "gather_latent", Status.NO_STATE)
        parts = self.comm.gather(self._z[0].detach().cpu().numpy(), root=root)
        if self.rank != root:
            return None
        out = np.empty((self.grid.ncol, self.latent_dim), parts[0].dtype)
        for r, part in enumerate(parts):
            out[self.decomposition.local_columns(r)] = part
        return torch.from_numpy(out)

    def write_output(self, path, attrs: dict | None = None) -> Path:
        """Write the current decoded state of the whole grid as a one-time CF NetCDF file (collective).

        Gathered to rank 0, which writes it atomically (complete or absent);
        the valid time is ``valid_time``, so a time must be known (set the state
        from a file or a restart, or call :meth:`set_time`).
        """
        from mlscam.io.forecast import ForecastWriter

        path = Path(path)

        def check() -> None:
            if self.initial_time is None:
                raise _Local("write_output needs the state's valid time; call set_time (or set the state from "
                             "a file or a restart)", Status.NO_STATE)

        self._collect(check, "write_output", Status.NO_STATE)
        x = self.gather_state(0)

        def write() -> None:
            if self.rank != 0:
                return
            with ForecastWriter(path, layout=self.layout, grid=self.grid, initial_time=self.initial_time,
                                time_units=self.time_units, calendar=self.calendar,
                                attrs={"checkpoint": self.checkpoint_path, "checkpoint_sha256": self.checkpoint_hash,
                                       "mpi_ranks": self.size, **(attrs or {})}) as w:
                w.write(self.step_count * self.dt_seconds, x)

        self._collect(write, "write_output", Status.FILE_ERROR)
        return path

    # --------------------------------------------------------------- restart
    def write_restart(self, path) -> Path:
        """Write the latents of the whole grid (global column order) with step and time; rank 0 writes (collective)."""
        path = Path(path)
        z = self.gather_latent(0)

        def write() -> None:
            if self.rank != 0:
                return
            valid = self.valid_time
            write_restart(path, Restart(
                z=z, step=self.step_count, time=valid.isoformat() if valid is not None else "",
                time_units=self.time_units, calendar=self.calendar, checkpoint_hash=self.checkpoint_hash,
                grid_shape=self.grid.shape,
                initial_time=self.initial_time.isoformat() if self.initial_time is not None else ""))

        self._collect(write, "write_restart", Status.FILE_ERROR)
        return path

    def read_restart(self, path) -> None:
        """Continue from a restart written on any number of ranks with the same checkpoint (collective)."""
        def read() -> tuple[torch.Tensor, Restart]:
            r = read_restart(path, checkpoint_hash=self.checkpoint_hash, grid_shape=self.grid.shape)
            if tuple(r.z.shape) != (self.grid.ncol, self.latent_dim):
                raise _Local(f"restart {path} holds latents {tuple(r.z.shape)}, this run needs "
                             f"({self.grid.ncol}, {self.latent_dim})", Status.CHECKPOINT)
            cols = torch.from_numpy(self.decomposition.local_columns(self.rank))
            return r.z[cols].unsqueeze(0).to(device=self.device, dtype=self._mean.dtype), r

        z, r = self._collect(read, "read_restart", Status.CHECKPOINT)
        self._z, self._z_prev = z.contiguous(), None
        self._pending, self._pending_set = None, set()
        self.step_count = int(r.step)
        self.time_units, self.calendar = r.time_units, r.calendar
        self.initial_time = _parse_time(r.initial_time, r.time_units, r.calendar)

    # -------------------------------------------------------------- finalize
    def _free_comm(self) -> None:
        if getattr(self, "_owns_comm", False):
            self.comm.Free()
            self._owns_comm = False

    def finalize(self) -> None:
        """Release the duplicated communicator and the model, restore torch's deterministic-algorithms setting.

        Idempotent. Later calls raise ComponentError.
        """
        if self._finalized:
            return
        self.comm.Barrier()
        self._finalized = True
        self._z = self._z_prev = None
        self.model = None
        self._free_comm()
        if not getattr(self, "_was_deterministic", True):
            torch.use_deterministic_algorithms(False)  # deterministic algorithms for the component's lifetime


def describe(c: Component) -> str:
    """The one-line start-up summary of a rank: rank, tile bounds, device, threads."""
    t = c.tile
    return (f"rank {c.rank} of {c.size}: tile lat [{t.lat0}, {t.lat1}) lon [{t.lon0}, {t.lon1}) "
            f"({t.nlat}x{t.nlon} columns, {c.plan.halo_size} halo), device {c.device}, threads {c.threads}")

