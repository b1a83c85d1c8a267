"""Scoring a model in training by the climate of a long rollout (``&train climate_truth``, ``select_by``).

The validation loss scores a few steps; what a climate model needs is a climate.
Loss and climate disagree (issue 13: runs of lower validation loss drifted more),
so a run can score its model at each validation by a rollout of
``climate_days`` from time 0 of the first validation file, with the step a
forecast of the run's namelist would take (its ``&model`` stabilisers and
fixers with the ``&rollout`` overrides, e.g. ``&rollout mass_fixer = 1`` for a
model trained without the fixer that ships with it), against the truth's
zonal-time means and eddy variance, read from a ``truth_summary.json`` of the
validation data's own long run (``python -m mlscam.evaluate climate`` writes
it).  The statistics are those of ``python -m mlscam.evaluate climate``
(:func:`mlscam.evaluate.read_run_climate`, :func:`mlscam.evaluate.evaluate_climate`),
on days ``climate_spinup_days`` .. ``climate_days`` of daily decoded states.

The score adds, for each variable ``v`` of ``climate_variables`` with tolerance
``tol`` (``climate_tolerances``), two terms that are 1 at issue 13's acceptance
thresholds::

    bias_rms(v) / tol  +  |ln(eddy variance ratio of v)| / ln(1.4)

(a zonal-mean bias of ``tol``; an eddy variance 1.4x or 1/1.4x the truth's).  A
rollout that is not finite scores ``inf``.  Lower is better.

``python -m mlscam.train.climate CHECKPOINT [--set group.key=value ...]`` scores a
checkpoint file the same way (its own namelist with the overrides, and its climate
correction when it has one, ``mlscam.model.correction``; e.g.
``--set train.climate_truth=T.json --set rollout.mass_fixer=1``) and prints the
numbers as JSON.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..data.source import open_source
from ..emulator import Emulator
from ..evaluate import RunClimate, evaluate_climate, read_run_climate
from ..grid import LatLonGrid
from ..layout import ColumnLayout
from ..model.filters import LatentFilter
from ..normalization import Normalization

__all__ = ["ClimateScore", "score_of"]

EDDY_TOLERANCE = 1.4  # an eddy variance ratio of 1.4 (or 1/1.4) counts 1, as a bias of the tolerance does


def score_of(result: dict, tolerances: dict[str, float]) -> float:
    """The climate score of the first forecast of an :func:`mlscam.evaluate.evaluate_climate` result."""
    total = 0.0
    for v, tol in tolerances.items():
        m = result["forecasts"][0]["variables"][v]
        bias, ratio = m["zonal_mean_bias_rms"]["total"], m["eddy_variance_ratio"]["total"]
        if not m["stability"]["finite"] or bias is None or ratio is None or not (
                math.isfinite(bias) and math.isfinite(ratio) and ratio > 0):
            return math.inf
        total += bias / tol + abs(math.log(ratio)) / math.log(EDDY_TOLERANCE)
    return total


class ClimateScore:
    """The climate score of a model: built once per run (reads the truth summary and the initial state),
    called at each validation with the model to score (whose weights it does not change)."""

    def __init__(self, config: Config, *, layout: ColumnLayout, grid: LatLonGrid, normalization: Normalization,
                 dt_seconds: float, correction=None):
        t = config.train
        self.config, self.layout, self.grid = config, layout, grid
        self.correction = correction  # the step's climate correction (&train climate_correction), or None
        self.normalization, self.dt_seconds = normalization, float(dt_seconds)
        self.tolerances = dict(zip(t.climate_variables, t.climate_tolerances))
        path = Path(t.climate_truth)
        try:
            self.truth = RunClimate.from_dict(json.loads(path.read_text()), source=str(path))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"&train climate_truth = {str(path)!r}: cannot read it ({type(exc).__name__}: {exc}); "
                             "pass the truth_summary.json that `python -m mlscam.evaluate climate --forecast F.nc "
                             "--truth T.nc --out DIR` wrote for a long run of the validation data's model") from None
        unknown = [v for v in self.tolerances if v not in layout.variables]
        missing = [v for v in self.tolerances if v not in self.truth.fields]
        if unknown or missing:
            raise ValueError(
                f"&train climate_variables: {unknown + missing} "
                + (f"are not variables of the model ({list(layout.variables)})" if unknown else
                   f"are not in {path} (it has {list(self.truth.fields)})")
                + "; list variables that both have")
        self.flip = self._check_grid(path)
        self.steps_per_day = round(86400.0 / self.dt_seconds)
        if abs(self.steps_per_day * self.dt_seconds - 86400.0) > 1e-6:
            raise ValueError(f"climate scoring decodes once a day, but a day is not a whole number of model steps "
                             f"of {self.dt_seconds:g} s; set &train climate_truth = '' for this model")
        if not config.data.val_files:
            raise ValueError("&train climate_truth starts its rollout from time 0 of the first &data val_files "
                             "file, but val_files is empty; set val_files (a run of the truth's model)")
        self.source = open_source(config.data, files=config.data.val_files[:1], states_only=True)
        # the step of a forecast made with this namelist: the &model stabilisers with &rollout's overrides (e.g. a
        # model trained without the fixers, scored with them switched on as it would ship)
        self.latent_filter = LatentFilter.of(config.model, override=config.rollout)
        self.days = int(math.floor(t.climate_days))
        self.spinup_days = float(t.climate_spinup_days)

    def initial_state(self, time: int) -> torch.Tensor:
        """State ``time`` of the first validation file, ``[nlat, nlon, n_state]``."""
        return torch.as_tensor(np.asarray(self.source.read(time), dtype=np.float32))

    def _check_grid(self, path: Path) -> bool:
        """Check the summary's grid and levels against the model's; returns whether its latitudes run north
        to south (the model's run south to north)."""
        lat, grid_lat = np.asarray(self.truth.lat, float), np.asarray(self.grid.lat, float)
        if lat.size != grid_lat.size or self.truth.lon.size != self.grid.nlon:
            raise ValueError(f"&train climate_truth {path} is on a {lat.size}x{self.truth.lon.size} grid, the model "
                             f"on {self.grid.nlat}x{self.grid.nlon}; summarise a run on the model's grid")
        flip = lat.size > 1 and lat[0] > lat[-1]
        if not np.allclose(lat[::-1] if flip else lat, grid_lat, atol=1e-3):
            raise ValueError(f"&train climate_truth {path}: its latitudes differ from the model grid's; summarise a "
                             "run on the model's grid")
        for v in self.tolerances:
            n = len(self.truth.fields[v].levels)
            want = self.layout.nlev if v in self.layout.variables_3d else 1
            if n != want:
                raise ValueError(f"&train climate_truth {path}: {v!r} has {n} levels there, {want} in the model")
        return flip

    def _dataset(self, states: list[np.ndarray]):
        """Daily states ``[nlat, nlon, n_state]`` (days 1, 2, ...) as the forecast dataset that read_run_climate
        reads (lead times from a scalar ``initial_time``, as in the forecast files of ``mlscam.rollout``)."""
        import xarray as xr

        x = np.stack(states)  # [day, lat, lon, state]
        if self.flip:
            x = x[:, ::-1]
        lay = self.layout
        data = {}
        for v in self.tolerances:
            sl = lay.slice_of(v)
            if v in lay.variables_3d:
                data[v] = (("time", "level", "lat", "lon"), np.moveaxis(x[..., sl], -1, 1))
            else:
                data[v] = (("time", "lat", "lon"), x[..., sl][..., 0])
        start = np.datetime64("2000-01-01T00:00")
        time = start + np.arange(1, x.shape[0] + 1) * np.timedelta64(1, "D")
        coords = {"time": time, "initial_time": start, "lat": np.asarray(self.truth.lat),
                  "lon": np.asarray(self.truth.lon)}
        if self.truth.level is not None:
            coords["level"] = np.asarray(self.truth.level)
        return xr.Dataset(data, coords=coords, attrs={"source_file": "climate-scoring rollout"})

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, *, start: int = 0) -> dict[str, float]:
        """``{"climate_score": s, "climate_<v>_bias": ..., "climate_<v>_eddy_ratio": ...}`` of ``model``, from
        time ``start`` of the first validation file (training scores time 0)."""
        x0 = self.initial_state(start)
        was_training = model.training
        try:
            em = Emulator(model, self.layout, self.grid, self.normalization, self.dt_seconds,
                          chunk_size=self.config.model.chunk_size, latent_filter=self.latent_filter,
                          correction=self.correction, warn_blas=False)
            device = next(model.parameters()).device
            states = []
            for _, x in em.rollout(x0.to(device), self.days * self.steps_per_day,
                                   output_every=self.steps_per_day):
                states.append(x.cpu().numpy())
        finally:
            model.train(was_training)
        names = list(self.tolerances)
        run = read_run_climate(self._dataset(states), names, spinup_days=self.spinup_days, what="climate rollout",
                               progress=False)
        # the truncation only sets the reported share of variance above it, which the score does not use
        result = evaluate_climate([run], self.truth, variables=names, truncation=min(21, self.grid.nlon // 2 - 1))
        out = {"climate_score": score_of(result, self.tolerances)}
        for v in names:
            m = result["forecasts"][0]["variables"][v]
            out[f"climate_{v}_bias"] = _float(m["zonal_mean_bias_rms"]["total"])
            out[f"climate_{v}_eddy_ratio"] = _float(m["eddy_variance_ratio"]["total"])
        return out


def _float(x) -> float:
    return math.nan if x is None else float(x)


def main(argv=None) -> int:
    import argparse
    import sys

    from ..checkpoint import CheckpointError, load_checkpoint
    from ..config import ConfigError, apply_overrides

    p = argparse.ArgumentParser(prog="python -m mlscam.train.climate",
                                description="The climate score of a checkpoint, as a training run with &train "
                                            "climate_truth computes it at each validation (docs/design.md).")
    p.add_argument("checkpoint", help="checkpoint file (its namelist is the starting point)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="GROUP.KEY=VALUE",
                   help="change the checkpoint's namelist, e.g. train.climate_truth=T.json, data.val_files=V.nc, "
                        "rollout.mass_fixer=1 (repeatable)")
    p.add_argument("--start", type=int, nargs="+", default=[0], metavar="T",
                   help="time indices of the first validation file to start from, one score each (default 0, "
                        "what training scores; several measure how much the score depends on the weather)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    from .. import blas

    blas.pin()
    torch.set_num_threads(args.threads)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        cfg = apply_overrides(ckpt.config, args.overrides)
        if not cfg.train.climate_truth:
            raise ConfigError("no truth to score against: pass --set train.climate_truth=TRUTH_SUMMARY.json")
        score = ClimateScore(cfg, layout=ckpt.layout, grid=ckpt.grid, normalization=ckpt.normalization,
                             dt_seconds=ckpt.dt_seconds, correction=ckpt.correction)  # as it ships
        model = ckpt.build_model()
        for start in args.start:
            print(json.dumps({"checkpoint": str(args.checkpoint), "start": start, "days": score.days,
                              "spinup_days": score.spinup_days, "latent_step": str(score.latent_filter),
                              **score(model, start=start)}), flush=True)
    except (ConfigError, CheckpointError, ValueError, OSError, IndexError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
