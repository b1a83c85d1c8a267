"""``DataSource``: many NetCDF files as one lazily read, canonical time series.

``open_source(data_cfg)`` expands ``data.files`` (globs, sorted by name),
checks every file against the first (variables, levels, grid, calendar) and
the concatenated time axis against the model step, and reads states in the
canonical layout: ``[..., lat, lon, n_state]`` float32, latitude ascending,
longitude from 0 east, state channels in :class:`mlscam.layout.ColumnLayout`
order.
"""
from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import numpy as np

from mlscam.config import DataConfig
from mlscam.data.errors import DataError
from mlscam.data.naming import name_maps
from mlscam.data.ncfile import NcFile
from mlscam.data.tiles import tile_cells
from mlscam.data.timeaxis import check_time_axis
from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout

__all__ = ["DataSource", "open_source", "expand_files", "check_compatible", "name_maps"]

LEVEL_RTOL = 1e-5
GRID_ATOL = 1e-6


def expand_files(patterns: Sequence[str]) -> list[str]:
    """Expand globs; each pattern's matches sorted by name, duplicates dropped."""
    out: list[str] = []
    for p in patterns:
        matches = sorted(glob.glob(p)) if glob.has_magic(p) else ([p] if os.path.exists(p) else [])
        if not matches:
            raise DataError(f"no file matches {p!r} (data.files); check the path")
        out += [m for m in matches if m not in out]
    if not out:
        raise DataError("data.files is empty; list NetCDF files or globs")
    return out


