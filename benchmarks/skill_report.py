"""Skill of trained checkpoints on a Held-Suarez run they never saw -> docs/skill.md.

Example (the command behind docs/skill.md):

    python benchmarks/skill_report.py \\
        --model demo=mlscam/assets/demo/checkpoint.pt --model ccc=mlscam_output/demo_ccc/best.pt \\
        --truth data/h1_test.nc --climatology-from data/h1_train.nc --inits 0 24 47 --days 10 \\
        --year-truth data/hs_year.nc --out docs/skill

Every forecast is made with the rollout driver (``python -m mlscam.rollout``),
scored with ``mlscam.evaluate``; RMSE "all levels" is the root of the mean over
levels of the area-weighted MSE.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mlscam.evaluate import evaluate_forecasts, open_dataset, zonal_mean_climate

VARS = ("temperature", "u")
REPORT_LEADS = (24, 72, 120, 240)


def rollout(ckpt: str, init_file: str, start: int, steps: int, every: int, out: Path) -> Path:
    nml = out.parent / f"{out.stem}.nml"
    nml.write_text(f"""&rollout checkpoint_path='{Path(ckpt).resolve()}' input_nc_path='{Path(init_file).resolve()}'
 output_nc_path='{out.resolve()}' start_time={start} num_steps={steps} output_every={every} /
