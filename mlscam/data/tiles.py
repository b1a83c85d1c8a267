"""Which global cells make up a tile plus its halo (pure index arithmetic).

A tile is the half-open block ``lat_range = (j0, j1)``, ``lon_range = (i0, i1)``
of the canonical grid, surrounded by a halo of ``halo`` (0 or 1) cells.  Halo
cells follow the 3x3 stencil rule of :func:`mlscam.grid.neighbour`: longitude
is periodic, and the row beyond an edge row ``j_edge`` at unwrapped longitude
``i'`` is row ``j_edge`` at ``i' + nlon/2`` (flagged ``crossed``).
"""
from __future__ import annotations

import numpy as np

from mlscam.grid import neighbour

__all__ = ["tile_cells", "runs"]


def tile_cells(
    nlat: int, nlon: int, lat_range: tuple[int, int], lon_range: tuple[int, int], halo: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global cells of a tile and its halo.

    Returns ``(jj, ii, crossed)``, each ``[j1 - j0 + 2 halo, i1 - i0 + 2 halo]``:
    global row, global column (int64) and the crossed-a-pole flag (bool) of
    every cell of the output block.

    >>> jj, ii, c = tile_cells(4, 8, (0, 1), (0, 1), halo=1)
    >>> jj[0].tolist(), ii[0].tolist(), c[0].tolist()   # beyond the south pole
    ([0, 0, 0], [3, 4, 5], [True, True, True])
    """
    j0, j1 = (int(v) for v in lat_range)
    i0, i1 = (int(v) for v in lon_range)
    if not (0 <= j0 < j1 <= nlat):
        raise ValueError(f"lat_range must satisfy 0 <= j0 < j1 <= nlat={nlat}, got {lat_range}")
    if not (0 <= i0 < i1 <= nlon):
        raise ValueError(f"lon_range must satisfy 0 <= i0 < i1 <= nlon={nlon}, got {lon_range}")
    if halo not in (0, 1):
        raise ValueError(f"halo must be 0 or 1 (the 3x3 stencil reaches one cell), got {halo}")
    rows = np.arange(j0 - halo, j1 + halo)
    cols = np.arange(i0 - halo, i1 + halo)  # unwrapped longitude indices
    jj = np.empty((rows.size, cols.size), dtype=np.int64)
    ii = np.empty_like(jj)
    crossed = np.zeros(jj.shape, dtype=bool)
    for a, j in enumerate(rows):
        if 0 <= j < nlat:
            jj[a], ii[a] = j, cols % nlon
            continue
        edge, dlat = (0, -1) if j < 0 else (nlat - 1, 1)
        for b, ip in enumerate(cols):
            jj[a, b], ii[a, b], crossed[a, b] = neighbour(edge, int(ip % nlon), dlat, 0, nlat, nlon)
    return jj, ii, crossed


def runs(sorted_unique: np.ndarray) -> list[tuple[int, int, int]]:
    """Contiguous runs of sorted unique integers as ``(start, stop, offset)``.

    ``offset`` is where the run starts inside ``sorted_unique``.

    >>> runs(np.array([0, 1, 2, 5, 6, 9]))
    [(0, 3, 0), (5, 7, 3), (9, 10, 5)]
    """
    u = np.asarray(sorted_unique, dtype=np.int64)
    if u.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(u) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [u.size]])
    return [(int(u[a]), int(u[b - 1]) + 1, int(a)) for a, b in zip(starts, stops)]
