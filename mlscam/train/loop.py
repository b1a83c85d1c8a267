"""The ONE training loop, for every mode, serial or tile-parallel.

``Trainer`` holds the model, objective, optimizer and schedule of a run and
repeats: draw the batch of this step (seeded by step), compute the objective,
backpropagate, average the gradients over the ranks of its tile context (none
on one rank), clip, step, update the weight average (``&train ema_decay``);
validate every ``val_every`` steps in eval mode without gradients (and score
the climate of a long rollout with ``&train climate_truth``); write ``last.pt``
(and ``best.pt`` on a new best of the ``&train select_by`` metric; world rank 0
only); stop early when asked.  A resumed run continues bit for bit.  Nothing
here changes process-wide state: the model is initialised from ``&train seed``
under a forked global generator, and the loop itself draws
no random numbers (batches are keyed by ``(seed, step)``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from ..config import Config
from ..grid import LatLonGrid
from ..layout import ColumnLayout
from ..losses import needs_latent_truth
from ..model.correction import ClimateCorrection
from ..model.filters import LatentFilter
from ..normalization import Normalization
from ..parallel.context import TileContext
from .average import WeightAverage
from .objective import Objective
from .schedule import lr_factor

__all__ = ["TrainResult", "Trainer"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run did."""

    steps: int
    best_val_loss: float
    last_checkpoint: Path
    best_checkpoint: Path | None
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    wall_seconds: float = 0.0


def _correction_of(path: str, grid: LatLonGrid, layout: ColumnLayout, dt_seconds: float):
    """The climate correction of the checkpoint ``path`` (``&train climate_correction``; None for ``''``),
    checked against the run's grid, layout and step."""
    if not path:
        return None
    ckpt = load_checkpoint(path)
    if ckpt.correction is None:
        raise ValueError(f"&train climate_correction = {path!r}: that checkpoint has no climate correction; name "
                         "one written by python -m mlscam.train.correction, or set climate_correction = ''")
    ckpt.correction.check(grid.nlat, layout.n_state, dt_seconds)
    return ckpt.correction


