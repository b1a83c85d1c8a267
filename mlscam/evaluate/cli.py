"""``python -m mlscam.evaluate``: skill of forecasts against a truth file, as JSON, CSV and PNGs.

``python -m mlscam.evaluate climate ...`` (first argument ``climate``) runs the climate mode instead
(:mod:`mlscam.evaluate.climate_cli`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..atomic import NotWritableError, check_writable
from .core import evaluate_forecast, combine_results
from .inputs import EvaluationError, forecast_times, open_dataset, select_levels, truth_indices
from .naming import add_naming_arguments, truth_naming
from .output import write_csv, write_json

__all__ = ["main", "build_parser", "run"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mlscam.evaluate",
        description="Area-weighted skill (RMSE, bias, ACC, CCC, std ratio, zonal-mean bias, zonal spectra) "
                    "of forecasts against a truth file, with persistence and climatology baselines. "
                    "Several --forecast files (one initial time each) are averaged by lead time. "
                    "For the climate of long rollouts see `python -m mlscam.evaluate climate --help`.")
    p.add_argument("--forecast", nargs="+", required=True, metavar="F.nc", help="forecast NetCDF file(s)")
    p.add_argument("--truth", required=True, metavar="T.nc", help="truth NetCDF file covering the valid times")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    p.add_argument("--climatology", metavar="C.nc",
                   help="time-mean fields per (level, lat, lon); default: the time mean of the truth file")
    p.add_argument("--variables", nargs="+", metavar="NAME", help="variables to score (default: all)")
    p.add_argument("--levels", nargs="+", type=float, metavar="SIGMA", help="level values to score (default: all)")
    p.add_argument("--leads", nargs="+", type=float, metavar="HOURS",
                   help="lead times (hours) to score (default: all; keeps a year-long rollout's output small)")
    p.add_argument("--no-plots", action="store_true", help="write only metrics.json and metrics.csv")
    add_naming_arguments(p)
    return p


def run(args: argparse.Namespace) -> dict:
    """Evaluate as the command line asks; returns the result dict."""
    from tqdm.auto import tqdm

    out = check_writable(args.out, "--out", directory=True)  # before reading and scoring, not after
    first = open_dataset(args.forecast[0])
    naming = truth_naming(args, first)  # --namelist, --checkpoint or what the forecast records
    truth = open_dataset(args.truth, naming)
    clim = open_dataset(args.climatology, naming) if args.climatology else None
    results = []
    for path in tqdm(args.forecast, desc="evaluating", unit="forecast", disable=None):
        fc = first if path == args.forecast[0] else open_dataset(path)
        results.append(evaluate_forecast(fc, truth, climatology=clim, variables=args.variables, levels=args.levels,
                                       leads=args.leads))
    result = combine_results(results)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", result)
    write_csv(out / "metrics.csv", result)
    written = ["metrics.json", "metrics.csv"]
    if not args.no_plots:
        written += _plots(result, first, truth, args.levels, out)
    _summary(result, out, written)
    return result


def _plots(result, forecast, truth, levels, out: Path) -> list[str]:
    from tqdm.auto import tqdm

    from .plots import plot_map, plot_skill, plot_spectra, plot_zonal_mean

    names = []
    variables = result["meta"]["variables"]
    for var in tqdm(variables, desc="plots", unit="variable", disable=None):
        for kind, fn in (("skill", plot_skill), ("zonal_mean", plot_zonal_mean), ("spectra", plot_spectra)):
            fn(result, var, out / f"{kind}_{var}.png")
            names.append(f"{kind}_{var}.png")
    # a map of one field: the first variable, nearest-surface level, last lead of the first forecast
    var = variables[0]
    fc, tr = select_levels(forecast, levels)[var], select_levels(truth, levels)[var]
    times = forecast_times(forecast)
    t = int(truth_indices(truth, times.valid[-1:])[0])
    fc, tr = fc.isel(time=-1), tr.isel(time=t)
    where = ""
    if "level" in fc.dims:
        j = int(np.argmax(fc["level"].values))
        fc, tr = fc.isel(level=j), tr.isel(level=j)
        where = f", sigma {float(tr['level']):g}"
    plot_map(fc, tr, out / f"map_{var}.png", name=var, units=str(truth[var].attrs.get("units", "")),
             title=f"{var}{where}, lead {times.lead_hours[-1]:g} h (valid {times.valid[-1]}, "
                   f"initial {times.initial})")
    names.append(f"map_{var}.png")
    return names


def _summary(result, out: Path, written) -> None:
    meta = result["meta"]
    print(f"evaluated {len(meta['initial_times'])} forecast(s), leads {meta['lead_hours'][0]:g}..{meta['lead_hours'][-1]:g} h")
    print(f"climatology: {meta['climatology']}")
    print(f"persistence: {meta['persistence']}")
    last = f"{meta['lead_hours'][-1]:g}"
    for var, levels in result["metrics"].items():
        for lk, m in levels.items():
            r = m["rmse"]
            vals = "  ".join(f"{s}={r[s][last]:.4g}" for s in r if r[s].get(last) is not None)
            print(f"  {var:>18s} {lk:>6s}  RMSE at {last} h: {vals}")
    print(f"wrote {', '.join(written)} to {out}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["climate"]:
        from .climate_cli import main as climate_main

        return climate_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (EvaluationError, NotWritableError) as exc:
        print(f"python -m mlscam.evaluate: error: {exc}", file=sys.stderr)
        return 2
    return 0
