"""Held-Suarez training data from the ``dinosaur`` dynamical core.

    python -m mlscam.datagen.held_suarez --resolution T21 --levels 10 \\
        --spinup-days 200 --days 200 --interval-hours 6 --seed 0 --output hs_train.nc

Spins the model up from the seeded rest state for ``--spinup-days``, then
writes one sample every ``--interval-hours`` for ``--days`` days (the first
sample is the state at the end of the spin-up; ``days * 24 / interval``
samples in all) as CF-1.8 NetCDF on the equiangular cell-centred lat-lon grid
(see mlscam.datagen.cf_writer for the layout and mlscam.datagen.dycore for the
model set-up).  At the end it stores and prints the per-latitude Courant
numbers of the data interval.  Needs ``pip install .[datagen]``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from mlscam.datagen.cf_writer import CFStateWriter
from mlscam.datagen.courant import (
    EARTH_RADIUS_M,
    CourantTable,
    RunningMaxAbs,
    courant_numbers,
    format_summary,
    summary_rows,
)

__all__ = ["HeldSuarezRun", "TIME_UNITS", "CALENDAR", "generate", "main"]

#: Time 0 is the initial rest state; the first sample is at ``24 * spinup_days`` hours.
TIME_UNITS = "hours since 2000-01-01 00:00:00"
CALENDAR = "proleptic_gregorian"
#: Largest relative departure of a written state's global-mean surface pressure from the initial 1000 hPa
#: (check_mass). CPU-made years stay within 5e-5; a run that lost or gained 0.5% of its mass is broken.
MASS_TOLERANCE = 0.005


@dataclass(frozen=True)
class HeldSuarezRun:
    """What to simulate and sample."""

    resolution: str = "T21"
    levels: int = 10
    spinup_days: float = 200.0
    days: float = 200.0
    interval_hours: float = 6.0
    seed: int = 0
    dt_minutes: float | None = None

    def __post_init__(self):
        if self.spinup_days < 0:
            raise ValueError(f"spinup_days must be >= 0, got {self.spinup_days}")
        if self.days <= 0:
            raise ValueError(f"days must be > 0, got {self.days}")
        if self.interval_hours <= 0:
            raise ValueError(f"interval_hours must be > 0, got {self.interval_hours}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        for name, value in (("days", self.days), ("spinup_days", self.spinup_days)):
            n = value * 24.0 / self.interval_hours
            if abs(n - round(n)) > 1e-9:
                raise ValueError(
                    f"{name}={value} is not a whole number of {self.interval_hours}-hour intervals; "
                    f"choose {name} so that {name} * 24 / interval_hours is an integer"
                )

    @property
    def n_samples(self) -> int:
        return round(self.days * 24.0 / self.interval_hours)

    @property
    def n_spinup_intervals(self) -> int:
        return round(self.spinup_days * 24.0 / self.interval_hours)


def _steps_per_interval(interval_hours: float, dt_minutes: float) -> int:
    n = interval_hours * 60.0 / dt_minutes
    if abs(n - round(n)) > 1e-9 or round(n) < 1:
        raise ValueError(
            f"the data interval {interval_hours} h is not a whole number of {dt_minutes}-minute model steps; "
            "choose --interval-hours (or --dt-minutes) so that interval * 60 / dt is an integer"
        )
    return round(n)


def _created() -> str:
    """UTC creation time; honours SOURCE_DATE_EPOCH for reproducible files."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = (
        datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc)
        if epoch
        else datetime.datetime.now(tz=datetime.timezone.utc)
    )
    return now.replace(microsecond=0).isoformat()


def check_mass(surface_pressure: np.ndarray, area: np.ndarray, p0: float, *, hour: float) -> None:
    """Refuse a state whose global-mean surface pressure (the atmosphere's mass) is more than
    ``MASS_TOLERANCE`` away from the initial ``p0``: the dycore conserves mass (CPU-made years stay within
    5 Pa of 1000 hPa), so such a state means the platform did not compute the model (``dycore.pin_transform_precision``)."""
    mean = float(np.mean(np.asarray(surface_pressure, dtype=np.float64) * area))
    if not abs(mean / p0 - 1.0) <= MASS_TOLERANCE:
        import jax

        raise RuntimeError(
            f"the dycore's state at hour {hour:g} has a global-mean surface pressure of {mean / 100:.2f} hPa, "
            f"{100 * (mean / p0 - 1):+.2f}% from the {p0 / 100:.0f} hPa it started with (allowed: "
            f"{100 * MASS_TOLERANCE:g}%): the atmosphere's mass is not conserved on this platform "
            f"({jax.default_backend()}), so these would not be Held-Suarez data and nothing was written. "
            "Generate on the CPU (JAX_PLATFORMS=cpu) and report the platform and versions."
        )


