"""Why a long rollout's peak memory grows: netCDF-C's per-variable chunk cache, measured.

    python benchmarks/netcdf_chunk_cache.py [--records 300 600 1200] [--grid 32 64] [--levels 10] [--out FILE]

Appends records to a file exactly as ``mlscam.io.forecast.ForecastWriter``
does (unlimited ``time``, float32, ``zlib`` level 1, one record per chunk; three
3-D variables u, v, temperature and surface_pressure), in a fresh process per
case, and reports the growth of the resident set (``VmRSS``) after each
``--records`` count, with netCDF's default chunk cache and with a 1 MiB cache
per variable (``Variable.set_var_chunk_cache``). The default cache keeps up to
``netCDF4.get_chunk_cache()`` bytes per variable (64 MiB with netCDF-C 4.10),
so the growth follows the written data until that bound (4 variables: ~256 MiB).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024.0


def child(records: list[int], nlat: int, nlon: int, levels: int, cache: int | None) -> None:
    import netCDF4
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        ds = netCDF4.Dataset(os.path.join(tmp, "f.nc"), "w")
        for name, size in (("time", None), ("level", levels), ("lat", nlat), ("lon", nlon)):
            ds.createDimension(name, size)
        var = {}
        for name in ("u", "v", "temperature", "surface_pressure"):
            dims = ("time", "lat", "lon") if name == "surface_pressure" else ("time", "level", "lat", "lon")
            var[name] = ds.createVariable(name, "f4", dims, zlib=True, complevel=1)
            if cache is not None:
                var[name].set_var_chunk_cache(size=cache)
        x3 = np.random.default_rng(0).standard_normal((levels, nlat, nlon)).astype(np.float32)
        start, out, k = rss_mib(), {}, 0
        for target in sorted(records):
            while k < target:
                for name, v in var.items():
                    v[k] = x3[0] if name == "surface_pressure" else x3
                k += 1
            out[target] = rss_mib() - start
        ds.close()
        print(json.dumps({"cache": cache,
                          "default_cache": netCDF4.get_chunk_cache()[0], "growth": out,
                          "netcdf": netCDF4.__netcdf4libversion__, "hdf5": netCDF4.__hdf5libversion__}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", nargs="+", type=int, default=[100, 300, 600, 1200])
    p.add_argument("--grid", nargs=2, type=int, default=[32, 64], metavar=("NLAT", "NLON"))
    p.add_argument("--levels", type=int, default=10)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.child is not None:
        child(args.records, *args.grid, args.levels, None if args.child == "default" else int(args.child))
        return 0
    report = bc.Report(args.out)
    report("# resident-memory growth of a ForecastWriter-style append, by netCDF chunk cache")
    report(f"command: {bc.command_line(__file__, argv)}")
    for line in bc.machine_lines():
        report(line)
    nlat, nlon = args.grid
    record_mib = (3 * args.levels + 1) * nlat * nlon * 4 / 2**20
    report(f"grid {nlat} x {nlon}, {args.levels} levels: one record (u, v, temperature, surface_pressure) = "
           f"{record_mib:.3f} MiB of float32")
    report()
    for cache in ("default", str(2**20)):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", cache, "--levels", str(args.levels),
               "--grid", str(nlat), str(nlon), "--records", *map(str, args.records)]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        label = (f"default chunk cache ({res['default_cache'] / 2**20:.0f} MiB per variable)" if cache == "default"
                 else "set_var_chunk_cache(size=1 MiB) per variable")
        report(f"{label}; netCDF-C {res['netcdf']}, HDF5 {res['hdf5']}:")
        for n, growth in res["growth"].items():
            report(f"  {int(n):>6} records ({int(n) * record_mib:8.1f} MiB written): VmRSS grew {growth:8.1f} MiB")
    report(f"load average at end: {bc.load_average()}")
    report.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
