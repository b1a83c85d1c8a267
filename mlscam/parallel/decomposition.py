"""Rectangular tile decomposition of the ``(nlat, nlon)`` grid.

Every rank owns one rectangular tile of whole cells.  Bounds are 0-based and
half-open: a tile holds rows ``lat0 <= j < lat1`` and longitudes
``lon0 <= i < lon1``.  A tile's own columns are listed row-major
(``j`` outer, ``i`` inner), which is also the order of the rank's local arrays
``[..., n_local, feature]``.

Two ways to build a :class:`Decomposition`:

* :meth:`Decomposition.cartesian`: ``plat x plon`` bands whose sizes differ by
  at most one (:func:`split_sizes`), ranks numbered row-major over the bands
  (``rank = band_lat * plon + band_lon``);
* :meth:`Decomposition.from_bounds`: tiles given by a host model, checked to
  cover the grid exactly once.

:func:`decomposition_from_host` is the collective that gathers every rank's own
host bounds (an ``allgather`` on the communicator passed in; nothing else here
talks to a communicator).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["split_sizes", "Tile", "Decomposition", "choose_layout", "decomposition_from_host"]


def split_sizes(n: int, parts: int) -> list[int]:
    """Split ``n`` cells into ``parts`` chunks whose sizes differ by at most one.

    The larger chunks come first.

    >>> split_sizes(10, 3)
    [4, 3, 3]
    >>> split_sizes(12, 4)
    [3, 3, 3, 3]
    >>> split_sizes(5, 5)
    [1, 1, 1, 1, 1]
    """
    if parts < 1:
        raise ValueError(f"cannot split into {parts} parts; the number of parts must be >= 1")
    if n < parts:
        raise ValueError(
            f"cannot split {n} cells into {parts} non-empty parts; use at most {n} parts along this axis"
        )
    base, extra = divmod(n, parts)
    return [base + 1] * extra + [base] * (parts - extra)


@dataclass(frozen=True)
class Tile:
    """One rank's rectangle of the grid: rows ``[lat0, lat1)``, longitudes ``[lon0, lon1)``."""

    rank: int
    lat0: int
    lat1: int
    lon0: int
    lon1: int

    @property
    def nlat(self) -> int:
        return self.lat1 - self.lat0

    @property
    def nlon(self) -> int:
        return self.lon1 - self.lon0

    @property
    def ncol(self) -> int:
        return self.nlat * self.nlon

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nlat, self.nlon)

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        """``(lat0, lat1, lon0, lon1)``."""
        return (self.lat0, self.lat1, self.lon0, self.lon1)

    def contains(self, j: int, i: int) -> bool:
        return self.lat0 <= j < self.lat1 and self.lon0 <= i < self.lon1

    def __str__(self) -> str:
        return f"rank {self.rank}: lat [{self.lat0}, {self.lat1}) lon [{self.lon0}, {self.lon1})"


def choose_layout(nlat: int, nlon: int, nranks: int) -> tuple[int, int]:
    """The ``(plat, plon)`` layout used when none is given.

    Among the factorisations ``plat * plon == nranks`` with no empty tile, take
    the one with the smallest largest-tile perimeter ``ceil(nlat/plat) +
    ceil(nlon/plon)`` (the halo size of a tile grows with it); ties go to more
    splits in longitude.

    >>> choose_layout(6, 12, 4)
    (1, 4)
    >>> choose_layout(64, 128, 16)
    (2, 8)
    """
    if nranks < 1:
        raise ValueError(f"the number of ranks must be >= 1, got {nranks}")
    if nranks > nlat * nlon:
        raise ValueError(
            f"{nranks} ranks cannot each own a column of a {nlat}x{nlon} grid ({nlat * nlon} columns); "
            f"use at most {nlat * nlon} ranks"
        )
    best = None
    for plat in range(1, nranks + 1):
        if nranks % plat:
            continue
        plon = nranks // plat
        if plat > nlat or plon > nlon:
            continue
        key = (math.ceil(nlat / plat) + math.ceil(nlon / plon), -plon)
        if best is None or key < best[0]:
            best = (key, (plat, plon))
    if best is None:
        raise ValueError(
            f"no Cartesian layout of {nranks} ranks fits a {nlat}x{nlon} grid without empty tiles "
            f"(every plat*plon={nranks} has plat > {nlat} or plon > {nlon}); choose another rank count "
            "or give tile bounds"
        )
    return best[1]


