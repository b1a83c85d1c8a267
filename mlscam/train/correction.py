"""Estimating a checkpoint's climate correction from a long run it may be trained on (``mlscam.model.correction``).

    python -m mlscam.train.correction CHECKPOINT OUT.pt --truth TRUTH.nc [--starts 0 365] [--days 240]
        [--iterations 3] [--variables temperature u]

``TRUTH.nc`` is a long run of the truth's model (e.g. two years of daily states of a training seed of the
Held-Suarez dycore). Its zonal-time mean over all its times is the target; the model is rolled out ``--days``
from each of ``--starts`` (time indices of the same file; one batch), with the step the checkpoint ships
(its ``&model`` stabilisers and fixers: correct the exported file), and its zonal-time mean over days
``--spinup-days`` .. ``--days`` is compared with the target. The forcing is then updated,

    rate <- rate - bias / tau      (per latitude and channel of the corrected variables)

with ``tau`` (days) a response time of the model's zonal mean to a forcing (``--response-days``, 20 by
default): an under-relaxed fixed-point iteration. The zonal mean's response is neither local nor linear
(a forcing of u moves the jet, whose eddies move T), and faster updates overshot: on stage 16Z a secant
estimate of tau (12 and 10 days) made the bias worse twice (``docs/demo_model.md``, session 14), while two
updates at 20 days took it from 1.40 K / 2.61 m/s to 0.63 K / 1.50 m/s. Starting from a checkpoint that
already has a correction continues from it (its rate is the first evaluation).

Every rate is evaluated by its own rollouts; the one with the smallest ``bias_rms(v) / tolerance(v)`` summed
over the variables (the first is no correction, or the checkpoint's own) is written to ``OUT.pt`` with the
whole history in its ``provenance``, and one JSON line per evaluation is printed.

Never estimate it on data that choose or test the model: it is tuned to the truth it is given.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ..data.source import open_source
from ..emulator import Emulator
from ..evaluate.climate_stats import latitude_weights
from ..model.correction import ClimateCorrection
from ..model.filters import LatentFilter
from .free_run import climate_of_source

__all__ = ["channel_mask", "bias_rms", "eddy_ratio", "updated_rate", "adapted", "estimate_correction"]

#: issue 13's bias tolerances, the default weights of the choice between evaluated rates
DEFAULT_TOLERANCES = {"temperature": 1.5, "u": 2.0}


def channel_mask(layout, variables) -> np.ndarray:
    """``[n_state]`` bool: the channels of ``variables`` in ``layout``."""
    unknown = [v for v in variables if v not in layout.variables]
    if unknown:
        raise ValueError(f"variables {unknown} are not in the model (it has {list(layout.variables)}); "
                         "name variables of the model")
    mask = np.zeros(layout.n_state, dtype=bool)
    for v in variables:
        mask[layout.slice_of(v)] = True
    return mask


def bias_rms(bias: np.ndarray, layout, variables, lat) -> dict[str, float]:
    """Area-weighted RMS over latitude and level of a zonal-mean ``bias [nlat, n_state]``, per variable."""
    w = latitude_weights(np.asarray(lat, dtype=np.float64))
    out = {}
    for v in variables:
        b = bias[:, layout.slice_of(v)]
        out[v] = float(np.sqrt((w[:, None] * b ** 2).mean() / w.mean()))
    return out


def eddy_ratio(eddy: np.ndarray, truth: np.ndarray, layout, variables, lat) -> dict[str, float]:
    """Per variable, the area-weighted (over latitude, summed over levels) eddy variance ``[nlat, n_state]``
    of a run over the truth's."""
    w = latitude_weights(np.asarray(lat, dtype=np.float64))[:, None]
    return {v: float((w * eddy[:, layout.slice_of(v)]).sum() / (w * truth[:, layout.slice_of(v)]).sum())
            for v in variables}


def check_symmetric(lat, what: str) -> None:
    """Refuse a hemispheric-mean update (``what`` names the option) on latitudes not symmetric about the equator."""
    lat = np.asarray(lat, dtype=np.float64)
    if not np.allclose(lat, -lat[::-1], atol=1e-3):
        raise ValueError(f"{what} needs latitudes symmetric about the equator; this grid's are not")


