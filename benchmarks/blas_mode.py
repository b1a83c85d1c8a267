"""What the reproducible BLAS mode costs, and how far other CPUs' kernels move a forecast.

    python benchmarks/blas_mode.py [--checkpoint PATH] [--rounds 5] [--steps 24] [--days 5] [--out FILE]

MKL's mode can only be chosen before its first matmul, so every measurement
runs in a fresh child process:

1. **Cost.** The latent step of the model on its training grid (T21 for the
   demo), 1 and 2 threads, in three modes: MKL's default (no ``MKL_CBWR``: what
   mlscam did before ``mlscam.blas``), ``AUTO,STRICT`` (what every entry point
   now pins) and ``COMPATIBLE`` (the same code on every CPU). The modes take
   turns, round after round, so machine load hits them alike; reported is each
   mode's median over rounds of the per-round median seconds per step, and its
   ratio to the default.
2. **Across CPU kernels.** The same ``--days`` forecast from the shipped initial
   state in ``AUTO,STRICT`` with MKL restricted to AVX2 and to SSE4.2 (the
   kernels of older or AMD CPUs), against the unrestricted run: max and RMS
   difference of temperature and zonal wind at the end. Decompositions are bit
   for bit under each restriction (tests/test_blas.py); this is the spread
   between CPU models.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

MODES = {"MKL default (before)": None, "AUTO,STRICT (pinned)": "AUTO,STRICT", "COMPATIBLE": "COMPATIBLE"}
ISAS = {"CPU's best": None, "AVX2": "AVX2", "SSE4_2": "SSE4_2"}
INITIAL = "mlscam:demo/initial_state.nc"


def _child(task: str, args: argparse.Namespace, cbwr: str | None, isa: str | None, threads: int = 1) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MKL_")}
    env["MLSCAM_BENCH_NO_PIN"] = "1"  # the child's mode is exactly the one set here
    if cbwr:
        env["MKL_CBWR"] = cbwr
    if isa:
        env["MKL_ENABLE_INSTRUCTIONS"] = isa
    cmd = [sys.executable, __file__, "--child", task, "--checkpoint", args.checkpoint, "--steps", str(args.steps),
           "--days", str(args.days), "--threads", str(threads)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if p.returncode:
        raise SystemExit(f"child {task} ({cbwr}, {isa}) failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _run_child(args: argparse.Namespace) -> None:
    import torch

    from mlscam import blas

    torch.set_num_threads(args.threads)
    em = bc.load_spec(args).emulator()
    out = {"mode": blas.mode().name}
    if args.child == "time":
        z = em.encode(bc.initial_state(em))
        med, _ = bc.time_median(lambda: em.step(z, args.steps), 5)
        out["s_per_step"] = med / args.steps
    else:
        from mlscam.assets import resolve_asset
        from mlscam.config import DataConfig
        from mlscam.data import open_source

        src = open_source(DataConfig(files=(str(resolve_asset(INITIAL)),), variables_3d=em.layout.variables_3d,
                                     variables_2d=em.layout.variables_2d,
                                     time_step_hours=em.dt_seconds / 3600.0), states_only=True)
        x0 = torch.from_numpy(src.read(0))
        steps = round(args.days * 86400 / em.dt_seconds)
        x = dict(em.rollout(x0, steps, output_every=steps))[steps]
        for name in ("temperature", "u"):
            out[name] = x[..., em.layout.slice_of(name)].double().flatten().tolist()
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    bc.add_model_arguments(p)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=24, help="latent steps per timed call")
    p.add_argument("--days", type=float, default=5.0, help="forecast length for the kernel comparison")
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--child", choices=("time", "forecast"), help=argparse.SUPPRESS)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.child:
        return _run_child(args)

    import numpy as np

    report = bc.Report(args.out)
    report("# reproducible BLAS mode: cost of the latent step, and spread between CPU kernels")
    report(f"command: {bc.command_line(__file__)}")
    for line in bc.machine_lines():
        report(line)
    report(f"model: {args.checkpoint}")
    report()
    report(f"## 1. cost: median over {args.rounds} rounds (modes take turns) of seconds per latent step")
    report("threads mode                         mode read back      s/step   ratio to default")
    for threads in (1, 2):
        times: dict[str, list[float]] = {m: [] for m in MODES}
        names = {}
        for _ in range(args.rounds):
            for label, cbwr in MODES.items():
                r = _child("time", args, cbwr, None, threads)
                times[label].append(r["s_per_step"])
                names[label] = r["mode"]
        base = statistics.median(times["MKL default (before)"])
        for label in MODES:
            med = statistics.median(times[label])
            report(f"{threads:7d} {label:28s} {names[label]:15s} {med:10.5f}   {med / base:6.3f}")
    report(bc.load_warning())
    report()
    report(f"## 2. across CPU kernels: {args.days:g}-day forecast from {INITIAL}, AUTO,STRICT, "
           "difference to the unrestricted run")
    runs = {label: _child("forecast", args, "AUTO,STRICT", isa) for label, isa in ISAS.items()}
    ref = runs["CPU's best"]
    report("MKL instructions   variable       max |diff|     RMS diff")
    for label in list(ISAS)[1:]:
        for name in ("temperature", "u"):
            d = np.asarray(runs[label][name]) - np.asarray(ref[name])
            report(f"{label:18s} {name:12s} {np.abs(d).max():12.3e} {np.sqrt((d ** 2).mean()):12.3e}")
    report.save()


if __name__ == "__main__":
    main()
