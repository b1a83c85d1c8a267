"""Compare Held-Suarez files made from the same seed on different platforms (JAX on the CPU or the GPU).

    python benchmarks/gpu/compare_datagen.py REFERENCE.nc OTHER.nc [OTHER.nc ...]

For each OTHER file and each common time: the RMS difference of every variable against REFERENCE, the
global-mean temperature of both, and the RMS over latitude and level of the zonal-mean temperature difference.
The same seed, resolution and spin-up on two platforms should agree to float32 rounding at first and part
by chaotic growth later; a systematic difference at the first sample means the platforms do not compute the same
model (docs/benchmarks.md, "Training on a GPU").
"""
from __future__ import annotations

import sys

import numpy as np
import xarray as xr

VARS = ("temperature", "u", "v", "surface_pressure")


def _area_mean(a: np.ndarray, lat: np.ndarray) -> float:
    w = np.cos(np.deg2rad(lat))
    return float((a.mean(axis=-1) * w).sum(axis=-1).mean() / w.sum())


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    ref = xr.open_dataset(argv[0])
    lat = ref["lat"].values
    for path in argv[1:]:
        other = xr.open_dataset(path)
        n = min(ref.sizes["time"], other.sizes["time"])
        print(f"{path} against {argv[0]} ({n} common samples)")
        print("sample  " + "  ".join(f"{v:>18}" for v in VARS) + "   mean T ref / other [K]   zonal-mean T diff RMS [K]")
        for i in sorted({0, 1, 2, 5, 11, 23, n - 1} & set(range(n))):
            cells = []
            for v in VARS:
                if v in ref and v in other:
                    d = other[v].isel(time=i).values - ref[v].isel(time=i).values
                    cells.append(f"{float(np.sqrt(np.mean(d ** 2))):18.4g}")
                else:
                    cells.append(f"{'-':>18}")
            tr, to = ref["temperature"].isel(time=i).values, other["temperature"].isel(time=i).values
            zr, zo = tr.mean(axis=-1), to.mean(axis=-1)
            print(f"{i:6d}  " + "  ".join(cells) + f"   {_area_mean(tr, lat):8.3f} / {_area_mean(to, lat):8.3f}"
                  f"   {float(np.sqrt(np.mean((zo - zr) ** 2))):10.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