def updated_rate(rate: np.ndarray, bias: np.ndarray, response_days: float, symmetric: bool = False) -> np.ndarray:
    """One update of a forcing ``rate [nlat, n_state]`` (units per day) by a zonal-mean ``bias [nlat, n_state]``:
    ``rate - bias / response_days``; ``symmetric``: with the bias averaged over latitude ``phi`` and ``-phi``
    (rows south to north, symmetric about the equator)."""
    return rate - (0.5 * (bias + bias[::-1]) if symmetric else bias) / float(response_days)


def adapted(correction: ClimateCorrection, biases: dict[str, np.ndarray], layout, *, response_days: float,
            symmetric: bool, step: int) -> ClimateCorrection:
    """The online update of a training run (``&train correction_every``): ``correction`` updated by the free-run
    chain's zonal-mean ``biases`` (per variable, ``[level, lat]``, physical units) with :func:`updated_rate`; its
    provenance counts the updates and names the last training step."""
    bias = np.zeros_like(correction.rate)
    for v, b in biases.items():
        bias[:, layout.slice_of(v)] = np.asarray(b, dtype=np.float64).T
    prov = dict(correction.provenance)
    online = dict(prov.get("online") or {})
    online.update(updates=int(online.get("updates", 0)) + 1, last_step=int(step), response_days=float(response_days),
                  symmetric=bool(symmetric), target="the training data's climate (&data files)")
    prov["online"] = online
    variables = tuple(dict.fromkeys((*correction.variables, *biases)))
    return ClimateCorrection(updated_rate(correction.rate, bias, response_days, symmetric), variables,
                             correction.step_seconds, provenance=prov, eddy_rate=correction.eddy_rate)


def _rollout_mean(em: Emulator, x0: torch.Tensor, days: int, spinup_days: int, steps_per_day: int,
                  progress: bool, label: str) -> np.ndarray:
    """Zonal-time mean and time-mean eddy variance (along longitude), each ``[nlat, n_state]``, of the daily states
    of a rollout from ``x0 [B, nlat, nlon, S]``, days ``spinup_days + 1`` .. ``days``; raises when a state is not
    finite."""
    from tqdm.auto import tqdm

    total, eddy, n = None, None, 0
    bar = tqdm(total=days, desc=label, unit="day", disable=None if progress else True)
    with bar:
        for step, x in em.rollout(x0, days * steps_per_day, output_every=steps_per_day):
            day = step // steps_per_day
            a = x.cpu().numpy().astype(np.float64)
            if not np.isfinite(a).all():
                raise ValueError(f"the rollout is not finite at day {day}: this model (with this correction) has no "
                                 "climate to correct; take smaller updates (a larger --response-days) or correct "
                                 "another model")
            if day > spinup_days:
                g = a.reshape(a.shape[0], em.grid.nlat, em.grid.nlon, -1)
                s, e = g.mean(axis=2).sum(axis=0), g.var(axis=2).sum(axis=0)
                total = s if total is None else total + s
                eddy = e if eddy is None else eddy + e
                n += a.shape[0]
            bar.update(1)
    return total / n, eddy / n


