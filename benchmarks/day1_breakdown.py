"""Where a lead's forecast error lives: RMSE / persistence's and the share of the squared error, per level and
per latitude band, over the forecasts that ``skill_report.py`` wrote (issue 13's day-1 criterion).

    python benchmarks/day1_breakdown.py --forecasts mlscam_output/val_day1/16H/work/16H_init*.nc \
        --truth data/h1_val.nc [--lead-hours 24] [--variables temperature u] [--out FILE]

The forecast's ``lead_time`` (hours) gives the verifying time; persistence is the truth ``lead`` before it
(an hourly truth, as ``skill_report.py`` uses). Squared errors are weighted by the latitude rows' cell areas and averaged over the files (initial times) before the
square root, as the global ratio of ``skill_report.py``; the global ratio printed first must match its table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

BANDS = ((-90, -60), (-60, -30), (-30, 30), (30, 60), (60, 90))


def _area(lat: np.ndarray) -> np.ndarray:
    """Cell-area weights of equiangular latitude rows (cell-centred), summing to 1."""
    edges = np.concatenate([[-90.0], 0.5 * (lat[1:] + lat[:-1]), [90.0]]) if lat[0] < lat[-1] else None
    if edges is None:
        raise ValueError("latitude must run south to north")
    w = np.sin(np.radians(edges[1:])) - np.sin(np.radians(edges[:-1]))
    return w / w.sum()


def breakdown(forecasts: list[str], truth_path: str, lead_hours: float, variables: list[str]) -> dict:
    truth = xr.open_dataset(truth_path).sortby("lat")
    w = _area(truth.lat.values)[:, None]
    out = {}
    for v in variables:
        err_lev, per_lev, err_lat, per_lat = [], [], [], []
        for path in forecasts:
            f = xr.open_dataset(path).sortby("lat")
            leads = np.asarray(f["lead_time"].values, dtype=float)  # hours, as mlscam.rollout writes them
            k = np.flatnonzero(np.isclose(leads, lead_hours))
            if k.size == 0:
                raise SystemExit(f"error: {path} has no output at lead {lead_hours} h (its leads: {leads.tolist()})")
            valid = f.time.values[k[0]]
            init = valid - np.timedelta64(int(round(lead_hours * 3600)), "s")
            e = (f[v].sel(time=valid) - truth[v].sel(time=valid)).values  # [level, lat, lon]
            p = (truth[v].sel(time=init) - truth[v].sel(time=valid)).values
            err_lev.append((e ** 2 * w).sum(axis=1).mean(axis=-1))
            per_lev.append((p ** 2 * w).sum(axis=1).mean(axis=-1))
            err_lat.append((e ** 2).mean(axis=(0, 2)) * w[:, 0])
            per_lat.append((p ** 2).mean(axis=(0, 2)) * w[:, 0])
        el, pl = np.mean(err_lev, 0), np.mean(per_lev, 0)
        ea, pa = np.mean(err_lat, 0), np.mean(per_lat, 0)
        lat = truth.lat.values
        bands = []
        for lo, hi in BANDS:
            m = (lat >= lo) & (lat < hi)
            bands.append({"band": f"{lo}..{hi}", "ratio": float(np.sqrt(ea[m].sum() / pa[m].sum())),
                          "share": float(ea[m].sum() / ea.sum()), "area": float(w[m, 0].sum())})
        out[v] = {"global": float(np.sqrt(el.mean() / pl.mean())),
                  "levels": [float(x) for x in truth.level.values],
                  "level_ratio": np.sqrt(el / pl).tolist(), "level_share": (el / el.sum()).tolist(),
                  "bands": bands}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--forecasts", nargs="+", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--lead-hours", type=float, default=24.0)
    p.add_argument("--variables", nargs="+", default=["temperature", "u"])
    p.add_argument("--out", default=None)
    a = p.parse_args()
    report = bc.Report(a.out)
    report(f"# error at {a.lead_hours:g} h by level and latitude band (RMSE / persistence's; share of the squared "
           "error)")
    report(f"command: {bc.command_line(__file__)}")
    for v, r in breakdown(a.forecasts, a.truth, a.lead_hours, a.variables).items():
        report(f"{v}: global ratio {r['global']:.3f}")
        report("  level (sigma)   " + " ".join(f"{x:5.2f}" for x in r["levels"]))
        report("  ratio           " + " ".join(f"{x:5.2f}" for x in r["level_ratio"]))
        report("  share           " + " ".join(f"{x:5.2f}" for x in r["level_share"]))
        report("  band            " + " ".join(f"{b['band']:>10s}" for b in r["bands"]))
        report("  area            " + " ".join(f"{b['area']:10.2f}" for b in r["bands"]))
        report("  ratio           " + " ".join(f"{b['ratio']:10.2f}" for b in r["bands"]))
        report("  share           " + " ".join(f"{b['share']:10.2f}" for b in r["bands"]))
    report.save()


if __name__ == "__main__":
    main()
