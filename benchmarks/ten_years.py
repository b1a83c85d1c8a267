"""Ten years of the shipped demo (issue 13's 10-year benchmark): finite, and the global-mean temperature drift.

    python benchmarks/ten_years.py [--checkpoint mlscam:demo/checkpoint.pt] [--init data/hs_climate_seed3_4y.nc]
        [--years 10] [--every-days 5] [--out benchmarks/ten_years.txt]

One rollout from day 0 of ``--init`` (a run no model trained on), decoded every ``--every-days``. Reported:
whether every decoded state is finite, the largest |u| and the temperature range, the area-weighted global
mean of temperature (all levels) per year with its standard deviation over the year's outputs, the eddy
variance of temperature and u per year (zonal deviations, area-weighted, mean over levels) as a ratio to
the same of ``--init``'s own records (a run that settles into a steady state has none left), and the drift:
the mean of the last year minus the mean of the first year after day 30 (the target: |drift| <= 1 K).
"""
from __future__ import annotations

import argparse
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


def eddy_variance(x: np.ndarray, where: slice, row_weights: np.ndarray) -> float:
    """Area-weighted mean over rows and levels of the zonal variance of ``x[..., where]`` (``x [lat, lon, S]``)."""
    f = x[..., where]
    var = ((f - f.mean(1, keepdims=True)) ** 2).mean(1)  # [lat, lev]
    return float((var.mean(-1) * row_weights).sum() / row_weights.sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="mlscam:demo/checkpoint.pt")
    p.add_argument("--init", default="data/hs_climate_seed3_4y.nc")
    p.add_argument("--years", type=float, default=10.0)
    p.add_argument("--every-days", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    report = bc.Report(a.out)
    report("# ten years of one rollout: finite, global-mean temperature drift")
    report(f"command: {bc.command_line(__file__)}")
    for line in bc.machine_lines():
        report(line)
    torch.set_num_threads(a.threads)
    ckpt = resolve_asset(a.checkpoint) if is_asset(a.checkpoint) else Path(a.checkpoint)
    em = Emulator.from_checkpoint(ckpt)
    corr = em.checkpoint.correction
    report(f"checkpoint {a.checkpoint}: stabilisers {em.engine.latent_filter}; climate correction "
           + ("none" if corr is None else f"on: {', '.join(corr.variables)} (mlscam/model/correction.py)"))
    src = open_source(DataConfig(files=(a.init,), variables_3d=("u", "v", "temperature"), time_step_hours=24.0))
    x0 = torch.from_numpy(np.asarray(src.read(0)))
    per_day = round(86400 / em.dt_seconds)
    days = int(round(a.years * 365))
    w = em.grid.area_weights()  # [lat, lon]
    T, U = em.layout.slice_of("temperature"), em.layout.slice_of("u")
    rows = w.sum(1)
    truth = [np.asarray(src.read(i)).astype(np.float64) for i in range(0, src.ntime, 5)]
    eddy_truth = (np.mean([eddy_variance(x, T, rows) for x in truth]), np.mean([eddy_variance(x, U, rows) for x in truth]))
    rec, finite, umax, tmin, tmax = [], True, 0.0, np.inf, -np.inf
    t0 = time.perf_counter()
    for step, x in em.rollout(x0, days * per_day, output_every=a.every_days * per_day):
        xn = x.numpy().astype(np.float64)
        finite &= bool(np.isfinite(xn).all())
        t = xn[..., T]
        rec.append((step / per_day, float((t.mean(-1) * w).sum() / w.sum()),
                    eddy_variance(xn, T, rows) / eddy_truth[0], eddy_variance(xn, U, rows) / eddy_truth[1]))
        umax = max(umax, float(np.nanmax(np.abs(xn[..., U]))))
        tmin, tmax = min(tmin, float(np.nanmin(t))), max(tmax, float(np.nanmax(t)))
    wall = time.perf_counter() - t0
    d = np.array(rec)
    report(f"{days} days ({days * per_day} steps) in {wall:.0f} s; finite: {finite}; max |u| {umax:.1f} m/s; "
           f"temperature range [{tmin:.1f}, {tmax:.1f}] K")
    report(f"truth ({a.init}, every 5th of {src.ntime} records): eddy variance T {eddy_truth[0]:.3f} K2, "
           f"u {eddy_truth[1]:.3f} m2 s-2")
    report("year  global-mean T [K]  its std [K]  eddy variance / truth's (T, u)")
    for y in range(int(np.ceil(days / 365))):
        sel = (d[:, 0] > y * 365 + (30 if y == 0 else 0)) & (d[:, 0] <= (y + 1) * 365)
        if sel.any():
            report(f"{y + 1:4d}  {d[sel, 1].mean():17.3f}  {d[sel, 1].std():11.3f}  "
                   f"{d[sel, 2].mean():.2f}, {d[sel, 3].mean():.2f}")
    first = d[(d[:, 0] > 30) & (d[:, 0] <= 365), 1]
    last = d[d[:, 0] > days - 365, 1]
    drift = float(last.mean() - first.mean())
    report(f"drift (last year minus first year after day 30): {drift:+.3f} K; target |drift| <= 1 K: "
           f"{'met' if abs(drift) <= 1 and finite else 'not met'}")
    report(bc.load_warning(a.threads))
    report.save()


if __name__ == "__main__":
    main()
