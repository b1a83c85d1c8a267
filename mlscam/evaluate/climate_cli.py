"""``python -m mlscam.evaluate climate``: the climate of long rollouts against a long truth run.

Writes ``climate.json`` (every number), ``climate.md`` (the headline table),
``truth_summary.json`` (the truth's statistics, reusable as ``--truth``) and PNGs.
See docs/evaluate.md, "Climate mode".
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .climate_metrics import check_truncation, evaluate_climate
from .climate_stats import RunClimate, read_run_climate, spinup_mask
from .inputs import EvaluationError, check_same_grid, field_variables, open_dataset, select_variables
from .naming import add_naming_arguments, truth_naming
from .output import atomic_write_bytes, write_json

__all__ = ["build_parser", "run", "main", "markdown_table"]

PROG = "python -m mlscam.evaluate climate"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Climate of long rollouts against a long truth run: zonal-time-mean bias of each variable with "
                    "the truth's year-to-year difference as the noise floor, eddy variance, zonal spectra, "
                    "global-mean drift and blow-up indicators. Several --forecast files (e.g. rollouts from "
                    "different initial states) are reported one by one and averaged.")
    p.add_argument("--forecast", nargs="+", required=True, metavar="F.nc", help="rollout NetCDF file(s)")
    p.add_argument("--truth", required=True, metavar="T.nc",
                   help="truth NetCDF file, or the truth_summary.json an earlier run of this command wrote")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    p.add_argument("--spinup-days", type=float, default=30.0, metavar="DAYS",
                   help="drop forecast times with a lead shorter than this (default 30)")
    p.add_argument("--truth-spinup-days", type=float, metavar="DAYS",
                   help="drop truth times less than this many days after its first time (default: --spinup-days; "
                        "0 for a truth that is already spun up, as mlscam.datagen writes them)")
    p.add_argument("--variables", nargs="+", metavar="NAME", help="variables (default: all fields of the forecast)")
    p.add_argument("--truncation", type=int, default=21, metavar="K",
                   help="the truth's truncation wavenumber: the share of eddy variance above it is reported "
                        "(default 21, T21)")
    p.add_argument("--chunk-times", type=int, metavar="N", help="times read at once (default: ~4 million values)")
    p.add_argument("--no-plots", action="store_true", help="write only climate.json, climate.md, truth_summary.json")
    add_naming_arguments(p)
    return p


def _spinups(args) -> tuple[float, float]:
    if args.spinup_days < 0 or (args.truth_spinup_days is not None and args.truth_spinup_days < 0):
        raise EvaluationError("--spinup-days and --truth-spinup-days must be >= 0")
    return args.spinup_days, args.spinup_days if args.truth_spinup_days is None else args.truth_spinup_days


def _open_truth(args, truth_spinup: float, forecast):
    """``(dataset, None)`` for a NetCDF truth (named as :func:`truth_naming` says), ``(None, RunClimate)`` for a
    summary JSON."""
    path = Path(args.truth)
    if path.suffix.lower() != ".json":
        return open_dataset(path, truth_naming(args, forecast)), None
    if not path.exists():
        raise EvaluationError(f"file not found: {path}")
    try:
        summary = RunClimate.from_dict(json.loads(path.read_text()), source=str(path))
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{path} is not JSON ({exc}); pass the truth NetCDF file or a truth_summary.json")
    if args.truth_spinup_days is not None and abs(summary.spinup_days - truth_spinup) > 1e-9:
        raise EvaluationError(
            f"the truth summary {path} was made with a truth spin-up of {summary.spinup_days:g} days, not "
            f"--truth-spinup-days {truth_spinup:g}; drop the option or summarize the truth file again")
    return None, summary


def _check_summary(fc, summary: RunClimate, names) -> None:
    import xarray as xr

    coords = {"lat": summary.lat, "lon": summary.lon}
    if summary.level is not None:
        coords["level"] = summary.level
    check_same_grid(fc, xr.Dataset(coords=coords, attrs={"source_file": summary.source}))
    missing = [v for v in names if v not in summary.fields]
    if missing:
        raise EvaluationError(f"variables {missing} are not in the truth summary {summary.source!r}; it has "
                              f"{list(summary.fields)}; pass --variables with the ones it holds")
    fvars = field_variables(fc)
    if [v for v in names if v not in fvars]:
        raise EvaluationError(f"variables {[v for v in names if v not in fvars]} are not fields of the forecast "
                              f"{fc.attrs.get('source_file')!r}; it has {fvars}")


def run(args: argparse.Namespace) -> dict:
    """Evaluate as the command line asks; returns the ``climate.json`` dict."""
    spinup, truth_spinup = _spinups(args)
    out = Path(args.out)
    forecasts = [open_dataset(p) for p in args.forecast]
    truth_ds, summary = _open_truth(args, truth_spinup, forecasts[0])
    # every check that needs no data first, so that a mistake costs no reading of long files
    truth_option = "--truth-spinup-days" if args.truth_spinup_days is not None else "--spinup-days"
    if summary is None:
        names = select_variables(forecasts[0], truth_ds, args.variables)
        spinup_mask(truth_ds, truth_spinup, what="truth", spinup_option=truth_option)
    else:
        names = list(args.variables) if args.variables else field_variables(forecasts[0])
    for fc in forecasts:
        if summary is None:
            check_same_grid(fc, truth_ds)
            select_variables(fc, truth_ds, names)
        else:
            _check_summary(fc, summary, names)
        spinup_mask(fc, spinup, what="forecast")
    check_truncation(args.truncation, summary.lon.size if summary is not None else truth_ds.sizes["lon"])
    chunk = args.chunk_times
    if summary is None:
        summary = read_run_climate(truth_ds, names, spinup_days=truth_spinup, chunk_times=chunk, what="truth",
                                   spinup_option=truth_option)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "truth_summary.json", summary.to_dict())
    runs = [read_run_climate(fc, names, spinup_days=spinup, chunk_times=chunk, what="forecast") for fc in forecasts]
    result = evaluate_climate(runs, summary, variables=names, truncation=args.truncation)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "climate.json", result)
    atomic_write_bytes(out / "climate.md", markdown_table(result).encode())
    written = ["climate.json", "climate.md"] + (["truth_summary.json"] if truth_ds is not None else [])
    if not args.no_plots:
        from .climate_plots import plot_climate_bias, plot_climate_spectra, plot_global_mean

        for v in names:
            for kind, fn in (("bias", plot_climate_bias), ("spectra", plot_climate_spectra),
                             ("global_mean", plot_global_mean)):
                fn(result, v, out / f"climate_{kind}_{v}.png")
                written.append(f"climate_{kind}_{v}.png")
    _print_summary(result, out, written)
    return result


def _fmt(x, spec=".4g") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    return format(x, spec)


def _flat(m: dict) -> dict:
    """One run's headline numbers under the keys of the ``mean`` block."""
    return {"zonal_mean_bias_rms": m["zonal_mean_bias_rms"]["total"], "bias_over_noise": m["bias_over_noise"],
            "eddy_variance_ratio": m["eddy_variance_ratio"]["total"],
            "share_above_truncation": m["share_above_truncation"],
            "trend_per_year": m["global_mean"]["trend_per_year"],
            "end_minus_start": m["global_mean"]["end_minus_start"],
            "max_abs": m["stability"]["max_abs"], "std_ratio_max": m["stability"]["std_ratio_max"],
            "finite": m["stability"]["finite"]}