class Trainer:
    """Holds the model, optimizer, schedule and batch sources of one run, on one rank.

    ``tile``: this rank's :class:`~mlscam.parallel.context.TileContext` (default: one rank owning the
    whole grid, a serial run). Batches must be the tile's (``mlscam.train.batches``); the objective
    steps on the tile's domain, gradients are averaged over the ranks after every ``backward``, and
    only world rank 0 prints and writes files.
    """

    def __init__(self, config: Config, *, layout: ColumnLayout, grid: LatLonGrid, normalization: Normalization,
                 dt_seconds: float, train_batches, val_batches=None, device: str | torch.device = "cpu",
                 tile: TileContext | None = None, progress: bool | None = None):
        self.config = config
        self.tile = tile if tile is not None else TileContext.serial(grid.nlat, grid.nlon)
        self.layout, self.grid, self.normalization, self.dt_seconds = layout, grid, normalization, dt_seconds
        self.train_batches, self.val_batches = train_batches, val_batches
        self.device = torch.device(device)
        t = config.train
        if t.bf16 and self.device.type != "cuda":
            raise ValueError("&train bf16 = .true. needs a GPU (bf16 autocast on the CPU is slow and inexact); "
                             "set bf16 = .false.")
        self.correction = _correction_of(t.climate_correction, grid, layout, dt_seconds)
        if t.correction_every and self.correction is None:  # adapted from none (&train correction_every)
            self.correction = ClimateCorrection(np.zeros((grid.nlat, layout.n_state)), t.climate_variables,
                                                dt_seconds, provenance={"online": {"updates": 0}})
        if t.correction_every and t.correction_symmetric:
            from .correction import check_symmetric

            check_symmetric(grid.lat, "&train correction_symmetric (or set it .false.)")
        if self.correction is not None and (t.mode == "single_column" or not config.model.latent_projection > 0):
            raise ValueError("&train climate_correction (and correction_every) act inside the manifold projection of "
                             "whole-globe steps: a correction needs &train mode = 'global' or 'global_rollout' and "
                             "&model latent_projection > 0; set those, or climate_correction = '' and "
                             "correction_every = 0")
        with torch.random.fork_rng(devices=[]):  # the seeded initialisation leaves the global generator alone
            torch.manual_seed(t.seed)
            self.model = config.model.build(layout).to(self.device)
        self.objective = Objective(
            model=self.model, layout=layout, grid=grid, normalization=normalization,
            loss=config.loss.build(), mode=t.mode, chunk_size=config.model.chunk_size,
            latent_truth=needs_latent_truth(config.loss), grad_checkpointing=t.grad_checkpointing, tile=self.tile,
            latent_filter=LatentFilter.of(config.model), pushforward_steps=t.pushforward_steps,
            correction=self.correction,
        )
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(s, warmup_steps=t.warmup_steps, max_steps=t.max_steps, schedule=t.schedule,
                                min_lr_ratio=t.min_lr_ratio),
        )
        self.average = WeightAverage(self.model, t.ema_decay) if t.ema_decay > 0 else None
        self.climate = None  # the climate score (train/climate.py), built on world rank 0 only: it reads files
        if t.climate_truth and self.tile.is_root:
            from .climate import ClimateScore

            self.climate = ClimateScore(config, layout=layout, grid=grid, normalization=normalization,
                                        dt_seconds=dt_seconds, correction=self.correction)
        self.free_run = self._build_free_run() if t.free_run_weight > 0 else None
        self.step = 0
        self.best_val = math.inf
        self.bad_validations = 0
        self.history: list[dict] = []
        self.progress = config.output.progress if progress is None else progress
        self.out_dir = Path(t.checkpoint_dir)

    def _build_free_run(self):
        """The free-running chain of ``&train free_run_weight`` (train/free_run.py), held to the climate of the
        ``&data files``."""
        from ..data.source import open_source
        from .free_run import FreeRun, climate_of_source

        if self.tile.world_size > 1:
            raise ValueError("&train free_run_weight > 0 runs a whole globe on one rank (its zonal means need whole "
                             "latitude rows), but this run is tile-parallel over "
                             f"{self.tile.world_size} ranks; train on one rank or set free_run_weight = 0")
        t = self.config.train
        source = open_source(self.config.data, states_only=True)
        target = climate_of_source(source, self.layout, t.climate_variables)
        return FreeRun(self.config, self.model, layout=self.layout, grid=self.grid, normalization=self.normalization,
                       target=target, correction=self.correction)

    @property
    def is_root(self) -> bool:
        """Whether this rank prints and writes files (world rank 0 of the tile context)."""
        return self.tile.is_root

    # -- state ----------------------------------------------------------------
    def checkpoint(self) -> Checkpoint:
        """This run as a checkpoint.  With ``&train ema_decay`` its weights are the averaged ones (what
        validation scored and what forecasts use); the optimizer's own weights go in ``train_state``."""
        train_state = {"step": self.step, "best_val": self.best_val, "bad_validations": self.bad_validations}
        weights = self.model.state_dict()
        if self.average is not None:
            train_state.update(raw_state_dict={k: v.detach().cpu() for k, v in weights.items()},
                               weight_average=self.average.state_dict())
            weights = self.average.weights
        if self.free_run is not None:
            train_state["free_run"] = self.free_run.state_dict()
        return Checkpoint(
            config=self.config, layout=self.layout, normalization=self.normalization,
            dt_seconds=self.dt_seconds, grid=self.grid, state_dict=weights,
            optimizer_state=self.optimizer.state_dict(), scheduler_state=self.scheduler.state_dict(),
            train_state=train_state, metadata={"history_tail": self.history[-5:]}, correction=self.correction,
        )

    def _model_differences(self, ckpt) -> list[str]:
        """``key: checkpoint value != run value`` for each &model key that changes the parameters."""
        mine, theirs = self.config.model, ckpt.config.model
        return [f"{f.name} = {getattr(theirs, f.name)!r} in the checkpoint, {getattr(mine, f.name)!r} in this run"
                for f in fields(mine) if f.name not in mine.RUNTIME_KEYS
                and getattr(mine, f.name) != getattr(theirs, f.name)]

    def resume_from(self, path) -> None:
        ckpt = load_checkpoint(path, expected_layout=self.layout, grid=self.grid)
        differ = self._model_differences(ckpt)
        if differ:
            raise CheckpointError(
                f"&train resume = {str(path)!r}: the checkpoint was trained with another &model, so its weights do "
                "not fit this run's network:\n  " + "\n  ".join(differ) + "\nSet the checkpoint's &model values "
                "to continue that run, or start a new run from its weights with &train init_from (and "
                "init_partial = .true. to load only the tensors that fit).")
        if ckpt.optimizer_state is None or ckpt.train_state is None:
            raise ValueError(f"{path} holds no optimizer/training state, so it cannot resume a run exactly; "
                             "use a last.pt written by mlscam.train")
        ts = ckpt.train_state
        raw = ts.get("raw_state_dict")  # with a weight average the checkpoint's weights are the average's
        self.model.load_state_dict(ckpt.state_dict if raw is None else raw)
        if self.average is not None:
            if raw is None:  # averaging starts with this run: from the weights it resumes
                self.average.reset(self.model)
            else:
                self.average.load(ckpt.state_dict, ts["weight_average"])
        if self.free_run is not None and ts.get("free_run") is not None:  # else the chain starts afresh
            self.free_run.load_state_dict(ts["free_run"])
        if self.config.train.correction_every and ckpt.correction is not None:  # the adapted forcing so far
            self._set_correction(ckpt.correction)
        self.optimizer.load_state_dict(ckpt.optimizer_state)
        self.scheduler.load_state_dict(ckpt.scheduler_state)
        self.step, self.best_val, self.bad_validations = int(ts["step"]), float(ts["best_val"]), int(ts["bad_validations"])

    def init_weights_from(self, path) -> None:
        """Start from another run's weights (same layout and model shape); optimizer and schedule start fresh."""
        ckpt = load_checkpoint(path, expected_layout=self.layout, grid=self.grid)
        if ckpt.config.model.same_parameters(self.config.model):  # chunk size and latent filter may differ
            self.model.load_state_dict(ckpt.state_dict)
            if self.average is not None:
                self.average.reset(self.model)
            return
        if not self.config.train.init_partial:
            raise CheckpointError(
                f"&train init_from = {str(path)!r}: the checkpoint was trained with another &model:\n  "
                + "\n  ".join(self._model_differences(ckpt)) + "\ninit_from needs the same &model (except "
                f"{', '.join(self.config.model.RUNTIME_KEYS)}): set the checkpoint's values, or set &train "
                "init_partial = .true. to load only the parameters that match")
        own = self.model.state_dict()
        match = {k: v for k, v in ckpt.state_dict.items() if k in own and own[k].shape == v.shape}
        fresh = sorted(set(own) - set(match))
        self.model.load_state_dict(match, strict=False)
        if self.average is not None:
            self.average.reset(self.model)
        if self.is_root:
            print(f"init_from {path}: loaded {len(match)} of {len(own)} tensors; started fresh: "
                  f"{', '.join(fresh) if fresh else 'none'}", flush=True)

    def _set_correction(self, correction: ClimateCorrection) -> None:
        """Step with ``correction`` everywhere from now on: the weather unrolls, the free-run chain, the climate
        score and the checkpoints."""
        correction.check(self.grid.nlat, self.layout.n_state, self.dt_seconds)
        self.correction = correction
        self.objective.correction = correction
        self.objective.engine.set_correction(correction)
        if self.free_run is not None:
            self.free_run.engine.set_correction(correction)
        if self.climate is not None:
            self.climate.correction = correction

    def _adapt_correction(self) -> dict[str, float]:
        """``&train correction_every``: update the forcing by the free-run chain's running zonal-mean bias
        (``mlscam.train.correction.adapted``) every ``correction_every`` steps once the chain is warm; returns
        what the log records (empty when no update was made)."""
        from .correction import adapted

        t = self.config.train
        if not t.correction_every or self.step % t.correction_every or self.free_run is None:
            return {}
        biases = self.free_run.biases()
        if biases is None:
            return {}
        self._set_correction(adapted(self.correction, biases, self.layout, response_days=t.correction_response_days,
                                     symmetric=t.correction_symmetric, step=self.step))
        rate = self.correction.rate
        return {"correction_updates": float(self.correction.provenance["online"]["updates"]),
                **{f"correction_max_rate_{v}": float(np.abs(rate[:, self.layout.slice_of(v)]).max())
                   for v in biases}}

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) for k, v in batch.items()}

    # -- one step / validation ------------------------------------------------
    def train_step(self) -> dict[str, float]:
        self.model.train()
        batch = self._to_device(self.train_batches(self.step))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.config.train.bf16):
            loss, terms = self.objective(batch, truth_start=self._truth_start())
            if self.free_run is not None:  # the model's own climate (train/free_run.py)
                free, free_terms = self.free_run(batch["x"][0, 0])
                loss = loss + self.config.train.free_run_weight * free
                terms = {**terms, **free_terms}
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {float(loss)} at step {self.step} (terms {terms}); "
                                     "lower &train lr or check the data and statistics for NaNs")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.tile.average_gradients(self.model)  # the serial gradient on every rank (none to do on one rank)
        clip = self.config.train.clip_grad_norm
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip > 0 else float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        if self.average is not None:
            self.average.update(self.model)
        self.step += 1
        adapt = self._adapt_correction()
        return {"loss": loss.item(), "grad_norm": float(gnorm), "lr": self.scheduler.get_last_lr()[0], **terms,
                **adapt}

    def _truth_start(self) -> int:
        """Graded steps from the truth for this training step (``&train truth_start_every``), else 0."""
        t = self.config.train
        return t.truth_start_steps if t.truth_start_every and self.step % t.truth_start_every == 0 else 0

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """The objective on the validation batches, in eval mode, with the averaged weights if any; with
        ``&train climate_truth`` also the climate score and its parts (``climate_*``), the same on every rank."""
        self.model.eval()
        n = self.config.train.val_batches
        totals: dict[str, float] = {}
        with self.average.applied(self.model) if self.average is not None else contextlib.nullcontext():
            for i in range(n):
                loss, terms = self.objective(self._to_device(self.val_batches(i)))
                for k, v in {"loss": float(loss), **terms}.items():
                    totals[k] = totals.get(k, 0.0) + v / n
            if self.config.train.climate_truth:
                totals.update(self.tile.from_root(lambda: self.climate(self.model), "climate score"))
        return totals

    def selection_metric(self, val: dict[str, float]) -> float:
        """What ``best.pt`` minimises (``&train select_by``): the validation loss or the climate score."""
        return val["climate_score"] if self.config.train.select_by == "climate" else val["loss"]

    # -- the loop -------------------------------------------------------------
    def run(self, *, stop_at: int | None = None) -> TrainResult:
        """Train until ``train.max_steps`` (or until step ``stop_at``, as if interrupted there, with
        ``last.pt`` written so that a resumed run continues exactly)."""
        from tqdm.auto import tqdm

        t = self.config.train
        end = t.max_steps if stop_at is None else min(stop_at, t.max_steps)
        if self.is_root:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        last, best = self.out_dir / "last.pt", self.out_dir / "best.pt"
        log_path = self.out_dir / "train_log.jsonl"
        start = time.perf_counter()
        stopped = False
        bar = tqdm(total=t.max_steps, initial=self.step, disable=not (self.progress and self.is_root),
                   desc=f"train[{t.mode}]", dynamic_ncols=True)
        write = save_checkpoint if self.is_root else (lambda path, ckpt: None)
        say = bar.write if self.is_root else (lambda text: None)
        with open(log_path, "a") if self.is_root else open(os.devnull, "w") as logf:
            while self.step < end:
                rec = {"step": self.step + 1, **self.train_step()}
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in rec.items()
                                 if k not in ("step", "lr", "total", "grad_norm") and not k.endswith("_weighted")},
                                refresh=False)
                do_val = self.val_batches is not None and t.val_every > 0 and (
                    self.step % t.val_every == 0 or self.step == t.max_steps)
                if do_val:
                    val = self.validate()
                    rec.update({f"val_{k}": v for k, v in val.items()})
                    metric = self.selection_metric(val)
                    if metric < self.best_val:
                        self.best_val, self.bad_validations = metric, 0
                        write(best, self.checkpoint())
                    else:
                        self.bad_validations += 1
                    say(f"step {self.step}: val loss {val['loss']:.4g}" + "".join(
                        f", {k.removeprefix('climate_')} {v:.4g}" for k, v in val.items() if k.startswith("climate_"))
                        + f" (best {t.select_by.replace('_', ' ')} {self.best_val:.4g})")
                self.history.append(rec)
                logf.write(json.dumps(rec) + "\n")
                logf.flush()  # a long run's log is read while it runs
                if self.step % t.checkpoint_every == 0 or self.step == end:
                    write(last, self.checkpoint())
                if do_val and 0 < t.early_stopping_patience <= self.bad_validations:
                    say(f"early stopping at step {self.step}: no improvement in "
                              f"{self.bad_validations} validations")
                    write(last, self.checkpoint())
                    stopped = True
                    break
        bar.close()
        return TrainResult(steps=self.step, best_val_loss=self.best_val, last_checkpoint=last,
                           best_checkpoint=best if best.exists() else None, history=self.history,
                           stopped_early=stopped, wall_seconds=time.perf_counter() - start)
