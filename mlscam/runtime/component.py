"""The emulator as a climate-model component: one rank owns one tile of the grid.

Lifecycle (every call is collective over the component's communicator)::

    c = Component.init(config, comm)             # checkpoint, device, threads, tiles, halo plan
    c.set_state(x_tile)  or  c.set_state_from_file(path, t)  or  c.read_restart(path)
    c.step(n)                                    # latent steps (Emulator.step: halo exchange + mixer)
    x_tile = c.get_state()                       # decode this rank's tile (latents unchanged)
    c.write_output(path)                         # the whole grid, one CF file (rank 0 writes)
    c.write_restart(path)
    c.finalize()

Arrays are this rank's tile ``[tile.nlat, tile.nlon, feature]`` (latitude
ascending south -> north, longitude from 0 east; C order), features in the
checkpoint's :class:`ColumnLayout` order.  Latents live on the rank's device as
``z [tile.nlat, tile.nlon, latent]``.  Files are another matter: an initial-state file may store
latitude either way (and name its variables as ``&data`` or the checkpoint says), and the files the
component writes (``write_output``, the forecasts of ``mlscam.rollout``) keep that file's latitude order.

A component is an :class:`~mlscam.emulator.Emulator` on this rank's tile
(its :class:`~mlscam.model.engine.Domain` carries the halo plan and the MPI halo
exchange), plus the collective status protocol (:mod:`mlscam.runtime.collective`:
each rank validates locally, the ranks agree on one status before any halo
exchange, and a failure on one rank raises the same :class:`ComponentError` on
every rank, naming the failing rank) and file I/O (:mod:`mlscam.runtime.files`).
Every collective call takes ``caller_error``: a failure its caller found in its
own local checks (the C API's), agreed in the call's one agreement.
Encode, decode and step run in fixed-size column chunks, so the result does not
depend on the number of ranks (bit for bit).

With the mass fixer on (``&model``/``&rollout mass_fixer``, :mod:`mlscam.model.mass`) the
domain also carries the reproducible global sum over ranks
(:func:`mlscam.parallel.reprosum.allreduce_sum`); the target, the global-mean surface
pressure of the state set last (a restart keeps it), is summed at the first collective call
that needs it, and every decoded output (``get_state``, ``get_variable``,
``get_tendencies``, ``gather_state``, the forecast files) gets the fixer's uniform shift.
With the polar wind fixer on (``&model``/``&rollout polar_wind_fixer``,
:mod:`mlscam.model.polar`) every decoded output also has a zonal-mean meridional wind
of 0 in the rows next to the poles (zonal means summed over ranks the same way). The
decode of a rank's tile is local; the fixers run after the decode's agreement, on every
rank (:meth:`Component._fix`).
A checkpoint's climate correction (:mod:`mlscam.model.correction`, a fixed zonal-mean forcing
inside the manifold projection) is applied unless ``&rollout climate_correction = 0``; it is
column-local.
"""
from __future__ import annotations

import datetime as _dt
import functools
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mlscam.config import Config
from mlscam.emulator import Emulator
from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout
from mlscam.model.engine import Domain
from mlscam.model.filters import LatentFilter
from mlscam.parallel import Decomposition, HaloExchange, HaloPlan, Tile, choose_device, choose_threads, configure_torch
from mlscam.parallel.reprosum import allreduce_sum
from mlscam.status import Status

from . import files, setup
from .collective import ComponentError, LocalError, check_array, collect
from .timing import StepTimer

__all__ = ["Component", "ComponentError", "Status", "describe"]


def _dup(comm: Any) -> tuple[Any, bool]:
    dup = getattr(comm, "Dup", None)
    return (dup(), True) if dup is not None else (comm, False)


