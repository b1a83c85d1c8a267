"""The polar wind fixer: no zonal-mean meridional wind through the latitude circles next to the poles.

Physics. Mass continuity integrated over the polar cap poleward of a latitude
circle says that the mass flux through the circle, ``2 pi a cos(lat) dp [v]``
(``[v]`` the zonal mean of the meridional wind ``v`` over the circle), equals
the change of the cap's mass. As the circle closes on the pole the cap's area,
and with it the mass it can gain or lose, vanishes: ``[v] -> 0`` at the pole,
and in the rows next to it ``[v]`` is tiny in any atmosphere (below 0.1 m/s in
the Held-Suarez truth; a mean meridional cell closes well before the pole).
A learned local stepper on a lat-lon grid knows none of this: its 3x3 stencil
sees the same few cells on both sides of a pole row, so the polar rows are
where its ``[v]`` is least constrained. The shipped demo's one-year rollouts
drift into a spurious regime there: ``[v]`` at the top levels grows from about
1 m/s to -80 m/s in the rows next to the north pole. An inference-time
experiment that set ``[v] = 0`` at every level of the 2 rows next to each pole
inside the manifold projection cut the validation climate's zonal-mean
temperature bias from 4.9 K to 1.6 K.

The fix. ``&model polar_wind_fixer`` (or ``&rollout polar_wind_fixer``) = k
takes the k latitude rows next to each pole and, at every level of ``v`` in
each of those 2k rows, subtracts the row's zonal mean: ``v <- v - [v]``. The
eddies (``v - [v]``), the other rows and every other variable are unchanged.
It is applied where the mass fixer (:mod:`mlscam.model.mass`) acts: on the
decoded state inside the manifold projection of :mod:`mlscam.model.filters`
(``z <- z + alpha (encode(fix(decode(z))) - z)``, mass fixer first, then this
one), on the projecting steps only when ``latent_projection_every`` > 1, and on
every decoded output (``Emulator.decode``/``rollout``, the component's outputs,
the training objective's predictions), so every output has ``[v] = 0`` (to
float32 rounding) in those rows after any step.

Reproducibility. The zonal means are global sums over rows that ranks may split:
:class:`mlscam.model.zonal.RowMeans` makes them the same bits on any number of
ranks. The subtracted correction is computed from detached values (a constant
for autograd, like the mass fixer's shift) and the fixed state is built out of
place.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout

from .zonal import RowMeans

if TYPE_CHECKING:
    from .engine import Domain

__all__ = ["MERIDIONAL_WIND", "PolarWindFixer", "polar_rows"]

#: the model name of the meridional wind the fixer constrains (``&data variables_3d``)
MERIDIONAL_WIND = "v"


def polar_rows(nlat: int, rows: int) -> np.ndarray:
    """The global latitude rows the fixer constrains, ``[2 * rows]``: the ``rows`` rows next to the first pole,
    then the ``rows`` rows next to the other (rows ascend with the grid's latitudes)."""
    return np.concatenate([np.arange(rows), np.arange(nlat - rows, nlat)])


class PolarWindFixer:
    """The zonal-mean meridional wind of the ``rows`` latitude rows next to each pole, and its removal.

    States are physical and column-flat: ``x [B, ncol, S]`` (``ncol``: the domain's columns, global indices
    ``domain.columns``). ``rows`` k: 1 <= k <= nlat // 2.
    """

    def __init__(self, layout: ColumnLayout, grid: LatLonGrid, domain: "Domain", rows: int, *, device=None):
        if MERIDIONAL_WIND not in layout.variables_3d:
            raise ValueError(f"&model polar_wind_fixer removes the zonal mean of the meridional wind "
                             f"{MERIDIONAL_WIND!r} next to the poles, but the column layout has no such 3-D variable "
                             f"(3-D variables: {list(layout.variables_3d)}); set &model polar_wind_fixer = 0 (or "
                             f"&rollout polar_wind_fixer = 0), or train with {MERIDIONAL_WIND!r} in &data variables_3d")
        if isinstance(rows, bool) or int(rows) != rows or not 1 <= rows <= grid.nlat // 2:
            raise ValueError(f"polar_wind_fixer rows must be an integer in [1, nlat // 2 = {grid.nlat // 2}] (the "
                             f"latitude rows next to each pole of the {grid.nlat}x{grid.nlon} grid), got {rows!r}")
        self.domain, self.rows, self.nlon = domain, int(rows), int(grid.nlon)
        where = layout.slice_of(MERIDIONAL_WIND)
        self.start, self.stop = int(where.start), int(where.stop)
        self.nlev = self.stop - self.start
        self.means = RowMeans(grid, domain, polar_rows(grid.nlat, self.rows), self.start, self.stop, device=device)

    def to(self, device=None) -> "PolarWindFixer":
        self.means.to(device)
        return self

    def zonal_mean(self, x: torch.Tensor) -> torch.Tensor:
        """``[v]`` of the 2k constrained rows of ``x [B, ncol, S]``: float64 ``[B, 2k, nlev]`` (no gradient; the
        same bits on any decomposition; NaN where a value of the row is not finite or out of the reproducible
        sum's range). Collective under MPI: every rank calls it, with the same ``B``."""
        return self.means.mean(x)

    def subtract(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """``x [B, ncol, S]`` with ``mean [B, 2k, nlev]`` (:meth:`zonal_mean`) subtracted from ``v`` in the
        constrained rows (local; other columns and channels: the same bits)."""
        v = x[..., self.start:self.stop] - self.means.per_column(mean, x.dtype)  # minus +0.0 elsewhere
        return torch.cat([x[..., :self.start], v, x[..., self.stop:]], -1)

    def fix(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, ncol, S]`` with ``[v] = 0`` at every level of the 2k rows next to the poles (the correction
        carries no gradient). Collective under MPI."""
        ncol = self.means.slot.shape[0]
        if x.ndim != 3 or x.shape[1] != ncol:
            raise ValueError(f"the polar wind fixer takes states [B, {ncol}, S] (the domain's "
                             f"columns), got shape {tuple(x.shape)}")
        return self.subtract(x, self.zonal_mean(x))