def estimate_correction(ckpt: Checkpoint, truth_path: str, *, starts=(0, 365), days: int = 240,
                        spinup_days: int = 30, iterations: int = 3, variables=tuple(DEFAULT_TOLERANCES),
                        tolerances: dict[str, float] | None = None, response_days: float = 20.0,
                        symmetric: bool = False, eddy_rate: float | None = None, progress: bool = True, log=print,
                        evaluate=None) -> tuple[ClimateCorrection | None, list[dict]]:
    """The climate correction of ``ckpt`` against the long run ``truth_path`` (module doc); returns the chosen
    correction (None when the best evaluated rate is no forcing at all) and one record per evaluation.

    ``symmetric``: update with the bias averaged over the two hemispheres (latitude ``phi`` and ``-phi``), for a
    truth whose forcing is symmetric about the equator (Held-Suarez) and variables whose zonal mean is then
    symmetric too (T, u, surface pressure; not v): the forcing does not fit the one realisation's asymmetry
    and its noise falls by about sqrt(2). Scores are of the bias as measured.

    ``eddy_rate``: the eddy backscatter every evaluation steps with (``mlscam.model.correction``; None: the
    checkpoint's own, or none); it is not estimated: compare runs with ``iterations = 0``, whose records give each
    variable's eddy-variance ratio to the truth's (area-weighted over latitude and level).

    ``evaluate(rate) -> zonal-time mean [nlat, n_state]`` replaces the rollouts (default: the rollouts of the
    module doc), e.g. to check the iteration on a known response."""
    if days <= spinup_days:
        raise ValueError(f"--days ({days}) must exceed --spinup-days ({spinup_days})")
    if iterations < 0:
        raise ValueError(f"--iterations must be >= 0 (0: evaluate the checkpoint's own correction), got {iterations}")
    if not response_days > 0:
        raise ValueError(f"--response-days must be > 0 (each update is -bias / response days), got {response_days}")
    tolerances = {v: (tolerances or DEFAULT_TOLERANCES).get(v, 1.0) for v in variables}
    layout, grid = ckpt.layout, ckpt.grid
    mask = channel_mask(layout, variables)
    latent_filter = LatentFilter.of(ckpt.config.model)
    if not latent_filter.projection > 0.0:
        raise ValueError("the checkpoint's step has no manifold projection (&model latent_projection = 0), where "
                         "the correction acts: correct a model trained with one")
    steps_per_day = round(86400.0 / ckpt.dt_seconds)
    if abs(steps_per_day * ckpt.dt_seconds - 86400.0) > 1e-6:
        raise ValueError(f"a day is not a whole number of steps of {ckpt.dt_seconds:g} s")
    source = open_source(ckpt.config.data, files=[str(truth_path)], states_only=True)
    if not source.layout.same_as(layout) or source.grid != grid:
        raise ValueError(f"{truth_path} is not on the model's grid and column layout (its variables, levels or "
                         "grid differ): use a run of the truth's model on the training grid")
    ntime = source.ntime
    bad = [s for s in starts if not 0 <= s < ntime]
    if bad:
        raise ValueError(f"--starts {bad} are not time indices of {truth_path} (it has {ntime} times)")
    climate = climate_of_source(source, layout, variables, max_states=ntime)  # every time of the truth run
    target = np.zeros((grid.nlat, layout.n_state))
    target_eddy = np.zeros((grid.nlat, layout.n_state))
    for v in variables:
        target[:, layout.slice_of(v)] = climate[v][0].T  # zonal mean [level, lat] -> [lat, channel]
        target_eddy[:, layout.slice_of(v)] = climate[v][1].T
    if eddy_rate is None:
        eddy_rate = 0.0 if ckpt.correction is None else ckpt.correction.eddy_rate
    x0 = torch.as_tensor(np.stack([np.asarray(source.read(s), dtype=np.float32) for s in starts]))
    model = ckpt.build_model()

    def rollouts(rate: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray]:
        corr = (ClimateCorrection(rate, variables, ckpt.dt_seconds, eddy_rate=eddy_rate)
                if np.any(rate) or eddy_rate else None)
        em = Emulator(model, layout, grid, ckpt.normalization, ckpt.dt_seconds,
                      chunk_size=ckpt.config.model.chunk_size, latent_filter=latent_filter, correction=corr,
                      warn_blas=False)
        return _rollout_mean(em, x0, days, spinup_days, steps_per_day, progress, label)

    lat = np.asarray(grid.lat, dtype=np.float64)
    if symmetric:
        check_symmetric(lat, "--symmetric")
    rate = (np.zeros((grid.nlat, layout.n_state)) if ckpt.correction is None
            else np.where(mask[None, :], ckpt.correction.rate, 0.0))
    history, evaluated = [], []
    tau = float(response_days)
    for k in range(iterations + 1):
        mean, eddy = rollouts(rate, f"evaluation {k}") if evaluate is None else (evaluate(rate), None)
        bias = np.where(mask[None, :], mean - target, 0.0)
        rms = bias_rms(bias, layout, variables, grid.lat)
        score = sum(rms[v] / tolerances[v] for v in variables)
        rec = {"evaluation": k, "bias_rms": rms, "score": score, "response_days": tau,
               "max_abs_rate": {v: float(np.abs(rate[:, layout.slice_of(v)]).max()) for v in variables}}
        if eddy is not None:
            rec["eddy_ratio"] = eddy_ratio(eddy, target_eddy, layout, variables, grid.lat)
        if eddy_rate:
            rec["eddy_rate"] = eddy_rate
        history.append(rec)
        evaluated.append((score, k, rate.copy()))
        log(json.dumps(rec))
        if k == iterations:
            break
        rate = updated_rate(rate, bias, tau, symmetric)
    score, best, rate = min(evaluated, key=lambda e: e[0])
    prov = {"truth": Path(truth_path).name, "truth_attrs": _attrs(truth_path), "starts": list(starts),
            "days": days, "spinup_days": spinup_days, "symmetric": bool(symmetric), "eddy_rate": eddy_rate,
            "chosen_evaluation": best,
            "history": history}
    if not np.any(rate) and not eddy_rate:
        return None, history
    return ClimateCorrection(rate, variables, ckpt.dt_seconds, provenance=prov, eddy_rate=eddy_rate), history