def generate(run: HeldSuarezRun, output: str, *, command_line: str = "", progress: bool = True) -> CourantTable:
    """Simulate ``run`` and write it to ``output`` (atomically). Returns the Courant table."""
    try:
        from mlscam.datagen.dycore import (
            FILTER, P0_PA, TRANSFORM_PRECISION, HeldSuarezModel, dinosaur_version, jax_version,
        )
    except ImportError as err:
        raise ImportError(
            f"the Held-Suarez generator needs the dinosaur dynamical core ({err}); "
            "install it with `pip install .[datagen]` (or `pip install dinosaur`)"
        ) from err

    model = HeldSuarezModel(run.resolution, run.levels, run.dt_minutes)
    steps = _steps_per_interval(run.interval_hours, model.dt_minutes)
    advance = model.advance_fn(steps)
    created = _created()
    attrs = {
        "title": f"Held-Suarez climate, {run.resolution} L{run.levels}, dinosaur spectral dynamical core",
        "source": f"dinosaur {dinosaur_version()} (jax {jax_version()}), dry primitive equations with Held-Suarez (1994) forcing",
        "tool": "mlscam.datagen.held_suarez",
        "dinosaur_version": dinosaur_version(),
        "jax_version": jax_version(),
        "resolution": run.resolution,
        "levels": run.levels,
        "seed": run.seed,
        "spinup_days": run.spinup_days,
        "days": run.days,
        "interval_hours": run.interval_hours,
        "model_time_step_minutes": model.dt_minutes,
        "transform_precision": TRANSFORM_PRECISION,
        "time_stepping": "IMEX SIL3 (dinosaur.time_integration.imex_rk_sil3)",
        "filter": "exponential step filter tau={tau} (model units), order={order}, cutoff={cutoff}".format(**FILTER),
        "initial_condition": "isothermal 288 K rest atmosphere, p0=1000 hPa, surface-pressure perturbation "
        "p1=50 hPa centred at a point drawn from jax.random.PRNGKey(seed)",
        "horizontal_grid": f"equiangular cell-centred lat-lon {model.grid.nlon}x{model.grid.nlat}, "
        "lat_j = -90 + 180 (j + 1/2) / nlat, lon_i = 360 i / nlon",
        "horizontal_interpolation": "spectral evaluation: the model's spherical-harmonic coefficients evaluated "
        "at the equiangular cell centres (not the dycore's Gaussian grid)",
        "vertical_levels": "equidistant sigma layer midpoints, top first as in the dycore",
        "time_origin": "time 0 is the initial rest state",
        "command_line": command_line,
        "created": created,
        "history": f"{created}: {command_line or 'mlscam.datagen.held_suarez.generate'}",
        "references": "Held, I. M. and Suarez, M. J. (1994), BAMS 75, 1825-1830; https://github.com/google-research/dinosaur",
    }
    umax, vmax = RunningMaxAbs(model.grid.nlat), RunningMaxAbs(model.grid.nlat)
    area = model.grid.area_weights()
    day_per_interval = run.interval_hours / 24.0
    state = model.initial_state(run.seed)
    with CFStateWriter(
        output, model.grid, model.sigma, model.sigma_bounds, time_units=TIME_UNITS, calendar=CALENDAR, global_attrs=attrs
    ) as writer, tqdm(
        total=run.spinup_days + run.days, unit="day", desc=f"Held-Suarez {run.resolution} seed {run.seed}",
        disable=not progress, bar_format="{l_bar}{bar}| {n:.2f}/{total:.0f} days [{elapsed}<{remaining}]",
    ) as bar:
        for _ in range(run.n_spinup_intervals):
            state = advance(state)
            bar.update(day_per_interval)
        for k in range(run.n_samples):
            if k > 0:
                state = advance(state)
                bar.update(day_per_interval)
            fields = model.to_latlon(state)
            check_mass(fields["surface_pressure"], area, P0_PA, hour=run.spinup_days * 24.0 + k * run.interval_hours)
            writer.append(run.spinup_days * 24.0 + k * run.interval_hours, fields)
            umax.update(fields["u"])
            vmax.update(fields["v"])
        bar.update(day_per_interval)  # the last sample covers the final interval of the window
        table = courant_numbers(
            umax.value, vmax.value, model.grid.lat_array(), model.grid.nlon, run.interval_hours * 3600.0, EARTH_RADIUS_M
        )
        writer.set_courant(table.courant_u, table.courant_v, table.dt_seconds)
        writer.commit()
    return table


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mlscam.datagen.held_suarez", description=__doc__.split("\n\n")[0])
    d = HeldSuarezRun()  # the defaults live in the dataclass
    p.add_argument("--resolution", default=d.resolution, help="spectral truncation: T21 (64x32 output) or T42 (128x64)")
    p.add_argument("--levels", type=int, default=d.levels, help="number of equidistant sigma levels")
    p.add_argument("--spinup-days", type=float, default=d.spinup_days, help="days simulated before the first sample")
    p.add_argument("--days", type=float, default=d.days, help="days sampled after the spin-up")
    p.add_argument("--interval-hours", type=float, default=d.interval_hours, help="data interval (hours)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the initial surface-pressure perturbation")
    p.add_argument("--dt-minutes", type=float, default=d.dt_minutes, help="model time step (default: 20 at T21, 10 at T42)")
    p.add_argument("--output", required=True, help="output NetCDF file (written atomically)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else argv
    command_line = "python -m mlscam.datagen.held_suarez " + " ".join(shlex.quote(a) for a in argv_used)
    run = HeldSuarezRun(
        resolution=args.resolution,
        levels=args.levels,
        spinup_days=args.spinup_days,
        days=args.days,
        interval_hours=args.interval_hours,
        seed=args.seed,
        dt_minutes=args.dt_minutes,
    )
    t0 = time.perf_counter()
    table = generate(run, args.output, command_line=command_line, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    print(f"wrote {args.output}: {run.n_samples} samples, wall time {wall:.1f} s")
    print(format_summary(table, summary_rows(table)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
