"""The inference API: encode once, step in latent space, decode only when asked.

``Emulator`` is the engine (:class:`mlscam.model.engine.Engine`) with
physical-field verbs on ``[..., nlat, nlon, feature]`` arrays, without
gradients. It works on any :class:`~mlscam.model.engine.Domain`: the whole grid
(default) or one rank's tile with a halo exchange (what
:class:`mlscam.runtime.Component` gives it).

With the mass fixer on (``&model mass_fixer``, ``mlscam.model.mass``) a step
needs the target global-mean surface pressure of the rollout's initial state
(:meth:`Emulator.mass_target`): :meth:`Emulator.rollout` computes it from ``x0``;
callers of :meth:`Emulator.step` pass ``mass_target=``, and pass it to
:meth:`Emulator.decode` to get the fixed output.

With the polar wind fixer on (``&model polar_wind_fixer``, ``mlscam.model.polar``)
:meth:`Emulator.decode` (and so :meth:`Emulator.rollout`) sets the zonal-mean
meridional wind to 0 in the rows next to the poles (no target needed);
``decode(z, fix=False)`` is the raw decode.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch

from mlscam import blas
from mlscam.config import DEFAULT_CHUNK_SIZE
from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout
from mlscam.model.correction import ClimateCorrection
from mlscam.model.engine import Domain, Engine
from mlscam.model.filters import LatentFilter
from mlscam.model.graphs import GraphSteps, capture_unavailable
from mlscam.model.network import LatentModel
from mlscam.model.precision import autocast, check_precision
from mlscam.normalization import Normalization

__all__ = ["Emulator"]


class Emulator:
    """A trained ``LatentModel`` on a grid (or a tile of it), with physical <-> normalised conversion inside.

    Built from ``(model, layout, grid, normalization, dt_seconds)``. The model is
    put in eval mode; every method runs under ``torch.no_grad``. Tensors are
    ``[..., nlat, nlon, feature]`` with ``(nlat, nlon)`` the domain's shape (the
    grid's, latitude ascending, longitude from 0 east); leading dimensions are
    batch dimensions. Work happens on the model's device and dtype. ``latent_filter`` sets the step's
    stabilisers and fixers (``mlscam.model.filters``), ``correction`` a fixed zonal-mean forcing inside the
    manifold projection (``mlscam.model.correction``).

    Step options (keyword-only; encode and decode always run eagerly in the model's dtype):

    * ``precision``: ``'fp32'`` (default, exact) or ``'bf16'``: the latent step's matrix products
      under bfloat16 autocast, latents kept in float32 (``mlscam.model.precision``).
    * ``cuda_graph``: replay the steps from CUDA graphs captured on first use
      (``mlscam.model.graphs``; same results as eager). On a device that cannot capture
      (any CPU), or with the mass fixer or the polar wind fixer on a domain whose global sum is
      an MPI collective, it steps eagerly, warns once and says why in :attr:`step_mode`.
    """

    def __init__(self, model: LatentModel, layout: ColumnLayout, grid: LatLonGrid,
                 normalization: Normalization, dt_seconds: float, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 domain: Domain | None = None, latent_filter: LatentFilter | None = None,
                 correction: ClimateCorrection | None = None, warn_blas: bool = True,
                 precision: str = "fp32", cuda_graph: bool = False):
        if not dt_seconds > 0:
            raise ValueError(f"dt_seconds must be > 0, got {dt_seconds}")
        self._precision, self._cuda_graph = check_precision(precision), bool(cuda_graph)
        self.blas_mode = blas.check(warn=warn_blas)  # one line if decompositions may differ in the last bits
        if correction is not None:
            correction.check(grid.nlat, layout.n_state, float(dt_seconds))
        self.engine = Engine(model.eval(), layout, grid, normalization, chunk_size=chunk_size, domain=domain,
                             latent_filter=latent_filter, correction=correction)
        self.model, self.layout, self.grid, self.normalization = model, layout, grid, normalization
        self.dt_seconds = float(dt_seconds)
        self._graphs: GraphSteps | None = None  # captured on the first step with cuda_graph on a GPU
        self._warned_graph = False

    @classmethod
    def from_checkpoint(cls, path, *, grid: LatLonGrid | None = None, allow_other_grid: bool = False,
                        device: torch.device | str = "cpu", chunk_size: int | None = None,
                        latent_filter: LatentFilter | None = None, climate_correction: bool = True,
                        **options) -> "Emulator":
        """The emulator of a checkpoint file (see ``mlscam.checkpoint``).

        ``grid`` defaults to the training grid; another grid needs ``allow_other_grid=True``.
        ``latent_filter`` defaults to the checkpoint's ``&model latent_filter``.
        ``climate_correction``: apply the checkpoint's climate correction when it carries one
        (``mlscam.model.correction``).
        ``options``: the step options of the constructor (``precision``, ``cuda_graph``, ``warn_blas``).
        """
        from mlscam.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path, grid=grid, allow_other_grid=allow_other_grid)
        em = cls(ckpt.build_model().to(device), ckpt.layout, grid or ckpt.grid, ckpt.normalization,
                 ckpt.dt_seconds, chunk_size=chunk_size or ckpt.config.model.chunk_size,
                 latent_filter=latent_filter or LatentFilter.of(ckpt.config.model),
                 correction=ckpt.correction if climate_correction else None, **options)
        em.checkpoint = ckpt
        return em

    def to(self, device: torch.device | str) -> "Emulator":
        """Move the model and the engine's buffers to ``device``; returns ``self``."""
        self.model.to(device)
        self.engine.to(device)
        self._graphs = None
        return self

    @property
    def precision(self) -> str:
        """``'fp32'`` or ``'bf16'`` (settable; captured graphs are dropped)."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        self._precision, self._graphs = check_precision(value), None

    @property
    def cuda_graph(self) -> bool:
        """Whether :meth:`step` replays CUDA graphs (settable; captured graphs are dropped)."""
        return self._cuda_graph

    @cuda_graph.setter
    def cuda_graph(self, value: bool) -> None:
        self._cuda_graph, self._graphs = bool(value), None

    @property
    def device(self) -> torch.device:
        return self.engine.static.device

    def _capture_unavailable(self, device) -> str | None:
        """Why :meth:`step` cannot replay CUDA graphs on ``device`` (``None``: it can)."""
        reason = capture_unavailable(device)
        if reason is None and self.domain.global_sum is not None:
            fixers = [name for name, on in (("mass fixer", self.engine.mass is not None),
                                            ("polar wind fixer", self.engine.polar is not None)) if on]
            if fixers:
                reason = (f"the {' and the '.join(fixers)}'s global sum over ranks is host code (MPI) and cannot "
                          "be captured; stepping eagerly")
        return reason

    @property
    def step_mode(self) -> str:
        """How :meth:`step` runs: ``'eager fp32'``, ``'cuda-graph bf16'``, ... with the reason of a fallback."""
        reason = self._capture_unavailable(self.device) if self.cuda_graph else None
        mode = "cuda-graph" if self.cuda_graph and reason is None else "eager"
        return f"{mode} {self.precision}" + (f" (cuda_graph requested: {reason})" if reason else "")

    @property
    def chunk_size(self) -> int:
        return self.engine.chunk_size

    @chunk_size.setter
    def chunk_size(self, value: int) -> None:
        self.engine.chunk_size = int(value)

    @property
    def domain(self) -> Domain:
        return self.engine.domain

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    def _flat(self, a: torch.Tensor, width: int, what: str) -> torch.Tensor:
        """``[..., nlat, nlon, width]`` -> ``[B, ncol, width]`` after checking the shape."""
        want = tuple(self.domain.shape) + (width,)
        if a.ndim < 3 or tuple(a.shape[-3:]) != want:
            raise ValueError(f"{what} must be [..., {want[0]}, {want[1]}, {want[2]}] (lat, lon, feature), "
                             f"got shape {tuple(a.shape)}")
        return a.reshape(-1, self.domain.ncol, width)

    def _shaped(self, a: torch.Tensor, lead: torch.Size) -> torch.Tensor:
        return a.reshape(*lead, *self.domain.shape, a.shape[-1])

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Physical state ``x [..., nlat, nlon, n_state]`` -> latent ``z [..., nlat, nlon, L]``."""
        flat = self._flat(x, self.layout.n_state, "x")
        return self._shaped(self.engine.encode(flat), x.shape[:-3])

    @torch.no_grad()
    def mass_target(self, x: torch.Tensor) -> torch.Tensor:
        """The mass fixer's target of a rollout from physical ``x [..., nlat, nlon, n_state]``: its area-weighted
        global-mean surface pressure ``[...]`` float64 (reproducible: the same bits on any decomposition)."""
        flat = self._flat(x, self.layout.n_state, "x")
        return self.engine.mass_target(flat.to(self.device)).reshape(x.shape[:-3])

    def _flat_target(self, mass_target: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if mass_target is None or self.engine.mass is None:
            return None
        t = torch.as_tensor(mass_target, dtype=torch.float64, device=self.device).reshape(-1)
        if t.numel() != batch:
            raise ValueError(f"mass_target must hold one value per state ({batch}), got shape "
                             f"{tuple(torch.as_tensor(mass_target).shape)}")
        return t

    @torch.no_grad()
    def step(self, z: torch.Tensor, n: int = 1, *, mass_target: torch.Tensor | None = None,
             start: int = 0) -> torch.Tensor:
        """``n`` latent steps ``z[t+1] = z[t] + mixer(tile(z[t]))``: ``[..., nlat, nlon, L]`` -> same shape.

        ``mass_target [...]`` (float64, :meth:`mass_target` of the initial state): what the mass fixer conserves;
        without it the fixer keeps the global mean of the decoded ``z`` (so a rollout made of several calls
        should pass the initial state's target, as :meth:`rollout` does).

        ``start``: the steps the run took before these (from the encode of its initial state); it matters
        only with ``&model latent_projection_every`` > 1, which projects the steps that bring the count to a
        multiple of it (a run stepped in several calls passes its count, as ``Component.step`` does). The mass
        fixer acts inside the projection, so with M > 1 only those steps fix the latent's mass; decode with
        ``mass_target`` to get outputs with the target's global mean after any step.
        """
        flat = self._flat(z, self.latent_dim, "z")
        if n < 0:
            raise ValueError(f"number of steps must be >= 0, got {n}")
        if mass_target is None and self.engine.mass is not None and n > 0:
            mass_target = self.engine.mass_target(self.engine.decode(flat, fix=False))  # the mass of the state given
        target = self._flat_target(mass_target, flat.shape[0])
        if self.cuda_graph:
            reason = self._capture_unavailable(flat.device)
            if reason is None:
                return self._graph_steps().step(flat, n, mass_target=target, start=start).reshape(z.shape)
            if not self._warned_graph:
                warnings.warn(f"Emulator(cuda_graph=True): {reason}", RuntimeWarning, stacklevel=2)
                self._warned_graph = True
        with autocast(self.precision, flat.device):
            return self.engine.step(flat, n, target, start=start).reshape(z.shape)

    def _graph_steps(self) -> GraphSteps:
        if self._graphs is None:
            precision, device = self.precision, self.device
            self._graphs = GraphSteps(self.engine, capture=True, context=lambda: autocast(precision, device))
        return self._graphs

    @torch.no_grad()
    def decode(self, z: torch.Tensor, *, mass_target: torch.Tensor | None = None, fix: bool = True) -> torch.Tensor:
        """Latent ``z [..., nlat, nlon, L]`` -> physical state ``[..., nlat, nlon, n_state]``.

        ``fix=True`` (what :meth:`rollout` yields): with the polar wind fixer on, the zonal-mean meridional wind
        is 0 in the rows next to the poles; with the mass fixer on and ``mass_target [...]`` given, the surface
        pressure is shifted uniformly to that global mean (collective on a domain with an MPI global sum).
        ``fix=False``: the raw decode (column-local)."""
        flat = self._flat(z, self.latent_dim, "z")
        target = self._flat_target(mass_target, flat.shape[0]) if fix else None
        if not fix or (target is None and self.engine.polar is None):
            return self.engine.decode(z, fix=False)
        return self._shaped(self.engine.decode(flat, target), z.shape[:-3])

    @torch.no_grad()
    def decode_tendency(self, dz: torch.Tensor) -> torch.Tensor:
        """Latent increment ``dz [..., nlat, nlon, L]`` -> physical one-step change ``[..., nlat, nlon, n_state]``
        (per ``dt_seconds``) from the tendency decoder. Only a model trained with ``&loss tendency_mse > 0``
        has a trained tendency decoder (the shipped demo's is not: use ``decode(step(z)) - decode(z)``)."""
        self._flat(dz, self.latent_dim, "dz")
        return self.engine.decode_tendency(dz)

    def rollout(self, x0: torch.Tensor, n_steps: int, *, output_every: int = 1) -> Iterator[tuple[int, torch.Tensor]]:
        """Forecast from ``x0 [..., nlat, nlon, n_state]`` (physical).

        Yields ``(step, x [..., nlat, nlon, n_state])`` for step = output_every,
        2*output_every, ... <= n_steps. Encodes once, steps in latent space and
        decodes only at output steps; a decoded state is never re-encoded. With the
        mass fixer on, the target is the global-mean surface pressure of ``x0``; every output
        gets the fixers (:meth:`decode`).
        """
        if n_steps < 0 or output_every < 1:
            raise ValueError(f"need n_steps >= 0 and output_every >= 1, got {n_steps} and {output_every}")
        z = self.encode(x0)
        mass = self.mass_target(x0) if self.engine.mass is not None else None
        done = 0
        for target in range(output_every, n_steps + 1, output_every):
            z = self.step(z, target - done, mass_target=mass, start=done)
            done = target
            yield target, self.decode(z, mass_target=mass)
