"""The collective checks of ``Component.init``: checkpoint, coupling interval, decomposition."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mlscam.checkpoint import Checkpoint, file_hash, load_checkpoint
from mlscam.config import Config
from mlscam.grid import LatLonGrid
from mlscam.parallel import Decomposition
from mlscam.status import Status

from .collective import LocalError, collect

__all__ = ["load", "check_interval", "decompose"]


def load(comm: Any, config: Config, grid: LatLonGrid | None) -> tuple[Checkpoint, str]:
    """The checkpoint of ``&rollout checkpoint_path`` (on ``grid`` if given) and its SHA-256, on every rank."""
    path = config.rollout.checkpoint_path

    def read() -> tuple[Checkpoint, str]:
        if not Path(path).is_file():
            raise LocalError(f"checkpoint file not found: {path}; set &rollout checkpoint_path "
                             "(or --checkpoint-path)", Status.FILE)
        ckpt = load_checkpoint(path, grid=grid, allow_other_grid=config.rollout.allow_other_grid)
        return ckpt, file_hash(path)

    return collect(comm, read, "Component.init (checkpoint)", Status.CHECKPOINT)


def check_interval(comm: Any, config: Config, interval: float | None, dt_seconds: float) -> None:
    """The host's coupling interval (or ``&coupler coupling_interval_seconds``; 0/None = no check) must be the step."""
    def check() -> None:
        want = interval if interval not in (None, 0) else config.coupler.coupling_interval_seconds
        if want not in (None, 0) and abs(float(want) - dt_seconds) > 1e-6:
            raise LocalError(
                f"coupling interval {float(want):g} s differs from the checkpoint's step {dt_seconds:g} s "
                f"({config.rollout.checkpoint_path}); call the component every {dt_seconds:g} s of model time "
                "(the emulator cannot take other steps)", Status.INTERVAL)

    collect(comm, check, "Component.init (coupling interval)", Status.INTERVAL)


def decompose(comm: Any, grid: LatLonGrid, layout: tuple[int, int], bounds) -> Decomposition:
    """The decomposition: the Cartesian ``layout`` when ``bounds`` is None, else every rank's host bounds
    ``(lat0, lat1, lon0, lon1)`` (0-based, half-open), gathered and checked to cover the grid once."""
    rank, size = comm.Get_rank(), comm.Get_size()
    all_bounds = None
    if bounds is not None:
        try:
            mine = tuple(int(v) for v in bounds)
        except (TypeError, ValueError):
            mine = None
        all_bounds = comm.allgather(mine)

    def build() -> Decomposition | None:
        if all_bounds is None:
            return Decomposition.cartesian(grid.nlat, grid.nlon, size, layout)
        if all_bounds[rank] is None:
            raise LocalError(f"bounds must be 4 integers (lat0, lat1, lon0, lon1), got {bounds!r}",
                             Status.DECOMPOSITION)
        if any(b is None for b in all_bounds):
            return None  # another rank reports its bad bounds
        return Decomposition.from_bounds(grid.nlat, grid.nlon, all_bounds)

    return collect(comm, build, "Component.init (decomposition)", Status.DECOMPOSITION)
