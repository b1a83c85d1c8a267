"""Batches for the training loop, seeded by (seed, step).

A batch depends only on ``(seed, step)``, never on what was drawn before, so
an exact resume needs no sampler state, and every rank of a tile-parallel run
draws the same time indices.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["GlobalBatches", "TileBatches", "batch_rng"]


def batch_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """The generator of batch ``step`` (``stream`` separates training from validation)."""
    return np.random.default_rng([int(seed), int(stream), int(step)])


class GlobalBatches:
    """Whole-globe windows ``x [B, K+1, nlat, nlon, S]`` at random start times."""

    def __init__(self, source, *, steps: int, batch_size: int, seed: int, stream: int = 0):
        self.source, self.steps, self.batch_size, self.seed, self.stream = source, steps, batch_size, seed, stream
        self.n_start = source.ntime - steps
        if self.n_start < 1:
            raise ValueError(
                f"the data have {source.ntime} times, too few for windows of {steps + 1} "
                f"(train.rollout_steps={steps}); give more data or fewer rollout steps"
            )

    def times(self, step: int) -> np.ndarray:
        return batch_rng(self.seed, step, self.stream).integers(0, self.n_start, size=self.batch_size)

    def __call__(self, step: int) -> dict:
        xs = [self.source.read_window(int(t), self.steps + 1) for t in self.times(step)]
        return {"x": torch.from_numpy(np.stack(xs).astype(np.float32, copy=False))}


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
