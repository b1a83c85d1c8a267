"""A synthetic problem with a known answer: a random pattern advected east by one cell per step.

``x(t, j, i) = P(j, i - t)``; the exact emulator moves every column's latent to
its eastern neighbour each step, which a 3x3 stencil can represent.
"""
from __future__ import annotations

import numpy as np

from mlscam.grid import LatLonGrid
from synthetic import write_file

GRID = LatLonGrid.equiangular(16, 32)
LEVELS = (0.3, 0.8)


def advected_fields(nt: int, seed: int, grid: LatLonGrid = GRID) -> dict[str, np.ndarray]:
    """Canonical fields ``[nt, (nlev,) nlat, nlon]``: every column is a fixed linear mix of two random
    factors (so columns are structured, like real ones), and the pattern moves east one cell per step."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(1234).standard_normal((5, 2))  # the same column structure in every file
    factors = rng.standard_normal((2, grid.nlat, grid.nlon))
    chans = np.einsum("cf,fji->cji", mix, factors)  # [5, nlat, nlon]
    base = {"u": 10.0 * chans[0:2], "temperature": 260.0 + 5.0 * chans[2:4], "surface_pressure": 1e5 + 500.0 * chans[4]}
    return {name: np.stack([np.roll(p, t, axis=-1) for t in range(nt)]).astype(np.float32) for name, p in base.items()}


def write_advection(path, nt: int, seed: int) -> dict[str, np.ndarray]:
    fields = advected_fields(nt, seed)
    write_file(path, fields, GRID, np.arange(nt) * 6.0, levels=LEVELS)
    return fields
