"""The inference experiments that led to ``&model polar_wind_fixer`` (issue 13), kept for provenance.

Before the fixer existed, these variants were tried on the validation climate (seed 1) by patching the
mass fixer's ``fix`` (which runs inside the manifold projection and on every decoded output) so that it
also removes zonal-mean meridional wind ``[v]`` (serial runs only: the zonal mean here is a plain float32
mean, not the reproducible sum of ``mlscam.model.polar``):

* ``polarK``: ``[v] = 0`` at every level of the K rows next to each pole (what ``polar_wind_fixer = K`` does);
* ``polarKbaro``: as ``polarK``, and the vertical mean of ``[v]`` removed at every other row;
* ``rampLAT``: ``[v]`` removed with a weight growing linearly from 0 at LAT degrees to 1 at the pole row;
* ``none``: the patch does nothing (the baseline through the same code path);
* a ``+topN`` suffix (e.g. ``polar2+top1``): also ``[v] = 0`` at every row of the N top levels (a sponge on
  the mean meridional circulation there).

Run it on a checkpoint with the mass fixer on and the polar wind fixer OFF (the shipped demo has it on:
pass ``--set rollout.polar_wind_fixer=0``), e.g.::

    EXP_MODE=polar2 python benchmarks/polar_fixer_variants.py namelists/demo.nml \\
        --checkpoint-path mlscam:demo/checkpoint.pt --input-nc-path data/hs_climate_seed1_2y.nc \\
        --start-time 0 --num-steps 8760 --output-every 24 --output-nc-path mlscam_output/polar2.nc \\
        --set output.quicklook=false --set parallel.threads=1 --set rollout.polar_wind_fixer=0
    python -m mlscam.evaluate climate --forecast mlscam_output/polar2.nc --truth data/hs_climate_seed1_2y.nc \\
        --truth-spinup-days 0 --out mlscam_output/eval_polar2

The numbers are in ``docs/demo_model.md`` ("Choosing what ships").
"""
import os
import sys

import numpy as np
import torch

import mlscam.model.mass as mass

MODE, _, TOP = os.environ.get("EXP_MODE", "polar2").partition("+top")
TOP = int(TOP or 0)
_init, _fix = mass.MassFixer.__init__, mass.MassFixer.fix


def _weights(mode: str, lat: np.ndarray) -> np.ndarray:
    if mode.startswith("polar"):
        digits = "".join(c for c in mode[5:] if c.isdigit())
        k = int(digits) if digits else 2
        w = np.zeros(len(lat))
        w[:k] = w[-k:] = 1.0
        return w
    if mode.startswith("ramp"):
        lat0 = float(mode[4:])
        return np.clip((np.abs(lat) - lat0) / (np.abs(lat).max() - lat0), 0.0, 1.0)
    if mode == "none":
        return np.zeros(len(lat))
    raise SystemExit(f"EXP_MODE={mode!r}: use polarK, polarKbaro, rampLAT or none")


def init(self, layout, grid, domain, *, device=None):
    _init(self, layout, grid, domain, device=device)
    if not np.array_equal(np.asarray(domain.columns), np.arange(grid.ncol)):
        raise SystemExit("polar_fixer_variants.py runs on one rank only")
    self.v_slice, self.nlat, self.nlon = layout.slice_of("v"), grid.nlat, grid.nlon
    w = _weights(MODE, grid.lat_array())
    self.v_weight = torch.tensor(w, dtype=torch.float32)[None, :, None, None]
    self.v_baro = MODE.endswith("baro")
    if TOP:
        self.v_weight = self.v_weight.repeat(1, 1, 1, self.v_slice.stop - self.v_slice.start)
        self.v_weight[..., :TOP] = 1.0  # the top levels come first (sigma ascending)
    print(f"EXP_MODE {MODE}: row weights {np.round(w, 2).tolist()}, barotropic {self.v_baro}, top levels {TOP}",
          file=sys.stderr)


def fix(self, x, target):
    x = _fix(self, x, target)
    s, b = self.v_slice, x.shape[0]
    v = x[..., s].reshape(b, self.nlat, self.nlon, -1)
    zm = v.mean(2, keepdim=True)
    dv = self.v_weight * zm
    if self.v_baro:
        dv = dv + (1 - self.v_weight) * zm.mean(3, keepdim=True)
    v = (v - dv).reshape(b, -1, v.shape[-1])
    return torch.cat([x[..., :s.start], v, x[..., s.stop:]], -1)


mass.MassFixer.__init__, mass.MassFixer.fix = init, fix

if __name__ == "__main__":
    from mlscam.rollout.__main__ import main

    sys.exit(main(sys.argv[1:]))