def _levels_equal(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and np.allclose(a, b, rtol=LEVEL_RTOL, atol=1e-8)


def _grids_equal(a: LatLonGrid, b: LatLonGrid) -> bool:
    return a.shape == b.shape and np.allclose(a.lat, b.lat, atol=GRID_ATOL) and np.allclose(a.lon, b.lon, atol=GRID_ATOL)


def _describe_grid(g: LatLonGrid) -> str:
    return f"{g.nlat}x{g.nlon} lat {np.round(g.lat, 4).tolist()} lon {np.round(g.lon, 4).tolist()}"


def check_compatible(source: "DataSource", layout: ColumnLayout, grid: LatLonGrid, dt_seconds: float) -> None:
    """Raise :class:`DataError` unless ``source`` has this layout, grid and step (e.g. a checkpoint's)."""
    have = source.layout
    if have.variables_3d != layout.variables_3d or have.variables_2d != layout.variables_2d:
        raise DataError(f"the data's variables differ from the expected layout:\n{have.describe_difference(layout)}")
    if not _levels_equal(have.levels, layout.levels):
        raise DataError(
            f"the data's levels differ from the expected layout: data has {len(have.levels)} levels "
            f"{list(have.levels)}, expected {len(layout.levels)} levels {list(layout.levels)}"
        )
    if not _grids_equal(source.grid, grid):
        raise DataError(f"the data's grid differs from the expected grid: data {_describe_grid(source.grid)}; expected {_describe_grid(grid)}")
    if abs(source.dt_seconds - dt_seconds) > 1e-3:
        raise DataError(f"the data step is {source.dt_seconds:g} s but {dt_seconds:g} s is expected; set data.time_step_hours to match")


class DataSource:
    """Files concatenated in time, read lazily in the canonical layout.

    Attributes:
      grid, layout, times (cftime datetimes), time_units, calendar, dt_seconds, paths,
      level_source (how the first file's levels were read: ``'hybrid'`` or ``'coordinate'``),
      lat_descending (the first file stores latitude north to south; reads are south to north).
    """

    def __init__(self, files: list[NcFile], layout: ColumnLayout, dt_seconds: float, *, independent: bool = False):
        self.files = files
        self.independent = bool(independent)
        self.layout = layout
        self.dt_seconds = float(dt_seconds)
        first = files[0]
        self.grid: LatLonGrid = first.grid
        self.time_units, self.calendar = first.time_units, first.calendar
        self.level_source, self.lat_descending = first.level_source, first.lat_descending
        self.times = [t for f in files for t in f.times]
        self.paths = [f.path for f in files]
        self._starts = np.cumsum([0] + [f.ntime for f in files])

    @property
    def ntime(self) -> int:
        return len(self.times)

    @property
    def segments(self) -> list[tuple[int, int]]:
        """``[(start, stop)]`` of the continuous trajectories in the global time index: one per file with
        ``independent`` files, else one for all (the files continue each other)."""
        if not self.independent:
            return [(0, self.ntime)]
        return [(int(a), int(b)) for a, b in zip(self._starts[:-1], self._starts[1:]) if b > a]

    def window_starts(self, steps: int) -> np.ndarray:
        """The times ``t`` whose window ``t .. t+steps`` lies inside one trajectory (ascending, int64)."""
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        parts = [np.arange(a, b - steps, dtype=np.int64) for a, b in self.segments if b - a > steps]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def continues(self, t: int) -> bool:
        """Whether time ``t + 1`` continues the trajectory of time ``t`` (False at the end of a file of
        independent files and at the last time)."""
        return any(a <= t and t + 1 < b for a, b in self.segments)

    def _file_of(self, t: int) -> tuple[int, int]:
        if not 0 <= t < self.ntime:
            raise IndexError(f"time {t} is outside 0..{self.ntime - 1}")
        n = int(np.searchsorted(self._starts, t, side="right")) - 1
        return n, int(t - self._starts[n])

    def locate(self, t: int) -> tuple[str, int]:
        """The file holding global time index ``t`` and the index of that time within the file."""
        n, local = self._file_of(t)
        return self.paths[n], local

    def describe_time(self, t: int) -> str:
        """Global time ``t`` as its file sees it: ``"time index 2 of the file (time = 12 hours since
        2000-01-01 00:00:00, i.e. 2000-01-01 12:00:00)"`` (the stored value, its units and the date)."""
        n, local = self._file_of(t)
        f = self.files[n]
        return f"time index {local} of the file (time = {f.time_values[local]:g} {f.time_units}, i.e. {f.times[local]})"

    # -- reads ------------------------------------------------------------------
    def _read(self, t: int, k: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if k < 1 or t < 0 or t + k > self.ntime:
            raise IndexError(f"times {t}..{t + k - 1} are outside 0..{self.ntime - 1}")
        out = []
        for n, f in enumerate(self.files):
            a, b = max(t, self._starts[n]), min(t + k, self._starts[n + 1])
            if a < b:
                out.append(f.read(a - self._starts[n], b - self._starts[n], rows, cols, list(self.layout.variables)))
        return np.concatenate(out, axis=0)

    def read(self, t: int) -> np.ndarray:
        """The state at time index ``t``: ``[nlat, nlon, n_state]`` float32."""
        return self.read_window(t, 1)[0]

    def read_window(self, t: int, k: int) -> np.ndarray:
        """States at times ``t .. t+k-1``: ``[k, nlat, nlon, n_state]`` float32."""
        return self._read(t, k, np.arange(self.grid.nlat), np.arange(self.grid.nlon))

    def read_tile_window(self, t: int, k: int, lat_range: tuple[int, int], lon_range: tuple[int, int], halo: int = 1) -> np.ndarray:
        """Tile plus halo at times ``t .. t+k-1``: ``[k, nlat_t + 2 halo, nlon_t + 2 halo, n_state]``.

        Halo cells follow :func:`mlscam.data.tiles.tile_cells` (periodic longitude,
        pole fold).  Only the needed rows and columns are read from the files.
        """
        jj, ii, _ = tile_cells(self.grid.nlat, self.grid.nlon, lat_range, lon_range, halo)
        out = np.empty((k, *jj.shape, self.layout.n_state), np.float32)
        groups: dict[tuple[int, ...], list[int]] = {}
        for a in range(jj.shape[0]):  # every output row is one global row; rows share column lists
            groups.setdefault(tuple(ii[a]), []).append(a)
        for cols, out_rows in groups.items():
            out[:, out_rows] = self._read(t, k, jj[out_rows, 0], np.asarray(cols))
        return out

    def read_tile(self, t: int, lat_range: tuple[int, int], lon_range: tuple[int, int], halo: int = 1) -> np.ndarray:
        """Tile plus halo at time ``t``: ``[nlat_t + 2 halo, nlon_t + 2 halo, n_state]`` float32."""
        return self.read_tile_window(t, 1, lat_range, lon_range, halo)[0]

    def static(self, lat_range: tuple[int, int] | None = None, lon_range: tuple[int, int] | None = None, halo: int = 0) -> np.ndarray:
        """Static features (``layout.static_features`` order): ``[rows, cols, n_static]`` float32.

        Without ranges: the whole grid ``[nlat, nlon, n_static]``.
        """
        lat_range = lat_range or (0, self.grid.nlat)
        lon_range = lon_range or (0, self.grid.nlon)
        jj, ii, _ = tile_cells(self.grid.nlat, self.grid.nlon, lat_range, lon_range, halo)
        return self.grid.static_stack(self.layout.static_features)[jj, ii].astype(np.float32)

    def check_compatible(self, layout: ColumnLayout, grid: LatLonGrid, dt_seconds: float) -> None:
        """Raise :class:`DataError` unless the files match ``layout``, ``grid`` and ``dt_seconds`` (e.g. a checkpoint's)."""
        check_compatible(self, layout, grid, dt_seconds)

    def close(self) -> None:
        for f in self.files:
            f.close()

    def __enter__(self) -> "DataSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(data_cfg: DataConfig, files: Sequence[str] | None = None, *, states_only: bool = False) -> DataSource:
    """Open ``files`` (default ``data_cfg.files``; globs allowed) as one :class:`DataSource`.

    ``states_only=True`` is for files read one time at a time (initial states,
    truth samples): times must still increase, but their spacing need not be
    the model step.
    """
    paths = expand_files(files if files is not None else data_cfg.files)
    names_3d, names_2d = name_maps(data_cfg)
    opened: list[NcFile] = []
    try:
        for p in paths:
            f = NcFile(p, names_3d, names_2d, data_cfg.level_source)
            opened.append(f)
            _check_same(opened[0], f)
        first = opened[0]
        layout = ColumnLayout(
            variables_3d=tuple(names_3d), variables_2d=tuple(names_2d), levels=first.levels,
            units=first.units, static_features=tuple(data_cfg.static_features),
        )
        dt = float(data_cfg.time_step_hours) * 3600.0
        if dt <= 0:
            raise DataError(f"data.time_step_hours must be > 0, got {data_cfg.time_step_hours}")
        step = None if states_only else dt
        if data_cfg.independent_files:
            for f in opened:  # each file its own trajectory: its own time axis is checked
                check_time_axis(list(f.times), [f.path] * len(f.times), step)
        else:
            times = [t for f in opened for t in f.times]
            origins = [f.path for f in opened for _ in f.times]
            check_time_axis(times, origins, step)
        return DataSource(opened, layout, dt, independent=data_cfg.independent_files)
    except Exception:
        for f in opened:
            f.close()
        raise


def _check_same(first: NcFile, f: NcFile) -> None:
    if f is first:
        return
    if not _levels_equal(first.levels, f.levels):
        raise DataError(
            f"levels differ between files: {first.path} has {len(first.levels)} levels {list(first.levels)}, "
            f"{f.path} has {len(f.levels)} levels {list(f.levels)}"
        )
    if not _grids_equal(first.grid, f.grid):
        raise DataError(f"grids differ between files: {first.path}: {_describe_grid(first.grid)}; {f.path}: {_describe_grid(f.grid)}")
    if first.calendar != f.calendar:
        raise DataError(f"calendars differ between files: {first.path} uses {first.calendar!r}, {f.path} uses {f.calendar!r}")
