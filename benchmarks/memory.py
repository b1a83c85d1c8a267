"""Peak memory of a short and a long rollout through the real driver ``python -m mlscam.rollout``.

    python benchmarks/memory.py [--checkpoint PATH | --random-weights NAMELIST]
        [--input-nc mlscam:demo/initial_state.nc] [--steps 100 2000] [--output-every 6] [--threads 1] [--out FILE]

In a temporary directory: the initial state is time 0 of ``--input-nc``
(``python -m mlscam.data.subset INPUT --times 0 --output init.nc``); with
``--random-weights`` a checkpoint of that namelist's ``&model`` with random
weights, identity normalization and the column layout / grid of the initial
state is written with ``mlscam.checkpoint.save_checkpoint``; a namelist
(the checkpoint's configuration with ``&rollout``, ``&parallel threads`` and
``&output`` set) is written next to it. Then, for every ``--steps`` value, a
fresh ``python -m mlscam.rollout NAMELIST --num-steps N`` writes NetCDF every
``--output-every`` steps; its peak resident memory is the child's
``ru_maxrss`` from ``os.wait4`` (the kernel's high-water mark of that process).
Threshold: the longest run's peak within 5% of the shortest's.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402
import torch  # noqa: E402

ROOT = bc.ROOT


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[int, float, float, str]:
    """Run ``cmd``; return (exit status, peak RSS in MiB from wait4, wall seconds, output tail)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        log.seek(0)
        tail = log.read().decode(errors="replace")[-2000:]
    return proc.returncode, usage.ru_maxrss / 1024.0, wall, tail


def make_inputs(args, work: Path, env: dict[str, str]) -> tuple[Path, str]:
    """Write init.nc, (random-weights) checkpoint.pt and run.nml in ``work``; return (namelist, model line)."""
    from mlscam.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from mlscam.config import config_to_namelist, load_config
    from mlscam.data.source import open_source
    from mlscam.model import build_model
    from mlscam.normalization import Normalization

    init = work / "init.nc"
    from mlscam.assets import resolve_asset

    source = resolve_asset(args.input_nc) if args.input_nc.startswith("mlscam:") else args.input_nc
    cmd = [sys.executable, "-m", "mlscam.data.subset", str(source), "--times", "0", "--output", str(init)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    if args.random_weights:
        cfg = load_config(args.random_weights)
        with open_source(cfg.data, [str(init)]) as src:
            layout, grid = src.layout, src.grid
        torch.manual_seed(0)
        model = build_model(cfg.model, layout)
        ckpt_path = save_checkpoint(work / "checkpoint.pt", Checkpoint(
            config=cfg, layout=layout, normalization=Normalization.identity(layout.n_state),
            dt_seconds=cfg.data.time_step_hours * 3600.0, grid=grid, state_dict=model.state_dict()))
        what = f"random weights, &model of {args.random_weights} (checkpoint written to the temp dir)"
    else:
        from mlscam.assets import is_asset, resolve_asset

        ckpt_path = resolve_asset(args.checkpoint) if is_asset(args.checkpoint) else Path(args.checkpoint)
        cfg = load_checkpoint(ckpt_path).config
        what = f"checkpoint {ckpt_path}"
    cfg = dataclasses.replace(
        cfg,
        rollout=dataclasses.replace(cfg.rollout, checkpoint_path=str(ckpt_path), input_nc_path=str(init),
                                    output_nc_path=str(work / "forecast.nc"), output_every=args.output_every,
                                    start_time=0, restart_in="", restart_out=""),
        parallel=dataclasses.replace(cfg.parallel, threads=args.threads, device="cpu"),
        output=dataclasses.replace(cfg.output, directory=str(work), progress=False, quicklook=False),
    )
    nml = work / "run.nml"
    nml.write_text(config_to_namelist(cfg))
    m = cfg.model
    return nml, (f"model: {what}; {m.mixer} mixer, latent {m.latent_dim}, {m.mixer_blocks} blocks, "
                 f"channel_hidden {m.channel_hidden}, step {cfg.data.time_step_hours:g} h")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.add_model_arguments(p)
    p.add_argument("--input-nc", default=bc.DEFAULT_INITIAL_STATE, help="file whose time 0 is the initial state (mlscam:REL = shipped asset)")
    p.add_argument("--steps", nargs="+", type=int, default=[100, 2000])
    p.add_argument("--output-every", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", default=None, help="keep the inputs and forecasts here (default: a temp dir)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 and 4 steps, output every 2")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.output_every = [2, 4], 2
    report = bc.Report(args.out)
    report("# peak memory of rollouts through python -m mlscam.rollout")
    report(f"command: {bc.command_line(__file__, argv)}")
    for line in bc.machine_lines():
        report(line)
    env = child_env(args.threads)
    with tempfile.TemporaryDirectory(prefix="mlscam_memory_") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        nml, model_line = make_inputs(args, work, env)
        report(model_line)
        report(f"initial state: time 0 of {args.input_nc}; NetCDF output every {args.output_every} steps; "
               f"{args.threads} torch thread(s) (&parallel threads, OMP_NUM_THREADS)")
        report(f"each case: {sys.executable} -m mlscam.rollout {nml.name} --num-steps N "
               "--output-nc-path forecast_N.nc (fresh process; peak RSS = ru_maxrss from os.wait4)")
        report()
        report(f"{'steps':>6} {'outputs':>8} {'peak RSS MiB':>13} {'wall s':>8} {'file MiB':>9}  load at start")
        peaks = {}
        for n in args.steps:
            load = bc.load_average()
            out_nc = work / f"forecast_{n}.nc"
            cmd = [sys.executable, "-m", "mlscam.rollout", str(nml), "--num-steps", str(n),
                   "--output-nc-path", str(out_nc)]
            code, peak, wall, tail = run_measured(cmd, env)
            if code:
                raise SystemExit(f"error: {' '.join(cmd)} exited with {code}:\n{tail}")
            peaks[n] = peak
            report(f"{n:>6} {n // args.output_every:>8} {peak:>13.1f} {wall:>8.1f} "
                   f"{out_nc.stat().st_size / 2**20:>9.2f}  {load}")
    lo, hi = min(args.steps), max(args.steps)
    growth = 100.0 * (peaks[hi] - peaks[lo]) / peaks[lo]
    report()
    report(f"peak of the {hi}-step run vs the {lo}-step run: {growth:+.2f}% (threshold: within 5%) -> "
           f"{'PASS' if abs(growth) <= 5 else 'FAIL'}")
    report(f"load average at end: {bc.load_average()}; {bc.load_warning(args.threads)}")
    report.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
