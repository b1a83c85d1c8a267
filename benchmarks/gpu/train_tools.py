"""Helpers of ``benchmarks/gpu/train.sh`` (data generation and training on a lent GPU machine).

    python benchmarks/gpu/train_tools.py probe [--seconds 3] [--spinup-days 200] [--days 180]
        time the Held-Suarez generator on the JAX platform of this process (JAX_PLATFORMS): compile time,
        days/s of the spin-up (steps only) and of the sampling (steps + the hourly output), and the estimated
        wall time of one file of --spinup-days + --days; then the lines ``estimate_s SECONDS`` and
        ``rates SPINUP_DAYS_PER_S SAMPLING_DAYS_PER_S SETUP_S``
    python benchmarks/gpu/train_tools.py stats NAMELIST [--set group.key=value ...]
        make &data stats_path right for the run: with &train init_from (or resume) the statistics must be
        the checkpoint's (the weights were trained on them; the trainer takes the checkpoint's since
        2026-11-28, before it normalised with stats_path, computed from the new data). Writes the
        checkpoint's normalization to stats_path when that file does not exist, else checks that it equals
        the checkpoint's (exit 1 if not). Without init_from/resume it says the trainer computes them.
    python benchmarks/gpu/train_tools.py validate NAMELIST [--set group.key=value ...]
        build the run's trainer as `python -m mlscam.train` would (init_from loaded) and validate it once,
        without training: the starting weights' numbers on the same validation windows as the run's
    python benchmarks/gpu/train_tools.py summary LOG.jsonl
        the training and validation numbers of a train_log.jsonl (steps, last loss, first/best/final validation)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path


def probe(args) -> int:
    t0 = time.perf_counter()
    import jax

    from mlscam.datagen.dycore import HeldSuarezModel
    from mlscam.datagen.held_suarez import _steps_per_interval

    platform = jax.devices()[0].platform
    model = HeldSuarezModel(args.resolution, args.levels)
    advance = model.advance_fn(_steps_per_interval(1.0, model.dt_minutes))  # one hour, as train.sh samples
    state = model.initial_state(0)
    t_build = time.perf_counter() - t0
    t1 = time.perf_counter()
    state = advance(state)
    model.to_latlon(state)  # compiles both, waits for the result
    t_compile = time.perf_counter() - t1

    def rate(sample: bool) -> float:
        nonlocal state
        n, start = 0, time.perf_counter()
        while True:
            for _ in range(24):  # one day per round
                state = advance(state)
                if sample:
                    model.to_latlon(state)
            jax.block_until_ready(state)
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= args.seconds / 2:
                return n / elapsed

    spin, samp = rate(False), rate(True)
    estimate = args.spinup_days / spin + args.days / samp
    print(f"probe jax {jax.__version__} on {platform} ({jax.devices()[0].device_kind}): set-up {t_build:.1f} s, "
          f"compile {t_compile:.1f} s, spin-up {spin:.2f} days/s, sampling hourly {samp:.2f} days/s; "
          f"{args.spinup_days:g} + {args.days:g} days: about {estimate:.0f} s (+ set-up and compile)")
    print(f"estimate_s {estimate + t_build + t_compile:.1f}")
    print(f"rates {spin:.4f} {samp:.4f} {t_build + t_compile:.1f}")  # spin-up days/s, sampling days/s, set-up s
    return 0


def stats(args) -> int:
    import numpy as np

    from mlscam.checkpoint import load_checkpoint
    from mlscam.config import ConfigError, config_from_args
    from mlscam.data.stats import load_stats, write_stats

    try:
        cfg = config_from_args(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    path, source = cfg.data.stats_path, cfg.train.init_from or cfg.train.resume
    key = "init_from" if cfg.train.init_from else "resume"
    if not source:
        state = "exists, used as it is" if path and Path(path).is_file() else "computed from the training data"
        print(f"stats: {path or '(none)'} ({state}; no init_from/resume)")
        return 0
    if not path:
        print(f"error: &train {key} = {source} but &data stats_path is empty: the trainer would compute "
              "statistics from the new data, not use the checkpoint's", file=sys.stderr)
        return 1
    ckpt = load_checkpoint(source)
    if not Path(path).is_file():
        write_stats(path, ckpt.normalization, ckpt.layout,
                    attrs={"source": f"the normalization of checkpoint {source} (benchmarks/gpu/train_tools.py)"})
        print(f"stats: {path} = the normalization of the {key} checkpoint {source} (written)")
        return 0
    have, want = load_stats(path, ckpt.layout).to_dict(), ckpt.normalization.to_dict()
    worst = max(float(np.max(np.abs(np.asarray(have[k]) - np.asarray(want[k])) / (np.abs(np.asarray(want[k])) + 1e-12)))
                for k in want)
    if worst > 1e-6:
        print(f"error: {path} differs from the normalization of the {key} checkpoint {source} (largest relative "
              f"difference {worst:.3g}): its weights would see other inputs; remove the file or point "
              "data.stats_path elsewhere", file=sys.stderr)
        return 1
    print(f"stats: {path} equals the normalization of the {key} checkpoint {source}")
    return 0


def validate(args) -> int:
    from mlscam import blas
    from mlscam.config import ConfigError, config_from_args

    blas.pin()
    try:
        cfg = config_from_args(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from mlscam.train.build import build_trainer

    t0 = time.perf_counter()
    trainer = build_trainer(cfg, progress=False)
    if trainer.val_batches is None:
        print("baseline: no validation files")
        return 0
    val = trainer.validate()
    start = cfg.train.init_from or cfg.train.resume or f"seeded initialisation (seed {cfg.train.seed})"
    print(f"baseline (step 0, {start}, on {trainer.device}, {time.perf_counter() - t0:.1f} s): "
          + ", ".join(f"val_{k} {_fmt(v)}" for k, v in val.items() if not k.endswith("_weighted")))
    t1 = time.perf_counter()
    for step in range(4):
        x = trainer.train_batches(step)["x"]
    print(f"batch reads: one training batch {tuple(x.shape)} takes {(time.perf_counter() - t1) / 4 * 1e3:.0f} ms "
          "to read on the CPU (the loop waits for it every step)")
    return 0


def _fmt(x) -> str:
    return f"{x:.5g}" if isinstance(x, (int, float)) and math.isfinite(x) else str(x)


def summary(args) -> int:
    recs = []
    with open(args.log) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    recs.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by the stop: ignore it
                    pass
    if not recs:
        print("training: no step logged")
        return 0
    last = recs[-1]
    print(f"training: {len(recs)} steps logged, last step {last['step']}: loss {_fmt(last['loss'])}, "
          f"lr {_fmt(last.get('lr'))}, grad_norm {_fmt(last.get('grad_norm'))}")
    vals = [r for r in recs if "val_loss" in r]
    if not vals:
        print("validation: none ran (val_every larger than the steps done?)")
        return 0
    terms = [k for k in vals[0] if k.startswith("val_") and not k.endswith("_weighted")]

    def line(label, r):
        return f"  {label:<6} step {r['step']:>6}: " + ", ".join(f"{k} {_fmt(r[k])}" for k in terms)

    best = min(vals, key=lambda r: r["val_loss"])
    print(f"validation: {len(vals)} runs, steps {vals[0]['step']}..{vals[-1]['step']}")
    print(line("first", vals[0]))
    print(line("best", best))
    print(line("final", vals[-1]))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/gpu/train_tools.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("probe", help="time the Held-Suarez generator on this JAX platform")
    pr.add_argument("--resolution", default="T21")
    pr.add_argument("--levels", type=int, default=10)
    pr.add_argument("--seconds", type=float, default=3.0, help="timed seconds (half spin-up, half sampling)")
    pr.add_argument("--spinup-days", type=float, default=200.0)
    pr.add_argument("--days", type=float, default=180.0)
    st = sub.add_parser("stats", help="the checkpoint's statistics for an init_from/resume run")
    from mlscam.config import add_config_arguments

    add_config_arguments(st)
    add_config_arguments(sub.add_parser("validate", help="validate the run's starting weights once"))
    su = sub.add_parser("summary", help="numbers of a train_log.jsonl")
    su.add_argument("log")
    a = p.parse_args(argv)
    return {"probe": probe, "stats": stats, "validate": validate, "summary": summary}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
