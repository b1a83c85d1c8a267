"""THE engine: normalize -> encode -> (halo exchange -> latent step)* -> decode, for any set of columns.

Every latent step of the project runs through :meth:`Engine.advance`: the serial
``Emulator``, the MPI ``Component`` (and through it the C API), the training
objective's unrolls (with gradients) and the benchmarks. A :class:`Domain` says
which columns an engine owns and how their 3x3 tiles are gathered:

* the whole grid (serial): every column, the grid's stencil, no exchange;
* one rank's tile (MPI, tile-parallel training): the tile's columns, the halo
  plan's ``tile_index``/``crossed`` into ``[own | halo]``, and an exchange
  ``z_own -> [z_own | z_halo]`` that the caller gives (a halo exchange over MPI,
  or its differentiable version in training), and a reproducible global sum over
  every rank's columns (``mlscam.parallel.reprosum``) for the mass fixer and the
  polar wind fixer. This module knows no MPI.

Tensors are column-flat: states ``[B, ncol, n_state]``, latents ``[B, ncol, L]``
(``ncol`` = the domain's columns, row-major in its ``shape``). Nothing here
switches gradients on or off: ``Emulator`` wraps the calls in ``torch.no_grad``,
training calls them with gradients.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from mlscam.fixedsum import fixed_sum
from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout
from mlscam.normalization import Normalization

from .chunks import TilePlan, advance_columns, apply_plan, map_columns, plan_tiles
from .correction import ClimateCorrection
from .filters import LatentFilter, smooth_tiles
from .mass import MassFixer
from .network import LatentModel
from .polar import PolarWindFixer
from .zonal import RowMeans

__all__ = ["Domain", "Engine"]

Exchange = Callable[[torch.Tensor], torch.Tensor]
GlobalSum = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Domain:
    """The columns an engine owns and the sources of their 3x3 tiles.

    ``shape``: ``(nlat, nlon)`` of the owned block (row-major columns);
    ``columns [ncol]``: their global indices ``j * grid.nlon + i``;
    ``tile_index [ncol, 9]``: per owned column, the rows of ``exchange(z)``
    holding its tile, in token order; ``crossed [ncol, 9]``: tokens that came
    across a pole; ``exchange``: ``z [B, ncol, L] -> z_src [B, nsrc, L]``
    (``None``: the owned columns are the whole source, as for the whole grid);
    ``global_sum``: ``values [..., n] float64 -> [...] float64``, the reproducible sum over the last axis and
    over every rank (each rank passes its own columns' values, ``n`` may differ between ranks, the leading
    shape may not), NaN where a value on any rank is not finite or out of range (``None``: the owned columns
    are the globe; :func:`mlscam.fixedsum.fixed_sum`, the same bits as
    ``mlscam.parallel.reprosum.allreduce_sum`` on any number of ranks). Collective under MPI.
    """

    shape: tuple[int, int]
    columns: np.ndarray
    tile_index: np.ndarray
    crossed: np.ndarray
    exchange: Exchange | None = None
    global_sum: GlobalSum | None = None

    def __post_init__(self):
        ncol = int(np.prod(self.shape))
        if np.shape(self.columns) != (ncol,):
            raise ValueError(f"columns must be [{ncol}] for a {self.shape} domain, got {np.shape(self.columns)}")
        if np.shape(self.tile_index) != (ncol, 9) or np.shape(self.crossed) != (ncol, 9):
            raise ValueError(f"tile_index and crossed must be [{ncol}, 9], got {np.shape(self.tile_index)} "
                             f"and {np.shape(self.crossed)}")

    @property
    def ncol(self) -> int:
        return int(np.prod(self.shape))

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The reproducible global sum of ``values [..., n]`` (float64; e.g. ``[B, ncol]``) over the last axis and
        the globe (every rank's values): ``[...]`` float64. Collective under MPI (the same leading shape on
        every rank)."""
        if self.global_sum is None:
            return fixed_sum(values, check=False)
        return self.global_sum(values)

    @classmethod
    def whole(cls, grid: LatLonGrid) -> "Domain":
        """Every column of ``grid``, tiles from the grid's own stencil (one rank)."""
        stencil = grid.stencil()
        return cls(grid.shape, np.arange(grid.ncol), stencil.index, stencil.crossed_pole)