@dataclass(frozen=True)
class Decomposition:
    """The tiles of all ranks; ``tiles[r]`` belongs to rank ``r``.

    Build with :meth:`cartesian` or :meth:`from_bounds`; the constructor
    checks that the tiles cover the grid exactly once.
    """

    nlat: int
    nlon: int
    tiles: tuple[Tile, ...]

    def __post_init__(self):
        object.__setattr__(self, "tiles", tuple(self.tiles))
        if self.nlat < 1 or self.nlon < 1:
            raise ValueError(f"grid shape must be positive, got nlat={self.nlat}, nlon={self.nlon}")
        if not self.tiles:
            raise ValueError("a decomposition needs at least one tile")
        for r, t in enumerate(self.tiles):
            if t.rank != r:
                raise ValueError(f"tiles must be in rank order: tiles[{r}] belongs to rank {t.rank}")
        _check_cover(self.nlat, self.nlon, self.tiles)

    # -- construction -----------------------------------------------------
    @classmethod
    def cartesian(cls, nlat: int, nlon: int, nranks: int, layout: Sequence[int] = (0, 0)) -> "Decomposition":
        """``plat x plon`` tiles, ranks row-major over (latitude band, longitude band).

        ``layout=(0, 0)`` lets :func:`choose_layout` pick; ``(plat, 0)`` or
        ``(0, plon)`` fixes one factor and derives the other.
        """
        if len(layout) != 2:
            raise ValueError(f"layout must be (plat, plon), got {tuple(layout)}")
        plat, plon = (int(x) for x in layout)
        if plat < 0 or plon < 0:
            raise ValueError(f"layout entries must be >= 0 (0 = choose), got layout=({plat}, {plon})")
        if nranks < 1:
            raise ValueError(f"the number of ranks must be >= 1, got {nranks}")
        if plat == 0 and plon == 0:
            plat, plon = choose_layout(nlat, nlon, nranks)
        elif plat == 0 or plon == 0:
            given = plat or plon
            if nranks % given:
                raise ValueError(
                    f"layout=({plat}, {plon}): {nranks} ranks are not divisible by {given}; "
                    f"give a factor of {nranks} or layout=(0, 0)"
                )
            plat, plon = (nranks // plon, plon) if plat == 0 else (plat, nranks // plat)
        if plat * plon != nranks:
            raise ValueError(
                f"layout ({plat}, {plon}) has {plat * plon} tiles but there are {nranks} ranks; "
                f"plat * plon must equal the number of ranks"
            )
        if plat > nlat:
            raise ValueError(
                f"layout ({plat}, {plon}) splits {nlat} latitudes into {plat} bands: more bands than rows; "
                f"use plat <= {nlat}"
            )
        if plon > nlon:
            raise ValueError(
                f"layout ({plat}, {plon}) splits {nlon} longitudes into {plon} bands: more bands than "
                f"columns; use plon <= {nlon}"
            )
        lat_edges = np.concatenate([[0], np.cumsum(split_sizes(nlat, plat))])
        lon_edges = np.concatenate([[0], np.cumsum(split_sizes(nlon, plon))])
        tiles = [
            Tile(pj * plon + pi, int(lat_edges[pj]), int(lat_edges[pj + 1]), int(lon_edges[pi]), int(lon_edges[pi + 1]))
            for pj in range(plat)
            for pi in range(plon)
        ]
        return cls(nlat, nlon, tuple(tiles))

    @classmethod
    def from_bounds(cls, nlat: int, nlon: int, bounds_per_rank: Sequence[Sequence[int]], *,
                    one_based: bool = False) -> "Decomposition":
        """Tiles given by a host: ``bounds_per_rank[r] = (lat0, lat1, lon0, lon1)``, 0-based, half-open.

        Raises ``ValueError`` naming the rank for bounds outside the grid or
        empty tiles, and listing the cells for overlaps and holes.  ``one_based``:
        the overlap/hole message speaks the C API's terms (1-based inclusive
        ``lon_start:lon_end, lat_start:lat_end`` per rank, cells as ``(lon, lat)``).
        """
        if one_based:
            _check_cover_one_based(nlat, nlon, [tuple(int(x) for x in b) for b in bounds_per_rank])
        tiles = []
        for r, b in enumerate(bounds_per_rank):
            b = tuple(int(x) for x in b)
            if len(b) != 4:
                raise ValueError(f"rank {r}: bounds must be (lat0, lat1, lon0, lon1), got {b}")
            lat0, lat1, lon0, lon1 = b
            if not (0 <= lat0 < lat1 <= nlat and 0 <= lon0 < lon1 <= nlon):
                raise ValueError(
                    f"rank {r}: tile bounds (lat0, lat1, lon0, lon1)={b} are empty or outside the {nlat}x{nlon} "
                    f"grid; need 0 <= lat0 < lat1 <= {nlat} and 0 <= lon0 < lon1 <= {nlon} "
                    "(0-based, half-open)"
                )
            tiles.append(Tile(r, lat0, lat1, lon0, lon1))
        return cls(nlat, nlon, tuple(tiles))

    # -- queries ----------------------------------------------------------
    @property
    def nranks(self) -> int:
        return len(self.tiles)

    @property
    def ncol(self) -> int:
        return self.nlat * self.nlon

    def owner_map(self) -> np.ndarray:
        """``[nlat, nlon]`` int64: the rank owning every cell (read-only)."""
        return _owner_map(self.nlat, self.nlon, tuple(t.bounds for t in self.tiles))

    def owner_of(self, j: int, i: int) -> int:
        """Rank that owns cell ``(j, i)``."""
        if not (0 <= j < self.nlat and 0 <= i < self.nlon):
            raise IndexError(f"cell ({j}, {i}) is outside the {self.nlat}x{self.nlon} grid")
        return int(self.owner_map()[j, i])

    def local_columns(self, rank: int) -> np.ndarray:
        """``[n_local]`` int64 global flat indices ``j * nlon + i`` of ``rank``'s columns, row-major in the tile."""
        if not 0 <= rank < self.nranks:
            raise IndexError(f"rank {rank} is not in this decomposition of {self.nranks} ranks")
        t = self.tiles[rank]
        j = np.arange(t.lat0, t.lat1, dtype=np.int64)[:, None]
        i = np.arange(t.lon0, t.lon1, dtype=np.int64)[None, :]
        return (j * self.nlon + i).reshape(-1)

    def describe(self) -> str:
        return "\n".join(str(t) for t in self.tiles)


def decomposition_from_host(comm: Any, nlat: int, nlon: int, bounds: Sequence[int]) -> Decomposition:
    """The decomposition when each rank passes only its own ``(lat0, lat1, lon0, lon1)``.

    Collective over ``comm`` (one ``allgather``); every rank builds the same
    :class:`Decomposition`, so bad bounds raise the same error on every rank.
    """
    mine = tuple(int(x) for x in bounds)
    return Decomposition.from_bounds(nlat, nlon, comm.allgather(mine))


def _check_cover(nlat: int, nlon: int, tiles: Sequence[Tile]) -> None:
    count = np.zeros((nlat, nlon), dtype=np.int64)
    for t in tiles:
        if not (0 <= t.lat0 < t.lat1 <= nlat and 0 <= t.lon0 < t.lon1 <= nlon):
            raise ValueError(f"tile of {t} is empty or outside the {nlat}x{nlon} grid")
        count[t.lat0 : t.lat1, t.lon0 : t.lon1] += 1
    problems = []
    over = np.argwhere(count > 1)
    if len(over):
        cells = [tuple(int(x) for x in c) for c in over[:8]]
        j, i = cells[0]
        ranks = [t.rank for t in tiles if t.contains(j, i)]
        problems.append(
            f"{len(over)} cell(s) owned by more than one rank, e.g. (j, i)={cells}"
            f"{' ...' if len(over) > 8 else ''}; cell {cells[0]} is in the tiles of ranks {ranks}"
        )
    holes = np.argwhere(count == 0)
    if len(holes):
        cells = [tuple(int(x) for x in c) for c in holes[:8]]
        problems.append(
            f"{len(holes)} cell(s) owned by no rank, e.g. (j, i)={cells}{' ...' if len(holes) > 8 else ''}"
        )
    if problems:
        raise ValueError(
            f"the tiles do not cover the {nlat}x{nlon} grid exactly once: " + "; ".join(problems)
            + "; fix the tile bounds (0-based, half-open (lat0, lat1, lon0, lon1))"
        )


def _check_cover_one_based(nlat: int, nlon: int, bounds: Sequence[tuple[int, ...]]) -> None:
    """Overlaps and holes of 0-based half-open host bounds, reported as the host passed them (1-based inclusive)."""
    count = np.zeros((nlat, nlon), dtype=np.int64)
    for b in bounds:
        if len(b) != 4 or not (0 <= b[0] < b[1] <= nlat and 0 <= b[2] < b[3] <= nlon):
            return  # reported by from_bounds with its rank
        count[b[0]:b[1], b[2]:b[3]] += 1
    problems = []
    for what, cells in (("owned by more than one rank", np.argwhere(count > 1)),
                        ("owned by no rank", np.argwhere(count == 0))):
        if len(cells):
            shown = [(int(i) + 1, int(j) + 1) for j, i in cells[:8]]
            problems.append(f"{len(cells)} cell(s) {what}, e.g. (lon, lat)={shown}{' ...' if len(cells) > 8 else ''}")
            if what.startswith("owned by more"):
                j, i = (int(v) for v in cells[0])
                ranks = [r for r, b in enumerate(bounds) if b[0] <= j < b[1] and b[2] <= i < b[3]]
                problems[-1] += f"; cell (lon, lat)={shown[0]} is in the tiles of ranks {ranks}"
    if problems:
        tiles = "; ".join(f"rank {r}: lon {b[2] + 1}:{b[3]}, lat {b[0] + 1}:{b[1]}" for r, b in enumerate(bounds))
        raise ValueError(f"the tiles do not cover the {nlon} x {nlat} (lon x lat) grid exactly once: "
                         + "; ".join(problems) + f" (tiles as passed, 1-based inclusive: {tiles}); fix the "
                         "tile bounds lon_start, lon_end, lat_start, lat_end (1-based, inclusive)")


@functools.lru_cache(maxsize=32)
def _owner_map(nlat: int, nlon: int, bounds: tuple[tuple[int, int, int, int], ...]) -> np.ndarray:
    owner = np.empty((nlat, nlon), dtype=np.int64)
    for r, (lat0, lat1, lon0, lon1) in enumerate(bounds):
        owner[lat0:lat1, lon0:lon1] = r
    owner.setflags(write=False)
    return owner