def markdown_table(result: dict) -> str:
    """The headline numbers: one table per variable, a row per forecast, their mean and the truth."""
    meta = result["meta"]
    tr = meta["truth"]
    T = meta["truncation"]
    lines = [f"# Climate of {len(meta['forecasts'])} rollout(s) against the truth", "",
             f"Truth: `{tr['file']}`, {tr['n_used']} times after a {tr['spinup_days']:g}-day spin-up "
             f"(days {tr['days'][0]:g}..{tr['days'][1]:g} from its {tr['origin']}), {tr['full_years']} full year(s). "
             f"Forecasts: spin-up {meta['forecasts'][0]['spinup_days']:g} days of lead dropped. "
             f"Weighting: {meta['weighting']}. Drift: end - start = mean of the last {meta['window_days']:g} days "
             "minus the first; trend by least squares.", ""]
    head = ("| run | zonal-mean bias RMS | bias / noise floor | eddy variance ratio | "
            f"share above T{T} | global-mean trend per year | end - start | max abs | std ratio (end/start) | finite |")
    for v in meta["variables"]:
        u = meta["units"].get(v, "")
        nf = result["noise_floor"][v]
        floor = (f"{_fmt(nf['rms'])} {u} (mean over {nf['n_pairs']} pairs of {nf['n_years']} years)"
                 if nf["rms"] is not None else f"n/a ({nf['note']})")
        lines += [f"## {v}" + (f" [{u}]" if u else ""), "", f"Noise floor (truth year-to-year RMS): {floor}", "",
                  head, "|" + "---|" * 10]
        rows = [(Path(e["file"]).name, _flat(e["variables"][v])) for e in result["forecasts"]]
        if len(rows) > 1:
            rows.append(("**mean**", result["mean"][v]))
        t = result["truth"][v]
        rows.append(("truth", {**_flat({**t, "zonal_mean_bias_rms": {"total": nf["rms"]}, "bias_over_noise": None,
                                        "eddy_variance_ratio": {"total": 1.0}}), "note": " (noise floor)"}))
        for name, m in rows:
            lines.append(f"| {name} | {_fmt(m['zonal_mean_bias_rms'])}{m.get('note', '')} "
                         f"| {_fmt(m['bias_over_noise'], '.3g')} | {_fmt(m['eddy_variance_ratio'], '.3f')} "
                         f"| {_fmt(m['share_above_truncation'], '.3g')} | {_fmt(m['trend_per_year'])} "
                         f"| {_fmt(m['end_minus_start'])} | {_fmt(m['max_abs'])} | {_fmt(m['std_ratio_max'], '.3g')} "
                         f"| {_fmt(m['finite'])} |")
        lines.append("")
    return "\n".join(lines)


def _print_summary(result: dict, out: Path, written) -> None:
    meta = result["meta"]
    print(f"climate of {len(meta['forecasts'])} forecast(s) against {meta['truth']['file']} "
          f"({meta['truth']['full_years']} full year(s) after its spin-up)")
    for v in meta["variables"]:
        nf = result["noise_floor"][v]["rms"]
        each = ", ".join(_fmt(e["variables"][v]["zonal_mean_bias_rms"]["total"]) for e in result["forecasts"])
        print(f"  {v:>18s}  zonal-mean bias RMS {each} (mean {_fmt(result['mean'][v]['zonal_mean_bias_rms'])}), "
              f"noise floor {_fmt(nf)} {meta['units'].get(v, '')}; eddy variance ratio "
              f"{_fmt(result['mean'][v]['eddy_variance_ratio'], '.3f')}; finite: {_fmt(result['mean'][v]['finite'])}")
    print(f"wrote {', '.join(written)} to {out}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except EvaluationError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0
