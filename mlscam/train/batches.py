"""Batches for the training loop, seeded by (seed, step).

A batch depends only on ``(seed, step)``, never on what was drawn before, so
an exact resume needs no sampler state, and every rank of a tile-parallel run
draws the same time indices.

``GlobalBatches`` and ``TileBatches`` draw the serial batches; the trainer reads
them through a tile context (``mlscam.parallel.context.TileContext``; one rank
= serial): :class:`TiledGlobalBatches` reads only the rank's own tile at the
serial times, :class:`OwnedTileBatches` keeps the drawn single-column tiles
whose centre the rank owns. On one rank both are the serial batches.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["GlobalBatches", "TileBatches", "TiledGlobalBatches", "OwnedTileBatches", "batch_rng", "mirror_channels"]


def batch_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """The generator of batch ``step`` (``stream`` separates training from validation)."""
    return np.random.default_rng([int(seed), int(stream), int(step)])


class GlobalBatches:
    """Whole-globe windows ``x [B, K+1, nlat, nlon, S]`` at random start times."""

    def __init__(self, source, *, steps: int, batch_size: int, seed: int, stream: int = 0):
        self.source, self.steps, self.batch_size, self.seed, self.stream = source, steps, batch_size, seed, stream
        self.starts = source.window_starts(steps)  # windows never span two independent files
        self.n_start = len(self.starts)
        if self.n_start < 1:
            longest = max(b - a for a, b in source.segments)
            raise ValueError(
                f"the data have {source.ntime} times (longest trajectory {longest}), too few for windows of "
                f"{steps + 1} (train.rollout_steps={steps}, with the pushforward steps); give more data or fewer "
                "rollout steps"
            )

    def draw(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """``(times, mirrored)`` of batch ``step``: window starts, and a coin per window (drawn after the
        times, so the times do not depend on whether mirroring is used)."""
        rng = batch_rng(self.seed, step, self.stream)
        times = self.starts[rng.integers(0, self.n_start, size=self.batch_size)]
        return times, rng.random(self.batch_size) < 0.5

    def times(self, step: int) -> np.ndarray:
        return self.draw(step)[0]

    def __call__(self, step: int) -> dict:
        xs = [self.source.read_window(int(t), self.steps + 1) for t in self.times(step)]
        return {"x": torch.from_numpy(np.stack(xs).astype(np.float32, copy=False))}


def mirror_channels(layout, names) -> np.ndarray:
    """The state channels of ``names`` (variables whose sign flips in a north-south mirror)."""
    missing = [n for n in names if n not in layout.variables]
    if missing:
        raise ValueError(f"&train mirror_negate names {missing}, not in the column layout {list(layout.variables)}; "
                         "give the model names of the meridional wind (e.g. 'v')")
    return np.concatenate([np.arange(layout.n_state)[layout.slice_of(n)] for n in names]).astype(np.int64)


class TileBatches:
    """3x3 tiles at t with the centre column at t+1: ``x_tile [B, 9, S]``, ``static_tile [B, 9, F]``,
    ``crossed [B, 9]``, ``x_next [B, S]``, drawn from a tile store (prepared shards or on-the-fly)."""

    def __init__(self, store, *, batch_size: int, seed: int, stream: int = 0):
        self.store, self.batch_size, self.seed, self.stream = store, batch_size, seed, stream
        if len(store) < 1:
            raise ValueError("the single-column tile store is empty; run python -m mlscam.data.prepare_columns first")

    def __call__(self, step: int) -> dict:
        idx = batch_rng(self.seed, step, self.stream).integers(0, len(self.store), size=self.batch_size)
        return self.store.gather(np.sort(idx))


class TiledGlobalBatches:
    """The serial ``GlobalBatches`` times, own tile only: ``x [B, K+1, nlat_tile, nlon_tile, S]`` float32.

    With time groups, group ``g`` of ``G`` takes the times ``[g::G]`` of every batch.
    """

    def __init__(self, source, tile, *, steps: int, batch_size: int, seed: int, stream: int = 0,
                 negate: np.ndarray | None = None):
        if batch_size < tile.groups:
            raise ValueError(f"batch_size={batch_size} is smaller than the {tile.groups} time groups: some group "
                             f"would get no time; use &train batch_size >= {tile.groups}")
        self.serial = GlobalBatches(source, steps=steps, batch_size=batch_size, seed=seed, stream=stream)
        self.source, self.steps, self.tile = source, steps, tile
        self.negate = None if negate is None else np.asarray(negate, dtype=np.int64)  # None: no mirroring

    def draw(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """This rank's ``(times, mirrored)`` of batch ``step``: the serial ones, ``[group::groups]``; ``mirrored``
        is all False without mirroring."""
        times, flips = self.serial.draw(step)
        if self.negate is None:
            flips = np.zeros_like(flips)
        g = slice(self.tile.group, None, self.tile.groups)
        return times[g], flips[g]

    def times(self, step: int) -> np.ndarray:
        """This rank's times of batch ``step``: the serial ones, ``[group::groups]``."""
        return self.draw(step)[0]

    def _window(self, start: int, mirrored: bool) -> np.ndarray:
        t, nlat = self.tile.tile, self.source.grid.nlat
        if not mirrored:
            return self.source.read_tile_window(start, self.steps + 1, (t.lat0, t.lat1), (t.lon0, t.lon1), halo=0)
        # the mirror image of the tile's rows j is the data's rows nlat-1-j, flipped, with the negated variables
        x = self.source.read_tile_window(start, self.steps + 1, (nlat - t.lat1, nlat - t.lat0), (t.lon0, t.lon1),
                                         halo=0)[:, ::-1].copy()
        x[..., self.negate] *= -1.0
        return x

    def __call__(self, step: int) -> dict:
        xs = [self._window(int(s), bool(f)) for s, f in zip(*self.draw(step))]
        return {"x": torch.from_numpy(np.stack(xs).astype(np.float32, copy=False))}


class OwnedTileBatches:
    """``single_column`` on a rank: the serial batch of tile indices (``TileBatches``' rule), then only
    the tiles whose centre column this rank owns.  Local batches differ in size (about ``B x`` the
    rank's share of the columns, possibly 0); their union over ranks is the serial batch."""

    def __init__(self, store, tile, *, batch_size: int, seed: int, stream: int = 0, n_state: int, n_static: int):
        if len(store) < 1:
            raise ValueError("the single-column tile store is empty; run python -m mlscam.data.prepare_columns first")
        self.store, self.tile = store, tile
        self.batch_size, self.seed, self.stream = batch_size, seed, stream
        self.n_state, self.n_static = n_state, n_static
        self._owner = tile.decomposition.owner_map().reshape(-1)

    def indices(self, step: int) -> np.ndarray:
        """The tile indices of this rank in batch ``step`` (sorted)."""
        idx = np.sort(batch_rng(self.seed, step, self.stream).integers(0, len(self.store), size=self.batch_size))
        idx = idx[self.tile.group::self.tile.groups]
        return idx[self._owner[self.store.centres(idx)] == self.tile.rank]

    def __call__(self, step: int) -> dict:
        idx = self.indices(step)
        if idx.size:
            batch = self.store.gather(idx)
            return {k: batch[k] for k in ("x_tile", "static_tile", "crossed", "x_next")}
        return {"x_tile": torch.zeros(0, 9, self.n_state), "static_tile": torch.zeros(0, 9, self.n_static),
                "crossed": torch.zeros(0, 9, dtype=torch.bool), "x_next": torch.zeros(0, self.n_state)}
