"""Dycore trajectories from an emulator's own drifted states (training data on the model's distribution).

A long emulator rollout leaves the states it was trained on: biases grow where its
tendencies are wrong, and nothing in the training data says how the atmosphere
would go on from there. This tool makes that data:

1. start ``members`` rollouts of the emulator from random times of a training file;
2. decode each member every ``every_days`` from ``first_day`` to ``days``
   (the drifted states);
3. restart the Held-Suarez dycore from every drifted state
   (:meth:`mlscam.datagen.dycore.HeldSuarezModel.from_latlon`), balance it with a
   forward digital filter over ``dfi_hours`` (a decoded state restarted as it is
   rings with gravity waves: surface-pressure tendencies of ~300 Pa/h for days,
   against ~20 Pa/h in the dycore's own run; filtered, ~20 Pa/h), and record it
   hourly for ``hours`` (the targets: what the true dynamics do from the model's
   own states);
4. write one CF file per trajectory into ``output_dir``.

Train on them beside the original data with ``&data independent_files = .true.``
(each file is a trajectory of its own: no window spans two files). The idea is
DAgger's (Ross et al. 2011) and the "targets from the dycore restarted from the
drifted state" of docs/design.md.

    python -m mlscam.datagen.drifted --checkpoint mlscam/assets/demo/checkpoint.pt --data data/h1_train.nc \\
        --members 8 --first-day 6 --every-days 3 --days 60 --hours 36 --output-dir data/drifted

Only training data may seed it (the starting times come from ``--data``).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from datetime import datetime, timezone

import numpy as np
import torch
from tqdm import tqdm

__all__ = ["DriftedRun", "generate", "main"]


@dataclasses.dataclass(frozen=True)
class DriftedRun:
    """What to make: ``members`` rollouts, a drifted state every ``every_days`` from ``first_day`` to ``days``,
    each continued ``hours`` hours by the dycore."""

    checkpoint: str
    data: str
    output_dir: str
    members: int = 8
    first_day: float = 6.0
    every_days: float = 3.0
    days: float = 60.0
    hours: int = 36
    dfi_hours: float = 24.0
    seed: int = 0
    resolution: str = "T21"
    threads: int = 0

    def __post_init__(self):
        if self.members < 1:
            raise ValueError(f"members must be >= 1, got {self.members}")
        if not 0 < self.first_day <= self.days:
            raise ValueError(f"need 0 < first_day <= days, got first_day={self.first_day}, days={self.days}")
        if self.every_days <= 0:
            raise ValueError(f"every_days must be > 0, got {self.every_days}")
        if self.dfi_hours < 0:
            raise ValueError(f"dfi_hours must be >= 0 (0 = no digital filter), got {self.dfi_hours}")
        if self.hours < 1:
            raise ValueError(f"hours must be >= 1, got {self.hours}")

    def snapshot_steps(self, dt_hours: float) -> list[int]:
        """Emulator steps at which the members are decoded."""
        per_day = 24.0 / dt_hours
        days = np.arange(self.first_day, self.days + 1e-9, self.every_days)
        return sorted({int(round(d * per_day)) for d in days})


def _fields(layout, x: np.ndarray) -> dict[str, np.ndarray]:
    """A decoded state ``[nlat, nlon, S]`` -> the dycore's fields (``[level, lat, lon]``, ``[lat, lon]``)."""
    out = {}
    for name in ("u", "v", "temperature"):
        out[name] = np.moveaxis(x[..., layout.slice_of(name)], -1, 0)
    out["surface_pressure"] = x[..., layout.slice_of("surface_pressure")][..., 0]
    return out


def write_trajectory(dycore, advance, fields: dict[str, np.ndarray], hours0: float, run: DriftedRun, path: str,
                     attrs: dict, on_hour=None) -> None:
    """The dycore restarted from ``fields`` (a decoded state at time ``hours0``), balanced by the digital
    filter over ``run.dfi_hours`` (0: as it is), then ``run.hours`` hourly states: one CF file at ``path``."""
    from mlscam.datagen.cf_writer import CFStateWriter
    from mlscam.datagen.held_suarez import CALENDAR, TIME_UNITS

    state = dycore.from_latlon(fields)
    t = hours0
    if run.dfi_hours > 0:
        state = dycore.digital_filter(state, run.dfi_hours)
        t += run.dfi_hours / 2.0
    with CFStateWriter(path, dycore.grid, dycore.sigma, dycore.sigma_bounds, time_units=TIME_UNITS,
                       calendar=CALENDAR, global_attrs=attrs) as writer:
        writer.append(t, dycore.to_latlon(state))
        for _ in range(run.hours):
            state = advance(state)
            t += 1.0
            writer.append(t, dycore.to_latlon(state))
            if on_hour is not None:
                on_hour()
        writer.commit()


