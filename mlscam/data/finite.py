"""Finite data: the one report of a NaN/Inf in the files, and a chunked scan of a whole source.

:func:`check_states` raises a :class:`DataError` naming the file, the variable
(and level), the time (index in the file, stored value, date) and the cell of
the first non-finite value of states just read, with the fix;
:func:`check_finite` reads a whole :class:`DataSource` in chunks of times (a
bounded amount of memory, however long the files) and checks each chunk.
Statistics check the times as they read them; training scans its files before
it starts (``mlscam.train.build``).
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from mlscam.data.errors import DataError
from mlscam.data.source import DataSource

__all__ = ["check_states", "check_finite", "CHUNK_BYTES"]

#: the most bytes of states :func:`check_finite` reads at once
CHUNK_BYTES = 64 * 2**20

FIX = ("fill these values (e.g. from the neighbouring times), or shorten the data to the times before or after "
       "this one (python -m mlscam.data.subset FILE --times ... --output NEW.nc keeps the times listed; the time "
       "axis must stay without gaps)")


def check_states(source: DataSource, t0: int, x: np.ndarray, *, needs: str, outcome: str) -> None:
    """Raise :class:`DataError` if states ``x [k, nlat, nlon, n_state]`` (times ``t0 .. t0+k-1`` of ``source``)
    hold a NaN/Inf: the message names the first one, then says ``"{needs} finite data: <the fix>. {outcome}"``."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    dt, j, i, k = (int(v) for v in np.argwhere(bad)[0])
    t = t0 + dt
    path, _ = source.locate(t)
    name, level = source.layout.feature_of(k)
    count = int(bad[dt][..., source.layout.slice_of(name)].sum())
    what = name if level is None else f"{name} at level index {level} (sigma {source.layout.levels[level]:g})"
    grid = source.grid
    raise DataError(
        f"{path}: {what} has non-finite values (NaN/Inf) at {source.describe_time(t)}: {count} value(s) of "
        f"{name} at that time, the first ({x[dt, j, i, k]}) at lat {grid.lat_array()[j]:g}, "
        f"lon {grid.lon_array()[i]:g}; {needs} finite data: {FIX}. {outcome}")


def check_finite(source: DataSource, *, needs: str, outcome: str, progress: bool = False,
                 max_bytes: int = CHUNK_BYTES) -> None:
    """Read every time of ``source`` (at most ``max_bytes`` of states at once) and :func:`check_states` them."""
    per_time = source.grid.ncol * source.layout.n_state * 4  # float32
    k = max(1, int(max_bytes) // per_time)
    starts = range(0, source.ntime, k)
    for t in tqdm(starts, desc="check data", disable=not progress, unit="chunk"):
        n = min(k, source.ntime - t)
        check_states(source, t, source.read_window(t, n), needs=needs, outcome=outcome)