class Component:
    """One rank's part of the emulator component (see the module docstring).

    Attributes: ``grid``, ``layout``, ``decomposition``, ``tile`` (this rank's
    :class:`Tile`), ``plan`` (:class:`HaloPlan`), ``dt_seconds``, ``device``,
    ``threads``, ``step_count``, ``rank``, ``size``, ``checkpoint_path``,
    ``checkpoint_hash``, ``initial_time`` / ``time_units`` / ``calendar``
    (set by :meth:`set_state_from_file`, :meth:`read_restart` or :meth:`set_time`), ``lat_descending``
    (outputs store latitude north to south: the initial-state file did, or the run the restart continues),
    ``naming`` (how input files name variables and levels),
    ``timings`` (seconds this rank spent in halo exchanges and in latent compute during :meth:`step`).
    """

    def __init__(self):  # use Component.init
        self._finalized = True
        self.emulator: Emulator | None = None

    # ------------------------------------------------------------------ init
    @classmethod
    def init(cls, config: Config, comm: Any, *, bounds=None, coupling_interval_seconds: float | None = None,
             grid: LatLonGrid | None = None, caller_error: LocalError | None = None,
             host_indices: bool = False) -> "Component":
        """Build the component on every rank of ``comm`` (collective).

        Args:
          config: the run configuration (``&rollout checkpoint_path``, ``&parallel``, ``&coupler``).
          comm: mpi4py communicator, :class:`FakeComm` or :class:`SelfComm`; duplicated when it has ``Dup``.
          bounds: this rank's ``(lat0, lat1, lon0, lon1)`` (0-based, half-open, global emulator
            indices); ``None``: the Cartesian layout of ``config.parallel.layout``.
          coupling_interval_seconds: the host's coupling interval; must equal the checkpoint's step.
            ``None`` or 0 take ``config.coupler.coupling_interval_seconds`` (0 there = no check).
          grid: run on this grid instead of the training grid (needs ``&rollout allow_other_grid``).
          caller_error: the caller's own failure on this rank (e.g. its namelist did not load; ``config``
            may then be None): reported in the first agreement (the checkpoint's), and init fails on every rank.
          host_indices: the bounds came from the C API: decomposition messages show them as the host passed
            them (1-based inclusive lon/lat).
        """
        self = cls()
        self.comm, self._owns_comm = _dup(comm)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self._finalized = False
        try:
            self._init(config, bounds, coupling_interval_seconds, grid, caller_error, host_indices)
        except BaseException:
            self._free_comm()
            self._finalized = True
            raise
        return self

    def _init(self, config: Config, bounds, interval, grid, caller_error, host_indices: bool = False) -> None:
        self.config = config
        comm = self.comm
        ckpt, self.checkpoint_hash = setup.load(comm, config, grid, caller_error)
        self.checkpoint, self.checkpoint_path = ckpt, str(config.rollout.checkpoint_path)
        self.layout: ColumnLayout = ckpt.layout
        self.grid: LatLonGrid = grid or ckpt.grid
        self.dt_seconds = float(ckpt.dt_seconds)
        self.chunk_size = int(config.rollout.chunk_size or ckpt.config.model.chunk_size)
        setup.check_interval(comm, config, interval, self.dt_seconds)
        self.decomposition: Decomposition = setup.decompose(comm, self.grid, config.parallel.layout, bounds,
                                                                  one_based=host_indices)
        self.tile: Tile = self.decomposition.tiles[self.rank]
        self.plan = collect(comm, lambda: HaloPlan.build(self.decomposition, self.rank),
                            "Component.init (halo plan)", Status.DECOMPOSITION)
        self._exchange = HaloExchange(self.plan, comm)

        def device_and_threads():
            return choose_device(comm, config.parallel.device), choose_threads(comm, config.parallel.threads)

        # choose_device / choose_threads are collective; a local failure (no CUDA) is agreed on below.
        self.device, self.threads = collect(comm, device_and_threads, "Component.init (device)")
        self._timer = StepTimer(self.device)  # seconds in step(), this rank

        def build() -> Emulator:
            # the process-wide torch settings of the component's lifetime (finalize restores determinism)
            self._was_deterministic = configure_torch(self.device, self.threads,
                                                      deterministic=config.parallel.deterministic)
            t, plan = self.tile, self.plan
            # a rank with no peers (one rank) owns its whole stencil: no exchange (it would only copy z)
            exchange = self._timer.timed(self._exchange.exchange) if plan.send or plan.recv else None
            # the mass fixer's global sum over ranks (one rank: the serial sum of the Domain, the same bits)
            global_sum = functools.partial(allreduce_sum, comm, check=False) if self.size > 1 else None
            domain = Domain((t.nlat, t.nlon), plan.local_columns, plan.tile_index, plan.crossed, exchange,
                            global_sum)
            return Emulator(ckpt.build_model().to(self.device), self.layout, self.grid, ckpt.normalization,
                            self.dt_seconds, chunk_size=self.chunk_size, domain=domain, warn_blas=self.rank == 0,
                            latent_filter=LatentFilter.of(ckpt.config.model, config.rollout),
                            correction=ckpt.correction if config.rollout.climate_correction else None,
                            precision=config.rollout.precision, cuda_graph=config.parallel.cuda_graph)

        self.emulator = collect(comm, build, "Component.init (model)")
        self.blas_mode = self.emulator.blas_mode
        self.step_count = 0
        self.initial_time = None
        self.time_units = "hours since 2000-01-01 00:00:00"
        self.calendar = "standard"
        self.lat_descending = False  # the latitude order of outputs: that of the file the state came from
        self._z: torch.Tensor | None = None          # [nlat_t, nlon_t, L]
        self._z_prev: torch.Tensor | None = None     # latents one step earlier (tendencies)
        self._pending: np.ndarray | None = None      # [nlat_t, nlon_t, n_state] float64 from set_variable
        self._pending_set: set[str] = set()
        self._mass_target: torch.Tensor | None = None  # [1] float64: the mass fixer's target, once summed
        self._mass_source: torch.Tensor | None = None  # [1, ncol_t] surface pressure of the state set last

    # ------------------------------------------------------------ properties
    @property
    def n_state(self) -> int:
        return self.layout.n_state

    @property
    def latent_dim(self) -> int:
        return self.emulator.latent_dim

    @property
    def model(self):
        return self.emulator.model if self.emulator is not None else None

    @property
    def timings(self) -> dict[str, float]:
        """Seconds this rank spent in :meth:`step`: ``{'exchange': halo exchanges, 'compute': the rest}``
        (:class:`~mlscam.runtime.timing.StepTimer`: on a GPU read here, never synchronised in a step)."""
        return self._timer.seconds

    @property
    def halo_transport(self) -> str:
        """How this rank's halo exchange moves latents on its device (``'none'`` on one rank)."""
        if self.emulator is not None and self.emulator.domain.exchange is None:
            return "none (one rank)"
        return self._exchange.transport_for(self.device)

    @property
    def has_state(self) -> bool:
        return self._z is not None or self._pending_set == set(self.layout.variables)

    @property
    def naming(self):
        """How input files name the variables and levels (:class:`mlscam.data.naming.Naming`): the namelist's
        ``&data file_names_3d/2d`` and ``level_source`` where it sets them, else the checkpoint's (training's)."""
        from mlscam.data.naming import Naming  # the data layer (netCDF4) only when a file is read or written

        return Naming.of(self.config.data).over(Naming.of(self.checkpoint.config.data))

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
    def _collect(self, fn: Callable[[], Any], what: str, default_status: int = Status.FAILED,
                 caller_error: LocalError | None = None) -> Any:
        if self._finalized:
            raise ComponentError(f"Component.{what}: the component was finalized; call Component.init again",
                                 Status.FINALIZED)
        return collect(self.comm, fn, f"Component.{what}", default_status, caller_error)

    def _require_state(self) -> None:
        if self._pending_set == set(self.layout.variables):
            self._set_encoded(self._pending)  # every variable was set: encode now (local; sets agree on every rank)
        if self._pending_set:
            missing = [v for v in self.layout.variables if v not in self._pending_set]
            raise LocalError(f"set_variable was called for {sorted(self._pending_set)} but not yet for {missing} "
                         "since the last encode; set every variable of the layout before stepping or reading",
                         Status.NO_STATE)
        if self._z is None:
            raise LocalError("no state has been set; call set_state, set_variable for every variable, "
                         "set_state_from_file or read_restart first", Status.NO_STATE)

    def _tile_shape(self, width: int | None = None) -> tuple[int, ...]:
        shape = (self.tile.nlat, self.tile.nlon)
        return shape if width is None else shape + (width,)

    def _encode(self, x: np.ndarray) -> torch.Tensor:
        """``x [nlat_t, nlon_t, n_state]`` physical -> ``z [nlat_t, nlon_t, L]``."""
        return self.emulator.encode(torch.from_numpy(np.ascontiguousarray(x)))

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z [nlat_t, nlon_t, L]`` -> physical ``[nlat_t, nlon_t, n_state]``: the raw decode (local; the fixers
        come in :meth:`_fix`, collective)."""
        return self.emulator.decode(z, fix=False)

    @staticmethod
    def _to_tile(x: torch.Tensor) -> np.ndarray:
        return x.detach().cpu().numpy()

    def _decoded_tile(self) -> np.ndarray:
        """Decode this rank's tile, checking it is finite (local: raises LocalError)."""
        self._require_state()
        x = self._to_tile(self._decode(self._z))
        bad = ~np.isfinite(x)
        if bad.any():
            j, i, k = (int(v) for v in np.argwhere(bad)[0])
            raise LocalError(f"the decoded state at step {self.step_count} has {int(bad.sum())} non-finite "
                             f"value(s), first at global cell (lat {self.tile.lat0 + j}, lon {self.tile.lon0 + i}) "
                             f"feature {k}; the forecast blew up: use a shorter run or another checkpoint",
                             Status.VALUE)
        return x

    def _decoded(self, what: str, caller_error: LocalError | None = None) -> np.ndarray:
        """Decode this rank's tile, checking it is finite, with the fixers (mass, polar wind; collective)."""
        return self._fix(self._collect(self._decoded_tile, what, Status.VALUE, caller_error), what)

    @property
    def mass_fixer(self) -> bool:
        """Whether the mass fixer is on (``&model mass_fixer`` or ``&rollout mass_fixer``)."""
        return self.emulator is not None and self.emulator.engine.mass is not None

    @property
    def polar_wind_fixer(self) -> int:
        """The rows next to each pole where the polar wind fixer sets ``[v] = 0`` (0: off)."""
        polar = None if self.emulator is None else self.emulator.engine.polar
        return 0 if polar is None else polar.rows

    @property
    def climate_correction(self) -> str:
        """What the step's climate correction is (``mlscam.model.correction``): ``'none'`` (the checkpoint has
        none), ``'off'`` (``&rollout climate_correction = 0``) or ``'on: <variables>'`` (with ``'; eddy backscatter
        <beta>/day'`` when it has one)."""
        ckpt_corr = self.checkpoint.correction
        if ckpt_corr is None:
            return "none"
        if self.emulator is None or self.emulator.engine.correction is None:
            return "off"
        eddies = f"; eddy backscatter {ckpt_corr.eddy_rate:g}/day" if ckpt_corr.eddy_rate else ""
        return "on: " + ", ".join(ckpt_corr.variables) + eddies

    def mass_target(self) -> float | None:
        """The mass fixer's target: the global-mean surface pressure of the state set last (collective; None
        when the fixer is off)."""
        self._collect(self._require_state, "mass_target", Status.NO_STATE)
        t = self._resolve_mass_target("mass_target")
        return None if t is None else float(t[0])

    def _resolve_mass_target(self, what: str) -> torch.Tensor | None:
        """The target ``[1]`` float64, summed over ranks on first use (collective: call it where every rank is,
        after an agreement). A state set from values sums their surface pressure; a restart without a target
        (written with the fixer off) sums its decoded state's."""
        engine = self.emulator.engine
        if engine.mass is None:
            return None
        if self._mass_target is None:
            ps = self._mass_source
            if ps is None:
                with torch.no_grad():
                    ps = engine.decode(self._z.reshape(1, self.tile.ncol, -1), fix=False)[..., engine.mass.channel]
            target = engine.mass.global_mean(ps)
            if not bool(torch.isfinite(target).all()):  # the same value on every rank: all raise
                raise ComponentError(f"Component.{what}: the global-mean surface pressure of the state (the mass "
                                     f"fixer's target) is {float(target[0])!r}: a value is not finite or outside "
                                     "the reproducible sum's range (|w ps| < 2**64)", Status.VALUE)
            self._mass_target, self._mass_source = target, None
        return self._mass_target

    def _fix(self, x: np.ndarray, what: str) -> np.ndarray:
        """The decoded tile ``x [nlat_t, nlon_t, n_state]`` with the fixers (:meth:`Engine.fix`: the mass fixer's
        uniform surface pressure shift, then the polar wind fixer's ``[v] = 0`` next to the poles); ``x`` itself
        without them. Collective: every rank calls it after the decode's agreement. A non-finite result on any
        rank (a global sum out of its range: the forecast blew up) raises the same error on every rank."""
        target = self._resolve_mass_target(what)
        engine = self.emulator.engine
        if not engine.fixes:
            return x
        with torch.no_grad():
            fixed = engine.fix(torch.from_numpy(x).to(self.device).reshape(1, self.tile.ncol, -1), target)
        bad = not bool(torch.isfinite(fixed).all())
        # the polar rows may lie on some ranks only: agree, so that every rank raises or none does
        ranks = [r for r, b in enumerate(self.comm.allgather(bad)) if b] if self.size > 1 else ([0] if bad else [])
        if ranks:
            fields = " and ".join(name for name, on in (("surface pressure", engine.mass is not None),
                                                         ("meridional wind", engine.polar is not None)) if on)
            raise ComponentError(f"Component.{what}: the fixed decoded {fields} at step {self.step_count} is not "
                                 f"finite on rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))} "
                                 "(a value outside the range of the reproducible global sum): the forecast blew up; "
                                 "use a shorter run or another checkpoint", Status.VALUE)
        return self._to_tile(fixed.reshape(x.shape))

    # ----------------------------------------------------------------- state
    def set_state(self, x_local: np.ndarray, *, caller_error: LocalError | None = None) -> None:
        """Set and encode this rank's physical tile ``x_local [tile.nlat, tile.nlon, n_state]`` (float32/64)."""
        x = self._collect(lambda: check_array(x_local, self._tile_shape(self.n_state), "set_state: x_local"),
                          "set_state", Status.ARGUMENT, caller_error)
        self._set_encoded(x)

    def _set_encoded(self, x: np.ndarray) -> None:
        self._z = self._encode(x)
        self._z_prev = None
        self._pending, self._pending_set = None, set()
        self._mass_target, self._mass_source = None, None
        if self.mass_fixer:  # local: summed over ranks where the target is first needed
            ps = x[..., self.emulator.engine.mass.channel]
            self._mass_source = torch.from_numpy(np.ascontiguousarray(ps)).to(self.device).reshape(1, -1)

    def set_variable(self, name: str, values: np.ndarray, *, caller_error: LocalError | None = None) -> None:
        """Set one variable of this rank's tile: ``[tile.nlat, tile.nlon, nlev]`` (3-D) or ``[tile.nlat, tile.nlon]``.

        The state is encoded once every variable of the layout has been set
        since the last encode, on the first call that needs it (step, get, restart):
        setting a variable again before that replaces its values.  A refused set
        (bad name, shape, dtype, a NaN; on any rank) changes nothing: the variables
        accepted before it stay set, so setting the refused one again, or every
        variable again in any order, completes the state.
        """
        def check() -> tuple[slice, np.ndarray]:
            if name not in self.layout.variables:
                raise LocalError(f"set_variable: unknown variable {name!r}; the checkpoint's variables are "
                             f"{list(self.layout.variables)}", Status.ARGUMENT)
            is3d = name in self.layout.variables_3d
            shape = self._tile_shape(self.layout.nlev) if is3d else self._tile_shape()
            a = check_array(values, shape, f"set_variable({name!r})")
            return self.layout.slice_of(name), (a if is3d else a[..., None])

        where, a = self._collect(check, "set_variable", Status.ARGUMENT, caller_error)
        if self._pending is None:
            self._pending = np.zeros(self._tile_shape(self.n_state), np.float64)
        self._pending[..., where] = a
        self._pending_set.add(name)

    def set_time(self, initial_time, time_units: str | None = None, calendar: str | None = None,
                 step_count: int = 0) -> None:
        """Set the valid time of the current state (cftime datetime) and its CF units/calendar (collective, no check)."""
        self._collect(lambda: None, "set_time")
        self.initial_time = initial_time
        self.time_units = time_units or self.time_units
        self.calendar = calendar or getattr(initial_time, "calendar", None) or self.calendar
        self.step_count = int(step_count)

    def _read_tile(self, path: str, time_index: int):
        """This rank's tile of ``path`` at ``time_index``:
        ``(x [nlat_t, nlon_t, n_state], time, units, calendar, lat_descending)``."""
        return files.read_tile(self, path, time_index)

    def set_state_from_file(self, path, time_index: int = 0) -> None:
        """Read ONLY this rank's tile at ``time_index`` of a NetCDF file, encode it, take its valid time
        (and its latitude order: outputs are written north to south if the file is)."""
        x, time, units, calendar, lat_descending = self._collect(
            lambda: files.read_initial_tile(self, str(path), int(time_index)), "set_state_from_file", Status.FILE)
        self._set_encoded(x)
        self.initial_time, self.time_units, self.calendar = time, units, calendar
        self.lat_descending = bool(lat_descending)
        self.step_count = 0

    # ------------------------------------------------------------------ step
    def step(self, n: int = 1, *, caller_error: LocalError | None = None) -> None:
        """``n`` latent steps of this rank's tile (:meth:`Emulator.step`: per step a halo exchange and the mixer)."""
        def check() -> None:
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise LocalError(f"step: n must be an integer >= 0, got {n!r}", Status.ARGUMENT)
            self._require_state()

        self._collect(check, "step", Status.NO_STATE, caller_error)
        if n == 0:
            return
        target = self._resolve_mass_target("step")
        with self._timer.step():
            z_prev = self.emulator.step(self._z, int(n) - 1, mass_target=target, start=self.step_count)
            self._z, self._z_prev = self.emulator.step(z_prev, 1, mass_target=target,
                                                       start=self.step_count + int(n) - 1), z_prev
        self.step_count += int(n)

    # ------------------------------------------------------------------- get
    def get_state(self, *, caller_error: LocalError | None = None) -> np.ndarray:
        """Decode this rank's tile: ``[tile.nlat, tile.nlon, n_state]`` float32 (the latents are unchanged)."""
        return self._decoded("get_state", caller_error)

    def get_variable(self, name: str, *, caller_error: LocalError | None = None) -> np.ndarray:
        """One decoded variable of this rank's tile: ``[tile.nlat, tile.nlon, nlev]`` or ``[tile.nlat, tile.nlon]``."""
        def decode() -> np.ndarray:  # the name check and the decode are local: one agreement
            if name not in self.layout.variables:
                raise LocalError(f"get_variable: unknown variable {name!r}; the checkpoint's variables are "
                                 f"{list(self.layout.variables)}", Status.ARGUMENT)
            return self._decoded_tile()

        x = self._fix(self._collect(decode, "get_variable", Status.VALUE, caller_error), "get_variable")
        x = x[..., self.layout.slice_of(name)]
        return x if name in self.layout.variables_3d else x[..., 0]

    def get_tendencies(self, *, caller_error: LocalError | None = None) -> np.ndarray:
        """``(decode(z[t]) - decode(z[t-1])) / dt_seconds``: ``[tile.nlat, tile.nlon, n_state]``, SI units per second."""
        def check() -> None:
            self._require_state()
            if self._z_prev is None:
                raise LocalError("get_tendencies needs at least one step since the state was set; call step first",
                             Status.NO_STATE)

        self._collect(check, "get_tendencies", Status.NO_STATE, caller_error)
        now = self._fix(self._to_tile(self._decode(self._z)), "get_tendencies").astype(np.float64)
        before = self._fix(self._to_tile(self._decode(self._z_prev)), "get_tendencies").astype(np.float64)
        return ((now - before) / self.dt_seconds).astype(np.float32)

    def gather_state(self, root: int = 0) -> np.ndarray | None:
        """The decoded global state ``[nlat, nlon, n_state]`` on ``root``, ``None`` elsewhere (collective)."""
        return files.gather_state(self, root)

    def gather_latent(self, root: int = 0) -> torch.Tensor | None:
        """The latents of the whole grid in global column order ``[nlat * nlon, L]`` on ``root`` (collective)."""
        self._collect(self._require_state, "gather_latent", Status.NO_STATE)
        return files.gather_latent(self, root)

    def write_output(self, path, attrs: dict | None = None) -> Path:
        """Write the current decoded state of the whole grid as a one-time CF NetCDF file (collective).

        Gathered to rank 0, which writes it atomically (complete or absent);
        the valid time is ``valid_time``, so a time must be known (set the state
        from a file or a restart, or call :meth:`set_time`).
        """
        return files.write_output(self, Path(path), attrs)

    # --------------------------------------------------------------- restart
    def write_restart(self, path) -> Path:
        """Write the latents of the whole grid (global column order) with step and time; rank 0 writes (collective)."""
        return files.write_restart(self, Path(path))

    def read_restart(self, path) -> None:
        """Continue from a restart written on any number of ranks with the same checkpoint (collective)."""
        z, r = files.read_restart(self, path)
        self._z, self._z_prev = z.contiguous(), None
        self._pending, self._pending_set = None, set()
        # the target of the run the restart continues (absent: summed from the decoded restart state)
        self._mass_source = None
        self._mass_target = (None if r.mass_target is None or not self.mass_fixer else
                             torch.tensor([r.mass_target], dtype=torch.float64, device=self.device))
        self.step_count = int(r.step)
        self.time_units, self.calendar = r.time_units, r.calendar
        self.initial_time = files.parse_time(r.initial_time, r.time_units, r.calendar)
        self.lat_descending = bool(r.lat_descending)

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
        self.emulator = None
        self._free_comm()
        if not getattr(self, "_was_deterministic", True):
            torch.use_deterministic_algorithms(False)  # deterministic algorithms for the component's lifetime


def describe(c: Component) -> str:
    """The one-line start-up summary of a rank: rank, tile bounds, device, threads."""
    t = c.tile
    return (f"rank {c.rank} of {c.size}: tile lat [{t.lat0}, {t.lat1}) lon [{t.lon0}, {t.lon1}) "
            f"({t.nlat}x{t.nlon} columns, {c.plan.halo_size} halo), device {c.device}, threads {c.threads}, "
            f"step {c.emulator.step_mode}, halo {c.halo_transport}")

