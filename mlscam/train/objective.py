"""What one training sample costs: the forward pass and loss of every training mode, on THE engine.

All modes share one shape of computation: encode columns, gather 3x3 tiles of
latents, advance the centre columns with the mixer, decode, compare. Every one
of these goes through :class:`mlscam.model.engine.Engine` (with gradients), the
engine that inference, the MPI component and the C API step with.

* ``single_column``: a batch of independent 3x3 tiles at t; predict the centre at t+1.
* ``global``: whole globes at t; predict every column at t+1.
* ``global_rollout``: whole globes at t; unroll K latent steps, a loss at every
  step, backpropagation through the unroll.  Decoded states are never re-encoded:
  the only encoder calls are on the initial state and (for latent losses) on the truth.

On a tile context (tile-parallel training) the engine's domain is the rank's
own tile with the differentiable halo exchange, the area weights are those of
own columns, and loss statistics are summed over all ranks (``reduce``); the
code of the step is the same.

With the mass fixer (``&model mass_fixer``; whole-globe modes only) the target
of every sample is the global-mean surface pressure of its window's first true
state, summed with the reproducible fixed-point sum (over the tile context's
ranks when tile-parallel); every step's projection and every decoded prediction
get the fixer's uniform shift, a constant for autograd (the gradient passes
through the shifted field as through the decoded one). The polar wind fixer
(``&model polar_wind_fixer``; whole-globe modes only) likewise acts in every
projection and on every decoded prediction (``[v] = 0`` in the rows next to the
poles; the subtracted zonal mean is a constant for autograd).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..grid import LatLonGrid
from ..layout import ColumnLayout
from ..losses import LossComputer
from ..model.correction import ClimateCorrection
from ..model.engine import Engine
from ..model.filters import LatentFilter
from ..model.network import LatentModel
from ..normalization import Normalization

__all__ = ["Objective", "objective_to_dtype"]


@dataclass
class Objective:
    """Forward pass + loss for one batch, for every mode.

    Batches (physical units, float32):
      single_column: ``x_tile [B, 9, S]``, ``static_tile [B, 9, F]``, ``crossed [B, 9]``, ``x_next [B, S]``
      global / global_rollout: ``x [B, K+1, nlat, nlon, S]`` (``nlat, nlon``: the tile's on a tile context)

    ``tile``: a :class:`mlscam.parallel.context.TileContext` (tile-parallel training; one rank = serial) or
    ``None`` (the whole grid). ``reduce`` (default ``tile.reduce()``) sums loss statistics over ranks.
    """

    model: LatentModel
    layout: ColumnLayout
    grid: LatLonGrid
    normalization: Normalization
    loss: LossComputer
    mode: str
    chunk_size: int
    latent_truth: bool
    grad_checkpointing: bool = False
    reduce: Any = None
    tile: Any = None
    latent_filter: LatentFilter | None = None  # the step's grid-scale damping (&model latent_filter)
    correction: ClimateCorrection | None = None  # zonal-mean forcing in the projection (&train climate_correction)
    pushforward_steps: int = 0  # global_rollout: steps without gradients before the graded ones

    def __post_init__(self):
        if self.mode == "single_column" and self.latent_filter is not None and self.latent_filter.mass_fixer:
            raise ValueError("the mass fixer (&model mass_fixer) conserves a global mean and needs whole globes: "
                             "use &train mode = 'global' or 'global_rollout', or set mass_fixer = .false.")
        if self.mode == "single_column" and self.latent_filter is not None and self.latent_filter.polar_wind_rows:
            raise ValueError("the polar wind fixer (&model polar_wind_fixer) removes zonal means over whole latitude "
                             "rows and needs whole globes: use &train mode = 'global' or 'global_rollout', or set "
                             "polar_wind_fixer = 0")
        domain = None if self.tile is None else self.tile.domain()
        self.engine = Engine(self.model, self.layout, self.grid, self.normalization, chunk_size=self.chunk_size,
                             domain=domain, grad_checkpointing=self.grad_checkpointing,
                             latent_filter=self.latent_filter, correction=self.correction)
        if self.reduce is None and self.tile is not None:
            self.reduce = self.tile.reduce()
        area = torch.as_tensor(self.grid.area_weights().reshape(-1)[self.engine.domain.columns])
        self.area = area.to(dtype=self.engine.static.dtype, device=self.engine.static.device)  # [ncol]

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Objective":
        """Move (and optionally cast) the engine's buffers and the area weights; the model is the caller's."""
        self.engine.to(device, dtype)
        self.area = self.area.to(device=device, dtype=dtype)
        return self

    # -- pieces -------------------------------------------------------------
    def increment(self, pred_new, pred_old):
        """Decoded normalised states at k and k-1 -> their difference in tendency units.

        The autoencoder's error is common to both decodes and cancels to first order, so
        this compares the dynamics alone with the true change.
        """
        norm = self.engine.norm
        return norm.apply_tendency(norm.inverse_difference(pred_new - pred_old))

    def _tendency(self, dz):
        """The tendency decoder's output ``[..., S]`` in tendency units, computed only when ``tendency_mse`` is on."""
        if "tendency_mse" not in self.loss.weights:
            return None
        return self.engine.norm.apply_tendency(self.engine.decode_tendency(dz))

    def _decode(self, z, target):
        """Normalised prediction ``[B, ncol, S]`` of ``z``: with a fixer on (mass, polar wind), the fixed decoded
        state."""
        e = self.engine
        if target is None and e.polar is None:
            return e.decode_normalized(z)
        return e.norm.apply(e.decode(z, target))

    # -- the loss -------------------------------------------------------------
    def __call__(self, batch: dict, *, truth_start: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch and its terms (detached floats, averaged over rollout steps).

        ``truth_start > 0`` ('global_rollout'): grade the window's first ``truth_start`` steps from the truth,
        with no pushforward (``&train truth_start_every``)."""
        if self.mode == "single_column":
            loss, terms = self._single_column(batch)
            return loss, {name: float(v) for name, v in terms.items()}
        return self._global(batch, truth_start=truth_start)

    def _terms(self, *, pred_state, true_state, pred_z, pred_dz, z_prev_true, true_z, pred_tendency, true_tendency,
               weights, pred_increment=None):
        """Loss terms of one step; ``true_z`` is the encoded truth (None when no latent term is on)."""
        extra = {}
        if true_z is not None:
            extra = dict(true_dz=true_z - z_prev_true, pred_dz=pred_dz, true_z=true_z, pred_z=pred_z,
                         pred_recon=self.engine.decode_normalized(true_z), true_recon=true_state)
        return self.loss(
            pred_state=pred_state, true_state=true_state,
            pred_tendency=pred_tendency, true_tendency=true_tendency,
            pred_increment=pred_increment, true_increment=true_tendency if pred_increment is not None else None,
            weights=weights, reduce=self.reduce, **extra,
        )

    def _single_column(self, batch):
        """Independent 3x3 tiles: the 9 tokens of every tile are the engine's source buffer ``[1, 9B, L]``."""
        e = self.engine
        static = batch["static_tile"]  # [B, 9, F]
        z_tok = e.encode_normalized(e.norm.apply(batch["x_tile"]), static)  # [B, 9, L]
        b, _, latent = z_tok.shape
        tiles = torch.arange(9 * b, device=z_tok.device).view(b, 9)  # tile i = rows 9i .. 9i+8 (token order)
        dz = e.advance_tiles(z_tok.reshape(1, 9 * b, latent), tiles, batch["crossed"])[0]  # [B, L]
        z1 = z_tok[:, 4] + dz
        truth = e.norm.apply(batch["x_next"])  # [B, S]
        pred = e.decode_normalized(z1)
        tend_true = e.norm.apply_tendency(batch["x_next"] - batch["x_tile"][:, 4])
        return self._terms(
            pred_state=pred, true_state=truth, pred_z=z1, pred_dz=dz, z_prev_true=z_tok[:, 4],
            true_z=e.encode_normalized(truth, static[:, 4]) if self.latent_truth else None,
            pred_tendency=self._tendency(dz), true_tendency=tend_true, weights=None,
            pred_increment=(self.increment(pred, e.decode_normalized(z_tok[:, 4]))
                            if "increment" in self.loss.weights else None),
        )

    def _global(self, batch, *, truth_start: int = 0):
        e = self.engine
        x = batch["x"]  # [B, P+K+1, nlat, nlon, S]
        kp1 = x.shape[1]
        p = self.pushforward_steps if self.mode == "global_rollout" else 0
        if truth_start:
            if truth_start >= kp1:
                raise ValueError(f"a batch of {kp1} states holds no {truth_start} steps to grade from the truth")
            p, kp1 = 0, truth_start + 1
        if kp1 <= p + 1:
            raise ValueError(f"a batch of {kp1} states has no graded step after {p} pushforward steps")
        xn = e.norm.apply(x).flatten(2, 3)  # [B, P+K+1, ncol, S]; ncol = own columns on a tile
        # the mass fixer's target per sample: the window's first true state (fixed-point sum, no gradient)
        target = e.mass_target(x[:, 0].flatten(1, 2)) if e.mass is not None else None
        z = e.encode_normalized(xn[:, 0])  # the only encode of a state that is stepped
        if p:  # the model's own state after p steps, as a constant: no gradient through the pushforward
            with torch.no_grad():
                z = e.step(z, p, target)
        z_true_prev = e.encode_normalized(xn[:, p]) if (p and self.latent_truth) else z
        pred_prev = self._decode(z, target) if ("increment" in self.loss.weights) else None
        total = 0.0
        sums: dict[str, float] = {}
        for k in range(p + 1, kp1):
            # halo exchange (tile-parallel), the mixer, the projection on the run's projecting steps
            z, dz = e.step_once(z, target, project=e.projects_after(k - 1))
            pred = self._decode(z, target)
            dx = (x[:, k] - x[:, k - 1]).flatten(1, 2)
            # encoded truth for the latent terms (never a decoded state)
            z_true = e.encode_normalized(xn[:, k]) if self.latent_truth else None
            loss_k, terms = self._terms(
                pred_state=pred, true_state=xn[:, k], pred_z=z, pred_dz=dz, z_prev_true=z_true_prev, true_z=z_true,
                pred_tendency=self._tendency(dz), true_tendency=e.norm.apply_tendency(dx),
                weights=self.area, pred_increment=None if pred_prev is None else self.increment(pred, pred_prev),
            )
            pred_prev = pred
            z_true_prev = z_true
            total = total + loss_k
            for name, v in terms.items():
                sums[name] = sums.get(name, 0.0) + float(v)
        steps = kp1 - 1 - p
        return total / steps, {name: v / steps for name, v in sums.items()}


def objective_to_dtype(objective: Objective, dtype: torch.dtype) -> Objective:
    """Cast the floating-point buffers (statistics, static features, areas) of an objective, e.g. to float64."""
    return objective.to(dtype=dtype)
