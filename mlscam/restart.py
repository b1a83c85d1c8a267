"""Restart files: the latent state of the whole grid, so a run continues exactly.

One format for the serial rollout and the MPI component: latents are stored in
global column order (``col = j * nlon + i``), so a restart written on N ranks
is read on any other number of ranks.  A restart records the checkpoint it
belongs to (SHA-256 of the file) and is refused by any other checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import atomic_path

__all__ = ["RESTART_VERSION", "Restart", "RestartError", "write_restart", "read_restart"]

RESTART_VERSION = 1


class RestartError(ValueError):
    """A restart file that does not belong to this run."""


@dataclass(frozen=True)
class Restart:
    """Latent state ``z [nlat * nlon, latent]`` after ``step`` steps, valid at ``time``.

    ``time`` is the ISO string of the valid time; ``time_units``, ``calendar`` and
    ``lat_descending`` (latitude stored north to south) are those of the initial-state
    file, so outputs keep them (a restart written before ``lat_descending`` existed reads
    as False: south to north). ``mass_target`` is the mass fixer's target, the global-mean
    surface pressure of the run's initial state (float64; None: written with the fixer off, or
    before it existed), so a restarted run conserves the same mass bit for bit.
    """

    z: torch.Tensor
    step: int
    time: str
    time_units: str
    calendar: str
    checkpoint_hash: str
    grid_shape: tuple[int, int]
    initial_time: str
    lat_descending: bool = False
    mass_target: float | None = None


def write_restart(path, r: Restart) -> Path:
    """Write ``r`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({
            "restart_version": RESTART_VERSION, "z": r.z.detach().cpu().contiguous(), "step": int(r.step),
            "time": r.time, "time_units": r.time_units, "calendar": r.calendar,
            "checkpoint_hash": r.checkpoint_hash, "grid_shape": list(r.grid_shape), "initial_time": r.initial_time,
            "lat_descending": bool(r.lat_descending),
            "mass_target": None if r.mass_target is None else float(r.mass_target),
        }, tmp)
    return path


def read_restart(path, *, checkpoint_hash: str, grid_shape: tuple[int, int]) -> Restart:
    """Read a restart, refusing one written with another checkpoint or grid."""
    path = Path(path)
    if not path.is_file():
        raise RestartError(f"restart file not found: {path}")
    d = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(d, dict) or d.get("restart_version") != RESTART_VERSION:
        raise RestartError(f"{path} is not an mlscam restart file (version {RESTART_VERSION})")
    if d["checkpoint_hash"] != checkpoint_hash:
        raise RestartError(
            f"restart {path} was written with another checkpoint (sha256 {d['checkpoint_hash'][:12]}...), "
            f"this run uses sha256 {checkpoint_hash[:12]}...; restart with the checkpoint that wrote it"
        )
    if tuple(d["grid_shape"]) != tuple(grid_shape):
        raise RestartError(f"restart {path} is for a {tuple(d['grid_shape'])} grid, this run is {tuple(grid_shape)}")
    return Restart(z=d["z"], step=d["step"], time=d["time"], time_units=d["time_units"], calendar=d["calendar"],
                   checkpoint_hash=d["checkpoint_hash"], grid_shape=tuple(d["grid_shape"]),
                   initial_time=d["initial_time"], lat_descending=bool(d.get("lat_descending", False)),
                   mass_target=None if d.get("mass_target") is None else float(d["mass_target"]))