def _attrs(path) -> dict:
    """The truth file's generator attributes (seed, model), for the provenance."""
    try:
        import netCDF4

        with netCDF4.Dataset(path) as ds:
            return {k: str(ds.getncattr(k)) for k in ds.ncattrs() if k in ("seed", "source", "model", "title",
                                                                             "random_seed", "history")}
    except Exception:  # noqa: BLE001 - provenance only
        return {}


def main(argv=None) -> int:
    import argparse

    from .. import blas
    from ..checkpoint import CheckpointError

    p = argparse.ArgumentParser(prog="python -m mlscam.train.correction",
                                description="Estimate a checkpoint's climate correction (a fixed zonal-mean "
                                            "forcing, mlscam/model/correction.py) against a long truth run it may "
                                            "be trained on, and write the checkpoint with it.")
    p.add_argument("checkpoint", help="the checkpoint as it ships (its &model step settings are used)")
    p.add_argument("output", help="the checkpoint with the correction (written atomically)")
    p.add_argument("--truth", required=True, help="long run of the truth's model (NetCDF, e.g. daily states of a "
                                                  "training seed); never a validation or test run")
    p.add_argument("--starts", type=int, nargs="+", default=[0, 365], help="initial time indices (default 0 365)")
    p.add_argument("--days", type=int, default=240, help="days per rollout (default 240)")
    p.add_argument("--spinup-days", type=int, default=30, help="days dropped from each rollout (default 30)")
    p.add_argument("--iterations", type=int, default=3,
                   help="updates of the forcing (default 3; 0: evaluate the checkpoint's own, e.g. with --eddy-rate)")
    p.add_argument("--variables", nargs="+", default=list(DEFAULT_TOLERANCES),
                   help="variables to correct (default temperature u)")
    p.add_argument("--response-days", type=float, default=20.0,
                   help="response time of the zonal mean: each update is -bias / this (default 20 days)")
    p.add_argument("--symmetric", action="store_true",
                   help="update with the bias averaged over both hemispheres (a truth forced symmetrically about "
                        "the equator, e.g. Held-Suarez; T, u, surface pressure, not v)")
    p.add_argument("--eddy-rate", type=float, default=None,
                   help="eddy backscatter (per day) every evaluation steps with, written with the correction "
                        "(default: the checkpoint's own, or none); not estimated: compare values with --iterations 0 "
                        "(each record gives the eddy-variance ratios)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    blas.pin()
    torch.set_num_threads(args.threads)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        corr, _ = estimate_correction(ckpt, args.truth, starts=tuple(args.starts), days=args.days,
                                      spinup_days=args.spinup_days, iterations=args.iterations,
                                      variables=tuple(args.variables), response_days=args.response_days,
                                      symmetric=args.symmetric, eddy_rate=args.eddy_rate,
                                      progress=not args.no_progress)
    except (CheckpointError, ValueError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if corr is None:
        print("error: no correction beat none on this truth; nothing written", file=sys.stderr)
        return 1
    ckpt.correction = corr
    save_checkpoint(args.output, ckpt)
    print(f"wrote {args.output} (evaluation {corr.provenance['chosen_evaluation']} chosen)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
