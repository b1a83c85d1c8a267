"""Emulator rollout throughput against the Dinosaur Held-Suarez dycore, in the same run.

    python benchmarks/rollout_throughput.py [--checkpoint PATH | --random-weights NAMELIST]
        [--grids T21 T42] [--threads 1 2] [--days 1] [--repeats 3] [--dycore-days 3] [--out FILE]

For every grid (T21 = 32 x 64, T42 = 64 x 128; the T21 weights run on T42
through the explicit other-grid option) this times, in one process:

* the dycore (``mlscam.datagen.dycore.HeldSuarezModel(resolution, 10)``, its own
  time step): its jitted ``advance_fn`` for one simulated day, called
  ``--dycore-days`` times after a JIT warm-up call; the median (and the best)
  is reported in seconds per simulated day. JAX uses its default CPU threading
  (all cores the process may use), whatever the torch thread count.
* the emulator with 1 and 2 torch threads, ``--days`` simulated days at its
  data step, median of ``--repeats`` runs:
  - latent-only: encode once, step, decode once at the end;
  - 6-hourly output: ``Emulator.rollout(x0, n, output_every=6 h / step)``,
    decoding every 6 simulated hours (never re-encoding).

Reported: seconds per step, column-steps per second, simulated days per second
and the ratio emulator-days-per-second / dycore-days-per-second (threshold
>= 1, goal 10).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402
import torch  # noqa: E402

GRIDS = {"T21": (32, 64), "T42": (64, 128), "tiny": (8, 16)}
DAY = 86400.0


def time_dycore(resolution: str, levels: int, days: int, report) -> tuple[float, float]:
    """(median, best) seconds per simulated day of the dycore's jitted advance function (after a warm-up call)."""
    import jax

    from mlscam.datagen.dycore import HeldSuarezModel

    hs = HeldSuarezModel(resolution, levels)
    steps = round(1440 / hs.dt_minutes)
    advance = hs.advance_fn(steps)
    state = hs.initial_state(0)
    t0 = time.perf_counter()
    state = jax.block_until_ready(advance(state))  # compile + first day
    compile_s = time.perf_counter() - t0
    per_day = []
    for _ in range(days):
        report.lines.append(f"  (load before dycore day: {bc.load_average()})")
        t0 = time.perf_counter()
        state = jax.block_until_ready(advance(state))
        per_day.append(time.perf_counter() - t0)
    per_day.sort()
    med = per_day[len(per_day) // 2]
    report(f"dycore {resolution} L{levels}: dt {hs.dt_minutes:g} min ({steps} steps/day), JAX {jax.__version__} "
           f"devices {jax.devices()}, compile+first day {compile_s:.2f} s; per simulated day "
           f"{', '.join(f'{t:.3f}' for t in per_day)} s -> median {med:.3f} s/day, best {min(per_day):.3f} s/day")
    return med, min(per_day)


def time_emulator(spec: bc.ModelSpec, grid, threads: int, days: float, repeats: int, report) -> list[dict]:
    torch.set_num_threads(threads)
    em = spec.emulator(grid)
    x0 = bc.initial_state(em)
    n = max(1, round(days * DAY / em.dt_seconds))
    every = max(1, min(round(6 * 3600 / em.dt_seconds), n))
    em.decode(em.step(em.encode(x0), 2))  # warm-up (allocator, thread pool)

    def latent_only():
        return em.decode(em.step(em.encode(x0), n))

    def six_hourly():
        return [x for _, x in em.rollout(x0, n, output_every=every)]

    rows = []
    for mode, fn in (("latent-only", latent_only), (f"decode every {every} steps", six_hourly)):
        load = bc.load_average()
        med, all_t = bc.time_median(fn, repeats, warmup=0)
        sim_days = n * em.dt_seconds / DAY
        rows.append({"threads": threads, "mode": mode, "steps": n, "s_per_step": med / n,
                     "col_steps_per_s": grid.ncol * n / med, "days_per_s": sim_days / med,
                     "s_per_day": med / sim_days, "best_s_per_day": min(all_t) / sim_days, "load": load, "runs": all_t})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.add_model_arguments(p)
    p.add_argument("--grids", nargs="+", default=["T21", "T42"], choices=list(GRIDS))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--days", type=float, default=1.0, help="simulated days per emulator run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dycore-days", type=int, default=3, help="timed simulated days of the dycore")
    p.add_argument("--no-dycore", action="store_true", help="emulator only (no ratio)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny 8x16 grid, 2 steps, no dycore")
    p.add_argument("--out", default=None, help="also write the report here")
    args = p.parse_args(argv)
    if args.quick:
        args.grids, args.no_dycore, args.repeats = ["tiny"], True, 1
    from mlscam.grid import LatLonGrid

    report = bc.Report(args.out)
    report("# rollout throughput: emulator vs Dinosaur Held-Suarez dycore, same run")
    report(f"command: {bc.command_line(__file__, argv)}")
    for line in bc.machine_lines():
        report(line)
    spec = bc.load_spec(args, grid=LatLonGrid.equiangular(*GRIDS[args.grids[0]]) if args.quick else None)
    if args.quick:
        args.days = 2 * spec.dt_seconds / DAY
    report(f"model: {spec.source}; {spec.model_config.mixer} mixer, latent {spec.model_config.latent_dim}, "
           f"{spec.model_config.mixer_blocks} blocks, channel_hidden {spec.model_config.channel_hidden}, "
           f"chunk {spec.chunk_size}; step {spec.dt_seconds / 3600:g} h; trained on "
           f"{spec.train_grid.nlat}x{spec.train_grid.nlon}")
    summary = []
    for name in args.grids:
        grid = LatLonGrid.equiangular(*GRIDS[name])
        report()
        report(f"## {name}: {grid.nlat} x {grid.nlon} = {grid.ncol} columns"
               + ("" if grid == spec.train_grid else f" (weights of the {spec.train_grid.nlat}x{spec.train_grid.nlon} training grid; a checkpoint goes through allow_other_grid=True)"))
        report(f"load before: {bc.load_average()}")
        dycore, dycore_best = (None, None) if args.no_dycore else time_dycore(name, args.levels, args.dycore_days,
                                                                              report)
        rows = [r for t in args.threads for r in time_emulator(spec, grid, t, args.days, args.repeats, report)]
        report(f"emulator: {rows[0]['steps']} steps per run ({rows[0]['steps'] * spec.dt_seconds / DAY:g} "
               f"simulated days), median of {args.repeats} runs")
        report(f"{'threads':>7} {'mode':<24} {'s/step':>9} {'col-steps/s':>12} {'days/s':>8} {'s/day':>8} "
               f"{'ratio':>7} {'best s/day':>10} {'best ratio':>10}  load at start")
        for r in rows:
            ratio = "" if dycore is None else f"{r['days_per_s'] * dycore:7.2f}"
            best = "" if dycore is None else f"{dycore_best / r['best_s_per_day']:10.2f}"
            report(f"{r['threads']:>7} {r['mode']:<24} {r['s_per_step']:>9.4f} {r['col_steps_per_s']:>12.3g} "
                   f"{r['days_per_s']:>8.2f} {r['s_per_day']:>8.3f} {ratio:>7} {r['best_s_per_day']:>10.3f} "
                   f"{best:>10}  {r['load']}")
            if dycore is not None:
                summary.append(f"{name} threads {r['threads']} {r['mode']}: emulator {r['s_per_day']:.3f} s/day, "
                               f"dycore {dycore:.3f} s/day, ratio {r['days_per_s'] * dycore:.2f} (medians); best runs: "
                               f"{r['best_s_per_day']:.3f} vs {dycore_best:.3f} s/day, ratio "
                               f"{dycore_best / r['best_s_per_day']:.2f}")
    report()
    if summary:
        report("ratio = emulator simulated days per second / dycore simulated days per second "
               "(threshold >= 1, goal 10); 'best' uses the fastest run of each (least disturbed by other load)")
        for line in summary:
            report(line)
    report(f"load average at end: {bc.load_average()}; {bc.load_warning()}")
    report.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
