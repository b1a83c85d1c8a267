"""Grid-scale damping of the latent step that fits the 3x3 stencil (no extra halo exchange).

A learned local stepper lets the 2-grid-length "checkerboard" grow unless
something damps the highest wavenumbers every step, as every dycore does
(Dinosaur's Held-Suarez setup filters every step). The 1-2-1 (Shapiro) filter
in longitude and latitude,

    S z = (1/16) [1 2 1; 2 4 2; 1 2 1] (*) z        (the column's 3x3 tile, token order),

has response cos^2(k dx / 2) cos^2(l dy / 2): zero at 2 dx, one at the mean.
The step adds ``-nu (z - S z)`` to the mixer's increment, with the tile the
mixer already gathered, so ``z[t+1] = z[t] + mixer(tile) - nu (z[t] - S z[t])``.
The 2-dx wave in both directions is damped by ``(1 - nu)`` per step, the mean
is untouched. Rows near the poles, where a one-cell stencil's Courant number
is largest, can take a stronger ``nu`` (``cos(polar_lat) / cos(lat)`` poleward
of ``polar_lat``, the ocean models' recipe), capped at 1.

Every column's smoothing reads only its own tile in a fixed token order, so it
is bit for bit the same on any decomposition.

The second stabiliser, ``projection`` alpha in [0, 1], pulls the stepped latent
back towards the encoder's manifold after the step:
    z[t+1] <- z[t+1] + alpha (encode(decode(z[t+1])) - z[t+1]).
Left alone, a latent rollout drifts off the set of latents the encoder produces,
where the decoder and the mixer were never trained; alpha = 1 re-encodes every
step (the rollout is then the trained one-step operator repeated), smaller alpha
relaxes with an e-folding of about 1/alpha steps. It is column-local (no halo),
hence bit for bit on any decomposition, and costs one decode and one encode per
step (about +30% at T21, ``benchmarks/latent_vs_reencode.txt``). With
``projection_every`` M > 1 only every M-th step projects (the steps that bring
the run's step count to M, 2M, ...: the count since the initial state, which
restarts keep, so a restarted run is the uninterrupted one); the other steps
save the decode and the encode.

``mass_fixer`` (needs ``projection > 0``) conserves the global-mean surface
pressure inside that projection: the decoded state's surface pressure is shifted
uniformly to the rollout's initial global mean before it is re-encoded
(``mlscam.model.mass``; one reproducible global sum per projecting step). With
``projection_every`` M > 1 the fixer acts on the projecting steps only: the M-1
steps between them leave the latent's mass as the mixer made it, and decoded
outputs (``Emulator.rollout``, the component, ``decode`` with ``mass_target``)
still get the fixer's uniform shift, so every such output keeps the initial
global mean whatever M.

``polar_wind_rows`` k (``&model polar_wind_fixer``; needs ``projection > 0``)
also acts inside that projection, after the mass fixer: in the k latitude rows
next to each pole the decoded meridional wind loses its zonal mean at every
level (``[v] = 0``, as mass continuity through a latitude circle around a pole
demands) before it is re-encoded (``mlscam.model.polar``; one reproducible
global sum per projecting step). Like the mass fixer it acts on the projecting
steps only, and every decoded output gets it after any step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["LatentFilter", "SHAPIRO_WEIGHTS", "smooth", "smooth_tiles"]

#: 1-2-1 x 1-2-1 weights in token order (token = 3*(dlat+1) + (dlon+1)), summing to 1.
SHAPIRO_WEIGHTS = (1 / 16, 2 / 16, 1 / 16, 2 / 16, 4 / 16, 2 / 16, 1 / 16, 2 / 16, 1 / 16)


@dataclass(frozen=True)
class LatentFilter:
    """The latent step's settings beside the weights: the grid-scale filter (``strength`` nu in [0, 1], 0: off;
    ``polar_lat`` in degrees, 0: the same nu on every row), the manifold ``projection`` alpha in [0, 1] (0: off),
    applied on every ``projection_every``-th step, and, inside it, the global dry-mass fixer (``mass_fixer``) and
    the polar wind fixer (``polar_wind_rows`` k > 0: ``[v] = 0`` in the k rows next to each pole); both need
    ``projection > 0``. ``substeps`` K > 1 advances each step in K sub-steps of 1/K of the mixer's increment and
    the filter's damping, each from its own tile (``mlscam.model.engine.Engine.step_once``)."""

    strength: float = 0.0
    polar_lat: float = 0.0
    projection: float = 0.0
    mass_fixer: bool = False
    projection_every: int = 1
    polar_wind_rows: int = 0
    substeps: int = 1

    def __post_init__(self):
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"latent filter strength must be in [0, 1] (the damping of the 2-dx wave per step), "
                             f"got {self.strength}")
        if not 0.0 <= self.polar_lat < 90.0:
            raise ValueError(f"latent filter polar_lat must be in [0, 90) degrees (0 = uniform), got {self.polar_lat}")
        if not 0.0 <= self.projection <= 1.0:
            raise ValueError(f"latent projection must be in [0, 1] (the fraction of the way back to "
                             f"encode(decode(z)) per step), got {self.projection}")
        if self.mass_fixer and not self.projection > 0.0:
            raise ValueError(f"the mass fixer acts inside the manifold projection, which is off (latent projection "
                             f"{self.projection}): set &model latent_projection > 0 (e.g. 0.1; or &rollout "
                             "latent_projection), or switch the fixer off (&model mass_fixer = .false., &rollout "
                             "mass_fixer = 0)")
        if isinstance(self.projection_every, bool) or int(self.projection_every) != self.projection_every \
                or self.projection_every < 1:
            raise ValueError(f"latent projection_every must be an integer >= 1 (project on every M-th step), "
                             f"got {self.projection_every!r}")
        if isinstance(self.polar_wind_rows, bool) or int(self.polar_wind_rows) != self.polar_wind_rows \
                or self.polar_wind_rows < 0:
            raise ValueError(f"polar_wind_rows must be an integer >= 0 (the latitude rows next to each pole where "
                             f"[v] = 0; 0 = off), got {self.polar_wind_rows!r}")
        if isinstance(self.substeps, bool) or int(self.substeps) != self.substeps or self.substeps < 1:
            raise ValueError(f"latent substeps must be an integer >= 1 (sub-steps per step; 1 = one), "
                             f"got {self.substeps!r}")
        if self.polar_wind_rows > 0 and not self.projection > 0.0:
            raise ValueError(f"the polar wind fixer acts inside the manifold projection, which is off (latent "
                             f"projection {self.projection}): set &model latent_projection > 0 (e.g. 0.1; or "
                             "&rollout latent_projection), or switch the fixer off (&model polar_wind_fixer = 0, "
                             "&rollout polar_wind_fixer = 0)")

    @classmethod
    def of(cls, model_cfg, override=None) -> "LatentFilter":
        """The step settings of a ``&model`` group (``latent_filter``, ``latent_filter_polar_lat``,
        ``latent_projection``, ``mass_fixer``, ``latent_projection_every``, ``polar_wind_fixer``,
        ``latent_substeps``); an ``&rollout`` group as ``override`` replaces each value it sets (>= 0;
        ``mass_fixer``: 0 off, 1 on; ``latent_projection_every`` and ``latent_substeps`` >= 1;
        ``polar_wind_fixer``: 0 off, k rows)."""
        nu, lat = float(model_cfg.latent_filter), float(model_cfg.latent_filter_polar_lat)
        alpha, fixer = float(model_cfg.latent_projection), bool(model_cfg.mass_fixer)
        every = int(model_cfg.latent_projection_every)
        polar = int(model_cfg.polar_wind_fixer)
        substeps = int(model_cfg.latent_substeps)
        if override is not None:
            nu = nu if override.latent_filter < 0 else float(override.latent_filter)
            lat = lat if override.latent_filter_polar_lat < 0 else float(override.latent_filter_polar_lat)
            alpha = alpha if override.latent_projection < 0 else float(override.latent_projection)
            fixer = fixer if override.mass_fixer < 0 else bool(override.mass_fixer)
            every = every if override.latent_projection_every < 1 else int(override.latent_projection_every)
            polar = polar if override.polar_wind_fixer < 0 else int(override.polar_wind_fixer)
            substeps = substeps if override.latent_substeps < 1 else int(override.latent_substeps)
        return cls(nu, lat, alpha, fixer, every, polar, substeps)

    @property
    def active(self) -> bool:
        """Whether any stabiliser is on, or the step is sub-stepped."""
        return self.strength > 0.0 or self.projection > 0.0 or self.substeps > 1

    @property
    def damps(self) -> bool:
        """Whether the grid-scale filter is on."""
        return self.strength > 0.0

    def coefficients(self, lat_deg: np.ndarray) -> np.ndarray:
        """``nu`` per column ``[ncol]`` from the columns' latitudes (degrees)."""
        lat = np.abs(np.asarray(lat_deg, dtype=np.float64))
        nu = np.full(lat.shape, self.strength)
        if self.polar_lat > 0.0:
            boost = np.cos(np.radians(self.polar_lat)) / np.maximum(np.cos(np.radians(lat)), 1e-6)
            nu = np.where(lat > self.polar_lat, nu * boost, nu)
        return np.minimum(nu, 1.0)


