"""The reproducible global sum: the same float64 bits on any number of ranks, in any order.

The idea of CESM's ``shr_reprosum``: every value becomes an integer at one
fixed global scale, integers add exactly (so order and decomposition cannot
matter), and the exact total is converted back to float64 once. The fixed-point
arithmetic is :mod:`mlscam.fixedsum` (below this package, so the engine's serial
sum gives the same bits without importing MPI); this module adds the sum over
ranks.

Precision and range (:mod:`mlscam.fixedsum`): every value is rounded to the
nearest multiple of ``2**-64`` (about 5.4e-20; values ``>= 2**-12`` in magnitude
are exact), values must satisfy ``|v| < 2**64`` (about 1.8e19), and one sum
takes at most ``2**31 - 1`` values over all ranks. The result is the exact sum
of the rounded values, converted to float64 with an error below one unit in the
last place. A NaN, an Inf or an out-of-range value raises
:class:`ReprosumError` (``check=True``) or makes that sum NaN (``check=False``,
what a latent step uses: no rank raises alone and nothing waits for the host).

* :func:`partial_sums` (local): values ``[..., n]`` (numpy or torch) -> exact integer partial
  sums ``[..., NLIMBS + 1]`` int64 per batch member;
* :func:`global_sum` (serial): the sum over the last axis of one process's values;
* :func:`allreduce_partials` / :func:`allreduce_sum` (every rank of an mpi4py, fake or one-rank
  communicator): the partial sums of all ranks added exactly, the same float64 on every rank.

The exchange is one ``allgather`` of each rank's few int64 numbers (lowercase mpi4py:
it works on :class:`~mlscam.parallel.fake.FakeComm` and :class:`~mlscam.parallel.world.SelfComm`
too); a bad value on any rank makes every rank raise the same error, naming the ranks.
Tile-parallel training sums over its spatial communicator with the same call, so no
``torch.distributed`` variant is needed.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mlscam.fixedsum import (LIMIT, MAX_TERMS, NLIMBS, RANGE_BITS, RESOLUTION, RESOLUTION_BITS, ReprosumError,
                             add_partials, bad_count, fixed_sum, partial_sums, to_float, to_int)

__all__ = ["RESOLUTION", "RESOLUTION_BITS", "LIMIT", "RANGE_BITS", "MAX_TERMS", "NLIMBS", "ReprosumError",
           "partial_sums", "add_partials", "bad_count", "to_float", "to_int", "global_sum", "allreduce_partials",
           "allreduce_sum"]


def global_sum(values, *, check: bool = True, what: str = "values") -> torch.Tensor:
    """The reproducible sum over the last axis of ``values [..., n]`` (one process): float64 ``[...]``."""
    return fixed_sum(values, -1, check=check, what=what)


def allreduce_partials(comm: Any, partials: torch.Tensor) -> torch.Tensor:
    """The exact sum over every rank of ``comm`` of ``partials [..., NLIMBS + 1]`` (collective).

    Every rank gets the same integers (on its ``partials``' device); they are added in rank order, which
    for integers is no choice at all. The shapes must agree on every rank.
    """
    return add_partials(_gather(comm, partials)).to(partials.device)


def _gather(comm: Any, partials: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's partial sums, in rank order (one ``allgather``)."""
    parts = comm.allgather(partials.detach().cpu().numpy())
    shapes = {np.shape(p) for p in parts}
    if len(shapes) != 1:
        raise ValueError(f"rank {comm.Get_rank()}: reproducible sum over ranks of different shapes {sorted(shapes)}")
    return [torch.from_numpy(np.asarray(p, dtype=np.int64)) for p in parts]


def allreduce_sum(comm: Any, values, *, check: bool = True, what: str = "values") -> torch.Tensor:
    """The reproducible sum over the last axis of ``values [..., n]`` and over every rank of ``comm``:
    float64 ``[...]`` on ``values``' device, bit for bit the same on every rank and for every decomposition
    (and equal to :func:`global_sum` of all the values on one process).

    Collective. ``check=True``: a bad value on any rank raises :class:`ReprosumError` on every rank (naming
    the ranks that hold them); ``check=False``: those sums are NaN on every rank.
    """
    mine = partial_sums(values)
    parts = _gather(comm, mine)
    if check:
        bad = [r for r, p in enumerate(parts) if int(bad_count(p).sum())]
        if bad:
            n = sum(int(bad_count(parts[r]).sum()) for r in bad)
            raise ReprosumError(f"reproducible sum of {what} over {comm.Get_size()} ranks: {n} value(s) on "
                                f"rank{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))} are not finite or "
                                f"outside |v| < 2**{RANGE_BITS} (= {LIMIT:.3g}); the fixed-point format "
                                f"(resolution 2**-{RESOLUTION_BITS}) cannot hold them")
    return to_float(add_partials(parts)).to(mine.device)

