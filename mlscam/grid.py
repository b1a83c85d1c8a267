"""The lat-lon grid and the spherical 3x3 stencil.

Canonical layout (see docs/design.md): arrays are ``(..., lat, lon, feature)``
with latitude ascending (south to north) and longitude ascending from 0 east.
Columns are flattened as ``col = j * nlon + i``.

Stencil conventions
-------------------
* Token order inside a tile: ``token = 3 * (dlat + 1) + (dlon + 1)``, so the
  centre column is token 4, token 0 is south-west, token 8 is north-east.
* Longitude is periodic.
* Across a pole the grid is folded: the cell beyond the edge row ``j_edge`` at
  (unwrapped) longitude index ``i'`` is the same edge row at longitude
  ``i' + nlon/2``.  ``nlon`` must therefore be even.  Such tokens carry a
  "crossed the pole" flag.

This module knows nothing of files, MPI or torch.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["LatLonGrid", "Stencil", "neighbour", "TOKEN_OFFSETS", "CENTRE_TOKEN"]

#: ``(dlat, dlon)`` of every token, in token order.
TOKEN_OFFSETS: tuple[tuple[int, int], ...] = tuple(
    (dlat, dlon) for dlat in (-1, 0, 1) for dlon in (-1, 0, 1)
)
CENTRE_TOKEN = 4


def neighbour(j: int, i: int, dlat: int, dlon: int, nlat: int, nlon: int) -> tuple[int, int, bool]:
    """Global ``(j, i)`` of the cell at offset ``(dlat, dlon)`` from ``(j, i)``.

    Returns ``(jj, ii, crossed_pole)``.  Offsets are limited to -1, 0, 1.

    >>> neighbour(0, 1, -1, 1, 4, 8)   # beyond the south pole: row 0, lon 2 + 4
    (0, 6, True)
    >>> neighbour(2, 7, 0, 1, 4, 8)    # across the longitude seam
    (2, 0, False)
    """
    if abs(dlat) > 1 or abs(dlon) > 1:
        raise ValueError(f"stencil offsets must be in -1..1, got ({dlat}, {dlon})")
    jj = j + dlat
    ii = i + dlon
    crossed = jj < 0 or jj >= nlat
    if crossed:
        jj = j  # the same edge row ...
        ii = ii + nlon // 2  # ... on the opposite meridian
    return jj, ii % nlon, crossed


@dataclass(frozen=True)
class Stencil:
    """The 3x3 tile of every column of a grid.

    Attributes:
      index: ``[ncol, 9]`` int64, flat column index of every token.
      crossed_pole: ``[ncol, 9]`` bool, True where the token came across a pole.
    """

    index: np.ndarray
    crossed_pole: np.ndarray


@dataclass(frozen=True)
class LatLonGrid:
    """A regular, cell-centred latitude-longitude grid.

    ``lat`` (degrees north, strictly ascending, inside (-90, 90)) and ``lon``
    (degrees east, strictly ascending, starting at 0 within half a cell) are
    stored as tuples so the grid is hashable and frozen.
    """

    lat: tuple[float, ...]
    lon: tuple[float, ...]

    def __post_init__(self):
        object.__setattr__(self, "lat", tuple(float(x) for x in self.lat))
        object.__setattr__(self, "lon", tuple(float(x) for x in self.lon))
        lat, lon = np.asarray(self.lat), np.asarray(self.lon)
        if len(lat) < 2:
            raise ValueError(f"a grid needs at least 2 latitudes, got {len(lat)}")
        if len(lon) < 2 or len(lon) % 2:
            raise ValueError(
                f"nlon must be even (>= 2) for the pole fold of the 3x3 stencil, got nlon={len(lon)}; "
                "regrid to an even number of longitudes"
            )
        if np.any(np.diff(lat) <= 0):
            raise ValueError(f"latitudes must be strictly ascending (south to north), got {lat[:4]}...")
        if np.any(np.diff(lon) <= 0):
            raise ValueError(f"longitudes must be strictly ascending from 0 east, got {lon[:4]}...")
        if lat[0] <= -90.0 or lat[-1] >= 90.0:
            raise ValueError(
                f"grid has points on a pole (lat from {lat[0]} to {lat[-1]}); mlscam needs a cell-centred "
                "grid with no pole points (e.g. regrid CAM FV output to an equiangular grid)"
            )

    # -- construction -----------------------------------------------------
    @classmethod
    def equiangular(cls, nlat: int, nlon: int) -> "LatLonGrid":
        """Cell-centred equiangular grid: ``lat_j = -90 + 180 (j + 1/2) / nlat``, ``lon_i = 360 i / nlon``."""
        lat = -90.0 + 180.0 * (np.arange(nlat) + 0.5) / nlat
        lon = 360.0 * np.arange(nlon) / nlon
        return cls(tuple(lat), tuple(lon))

    # -- sizes ------------------------------------------------------------
    @property
    def nlat(self) -> int:
        return len(self.lat)

    @property
    def nlon(self) -> int:
        return len(self.lon)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nlat, self.nlon)

    @property
    def ncol(self) -> int:
        return self.nlat * self.nlon

    def lat_array(self) -> np.ndarray:
        return np.asarray(self.lat)

    def lon_array(self) -> np.ndarray:
        return np.asarray(self.lon)

    # -- geometry ---------------------------------------------------------
    def lat_bounds(self) -> np.ndarray:
        """``[nlat + 1]`` latitude cell edges (degrees): midpoints, closed by the poles."""
        lat = self.lat_array()
        return np.concatenate([[-90.0], 0.5 * (lat[1:] + lat[:-1]), [90.0]])

    def area_weights(self) -> np.ndarray:
        """``[nlat, nlon]`` cell-area weights normalised to mean 1.

        Proportional to ``sin(lat_north) - sin(lat_south)`` of each cell.
        """
        b = np.deg2rad(self.lat_bounds())
        w = np.sin(b[1:]) - np.sin(b[:-1])
        w2 = np.repeat(w[:, None], self.nlon, axis=1)
        return w2 / w2.mean()

    def static_features(self) -> dict[str, np.ndarray]:
        """Per-column static features, each ``[nlat, nlon]`` float64."""
        lat = np.deg2rad(self.lat_array())[:, None] * np.ones((1, self.nlon))
        lon = np.deg2rad(self.lon_array())[None, :] * np.ones((self.nlat, 1))
        return {
            "sin_lat": np.sin(lat),
            "cos_lat": np.cos(lat),
            "sin_lon": np.sin(lon),
            "cos_lon": np.cos(lon),
        }

    def static_stack(self, names) -> np.ndarray:
        """The static features ``names`` stacked in that order: ``[nlat, nlon, len(names)]`` float64."""
        feats = self.static_features()
        unknown = [n for n in names if n not in feats]
        if unknown:
            raise ValueError(f"unknown static features {unknown}; valid: {sorted(feats)}")
        if not names:
            return np.zeros(self.shape + (0,))
        return np.stack([feats[n] for n in names], axis=-1)

    # -- stencil ----------------------------------------------------------
    def stencil(self) -> Stencil:
        """The 3x3 stencil of the whole grid (cached per grid shape)."""
        return _stencil(self.nlat, self.nlon)

    def tile_of(self, j: int, i: int) -> list[tuple[int, int, bool]]:
        """The 9 ``(j, i, crossed_pole)`` of the tile centred on ``(j, i)``, in token order."""
        return [neighbour(j, i, dl, dn, self.nlat, self.nlon) for dl, dn in TOKEN_OFFSETS]


@functools.lru_cache(maxsize=16)
def _stencil(nlat: int, nlon: int) -> Stencil:
    j = np.arange(nlat)[:, None, None]
    i = np.arange(nlon)[None, :, None]
    dlat = np.array([o[0] for o in TOKEN_OFFSETS])[None, None, :]
    dlon = np.array([o[1] for o in TOKEN_OFFSETS])[None, None, :]
    jj = j + dlat
    ii = i + dlon
    crossed = (jj < 0) | (jj >= nlat)
    jj = np.where(crossed, j, jj)
    ii = np.where(crossed, ii + nlon // 2, ii) % nlon
    index = (jj * nlon + ii).reshape(nlat * nlon, 9).astype(np.int64)
    crossed = np.broadcast_to(crossed, (nlat, nlon, 9)).reshape(nlat * nlon, 9).copy()
    index.setflags(write=False)
    crossed.setflags(write=False)
    return Stencil(index=index, crossed_pole=crossed)