&parallel threads=2 /
&output directory='{out.parent.resolve()}' quicklook=.false. progress=.false. /
""")
    subprocess.run([sys.executable, "-m", "mlscam.rollout", str(nml)], check=True, stdout=subprocess.DEVNULL)
    return out


def all_level_rmse(result: dict, var: str, source: str) -> dict[int, float]:
    per_level = result["metrics"][var]
    leads: dict[int, list[float]] = {}
    for level, metrics in per_level.items():
        for lead, value in metrics["rmse"][source].items():
            if value is not None:
                leads.setdefault(int(float(lead)), []).append(value ** 2)
    return {k: float(np.sqrt(np.mean(v))) for k, v in sorted(leads.items())}


def level_mean(result: dict, var: str, metric: str, source: str = "forecast") -> dict[int, float]:
    leads: dict[int, list[float]] = {}
    for metrics in result["metrics"][var].values():
        for lead, value in metrics[metric][source].items():
            if value is not None:
                leads.setdefault(int(float(lead)), []).append(value)
    return {k: float(np.mean(v)) for k, v in sorted(leads.items())}


BANDS = ((0.0, 30.0), (30.0, 60.0), (60.0, 80.0), (80.0, 90.0))


def _fields_at(files, truth, var: str, lead_hours: int):
    """For each forecast file: ``(forecast, truth, persistence, area weights, lat)`` of ``var`` at ``lead_hours``
    (``[level, lat, lon]`` arrays; persistence is the truth at the forecast's initial hour, hourly truth)."""
    from mlscam.grid import LatLonGrid

    for f in files:
        with open_dataset(f) as fc:
            lead = np.asarray(fc["lead_time"].values, dtype=float)
            k = int(np.flatnonzero(np.isclose(lead, lead_hours))[0])
            valid = fc["time"].values[k]
            t_valid = int(np.flatnonzero(truth["time"].values == valid)[0])
            t_init = t_valid - lead_hours
            w = LatLonGrid(tuple(fc["lat"].values), tuple(fc["lon"].values)).area_weights()
            yield (fc[var].values[k], truth[var].isel(time=t_valid).values, truth[var].isel(time=t_init).values, w,
                   np.asarray(fc["lat"].values))


def band_split(files, truth, bands=BANDS, lead_hours: int = 24) -> dict:
    """RMSE at ``lead_hours`` (all levels, area weighted) of the forecasts and of persistence in latitude
    bands ``(lo, hi)`` of |lat| (lo < |lat| <= hi; both hemispheres): ``{var: {"lo-hi": {"forecast": ..,
    "persistence": .., "area": share of the globe}}}``. Where on the globe the forecast loses to persistence:
    the model's error is nearly uniform, persistence's is small in the tropics and next to the poles."""
    out = {}
    for var in VARS:
        sums = {b: {"forecast": 0.0, "persistence": 0.0, "w": 0.0} for b in bands}
        area = {}
        for fc, tr, pers, w, lat in _fields_at(files, truth, var, lead_hours):
            alat = np.abs(lat)
            for b in bands:
                rows = (alat > b[0]) & (alat <= b[1])
                area[b] = float(w[rows].sum() / w.sum())
                wb = np.broadcast_to(w, tr.shape)[..., rows, :]
                sums[b]["w"] += float(wb.sum())
                for src, field in (("forecast", fc), ("persistence", pers)):
                    sums[b][src] += float((((field - tr) ** 2)[..., rows, :] * wb).sum())
        out[var] = {f"{lo:g}-{hi:g}": {"forecast": float(np.sqrt(s["forecast"] / s["w"])),
                                       "persistence": float(np.sqrt(s["persistence"] / s["w"])), "area": area[(lo, hi)]}
                    for (lo, hi), s in sums.items() if s["w"] > 0}
    return out


def zonal_split(files, truth, lead_hours: int = 24) -> dict:
    """RMSE at ``lead_hours`` (all levels, area weighted) of the forecasts and of persistence, and its
    zonal-mean part (the same RMSE of the zonal means of the error): ``{var: {"forecast", "forecast_zonal_mean",
    "persistence", "persistence_zonal_mean"}}``. A zonal-mean part near the total would be a drift of the
    model's climate; a small one says the error is in the eddies."""
    out = {}
    for var in VARS:
        sums = {k: 0.0 for k in ("forecast", "forecast_zonal_mean", "persistence", "persistence_zonal_mean", "w")}
        for fc, tr, pers, w, _ in _fields_at(files, truth, var, lead_hours):
            wb = np.broadcast_to(w, tr.shape)
            sums["w"] += float(wb.sum())
            for src, field in (("forecast", fc), ("persistence", pers)):
                err = field - tr
                sums[src] += float((err ** 2 * wb).sum())
                sums[f"{src}_zonal_mean"] += float((np.broadcast_to(err.mean(-1, keepdims=True), err.shape) ** 2
                                                    * wb).sum())
        out[var] = {k: float(np.sqrt(v / sums["w"])) for k, v in sums.items() if k != "w"}
    return out


def autoencoder_error(ckpt: str, truth, times) -> dict:
    """RMSE (all levels, area weighted) of ``decode(encode(x))`` against ``x`` at the truth's ``times``: the
    error a forecast starts with, before any step (the raw decode, no fixer). ``{var: rmse}``."""
    import torch

    from mlscam import blas
    from mlscam.emulator import Emulator
    from mlscam.grid import LatLonGrid

    blas.pin()
    em = Emulator.from_checkpoint(ckpt)
    layout = em.layout
    if "level" in truth.dims and not np.allclose(truth["level"].values, layout.levels, atol=1e-4):
        raise SystemExit(f"the truth's levels {truth['level'].values} are not the checkpoint's {layout.levels}")
    w = LatLonGrid(tuple(truth["lat"].values), tuple(truth["lon"].values)).area_weights()
    sums = {v: 0.0 for v in VARS}
    for t in times:
        parts = []
        for name in layout.variables:
            a = np.asarray(truth[name].isel(time=t).values, dtype=np.float32)
            parts.append(np.moveaxis(a, 0, -1) if a.ndim == 3 else a[..., None])
        x = torch.from_numpy(np.concatenate(parts, -1))
        with torch.no_grad():
            rec = em.decode(em.encode(x), fix=False).numpy()
        for v in VARS:
            sl = layout.slice_of(v)
            sums[v] += float(((rec[..., sl] - x.numpy()[..., sl]) ** 2 * w[..., None]).sum() / (w.sum() * rec[..., sl].shape[-1]))
    return {v: float(np.sqrt(sums[v] / len(times))) for v in VARS}


def polar_split(files, truth, lead_hours: int = 24, polar_lat: float = 80.0) -> dict:
    """Day-1 RMSE (all levels, area weighted) in the rows poleward of ``polar_lat`` and in the rest,
    for the forecasts and for persistence: the rows next to the poles violate the stencil's
    Courant condition at any practical step (docs/datagen.md)."""
    split = band_split(files, truth, bands=((0.0, polar_lat), (polar_lat, 90.0)), lead_hours=lead_hours)
    names = {f"0-{polar_lat:g}": "rest", f"{polar_lat:g}-90": "polar"}
    return {var: {f"{src}_{names[band]}": v[src] for band, v in bands.items() for src in ("forecast", "persistence")}
            for var, bands in split.items()}


def plot_skill(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(VARS), figsize=(11, 4))
    units = {"temperature": "K", "u": "m s$^{-1}$"}
    for ax, var in zip(axes, VARS):
        for label, series in curves[var].items():
            x = np.array([int(h) for h in series]) / 24.0
            ax.plot(x, list(series.values()), label=label,
                    ls="--" if label in ("persistence", "climatology") else "-")
        # the baselines' scale: a diverging forecast would otherwise flatten the first days
        ceiling = 2.0 * max(max(curves[var][b].values()) for b in ("persistence", "climatology"))
        if any(max(sr.values()) > ceiling for sr in curves[var].values()):
            ax.set_ylim(0, ceiling)
            ax.set_title(f"{var} (axis cut at 2x the largest baseline)")
        else:
            ax.set_title(var)
        ax.set_xlabel("lead time (days)")
        ax.set_ylabel(f"RMSE, all levels ({units[var]})")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Held-Suarez T21, unseen run: area-weighted RMSE against lead time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="LABEL=CHECKPOINT (first one is the demo)")
    p.add_argument("--truth", required=True)
    p.add_argument("--climatology-from", required=True, help="file whose time mean is the climatology")
    p.add_argument("--inits", type=int, nargs="+", default=[0, 24, 47])
    p.add_argument("--days", type=float, default=10)
    p.add_argument("--output-hours", type=int, default=6)
    p.add_argument("--year-truth", help="one-year truth run (daily) for the climate of a one-year rollout")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    models = dict(m.split("=", 1) for m in a.model)
    truth = open_dataset(a.truth)
    with open_dataset(a.climatology_from) as ds:
        clim = ds[list(VARS)].mean("time").load()
    steps = int(round(a.days * 24))  # hourly model step
    report = {"command": " ".join([Path(sys.argv[0]).as_posix()] + (argv or sys.argv[1:])), "models": {}}
    curves = {v: {} for v in VARS}
    for label, ckpt in models.items():
        t0 = time.perf_counter()
        files = [rollout(ckpt, a.truth, s, steps, a.output_hours, work / f"{label}_init{s}.nc") for s in a.inits]
        wall = time.perf_counter() - t0
        result = evaluate_forecasts([open_dataset(f) for f in files], truth, climatology=clim, variables=list(VARS))
        entry = {"checkpoint": ckpt, "rollout_wall_s": wall, "rmse": {}, "persistence": {}, "climatology": {},
                 "std_ratio": {}, "acc": {}}
        for var in VARS:
            entry["rmse"][var] = all_level_rmse(result, var, "forecast")
            entry["persistence"][var] = all_level_rmse(result, var, "persistence")
            entry["climatology"][var] = all_level_rmse(result, var, "climatology")
            entry["std_ratio"][var] = level_mean(result, var, "std_ratio")
            entry["acc"][var] = level_mean(result, var, "acc")
            curves[var][f"mlscam ({label})"] = entry["rmse"][var]
            curves[var]["persistence"] = entry["persistence"][var]
            curves[var]["climatology"] = entry["climatology"][var]
        entry["polar_rows_day1"] = polar_split(files, truth)
        entry["latitude_bands_day1"] = band_split(files, truth)
        entry["zonal_mean_part_day1"] = zonal_split(files, truth)
        entry["autoencoder_rmse"] = autoencoder_error(ckpt, truth, a.inits)
        report["models"][label] = entry
        print(f"{label}: {len(files)} forecasts of {a.days} days in {wall:.1f} s")
    plot_skill(curves, out / "skill_rmse.png")
    demo_label, demo_ckpt = next(iter(models.items()))
    if a.year_truth:
        year = open_dataset(a.year_truth)
        n = int(round((len(year.time) - 1) * 24))
        t0 = time.perf_counter()
        f = rollout(demo_ckpt, a.year_truth, 0, n, 24, work / f"{demo_label}_year.nc")
        wall = time.perf_counter() - t0
        fc = open_dataset(f)
        climate = zonal_mean_climate(fc, year.isel(time=slice(1, None)), variables=list(VARS))
        report["year"] = {"steps": n, "wall_s": wall, "finite": {v: climate[v]["finite"] for v in VARS},
                          "zonal_mean_rmse": {v: climate[v]["rmse"] for v in VARS}}
        _plot_year(climate, out / "year_zonal_mean.png")
    (out / "skill.json").write_text(json.dumps(report, indent=1))
    text = summary_markdown(json.loads(json.dumps(report)))  # lead-hour keys as in the file (strings)
    (out / "summary.md").write_text(text)
    print(text)
    return 0


