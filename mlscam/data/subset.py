"""``python -m mlscam.data.subset IN.nc --times 0 [24 ...] --output OUT.nc``: cut time steps out of a file.

Used to make small initial-state and truth files (e.g. the shipped demo's
initial state) from a dynamical-core run; every variable, coordinate and
attribute is kept, float32 data stay float32, and the output is written
atomically.  Extra per-file diagnostics without a time dimension are kept too.
"""
from __future__ import annotations

import argparse
import sys

import xarray as xr

from ..io.cf import to_netcdf_atomic

__all__ = ["subset"]


def subset(src: str, dst: str, times: list[int], *, variables: list[str] | None = None) -> None:
    """Write the time indices ``times`` of ``src`` (and only ``variables``, if given) to ``dst``."""
    with xr.open_dataset(src, decode_times=False) as ds:
        n = ds.sizes.get("time", 0)
        bad = [t for t in times if not -n <= t < n]
        if bad:
            raise IndexError(f"time indices {bad} are outside the {n} times of {src}")
        if variables:
            missing = [v for v in variables if v not in ds]
            if missing:
                raise KeyError(f"{src} has no variables {missing}; it has {sorted(ds.data_vars)}")
            ds = ds[variables]
        out = ds.isel(time=times).load()
        out.attrs["history"] = (out.attrs.get("history", "") + f"\nmlscam.data.subset: times {times} of {src}").strip()
        to_netcdf_atomic(out, dst, complevel=4)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mlscam.data.subset", description=__doc__.splitlines()[0])
    p.add_argument("input")
    p.add_argument("--times", type=int, nargs="+", required=True, help="time indices to keep")
    p.add_argument("--variables", nargs="+", help="variables to keep (default: all)")
    p.add_argument("--output", required=True)
    a = p.parse_args(argv)
    try:
        subset(a.input, a.output, a.times, variables=a.variables)
    except (IndexError, KeyError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
