"""Write a tiny random mlscam checkpoint for the host examples: ``python make_toy_checkpoint.py OUT.pt``.

A 6 x 12 latitude-longitude grid (nlat x nlon), 2 levels, variables u, v,
temperature (3-D) and surface_pressure (2-D), a 6-hour step, and an untrained
model (latent 8) with plausible normalisation.  It exists so that the examples
and their tests run from a clean checkout; a real host uses a trained
checkpoint (e.g. the shipped demo, ``&rollout checkpoint_path = 'mlscam:demo/checkpoint.pt'``)
and passes that checkpoint's grid to mlscam_init.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from mlscam.checkpoint import Checkpoint, save_checkpoint
from mlscam.config import Config, ModelConfig
from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout
from mlscam.model import build_model
from mlscam.normalization import Normalization

NLAT, NLON, LEVELS, DT_SECONDS = 6, 12, (0.3, 0.8), 21600.0
LAYOUT = ColumnLayout(("u", "v", "temperature"), ("surface_pressure",), LEVELS,
                      units={"u": "m s-1", "v": "m s-1", "temperature": "K", "surface_pressure": "Pa"},
                      static_features=("sin_lat", "cos_lat"))
MODEL = ModelConfig(latent_dim=8, encoder_hidden=16, decoder_hidden=16, channel_hidden=16, mixer_blocks=1,
                    heads=2, chunk_size=16)


def main(path: str) -> None:
    torch.manual_seed(0)
    model = build_model(MODEL, LAYOUT)
    # state order: u(2 levels), v(2), temperature(2), surface_pressure
    mean = np.array([0.0, 0.0, 0.0, 0.0, 250.0, 260.0, 1.0e5])
    std = np.array([10.0, 10.0, 10.0, 10.0, 30.0, 30.0, 1.0e3])
    norm = Normalization(mean, std, np.zeros_like(mean), std / 10.0)
    ckpt = Checkpoint(config=Config(model=MODEL), layout=LAYOUT, normalization=norm, dt_seconds=DT_SECONDS,
                      grid=LatLonGrid.equiangular(NLAT, NLON), state_dict=model.state_dict(),
                      metadata={"note": "untrained toy checkpoint of host_examples/"})
    print(f"wrote {save_checkpoint(path, ckpt)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} OUT.pt")
    main(sys.argv[1])
