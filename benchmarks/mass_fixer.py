"""The mass fixer on the shipped demo: global-mean surface pressure drift and step time, with and without it.

    python benchmarks/mass_fixer.py [--days 30] [--threads 1] [--out FILE]

Two serial ``Emulator`` rollouts of the demo checkpoint from its initial state,
one with the checkpoint's stabilisers as shipped, one with ``&rollout mass_fixer
= 1`` on top (``mlscam/model/mass.py``), advanced in turns a day at a time in one
process (the same load for both). Reported: the area-weighted global-mean surface
pressure of the decoded daily outputs minus the initial state's (the reproducible
global sum), and the wall time per step (steps only, and steps + the daily decode),
summed over the run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

import torch  # noqa: E402

from mlscam.assets import resolve_asset  # noqa: E402
from mlscam.config import DataConfig, RolloutConfig  # noqa: E402
from mlscam.data.source import open_source  # noqa: E402
from mlscam.emulator import Emulator  # noqa: E402
from mlscam.model.filters import LatentFilter  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = bc.Report(args.out)
    report(f"# mass fixer on the demo: {args.days}-day serial rollouts, {args.threads} thread(s)")
    report(f"command: {bc.command_line(__file__, argv)}")
    for line in bc.machine_lines():
        report(line)

    ckpt = resolve_asset(bc.DEFAULT_CHECKPOINT)
    src = open_source(DataConfig(files=(str(resolve_asset(bc.DEFAULT_INITIAL_STATE)),),
                                 variables_3d=("u", "v", "temperature"), time_step_hours=1.0))
    x0 = torch.from_numpy(src.read(0))
    plain = Emulator.from_checkpoint(ckpt, warn_blas=False)
    model = plain.checkpoint.config.model
    fixed = Emulator.from_checkpoint(ckpt, warn_blas=False,
                                     latent_filter=LatentFilter.of(model, RolloutConfig(mass_fixer=1)))
    per_day = round(86400 / plain.dt_seconds)
    target = fixed.mass_target(x0)  # the reproducible global mean, also the measure for both runs
    report(f"demo: {plain.grid.nlat}x{plain.grid.nlon}, dt {plain.dt_seconds:g} s, latent_filter "
           f"{model.latent_filter}, latent_projection {model.latent_projection}; initial global-mean ps "
           f"{float(target):.4f} Pa")
    runs = {"without": {"em": plain, "target": None}, "with": {"em": fixed, "target": target}}
    for r in runs.values():
        r.update(z=r["em"].encode(x0), step_s=0.0, out_s=0.0, drift=[])
    for day in range(args.days):
        for r in runs.values():
            em = r["em"]
            t0 = time.perf_counter()
            r["z"] = em.step(r["z"], per_day, mass_target=r["target"], start=day * per_day)
            t1 = time.perf_counter()
            x = em.decode(r["z"], mass_target=r["target"])
            r["out_s"] += time.perf_counter() - t1
            r["step_s"] += t1 - t0
            r["drift"].append(float(fixed.mass_target(x) - target))
    report()
    report("fixer     ps change day N (Pa)   max |change| (Pa)   s/step (steps)   s/step (+ daily decode)")
    steps = args.days * per_day
    for name, r in runs.items():
        report(f"{name:8s}  {r['drift'][-1]:+18.4f}   {max(map(abs, r['drift'])):17.4f}   "
               f"{r['step_s'] / steps:14.5f}   {(r['step_s'] + r['out_s']) / steps:21.5f}")
    ratio = runs["with"]["step_s"] / runs["without"]["step_s"]
    report(f"the fixer's step costs {ratio:.3f}x the step without it")
    report(bc.load_warning(args.threads))
    report.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
