"""Zonal means of latitude rows that ranks may split, the same bits on any decomposition.

A zonal mean is a sum over a whole latitude row, and under MPI a row may be
split between ranks. :class:`RowMeans` takes a set of global rows and a range
of channels. Every domain gathers, for each of those rows, the float64 values
at its LOCAL columns in that row, padded with exact zeros to the longest such
row on the rank (``[B, rows * channels, width]``; ``width`` may differ between
ranks and be 0 on a rank that holds none of the rows), and sums them over the
last axis with the domain's reproducible sum (:meth:`mlscam.model.engine.Domain.sum`:
serial :func:`mlscam.fixedsum.fixed_sum`, MPI an all-reduce over ranks of the
same exact integers), then divides by ``nlon``. Every rank passes the same
leading shape and the exact integer sums do not depend on the decomposition
(zeros add nothing), so the means are the same bits on any number of ranks.
Means are computed from detached values (constants for autograd).

Users: the polar wind fixer (:mod:`mlscam.model.polar`: ``[v]`` of the rows next
to the poles) and the eddy backscatter of the climate correction
(:mod:`mlscam.model.correction`: every row, every channel).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from mlscam.grid import LatLonGrid

if TYPE_CHECKING:
    from .engine import Domain

__all__ = ["RowMeans"]


class RowMeans:
    """The zonal means of channels ``start:stop`` over the global latitude ``rows`` (any order) of states
    ``x [B, ncol, S]`` on ``domain`` (its columns, global indices ``domain.columns``)."""

    def __init__(self, grid: LatLonGrid, domain: "Domain", rows, start: int, stop: int, *, device=None):
        rows = np.asarray(rows, dtype=np.int64)
        self.domain, self.nlon = domain, int(grid.nlon)
        self.start, self.stop = int(start), int(stop)
        self.nch = self.stop - self.start
        row = np.asarray(domain.columns) // grid.nlon  # [ncol]: the global row of every local column
        slot = np.full(row.shape, len(rows), dtype=np.int64)  # len(rows): a column of no listed row (a zero)
        members = []
        for r, j in enumerate(rows):
            slot[row == j] = r
            members.append(np.flatnonzero(row == j))
        width = max((len(m) for m in members), default=0)
        index = np.zeros((len(rows), width), dtype=np.int64)
        member = np.zeros((len(rows), width), dtype=bool)
        for r, m in enumerate(members):
            index[r, :len(m)], member[r, :len(m)] = m, True
        self.nrows, self.width = len(rows), width
        self.index = torch.as_tensor(index.reshape(-1), device=device)  # [rows * width]
        self.member = torch.as_tensor(member.reshape(1, -1, 1), device=device)  # [1, rows * width, 1]
        self.slot = torch.as_tensor(slot, dtype=torch.int64, device=device)  # [ncol]

    def to(self, device=None) -> "RowMeans":
        self.index, self.member, self.slot = self.index.to(device), self.member.to(device), self.slot.to(device)
        return self

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The zonal means of ``x [B, ncol, S]``: float64 ``[B, rows, channels]`` (no gradient; the same bits on
        any decomposition; NaN where a value of the row is not finite or out of the reproducible sum's range).
        Collective under MPI: every rank calls it, with the same ``B``."""
        b = x.shape[0]
        v = x.detach()[:, self.index, self.start:self.stop].to(torch.float64)  # [B, rows * width, nch]
        v = torch.where(self.member, v, torch.zeros((), dtype=v.dtype, device=v.device))  # padding: exact 0
        values = v.reshape(b, self.nrows, self.width, self.nch).transpose(2, 3)  # [B, rows, nch, width]
        total = self.domain.sum(values.reshape(b, self.nrows * self.nch, self.width))  # [B, rows * nch]
        return total.reshape(b, self.nrows, self.nch) / self.nlon

    def per_column(self, mean: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``mean [B, rows, channels]`` (:meth:`mean`) at every local column, ``[B, ncol, channels]`` in ``dtype``
        (exact zeros at the columns of rows not listed)."""
        mean = mean.detach().to(dtype)
        pad = torch.cat([mean, mean.new_zeros(mean.shape[0], 1, mean.shape[2])], 1)  # [B, rows + 1, nch]
        return pad[:, self.slot]
