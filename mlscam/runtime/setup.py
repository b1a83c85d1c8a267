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


def load(comm: Any, config: Config | None, grid: LatLonGrid | None,
         caller_error: LocalError | None = None) -> tuple[Checkpoint, str]:
    """The checkpoint of ``&rollout checkpoint_path`` (on ``grid`` if given) and its SHA-256, on every rank.

    ``caller_error``: the caller's own failure on this rank (``config`` may then be None), agreed here.
    """
    def read() -> tuple[Checkpoint, str]:
        path = config.rollout.checkpoint_path
        if not Path(path).is_file():
            raise LocalError(f"checkpoint file not found: {path}; set &rollout checkpoint_path "
                             "(or --checkpoint-path)", Status.FILE)
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:  # exists but cannot be opened (permissions): a file problem, not a checkpoint one
            raise LocalError(f"checkpoint file cannot be read: {path} ({exc}); make it readable or set "
                             "&rollout checkpoint_path (or --checkpoint-path)", Status.FILE) from None
        # from here on a file that does not load is not a usable checkpoint: MLSCAM_ERR_CHECKPOINT (6)
        ckpt = load_checkpoint(path, grid=grid, allow_other_grid=config.rollout.allow_other_grid)
        return ckpt, file_hash(path)

    return collect(comm, read, "Component.init (checkpoint)", Status.CHECKPOINT, caller_error)


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


_DEFAULT = "default"  # what a rank without bounds contributes to the gathered bounds


def decompose(comm: Any, grid: LatLonGrid, layout: tuple[int, int], bounds, one_based: bool = False
              ) -> Decomposition:
    """The decomposition: the Cartesian ``layout`` when ``bounds`` is None on every rank, else every rank's
    host bounds ``(lat0, lat1, lon0, lon1)`` (0-based, half-open), gathered and checked to cover the grid once.

    Every rank gathers what every rank passed, so bounds on some ranks and None on others is an error
    on every rank (not a hang).  ``one_based``: report overlaps and holes in the C API's 1-based inclusive
    (lon, lat) terms (the bounds themselves are still 0-based half-open)."""
    rank, size = comm.Get_rank(), comm.Get_size()
    if bounds is None:
        mine = _DEFAULT
    else:
        try:
            mine = tuple(int(v) for v in bounds)
        except (TypeError, ValueError):
            mine = None
    all_bounds = comm.allgather(mine)

    def build() -> Decomposition | None:
        defaults = [r for r, b in enumerate(all_bounds) if b == _DEFAULT]
        if len(defaults) == size:
            return Decomposition.cartesian(grid.nlat, grid.nlon, size, layout)
        if defaults:
            if rank != min(defaults):
                return None  # the lowest such rank reports it
            raise LocalError(f"ranks {defaults} passed no tile bounds (the default decomposition; from C or "
                             "Fortran: bounds 0,0,0,0) but the others passed bounds; either every rank passes "
                             "its tile or every rank passes none", Status.DECOMPOSITION)
        if all_bounds[rank] is None:
            raise LocalError(f"bounds must be 4 integers (lat0, lat1, lon0, lon1), got {bounds!r}",
                             Status.DECOMPOSITION)
        if any(b is None for b in all_bounds):
            return None  # another rank reports its bad bounds
        try:
            return Decomposition.from_bounds(grid.nlat, grid.nlon, all_bounds, one_based=one_based)
        except ValueError as exc:
            if not one_based:
                raise
            raise LocalError(str(exc), Status.DECOMPOSITION) from None

    return collect(comm, build, "Component.init (decomposition)", Status.DECOMPOSITION)