def smooth_tiles(tiles: torch.Tensor) -> torch.Tensor:
    """``S z`` of gathered 3x3 tiles ``[..., 9, L]`` (token order): ``[..., L]``.

    The nine tokens are weighted with :data:`SHAPIRO_WEIGHTS` and summed in token order, always the
    same operations in the same order, so the result is the same bits whichever way the tiles were
    gathered (the mixer's chunks in ``Engine.advance``, or :func:`smooth`). The weights are powers of
    two, so each product is exact and a fused multiply-add (``add_(alpha=)``, one kernel instead of a
    product and a sum) rounds exactly as the separate product and sum would; only products below the
    smallest normal number (latents of magnitude < 1e-37) could round differently.
    """
    w = SHAPIRO_WEIGHTS
    out = tiles[..., 0, :] * w[0]
    for k in range(1, 9):
        out.add_(tiles[..., k, :], alpha=w[k])
    return out


def smooth(z_src: torch.Tensor, tile_index: torch.Tensor) -> torch.Tensor:
    """``S z`` of the centres named by ``tile_index [ncol, 9]`` into ``z_src [B, nsrc, L]``: ``[B, ncol, L]``
    (:func:`smooth_tiles` of the gathered tiles)."""
    return smooth_tiles(z_src[:, tile_index])
