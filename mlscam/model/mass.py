"""Global dry-mass conservation: the decoded surface pressure keeps the global mean it started with.

A learned stepper does not conserve mass by construction: a one-year rollout of
the demo drifts its global-mean surface pressure by up to -1 kPa. Like ACE2's
corrector and NeuralGCM's surface-pressure fix, ``&model mass_fixer`` removes the
drift after every step, inside the manifold projection of
:mod:`mlscam.model.filters`::

    x = decode(z);   ps(x) += target - <ps(x)>;   z <- z + alpha (encode(x) - z)

with ``<ps> = sum_c w_c ps_c`` the area-weighted global mean (``w`` = the cell
areas of :meth:`mlscam.grid.LatLonGrid.area_weights` over ``ncol``, summing to 1)
and ``target`` the global mean of the rollout's initial physical state, per
batch member. Decoded outputs get the same uniform shift
(``Engine.decode(z, mass_target=...)``), so the surface pressure a rollout
writes has the target's global mean to float32 rounding.

The fixer lives only in the projection: with ``&model latent_projection_every``
M > 1 it fixes the latent on the projecting steps (every M-th of the run) and
the M-1 steps between them neither fix nor sum; the decoded outputs still get
the shift after any step, so their global mean is the target whatever M. With
M = 1 (the default) every step projects and fixes.

The global mean is the reproducible fixed-point sum (:mod:`mlscam.fixedsum`) of
``w_c ps_c`` in float64 over every column of the globe, through the domain's
``global_sum`` (serial: the owned columns; the MPI component: an all-reduce over
ranks), so it is the same bits on any decomposition. The shift is a constant for
autograd (computed from detached values): in training the loss gradient passes
through the fixed field as through the decoded one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout

if TYPE_CHECKING:
    from .engine import Domain

__all__ = ["SURFACE_PRESSURE", "MassFixer"]

#: the model name of the surface pressure variable the fixer conserves (``&data variables_2d``)
SURFACE_PRESSURE = "surface_pressure"


class MassFixer:
    """The global-mean surface pressure of a domain's states, and the uniform shift that sets it.

    States are physical and column-flat: ``x [B, ncol, S]`` (``ncol``: the domain's columns); targets and
    means are float64 ``[B]``.
    """

    def __init__(self, layout: ColumnLayout, grid: LatLonGrid, domain: "Domain", *, device=None):
        if SURFACE_PRESSURE not in layout.variables_2d:
            raise ValueError(f"&model mass_fixer conserves the global mean of {SURFACE_PRESSURE!r}, but the column "
                             f"layout has no such 2-D variable (2-D variables: {list(layout.variables_2d)}); set "
                             "&model mass_fixer = .false. (or &rollout mass_fixer = 0), or train with "
                             f"{SURFACE_PRESSURE!r} in &data variables_2d")
        self.domain = domain
        self.channel = layout.slice_of(SURFACE_PRESSURE).start
        w = grid.area_weights().reshape(-1)[np.asarray(domain.columns)] / grid.ncol  # sums to 1 over the globe
        self.weights = torch.as_tensor(w, dtype=torch.float64, device=device)  # [ncol]

    def to(self, device=None) -> "MassFixer":
        self.weights = self.weights.to(device=device)
        return self

    def global_mean(self, ps: torch.Tensor) -> torch.Tensor:
        """``ps [B, ncol]`` (any float dtype) -> the area-weighted global mean ``[B]`` float64 (reproducible; NaN
        if a value is not finite or out of the fixed-point range). Collective under MPI."""
        return self.domain.sum(ps.detach().to(torch.float64) * self.weights)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The target of a rollout from ``x [B, ncol, S]``: its global-mean surface pressure ``[B]`` float64."""
        return self.global_mean(x[..., self.channel])

    def fix(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``x [B, ncol, S]`` with the surface pressure shifted uniformly so its global mean is ``target [B]``
        (the other channels unchanged; the shift carries no gradient)."""
        c = self.channel
        shift = (target.to(torch.float64) - self.global_mean(x[..., c])).to(x.dtype)  # [B]
        return torch.cat([x[..., :c], x[..., c:c + 1] + shift[:, None, None], x[..., c + 1:]], -1)
