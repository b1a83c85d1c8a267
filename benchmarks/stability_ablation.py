"""Stability levers, one table: weather skill, grid-scale noise, one-year climate and speed per variant.

    python benchmarks/stability_ablation.py --truth data/h1_test.nc --climatology-from data/h1_train.nc \\
        --climate-truth data/hs_climate_seed3_4y.nc \\
        --variant shipped=mlscam:demo/checkpoint.pt \\
        --variant nu0.05=mlscam:demo/checkpoint.pt:0.05 --variant nu0.05p60=mlscam:demo/checkpoint.pt:0.05:60 \\
        [--inits 0 24 47] [--year-days 365] --out benchmarks/stability_ablation.txt

A variant is ``LABEL=CHECKPOINT[:NU[:POLAR_LAT[:ALPHA[:MASS[:EVERY[:POLARV]]]]]]``: the
checkpoint with its latent filter (``&model latent_filter``) replaced by ``NU`` (and
``latent_filter_polar_lat``, the manifold projection ``latent_projection``
by ``ALPHA``, the dry-mass fixer ``mass_fixer`` by ``MASS``, 0 or 1, the
projection applied on every ``EVERY``-th step, ``latent_projection_every``,
default 1, and the polar wind fixer ``polar_wind_fixer`` by ``POLARV``, the
latitude rows next to each pole where [v] = 0, an integer >= 0, default 0 = off;
it needs ALPHA > 0) at inference; without NU the checkpoint's own. (Before the
mass fixer, ``EVERY`` was the fifth field: ``:0.05:60:0.1:2`` is now
``:0.05:60:0.1:0:2``.)
Every forecast steps through the one engine (``Emulator``), on 2 threads.

Per variant (T = temperature, u = zonal wind; RMSE over all levels, area weighted):

* weather, mean over ``--inits`` of the hourly ``--truth`` run (a seed no model
  was trained or chosen on): RMSE / persistence's at day 1, 3, 5 and 10,
  RMSE / climatology's at day 4 and 10 (climatology = time mean of
  ``--climatology-from``), and the last day on which the forecast still beats
  persistence (all leads checked hourly up to day 10);
* grid-scale noise, from the first initial state: share of the eddy variance
  (zonal deviations; power over zonal wavenumbers 1..nlon/2, area weighted)
  above wavenumber 21 (the T21 truncation) at day 10 and day 30, and max |u|;
* climate, ``--year-days`` from the same state, daily output: zonal-time-mean
  bias of T and u over days 30..end against the ``--climate-truth`` run's
  time mean (RMS over latitude, area weighted, and level), eddy-variance ratio,
  the grid-scale share of the year, the global-mean T drift (mean of the last
  30 days minus days 30-60); the truth's own year-to-year zonal-mean
  difference is printed as the noise floor;
* speed: seconds per latent step on 1 thread against the same checkpoint
  without stabilisers, side by side.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mlscam.assets import is_asset, resolve_asset  # noqa: E402
from mlscam.config import DataConfig  # noqa: E402
from mlscam.data.source import open_source  # noqa: E402
from mlscam.emulator import Emulator  # noqa: E402
from mlscam.model.filters import LatentFilter  # noqa: E402

VARS = ("temperature", "u")
TRUNCATION = 21


def parse_variant(text: str) -> tuple[str, Path, LatentFilter | None]:
    label, _, spec = text.partition("=")
    if not label or not spec:
        raise SystemExit(f"error: --variant {text!r}: give "
                         "LABEL=CHECKPOINT[:NU[:POLAR_LAT[:ALPHA[:MASS[:EVERY[:POLARV]]]]]]")
    parts = spec.split(":")
    if parts[0] == "mlscam" and len(parts) > 1:  # mlscam:demo/checkpoint.pt
        parts = [parts[0] + ":" + parts[1]] + parts[2:]
    path = resolve_asset(parts[0]) if is_asset(parts[0]) else Path(parts[0])
    if len(parts) > 4 and parts[4] not in ("0", "1"):
        raise SystemExit(f"error: --variant {text!r}: the fifth field MASS is 0 or 1, got {parts[4]!r} (EVERY "
                         "is the sixth: LABEL=CHECKPOINT:NU:POLAR_LAT:ALPHA:MASS:EVERY, e.g. :0.05:60:0.1:0:2)")
    if len(parts) > 7:
        raise SystemExit(f"error: --variant {text!r}: at most 7 fields after the label "
                         "(CHECKPOINT:NU:POLAR_LAT:ALPHA:MASS:EVERY:POLARV)")
    if len(parts) > 6 and not (parts[6].isdigit() and parts[6].isascii()):
        raise SystemExit(f"error: --variant {text!r}: the seventh field POLARV is the number of latitude rows next "
                         f"to each pole where [v] = 0, an integer >= 0 (0 = off), got {parts[6]!r}")
    filt = None
    if len(parts) > 1:
        try:
            filt = LatentFilter(float(parts[1]), float(parts[2]) if len(parts) > 2 else 0.0,
                                float(parts[3]) if len(parts) > 3 else 0.0,
                                bool(int(parts[4])) if len(parts) > 4 else False,
                                int(parts[5]) if len(parts) > 5 else 1,
                                int(parts[6]) if len(parts) > 6 else 0)
        except ValueError as err:
            raise SystemExit(f"error: --variant {text!r}: {err}") from None
    return label, path, filt


def read_states(path: str, em: Emulator, step_hours: float) -> tuple[torch.Tensor, np.ndarray]:
    """All times of a file as ``[T, nlat, nlon, S]`` float32 and their times."""
    src = open_source(DataConfig(files=(str(path),), variables_3d=em.layout.variables_3d,
                                 variables_2d=em.layout.variables_2d, time_step_hours=step_hours),
                      states_only=True)
    return torch.from_numpy(np.stack([src.read(t) for t in range(src.ntime)])), np.asarray(src.times)


def rmse(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor, sl: slice) -> float:
    return float(torch.sqrt((((a[..., sl] - b[..., sl]) ** 2) * w).mean()))


def eddy_spectrum(x: np.ndarray, wlat: np.ndarray) -> np.ndarray:
    """Power per zonal wavenumber 1..nlon/2 of ``x [..., nlat, nlon]``, area weighted over latitude, summed
    over the leading axes."""
    f = np.fft.rfft(x - x.mean(-1, keepdims=True), axis=-1)
    p = np.abs(f[..., 1:]) ** 2
    p[..., :-1] *= 2  # one-sided
    return (p * wlat[:, None]).reshape(-1, p.shape[-2], p.shape[-1]).sum((0, 1))


def eddy_variance(f: np.ndarray, wlat: np.ndarray) -> float:
    """Variance of the zonal deviations of ``f [..., nlat, nlon]``: mean over lon and the leading axes,
    area weighted over latitude."""
    e = ((f - f.mean(-1, keepdims=True)) ** 2).mean(-1)  # [..., nlat]
    return float(((e * wlat).sum(-1) / wlat.sum()).mean())


def grid_share(x: np.ndarray, wlat: np.ndarray) -> float:
    s = eddy_spectrum(x, wlat)
    return float(s[TRUNCATION:].sum() / s.sum())


def weather(em: Emulator, truth: torch.Tensor, clim: torch.Tensor, inits: list[int]) -> dict:
    w = torch.as_tensor(em.grid.area_weights(), dtype=torch.float32)[..., None]
    out = {v: {"model": {}, "persistence": {}, "climatology": {}} for v in VARS}
    for t0 in inits:
        n = min(240, truth.shape[0] - 1 - t0)
        for lead, x in em.rollout(truth[t0], n, output_every=1):
            for v in VARS:
                sl = em.layout.slice_of(v)
                for src, field in (("model", x), ("persistence", truth[t0]), ("climatology", clim)):
                    out[v][src].setdefault(lead, []).append(rmse(field, truth[t0 + lead], w, sl) ** 2)
    res = {}
    for v in VARS:
        m = {k: np.sqrt(np.mean(e)) for k, e in out[v]["model"].items()}
        p = {k: np.sqrt(np.mean(e)) for k, e in out[v]["persistence"].items()}
        c = {k: np.sqrt(np.mean(e)) for k, e in out[v]["climatology"].items()}
        beats = [k for k in sorted(m) if m[k] < p[k]]
        res[v] = {f"day{d}/pers": m[24 * d] / p[24 * d] for d in (1, 3, 5, 10) if 24 * d in m}
        res[v].update({f"day{d}/clim": m[24 * d] / c[24 * d] for d in (4, 10) if 24 * d in m})
        # the last lead at which the forecast beats persistence (in the first hours the autoencoder's
        # error is larger than the change, so persistence wins there), and whether it does at every lead
        # from day 1 to day 10, and beats climatology at every lead through day 4
        res[v]["beats_pers_until_h"] = beats[-1] if beats else 0
        res[v]["below_pers_day1_to_10"] = all(m[k] < p[k] for k in m if k >= 24)
        res[v]["below_clim_to_day4"] = all(m[k] < c[k] for k in m if k <= 96)
    return res


def climate(em: Emulator, x0: torch.Tensor, days: int, truth_clim: dict, wlat: np.ndarray) -> dict:
    steps_per_day = round(86400 / em.dt_seconds)
    zsum = {v: 0.0 for v in VARS}
    eddy = {v: 0.0 for v in VARS}
    spec = {v: np.zeros(em.grid.nlon // 2) for v in VARS}
    gmean, n, finite, umax, at = [], 0, True, 0.0, {}
    w2 = em.grid.area_weights()
    for step, x in em.rollout(x0, days * steps_per_day, output_every=steps_per_day):
        day = step // steps_per_day
        xn = x.numpy().astype(np.float64)
        finite &= bool(np.isfinite(xn).all())
        t = xn[..., em.layout.slice_of("temperature")]
        gmean.append(float((t.mean(-1) * w2).mean()))
        u = xn[..., em.layout.slice_of("u")]
        umax = max(umax, float(np.nanmax(np.abs(u))))
        if day in (10, 30):
            at[day] = {v: grid_share(np.moveaxis(xn[..., em.layout.slice_of(v)], -1, 0), wlat) for v in VARS}
        if day < 30:
            continue
        n += 1
        for v in VARS:
            f = np.moveaxis(xn[..., em.layout.slice_of(v)], -1, 0)  # [lev, lat, lon]
            zsum[v] = zsum[v] + f.mean(-1)
            eddy[v] += eddy_variance(f, wlat)
            spec[v] += eddy_spectrum(f, wlat)
    res = {"finite": finite, "max_abs_u": umax, "grid_share": at}
    g = np.asarray(gmean)
    res["gmean_T_drift"] = float(g[-30:].mean() - g[30:60].mean()) if len(g) >= 90 else float("nan")
    for v in VARS:
        if n == 0:
            continue
        zm = zsum[v] / n
        bias = zm - truth_clim[v]["zonal"]
        res[f"{v}_zonal_bias_rms"] = float(np.sqrt(((bias ** 2) * wlat).sum(-1).mean() / wlat.sum()))
        res[f"{v}_eddy_ratio"] = (eddy[v] / n) / truth_clim[v]["eddy"]
        res[f"{v}_grid_share_year"] = float(spec[v][TRUNCATION:].sum() / spec[v].sum())
    return res


def truth_climate(path: str, em: Emulator, wlat: np.ndarray) -> tuple[dict, dict]:
    """Zonal-time means ``[lev, lat]`` and eddy variance of a daily truth run, and its year-to-year
    zonal-mean difference (RMS, first two 365-day years) as the noise floor."""
    states, _ = read_states(path, em, 24.0)
    x = states.numpy().astype(np.float64)
    out, floor = {}, {}
    for v in VARS:
        f = np.moveaxis(x[..., em.layout.slice_of(v)], -1, 1)  # [T, lev, lat, lon]
        zonal = f.mean((0, -1))
        out[v] = {"zonal": zonal, "eddy": eddy_variance(f, wlat)}
        if f.shape[0] >= 730:
            d = f[:365].mean((0, -1)) - f[365:730].mean((0, -1))
            floor[v] = float(np.sqrt(((d ** 2) * wlat).sum(-1).mean() / wlat.sum()))
    return out, floor


def speed(em: Emulator, repeats: int = 5) -> float:
    x = bc.initial_state(em)
    z = em.encode(x)
    target = em.mass_target(x) if em.engine.mass is not None else None
    med, _ = bc.time_median(lambda: em.step(z, 24, mass_target=target), repeats)
    return med / 24


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", action="append", required=True,
                   help="LABEL=CHECKPOINT[:NU[:POLAR_LAT[:ALPHA[:MASS[:EVERY[:POLARV]]]]]] (POLARV: rows next "
                        "to each pole with [v] = 0, 0 = off)")
    p.add_argument("--truth", required=True, help="hourly truth run of an unseen seed (weather)")
    p.add_argument("--climatology-from", required=True, help="file whose time mean is the climatology")
    p.add_argument("--climate-truth", help="multi-year daily truth run (climate); omit to skip the year")
    p.add_argument("--inits", type=int, nargs="+", default=[0, 24, 47])
    p.add_argument("--year-days", type=int, default=365)
    p.add_argument("--out", default=None)
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads of the weather and climate runs (the speed pairs always use 1); 1 beside "
                        "another job")
    args = p.parse_args()
    report = bc.Report(args.out)
    report("# stability ablation: weather skill, grid-scale noise, climate, speed")
    report(f"command: {bc.command_line(__file__)}")
    for line in bc.machine_lines():
        report(line)
    variants = [parse_variant(v) for v in args.variant]
    base = Emulator.from_checkpoint(variants[0][1])
    truth, _ = read_states(args.truth, base, base.dt_seconds / 3600)
    clim_states, _ = read_states(args.climatology_from, base, base.dt_seconds / 3600)
    clim = clim_states.mean(0)
    del clim_states
    wlat = base.grid.area_weights()[:, 0]
    tclim, floor = (truth_climate(args.climate_truth, base, wlat) if args.climate_truth else (None, {}))
    if floor:
        report("truth's year-to-year zonal-mean difference (noise floor): "
               + ", ".join(f"{v} {floor[v]:.3f}" for v in VARS))
    rows = []
    for label, path, filt in variants:
        t0 = time.perf_counter()
        torch.set_num_threads(args.threads)
        em = Emulator.from_checkpoint(path, latent_filter=filt)
        plain = Emulator.from_checkpoint(path, latent_filter=LatentFilter(0.0))
        lf = em.engine.latent_filter
        row = {"label": label, "filter": ((lf.strength, lf.polar_lat, lf.projection, lf.projection_every) if lf
                                          else (0.0, 0.0, 0.0, 1)),
               "mass_fixer": bool(lf is not None and lf.mass_fixer),
               "polar_wind_rows": 0 if lf is None else int(lf.polar_wind_rows)}
        row["weather"] = weather(em, truth, clim, args.inits)
        if tclim is not None:
            row["climate"] = climate(em, truth[args.inits[0]], args.year_days, tclim, wlat)
        torch.set_num_threads(1)
        pairs = [(speed(em), speed(plain)) for _ in range(3)]
        row["speed"] = (statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs))
        row["wall_s"] = time.perf_counter() - t0
        rows.append(row)
        report(f"\n## {label}: nu {row['filter'][0]:g}, polar_lat {row['filter'][1]:g}, projection "
               f"{row['filter'][2]:g}" + (f" every {row['filter'][3]} steps" if row['filter'][3] > 1 else "")
               + f", mass fixer {'on' if row['mass_fixer'] else 'off'}, polar wind fixer "
               + (f"{row['polar_wind_rows']} rows" if row['polar_wind_rows'] else "off")
               + f" ({row['wall_s']:.0f} s)")
        for v in VARS:
            wv = row["weather"][v]
            report(f"  {v:12s} " + "  ".join(f"{k} {x:.2f}" for k, x in wv.items() if k.startswith("day"))
                   + f"  last beats persistence at {wv['beats_pers_until_h'] / 24:.1f} d; below persistence "
                   f"day 1-10: {wv['below_pers_day1_to_10']}; below climatology to day 4: {wv['below_clim_to_day4']}")
        if "climate" in row:
            c = row["climate"]
            report(f"  finite {c['finite']}, max|u| {c['max_abs_u']:.1f} m/s, global-mean T drift "
                   f"{c['gmean_T_drift']:+.2f} K; grid-scale share (> k{TRUNCATION}) "
                   + "; ".join(f"day {d}: " + ", ".join(f"{v} {s:.1%}" for v, s in sh.items())
                               for d, sh in c["grid_share"].items()))
            report("  year (days 30-end): " + "; ".join(
                f"{v} zonal bias RMS {c.get(f'{v}_zonal_bias_rms', float('nan')):.2f}, eddy ratio "
                f"{c.get(f'{v}_eddy_ratio', float('nan')):.2f}, grid share {c.get(f'{v}_grid_share_year', float('nan')):.1%}"
                for v in VARS))
        report(f"  speed (1 thread): {row['speed'][0] * 1e3:.2f} ms/step with the stabilisers, "
               f"{row['speed'][1] * 1e3:.2f} without ({row['speed'][0] / row['speed'][1]:.3f}x)")
    report()
    report(bc.load_warning(2))
    report.save()


if __name__ == "__main__":
    main()
