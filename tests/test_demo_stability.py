"""The shipped demo stays an atmosphere for a month: the stability regression test of issue 13.

30 days of one-hour latent steps from the shipped initial state (about 10 s on one thread), with the
stabilisers the checkpoint carries: every field finite and inside physical bounds, and less than 1% of
the eddy variance of temperature and zonal wind above zonal wavenumber 21 (the T21 truncation of the
data: the dycore has nothing there, so anything there is the stepper's grid-scale noise).
"""
from __future__ import annotations

import numpy as np
import torch

from mlscam.assets import resolve_asset
from mlscam.config import DataConfig
from mlscam.data.source import open_source
from mlscam.emulator import Emulator

CKPT = resolve_asset("mlscam:demo/checkpoint.pt")
INIT = resolve_asset("mlscam:demo/initial_state.nc")
DAYS = 30
TRUNCATION = 21
#: bounds no Held-Suarez state comes near (the truth's T spans about 180-320 K, |u| stays below 80 m/s)
BOUNDS = {"temperature": (150.0, 350.0), "u": (-150.0, 150.0), "v": (-150.0, 150.0),
          "surface_pressure": (5.0e4, 1.2e5)}


def grid_scale_share(field: np.ndarray, area_lat: np.ndarray) -> float:
    """Share of the eddy variance (zonal wavenumbers >= 1, area weighted) above ``TRUNCATION``; field [..., lat, lon]."""
    power = np.abs(np.fft.rfft(field - field.mean(-1, keepdims=True), axis=-1)) ** 2  # [..., lat, k]
    spectrum = (power * area_lat[:, None]).reshape(-1, area_lat.size, power.shape[-1]).sum((0, 1))[1:]
    return float(spectrum[TRUNCATION:].sum() / spectrum.sum())


def test_grid_scale_share_sees_a_checkerboard_and_not_a_wave():
    lat = np.ones(8)
    i = np.arange(64)
    smooth = np.broadcast_to(np.sin(2 * np.pi * 5 * i / 64), (8, 64))
    board = smooth + 0.5 * (-1.0) ** (i[None, :] + np.arange(8)[:, None])
    assert grid_scale_share(smooth, lat) < 1e-12
    assert grid_scale_share(board, lat) > 0.3


def test_the_shipped_demo_stays_physical_and_smooth_for_30_days():
    torch.set_num_threads(1)
    em = Emulator.from_checkpoint(CKPT)
    src = open_source(DataConfig(files=(str(INIT),), variables_3d=("u", "v", "temperature"), time_step_hours=1.0))
    x0 = torch.from_numpy(src.read(0))
    area_lat = em.grid.area_weights()[:, 0]
    steps_per_day = round(86400 / em.dt_seconds)
    seen = []
    for step, x in em.rollout(x0, DAYS * steps_per_day, output_every=5 * steps_per_day):
        xn = x.numpy().astype(np.float64)
        assert np.isfinite(xn).all(), f"non-finite state at step {step}"
        for name, (lo, hi) in BOUNDS.items():
            f = xn[..., em.layout.slice_of(name)]
            assert lo <= f.min() and f.max() <= hi, (f"day {step / steps_per_day:g}: {name} spans "
                                                     f"[{f.min():.1f}, {f.max():.1f}], outside [{lo}, {hi}]")
        seen.append(step)
    assert seen[-1] == DAYS * steps_per_day
    for name in ("temperature", "u"):
        field = np.moveaxis(xn[..., em.layout.slice_of(name)], -1, 0)  # [lev, lat, lon] at day 30
        share = grid_scale_share(field, area_lat)
        assert share < 0.01, f"day {DAYS}: {share:.1%} of the {name} eddy variance is above wavenumber {TRUNCATION}"
