"""Latent-only rollout against decode-and-re-encode every step: time per step of each.

    python benchmarks/latent_vs_reencode.py [--checkpoint PATH | --random-weights NAMELIST]
        [--grid T21] [--threads 1 2] [--steps 24] [--repeats 5] [--out FILE]

On the whole grid (T21 = 32 x 64 by default), ``--steps`` steps from one
state, median of ``--repeats`` runs (the two kinds of run interleaved), for
each torch thread count:

* latent-only: ``z = encode(x0)``; ``--steps`` x ``z = step(z)``; ``decode(z)`` once;
* re-encode: ``z = encode(x0)``; ``--steps`` x (``z = step(z)``; ``z = encode(decode(z))``),
  i.e. what a model that steps in physical space through the autoencoder pays.

Also the parts alone (one ``encode``, one ``decode``, one ``step`` of the whole
grid), so that re-encode per step ~ step + decode + encode can be checked.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402
import torch  # noqa: E402

GRIDS = {"T21": (32, 64), "T42": (64, 128), "tiny": (8, 16)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.add_model_arguments(p)
    p.add_argument("--grid", default="T21", choices=list(GRIDS))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny 8x16 grid, 2 steps, 1 repeat")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.grid, args.steps, args.repeats = "tiny", 2, 1
    from mlscam.grid import LatLonGrid

    grid = LatLonGrid.equiangular(*GRIDS[args.grid])
    report = bc.Report(args.out)
    report("# latent-only rollout vs decode-and-re-encode every step")
    report(f"command: {bc.command_line(__file__, argv)}")
    for line in bc.machine_lines():
        report(line)
    spec = bc.load_spec(args, grid=grid if args.quick else None)
    report(f"model: {spec.source}; latent {spec.model_config.latent_dim}, {spec.model_config.mixer} mixer; "
           f"grid {args.grid} {grid.nlat} x {grid.nlon} = {grid.ncol} columns; {args.steps} steps per run, "
           f"median of {args.repeats} runs")
    report()
    report(f"{'threads':>7} {'latent ms/step':>15} {'re-encode ms/step':>18} {'ratio':>6} {'encode ms':>10} "
           f"{'decode ms':>10} {'step ms':>8}  load at start")
    ratios = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        em = spec.emulator(grid)
        x0 = bc.initial_state(em)
        n = args.steps
        load = bc.load_average()

        def latent():
            return em.decode(em.step(em.encode(x0), n))

        def reencode():
            z = em.encode(x0)
            for _ in range(n):
                z = em.encode(em.decode(em.step(z)))
            return z

        z0 = em.encode(x0)
        latent(), reencode()  # warm-up
        lat_times, re_times = [], []
        for _ in range(args.repeats):  # interleaved, so that changing load hits both alike
            lat_times.append(bc.time_median(latent, 1, warmup=0)[0])
            re_times.append(bc.time_median(reencode, 1, warmup=0)[0])
        t_lat, t_re = statistics.median(lat_times), statistics.median(re_times)
        t_enc, _ = bc.time_median(lambda: em.encode(x0), args.repeats)
        t_dec, _ = bc.time_median(lambda: em.decode(z0), args.repeats)
        t_step, _ = bc.time_median(lambda: em.step(z0), args.repeats)
        ms = 1000.0 / n
        ratio = t_re / t_lat
        ratios.append((threads, ratio, t_lat * ms, t_re * ms))
        report(f"{threads:>7} {t_lat * ms:>15.2f} {t_re * ms:>18.2f} {ratio:>6.2f} {t_enc * 1e3:>10.2f} "
               f"{t_dec * 1e3:>10.2f} {t_step * 1e3:>8.2f}  {load}")
    report()
    report("latent ms/step includes one encode and one decode spread over the steps; "
           "re-encode ms/step = step + decode + encode every step")
    for threads, ratio, a, b in ratios:
        report(f"threads {threads}: re-encoding every step costs {ratio:.2f}x the latent-only rollout "
               f"({b:.2f} vs {a:.2f} ms per step)")
    report(f"load average at end: {bc.load_average()}; {bc.load_warning()}")
    report.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