def summary_markdown(report: dict, days=(1, 3, 5, 10)) -> str:
    """The report's key numbers as markdown tables (written to ``summary.md`` beside ``skill.json``)."""
    lines = [f"Command: `{report['command']}`", ""]
    for label, e in report["models"].items():
        lines += [f"### {label} (`{e['checkpoint']}`)", "",
                  "| lead | variable | mlscam | persistence | climatology | ratio to persistence | ACC | std ratio |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for d in days:
            h = str(24 * d)
            for var in VARS:
                if h not in e["rmse"][var]:
                    continue
                m, p, c = e["rmse"][var][h], e["persistence"][var][h], e["climatology"][var][h]
                lines.append(f"| {d} d | {var} | {m:.2f} | {p:.2f} | {c:.2f} | **{m / p:.2f}** | "
                             f"{e['acc'][var][h]:.3f} | {e['std_ratio'][var][h]:.2f} |")
        pr = e["polar_rows_day1"]
        lines += ["", "Day 1, rows poleward of 80 degrees vs the rest (mlscam / persistence): " + "; ".join(
            f"{var} {pr[var]['forecast_polar']:.2f} / {pr[var]['persistence_polar']:.2f} "
            f"({pr[var]['forecast_polar'] / pr[var]['persistence_polar']:.2f}) vs "
            f"{pr[var]['forecast_rest']:.2f} / {pr[var]['persistence_rest']:.2f} "
            f"({pr[var]['forecast_rest'] / pr[var]['persistence_rest']:.2f})" for var in VARS), ""]
        if "latitude_bands_day1" in e:
            lb = e["latitude_bands_day1"]
            lines += ["Day 1 by latitude band (|lat|, degrees; mlscam / persistence, ratio):", "",
                      "| band | share of the globe | " + " | ".join(VARS) + " |", "| --- | --- |" + " --- |" * len(VARS)]
            for band in lb[VARS[0]]:
                cells = [f"{lb[v][band]['forecast']:.2f} / {lb[v][band]['persistence']:.2f} "
                         f"({lb[v][band]['forecast'] / lb[v][band]['persistence']:.2f})" for v in VARS]
                lines.append(f"| {band} | {lb[VARS[0]][band]['area']:.3f} | " + " | ".join(cells) + " |")
            lines.append("")
        if "zonal_mean_part_day1" in e:
            zs, ae = e["zonal_mean_part_day1"], e["autoencoder_rmse"]
            lines += ["Day 1, the zonal-mean part of the RMSE (mlscam; persistence): " + "; ".join(
                f"{v} {zs[v]['forecast_zonal_mean']:.2f} of {zs[v]['forecast']:.2f}; "
                f"{zs[v]['persistence_zonal_mean']:.2f} of {zs[v]['persistence']:.2f}" for v in VARS),
                "", "The autoencoder alone, decode(encode(x)) at the initial times: " + "; ".join(
                f"{v} {ae[v]:.2f}" for v in VARS), ""]
    if "year" in report:
        y = report["year"]
        lines.append(f"One year: {y['steps']} steps in {y['wall_s']:.1f} s; finite: {y['finite']}; zonal-mean RMSE "
                     "per level: " + "; ".join(
                         f"{var} {min(y['zonal_mean_rmse'][var].values()):.2f}-{max(y['zonal_mean_rmse'][var].values()):.2f}"
                         for var in VARS))
    return "\n".join(lines) + "\n"


def _plot_year(climate: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 * len(VARS), figsize=(16, 3.6), sharey=True)
    for k, var in enumerate(VARS):
        c = climate[var]
        lat = np.asarray(c["lat"])
        lev = [float(x) for x in c["levels"]]
        for ax, key in zip(axes[2 * k:2 * k + 2], ("truth", "forecast")):
            im = ax.contourf(lat, lev, np.asarray(c[key], dtype=float), levels=15, cmap="RdBu_r" if var == "u" else "viridis")
            ax.set_title(f"{var}: {'dycore' if key == 'truth' else 'mlscam'} (1-year mean)")
            ax.set_xlabel("latitude")
            fig.colorbar(im, ax=ax)
    axes[0].invert_yaxis()
    axes[0].set_ylabel("sigma")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
