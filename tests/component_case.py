"""A tiny emulator case for the component, rollout and MPI-driver tests.

A random 6x12 model (latent 8, chunk 16) saved with ``save_checkpoint``, a CF
initial-state file with 3 times, and a namelist pointing at both.  Used by the
pytest modules and by the scripts under ``tests/mpi/`` (which run under mpirun).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mlscam.checkpoint import Checkpoint, save_checkpoint
from mlscam.config import Config, ModelConfig, ParallelConfig, RolloutConfig, OutputConfig
from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout
from mlscam.emulator import Emulator
from mlscam.model import build_model
from mlscam.normalization import Normalization
from synthetic import UNITS, canonical_state, make_fields, write_file

GRID = LatLonGrid.equiangular(6, 12)
LEVELS = (0.3, 0.8)
DT = 21600.0
LAYOUT = ColumnLayout(("u", "v", "temperature"), ("surface_pressure",), LEVELS,
                      units={k: UNITS[k] for k in ("u", "v", "temperature", "surface_pressure")},
                      static_features=("sin_lat", "cos_lat"))
MODEL = ModelConfig(latent_dim=8, encoder_hidden=16, decoder_hidden=16, channel_hidden=16, mixer_blocks=1,
                    heads=2, chunk_size=16)
NT = 3
TIME_UNITS = "hours since 2001-03-01 00:00:00"


def fields(seed: int = 0) -> dict[str, np.ndarray]:
    return make_fields(NT, GRID, len(LEVELS), seed=seed)


def initial_states(seed: int = 0) -> np.ndarray:
    """``[NT, nlat, nlon, n_state]`` float32, as written by :func:`write_initial`."""
    return canonical_state(fields(seed))


def write_initial(path, seed: int = 0, calendar: str = "noleap") -> Path:
    write_file(path, fields(seed), GRID, [0.0, 6.0, 12.0], levels=list(LEVELS), time_units=TIME_UNITS,
               calendar=calendar)
    return Path(path)


def make_checkpoint(path, seed: int = 0) -> Path:
    """A random model with normalisation from the synthetic fields' scales."""
    torch.manual_seed(seed)
    model = build_model(MODEL, LAYOUT)
    x = initial_states(seed=123).reshape(-1, LAYOUT.n_state).astype(np.float64)
    norm = Normalization(x.mean(0), x.std(0) + 1.0, np.zeros(LAYOUT.n_state), x.std(0) + 1.0)
    ckpt = Checkpoint(config=Config(model=MODEL), layout=LAYOUT, normalization=norm, dt_seconds=DT, grid=GRID,
                      state_dict=model.state_dict())
    return save_checkpoint(path, ckpt)


def config(checkpoint, initial, output="forecast.nc", **rollout) -> Config:
    """A Config for the component (threads 1, CPU, deterministic)."""
    r = RolloutConfig(checkpoint_path=str(checkpoint), input_nc_path=str(initial), output_nc_path=str(output),
                      **rollout)
    return Config(model=MODEL, rollout=r, parallel=ParallelConfig(device="cpu", threads=1),
                  output=OutputConfig(quicklook=False, progress=False))


def write_namelist(path, checkpoint, initial, output, *, num_steps=6, output_every=2, extra: str = "") -> Path:
    Path(path).write_text(
        "&rollout\n"
        f"  checkpoint_path = '{checkpoint}'\n  input_nc_path = '{initial}'\n  output_nc_path = '{output}'\n"
        f"  num_steps = {num_steps}\n  output_every = {output_every}\n/\n"
        "&parallel\n  device = 'cpu'\n  threads = 1\n/\n"
        f"&output\n  quicklook = .false.\n  progress = .false.\n/\n{extra}")
    return Path(path)


def serial_emulator(checkpoint) -> Emulator:
    return Emulator.from_checkpoint(checkpoint)


def serial_fixed_outputs(checkpoint, latent_filter, outputs: int, every: int = 2, time: int = 1):
    """The serial reference of a component run with the fixers: ``(outputs, target)`` with ``outputs`` the
    decoded states ``[nlat, nlon, S]`` after every ``every`` steps from ``initial_states()[time]`` (the mass
    target the initial state's global-mean surface pressure, as the component keeps it)."""
    em = Emulator.from_checkpoint(checkpoint, latent_filter=latent_filter, warn_blas=False)
    x0 = torch.from_numpy(initial_states()[time])
    target = em.mass_target(x0)
    refs, z = [], em.encode(x0)
    for _ in range(outputs):
        z = em.step(z, every, mass_target=target)
        refs.append(em.decode(z, mass_target=target).numpy())
    return refs, target