class Engine:
    """A ``LatentModel`` with its normalization and static features, on a :class:`Domain`.

    Args:
      model: the four networks.
      layout: the column layout (state channels and static features).
      grid: the global grid (static features are taken at ``domain.columns``).
      normalization: state and tendency statistics.
      chunk_size: columns per network call (``mlscam.model.chunks``: bit for bit on any decomposition).
      domain: the owned columns; default the whole grid.
      grad_checkpointing: recompute each step's activations in the backward pass (training memory).
      latent_filter: the step's stabilisers (``mlscam.model.filters``): grid-scale damping added to every step and
        the projection towards the encoder's manifold after it, with the mass fixer (``mlscam.model.mass``) and
        the polar wind fixer (``mlscam.model.polar``) inside the projection; None or all off: off.
      correction: a fixed zonal-mean forcing added to the decoded state inside the projection
        (``mlscam.model.correction``; needs the projection); None: none.

    Buffers follow the model's device and dtype at construction; :meth:`to` moves or casts them.
    """

    def __init__(self, model: LatentModel, layout: ColumnLayout, grid: LatLonGrid, normalization: Normalization,
                 *, chunk_size: int, domain: Domain | None = None, grad_checkpointing: bool = False,
                 latent_filter: LatentFilter | None = None, correction: ClimateCorrection | None = None):
        if model.n_state != layout.n_state or model.n_static != layout.n_static:
            raise ValueError(
                f"model expects {model.n_state} state channels and {model.n_static} static features, "
                f"the column layout has {layout.n_state} and {layout.n_static}")
        if normalization.n_state != layout.n_state:
            raise ValueError(f"normalization has {normalization.n_state} channels, the column layout {layout.n_state}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.model, self.layout, self.grid = model, layout, grid
        self.chunk_size, self.grad_checkpointing = int(chunk_size), bool(grad_checkpointing)
        self.domain = domain or Domain.whole(grid)
        param = next(model.parameters())
        self.norm = normalization.tensors(dtype=param.dtype, device=param.device)
        static = grid.static_stack(layout.static_features).reshape(grid.ncol, -1)[self.domain.columns]
        self.static = torch.as_tensor(static, dtype=param.dtype, device=param.device)  # [ncol, F]
        self.tile_index = torch.tensor(np.asarray(self.domain.tile_index, dtype=np.int64), device=param.device)
        self.crossed = torch.tensor(np.asarray(self.domain.crossed, dtype=bool), device=param.device)
        self.latent_filter = latent_filter if latent_filter is not None and latent_filter.active else None
        self.damping = None  # [ncol, 1]: nu per owned column
        self.projection = 0.0 if self.latent_filter is None else float(self.latent_filter.projection)
        self.projection_every = 1 if self.latent_filter is None else int(self.latent_filter.projection_every)
        self.substeps = 1 if self.latent_filter is None else int(self.latent_filter.substeps)
        if self.latent_filter is not None and self.latent_filter.damps:
            lat = grid.lat_array()[np.asarray(self.domain.columns) // grid.nlon]
            self.damping = torch.as_tensor(self.latent_filter.coefficients(lat)[:, None], dtype=param.dtype,
                                           device=param.device)
        self.mass: MassFixer | None = None  # the global dry-mass fixer inside the projection
        if self.latent_filter is not None and self.latent_filter.mass_fixer:
            self.mass = MassFixer(layout, grid, self.domain, device=param.device)
        self.polar: PolarWindFixer | None = None  # [v] = 0 next to the poles, inside the projection
        if self.latent_filter is not None and self.latent_filter.polar_wind_rows > 0:
            self.polar = PolarWindFixer(layout, grid, self.domain, self.latent_filter.polar_wind_rows,
                                        device=param.device)
        self.correction = None  # [ncol, S]: the climate correction's offset per projecting step (physical units)
        self.eddy_gain, self.eddy_means = 0.0, None  # the correction's eddy backscatter (RowMeans of every row)
        self.set_correction(correction)
        self._plan: TilePlan | None = None  # the gather of advance(), built (and checked) once per shape

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Engine":
        """Move (and optionally cast) the buffers; the model is the caller's (it may be shared)."""
        self.norm = self.norm.to(device=device, dtype=dtype)
        self.static = self.static.to(device=device, dtype=dtype)
        self.tile_index, self.crossed = self.tile_index.to(device), self.crossed.to(device)
        if self.damping is not None:
            self.damping = self.damping.to(device=device, dtype=dtype)
        if self.mass is not None:
            self.mass.to(device)
        if self.polar is not None:
            self.polar.to(device)
        if self.correction is not None:
            self.correction = self.correction.to(device=device, dtype=dtype)
        if self.eddy_means is not None:
            self.eddy_means.to(device)
        self._plan = None
        return self

    def set_correction(self, correction: ClimateCorrection | None) -> None:
        """Step with ``correction`` from now on (None: none); training that adapts it (``&train
        correction_every``) calls this after each update."""
        if correction is None:
            self.correction, self.eddy_gain, self.eddy_means = None, 0.0, None
            return
        correction.check(self.grid.nlat, self.layout.n_state)  # the step length: the Emulator's check
        offsets = correction.offsets(self.projection, self.projection_every)  # [nlat, S]
        rows = np.asarray(self.domain.columns) // self.grid.nlon
        like = self.static
        self.correction = torch.as_tensor(offsets[rows], dtype=like.dtype, device=like.device)
        self.eddy_gain = correction.eddy_gain(self.projection, self.projection_every)
        if not self.eddy_gain:
            self.eddy_means = None
        elif self.eddy_means is None:  # built once; an adapted correction keeps it
            self.eddy_means = RowMeans(self.grid, self.domain, np.arange(self.grid.nlat), 0, self.layout.n_state,
                                       device=like.device)

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    # -- encode / decode ------------------------------------------------------
    def encode_normalized(self, x_n: torch.Tensor, static: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised states ``[..., ncol, S]`` -> latents ``[..., ncol, L]`` (``static`` default: the domain's)."""
        static = self.static if static is None else static
        return map_columns(self.model.encoder, x_n, static.expand(*x_n.shape[:-1], static.shape[-1]),
                           chunk_size=self.chunk_size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Physical states ``[..., ncol, S]`` -> latents ``[..., ncol, L]``."""
        return self.encode_normalized(self.norm.apply(x))

    def decode_normalized(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``[..., L]`` -> normalised states ``[..., S]``."""
        return map_columns(self.model.decoder, z, chunk_size=self.chunk_size)

    def decode(self, z: torch.Tensor, mass_target: torch.Tensor | None = None, *, fix: bool = True) -> torch.Tensor:
        """Latents ``[..., L]`` -> physical states ``[..., S]``.

        ``fix=True`` (what a rollout outputs; :meth:`fix`, collective under MPI when a fixer is on): with the
        polar wind fixer on, ``[v] = 0`` in the rows next to the poles; with the mass fixer on and
        ``mass_target [B]`` given, the surface pressure is shifted uniformly to that global mean. With a fixer on
        ``z`` must be ``[B, ncol, L]``. ``fix=False``: the raw decode, column-local (any leading shape)."""
        x = self.norm.inverse(self.decode_normalized(z))
        return self.fix(x, mass_target) if fix else x

    @property
    def fixes(self) -> bool:
        """Whether a fixer of the decoded state is on (mass or polar wind)."""
        return self.mass is not None or self.polar is not None

    def fix(self, x: torch.Tensor, mass_target: torch.Tensor | None = None) -> torch.Tensor:
        """The fixers on a physical state ``x [B, ncol, S]``: the mass fixer's shift when it is on and
        ``mass_target [B]`` is given, then the polar wind fixer when it is on (``x`` itself when neither acts;
        collective under MPI when one does; the corrections carry no gradient)."""
        if self.mass is not None and mass_target is not None:
            x = self.mass.fix(x, mass_target)
        if self.polar is not None:
            x = self.polar.fix(x)
        return x

    def mass_target(self, x: torch.Tensor) -> torch.Tensor:
        """The mass fixer's target of a rollout from physical ``x [B, ncol, S]``: its area-weighted global-mean
        surface pressure ``[B]`` float64 (reproducible; collective under MPI)."""
        if self.mass is None:
            raise ValueError("the mass fixer is off (&model mass_fixer, &rollout mass_fixer): there is no target")
        return self.mass.target(x)

    def decode_tendency(self, dz: torch.Tensor) -> torch.Tensor:
        """Latent increments ``[..., L]`` -> physical one-step changes ``[..., S]`` (the tendency decoder)."""
        return self.norm.inverse_tendency(map_columns(self.model.tendency_decoder, dz, chunk_size=self.chunk_size))

    # -- the latent step ------------------------------------------------------
    def advance_tiles(self, z_src: torch.Tensor, tile_index: torch.Tensor, crossed: torch.Tensor, *,
                      tile_fn=None):
        """The mixer's increment of the centres named by ``tile_index [n, 9]`` into ``z_src [B, nsrc, L]``
        (with ``tile_fn``: ``(dz, tile_fn of the tiles)``, ``mlscam.model.chunks.apply_plan``)."""
        if self.grad_checkpointing and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(advance_columns, self.model.mixer, z_src, tile_index, crossed, self.chunk_size,
                              tile_fn=tile_fn, use_reentrant=False)
        return advance_columns(self.model.mixer, z_src, tile_index, crossed, self.chunk_size, tile_fn=tile_fn)

    def tile_plan(self, z_src: torch.Tensor) -> TilePlan:
        """The domain's :class:`TilePlan` for ``z_src [B, nsrc, L]``: built and checked on the first step of a
        shape, then reused (no host synchronisation per step)."""
        if self._plan is None or not self._plan.fits(z_src, self.chunk_size):
            self._plan = plan_tiles(self.tile_index, self.crossed, batch=z_src.shape[0], nsrc=z_src.shape[1],
                                    chunk_size=self.chunk_size, device=z_src.device)
        return self._plan

    def advance(self, z: torch.Tensor) -> torch.Tensor:
        """One step's increment ``dz [B, ncol, L]`` of the owned latents ``z [B, ncol, L]`` (halo exchange first):
        the mixer's, minus the latent filter's damping ``nu (z - S z)`` when one is set (``S z`` from the tiles
        the mixer gathers)."""
        z_src = z if self.domain.exchange is None else self.domain.exchange(z)
        tile_fn = None if self.damping is None else smooth_tiles
        if self.grad_checkpointing and torch.is_grad_enabled():
            out = self.advance_tiles(z_src, self.tile_index, self.crossed, tile_fn=tile_fn)
        else:
            if z_src.ndim != 3:
                raise ValueError(f"z_src must be [B, nsrc, L], got shape {tuple(z_src.shape)}")
            out = apply_plan(self.model.mixer, z_src, self.tile_plan(z_src), tile_fn=tile_fn)
        if tile_fn is None:
            return out
        dz, smoothed = out
        return dz - self.damping * (z - smoothed)

    def project(self, z: torch.Tensor, mass_target: torch.Tensor | None = None) -> torch.Tensor:
        """``z + alpha (encode(decode(z)) - z)`` for owned latents ``z [B, ncol, L]`` (the manifold projection of
        ``mlscam.model.filters``; column-local). With a fixer on, the decoded state is fixed (:meth:`fix`) before
        it is re-encoded: the mass fixer shifts its surface pressure to the global mean ``mass_target [B]``
        (``mlscam.model.mass``; one global sum), the polar wind fixer sets ``[v] = 0`` next to the poles
        (``mlscam.model.polar``; one global sum). With a climate correction the decoded (and fixed) state gets
        its offset before it is re-encoded (``mlscam.model.correction``; column-local), and with its eddy
        backscatter the deviation from the zonal mean amplified (one global sum)."""
        if not self.fixes and self.correction is None:
            return z + self.projection * (self.encode_normalized(self.decode_normalized(z)) - z)
        target = self.check_mass_target(mass_target, z) if self.mass is not None else None
        x = self.decode(z, target)
        if self.correction is not None:
            x = x + self.correction
        if self.eddy_means is not None:  # the eddy backscatter: x + gain (x - [x]); one global sum
            x = x + self.eddy_gain * (x - self.eddy_means.per_column(self.eddy_means.mean(x), x.dtype))
        return z + self.projection * (self.encode(x) - z)

    def check_mass_target(self, mass_target: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        if mass_target is None:
            raise ValueError("the mass fixer is on (&model mass_fixer, &rollout mass_fixer): a step needs "
                             "mass_target, the global-mean surface pressure of the initial state "
                             "(Engine.mass_target(x0), Emulator.mass_target(x0))")
        if tuple(mass_target.shape) != (z.shape[0],):
            raise ValueError(f"mass_target must be [{z.shape[0]}] (one per batch member of z {tuple(z.shape)}), "
                             f"got shape {tuple(mass_target.shape)}")
        return mass_target

    def projects_after(self, steps_done: int) -> bool:
        """Whether the step taken after ``steps_done`` steps of a run ends with the manifold projection: one is
        set and the new step count ``steps_done + 1`` is a multiple of ``projection_every`` (1: every step)."""
        return self.projection > 0.0 and (steps_done + 1) % self.projection_every == 0

    def step_once(self, z: torch.Tensor, mass_target: torch.Tensor | None = None, *,
                  project: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z[t+1], dz)``: THE latent step ``z[t+1] = z[t] + mixer(tile(z[t]))`` (``dz``: the mixer's increment,
        filter included), then the manifold projection when one is set and ``project`` (a run passes
        :meth:`projects_after` of its step count). With ``substeps`` K > 1 (``&model latent_substeps``) the step
        is K sub-steps ``z <- z + advance(z) / K``, each from its own tiles, and ``dz`` is their sum
        ``z[t+1] - z[t]`` (before the projection).

        With the mass fixer the projection pulls towards the state whose global-mean surface pressure is
        ``mass_target [B]`` float64, required on every step (also one that does not project, so a missing
        target fails on the first step whatever ``latent_projection_every``); the fixer acts only inside the
        projection, so a step that does not project leaves the mass as the mixer made it, and decoded outputs
        get the fixer's shift (:meth:`decode` with ``mass_target``). The polar wind fixer, also inside the
        projection, needs no target."""
        if self.mass is not None:
            self.check_mass_target(mass_target, z)
        if self.substeps == 1:
            dz = self.advance(z)
            z1 = z + dz
        else:  # K sub-steps of 1/K of the increment, each from its own tiles (its own halo exchange)
            z1 = z
            for _ in range(self.substeps):
                z1 = z1 + self.advance(z1) / self.substeps
            dz = z1 - z
        if project and self.projection > 0.0:
            z1 = self.project(z1, mass_target)
        return z1, dz

    def step(self, z: torch.Tensor, n: int = 1, mass_target: torch.Tensor | None = None, *,
             start: int = 0) -> torch.Tensor:
        """``n`` latent steps of ``z [B, ncol, L]``, the first one after ``start`` steps of the run (which steps
        project, :meth:`projects_after`; ``mass_target``: see :meth:`step_once`)."""
        if n < 0:
            raise ValueError(f"number of steps must be >= 0, got {n}")
        for k in range(n):
            z, _ = self.step_once(z, mass_target, project=self.projects_after(start + k))
        return z