def generate(run: DriftedRun, *, command_line: str = "", progress: bool = True) -> list[str]:
    """Make the trajectories of ``run``; returns the paths written (each atomically)."""
    import cftime

    from mlscam.data.source import open_source
    from mlscam.datagen.dycore import HeldSuarezModel, dinosaur_version
    from mlscam.datagen.held_suarez import CALENDAR, TIME_UNITS
    from mlscam.emulator import Emulator

    from mlscam import blas

    blas.pin()  # before the first matmul, as every mlscam driver does
    if run.threads:
        torch.set_num_threads(run.threads)
    em = Emulator.from_checkpoint(run.checkpoint)
    layout, grid = em.layout, em.grid
    missing = [v for v in ("u", "v", "temperature", "surface_pressure") if v not in layout.variables]
    if missing:
        raise ValueError(f"the dycore restart needs the variables u, v, temperature and surface_pressure; the "
                         f"checkpoint's layout lacks {missing}")
    dycore = HeldSuarezModel(run.resolution, layout.nlev)
    if dycore.grid.shape != grid.shape:
        raise ValueError(f"the checkpoint's grid {grid.shape} is not the dycore's {run.resolution} grid "
                         f"{dycore.grid.shape}; pass --resolution to match")
    if not np.allclose(dycore.sigma, layout.levels, atol=1e-5):
        raise ValueError(f"the checkpoint's levels {layout.levels} are not the dycore's sigma {list(dycore.sigma)}")
    dt_hours = em.dt_seconds / 3600.0
    per_hour = 60.0 / dycore.dt_minutes
    if abs(per_hour - round(per_hour)) > 1e-9:
        raise ValueError(f"the dycore step {dycore.dt_minutes} min does not divide an hour")
    advance = dycore.advance_fn(int(round(per_hour)))
    data_cfg = dataclasses.replace(em.checkpoint.config.data, files=(run.data,), independent_files=False)
    with open_source(data_cfg) as src:
        rng = np.random.default_rng(run.seed)
        starts = np.sort(rng.choice(src.ntime, size=run.members, replace=run.members > src.ntime))
        x0 = torch.from_numpy(np.stack([src.read(int(t)) for t in starts]))
        start_hours = [float(cftime.date2num(src.times[int(t)], TIME_UNITS, CALENDAR)) for t in starts]
    os.makedirs(run.output_dir, exist_ok=True)
    snaps = run.snapshot_steps(dt_hours)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    written: list[str] = []
    bar = tqdm(total=run.members * (snaps[-1] + len(snaps) * run.hours), unit="step", disable=not progress,
               desc="drifted states")
    for m in range(run.members):  # one member at a time: a batch of globes runs slower per globe on a CPU
        z, done = em.encode(x0[m:m + 1]), 0
        for step in snaps:
            for k in range(done, step):  # one step at a time: the bar moves on long rollouts
                z = em.step(z, start=k)  # the run's step count (&model latent_projection_every)
                bar.update(1)
            done = step
            fields = _fields(layout, em.decode(z)[0].numpy().astype(np.float64))
            name = f"drifted_m{m:02d}_h{step:05d}.nc"
            if not all(np.all(np.isfinite(a)) for a in fields.values()) or np.any(fields["surface_pressure"] <= 0):
                tqdm.write(f"{name}: member {m} is not finite or has ps <= 0 at step {step}; skipped")
                bar.update(run.hours)
                continue
            attrs = {
                "title": f"Held-Suarez dycore restarted from an emulator's drifted state ({run.resolution} L{layout.nlev})",
                "source": f"mlscam.datagen.drifted; dinosaur {dinosaur_version()}",
                "tool": "mlscam.datagen.drifted",
                "checkpoint": os.path.abspath(run.checkpoint),
                "seed_data": os.path.abspath(run.data),
                "member": m,
                "start_time_index": int(starts[m]),
                "emulator_steps": int(step),
                "dfi_hours": run.dfi_hours,
                "comment": "the dycore restarted from the decoded emulator state after emulator_steps steps from "
                           "time index start_time_index of seed_data, balanced by a forward digital filter over "
                           "dfi_hours (time 0 = the filtered state, dfi_hours/2 after the emulator's), then hourly",
                "command_line": command_line,
                "created": created,
                "history": f"{created}: {command_line or 'mlscam.datagen.drifted.generate'}",
            }
            path = os.path.join(run.output_dir, name)
            write_trajectory(dycore, advance, fields, start_hours[m] + step * dt_hours, run, path, attrs,
                             on_hour=lambda: bar.update(1))
            written.append(path)
    bar.close()
    return written


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mlscam.datagen.drifted", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="the emulator whose own states seed the dycore")
    p.add_argument("--data", required=True, help="the training file the rollouts start from")
    p.add_argument("--output-dir", required=True, help="one NetCDF file per trajectory goes here")
    for name, default, kind in (("members", 8, int), ("first-day", 6.0, float), ("every-days", 3.0, float),
                                ("days", 60.0, float), ("hours", 36, int), ("dfi-hours", 24.0, float),
                                ("seed", 0, int), ("threads", 0, int)):
        p.add_argument(f"--{name}", type=kind, default=default, help=f"default {default}")
    p.add_argument("--resolution", default="T21", help="the dycore's truncation (the checkpoint's grid)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run = DriftedRun(args.checkpoint, args.data, args.output_dir, args.members, args.first_day,
                         args.every_days, args.days, args.hours, args.dfi_hours, args.seed, args.resolution,
                         args.threads)
        paths = generate(run, command_line="python -m mlscam.datagen.drifted " + shlex.join(sys.argv[1:] if argv is None else argv),
                         progress=not args.no_progress)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} trajectories to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
