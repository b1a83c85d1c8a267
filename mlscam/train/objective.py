"""What one training sample costs: the forward pass and loss of every training mode.

All modes share one shape of computation: encode columns, gather 3x3 tiles of
latents, advance the centre columns with the mixer, decode, compare.

* ``single_column``: a batch of independent 3x3 tiles at t; predict the centre at t+1.
* ``global``: whole globes at t; predict every column at t+1.
* ``global_rollout``: whole globes at t; unroll K latent steps, a loss at every
  step, backpropagation through the unroll.  Decoded states are never re-encoded:
  the only encoder calls are on the initial state and (for latent losses) on the truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..grid import LatLonGrid
from ..layout import ColumnLayout
from ..losses import LossComputer
from ..model.network import LatentModel, advance_columns
from ..normalization import Normalization

__all__ = ["Objective", "needs_latent_truth"]


from ..losses.registry import needs_latent_truth  # noqa: E402 - re-exported; the loss registry owns the latent terms


@dataclass
class Objective:
    """Forward pass + loss for one batch, for every mode.

    Batches (physical units, float32):
      single_column: ``x_tile [B, 9, S]``, ``static_tile [B, 9, F]``, ``crossed [B, 9]``, ``x_next [B, S]``
      global / global_rollout: ``x [B, K+1, nlat, nlon, S]``
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
    reduce: object = None  # differentiable all-reduce of loss statistics (tile-parallel training)

    def __post_init__(self):
        n = self.normalization
        f32 = dict(dtype=torch.float32)
        self._mean = torch.as_tensor(n.state_mean, **f32)
        self._std = torch.as_tensor(n.state_std, **f32)
        self._tmean = torch.as_tensor(n.tendency_mean, **f32)
        self._tstd = torch.as_tensor(n.tendency_std, **f32)
        static = self.grid.static_stack(self.layout.static_features)
        self._static = torch.as_tensor(static.reshape(self.grid.ncol, -1), **f32)
        stencil = self.grid.stencil()
        self._tile_index = torch.tensor(stencil.index)
        self._crossed = torch.tensor(stencil.crossed_pole)
        self._area = torch.as_tensor(self.grid.area_weights().reshape(-1), **f32)

    def to(self, device) -> "Objective":
        for name in ("_mean", "_std", "_tmean", "_tstd", "_static", "_tile_index", "_crossed", "_area"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    # -- pieces -------------------------------------------------------------
    def normalize(self, x):
        return (x - self._mean) / self._std

    def normalize_tendency(self, dx):
        """Physical one-step difference -> normalised tendency."""
        return (dx - self._tmean) / self._tstd

    def increment(self, pred_new, pred_old):
        """Decoded normalised states at k and k-1 -> their difference in tendency units.

        The autoencoder's error is common to both decodes and cancels to first order, so
        this compares the dynamics alone with the true change.
        """
        return self.normalize_tendency((pred_new - pred_old) * self._std)

    def _tendency(self, dz):
        """The tendency decoder's output, computed only when ``tendency_mse`` is on."""
        return self.model.tendency_decoder(dz) if "tendency_mse" in self.loss.weights else None

    def _advance(self, z):
        if self.grad_checkpointing and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(
                advance_columns, self.model.mixer, z, self._tile_index, self._crossed, self.chunk_size,
                use_reentrant=False,
            )
        return advance_columns(self.model.mixer, z, self._tile_index, self._crossed, self.chunk_size)

    # -- the loss -------------------------------------------------------------
    def __call__(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch and its terms (detached floats, averaged over rollout steps)."""
        if self.mode == "single_column":
            loss, terms = self._single_column(batch)
            return loss, {name: float(v) for name, v in terms.items()}
        return self._global(batch)

    def _terms(self, *, pred_state, true_state, pred_z, pred_dz, z_prev_true, true_z, pred_tendency, true_tendency, weights,
               pred_increment=None):
        """Loss terms of one step; ``true_z`` is the encoded truth (None when no latent term is on)."""
        extra = {}
        if true_z is not None:
            extra = dict(true_dz=true_z - z_prev_true, pred_dz=pred_dz, true_z=true_z, pred_z=pred_z,
                         pred_recon=self.model.decoder(true_z), true_recon=true_state)
        return self.loss(
            pred_state=pred_state, true_state=true_state,
            pred_tendency=pred_tendency, true_tendency=true_tendency,
            pred_increment=pred_increment, true_increment=true_tendency if pred_increment is not None else None,
            weights=weights, reduce=self.reduce, **extra,
        )

    def _single_column(self, batch):
        xt = self.normalize(batch["x_tile"])  # [B, 9, S]
        static = batch["static_tile"]  # [B, 9, F]
        z_tok = self.model.encoder(xt, static)  # [B, 9, L]
        dz = self.model.mixer(z_tok, batch["crossed"])  # [B, L]
        z1 = z_tok[:, 4] + dz
        truth = self.normalize(batch["x_next"])  # [B, S]
        pred = self.model.decoder(z1)
        tend_true = self.normalize_tendency(batch["x_next"] - batch["x_tile"][:, 4])
        return self._terms(
            pred_state=pred, true_state=truth, pred_z=z1, pred_dz=dz, z_prev_true=z_tok[:, 4],
            true_z=self.model.encoder(truth, static[:, 4]) if self.latent_truth else None,
            pred_tendency=self._tendency(dz), true_tendency=tend_true, weights=None,
            pred_increment=self.increment(pred, self.model.decoder(z_tok[:, 4])) if ("increment" in self.loss.weights) else None,
        )

    def _global(self, batch):
        x = batch["x"]  # [B, K+1, nlat, nlon, S]
        b, kp1 = x.shape[:2]
        xn = self.normalize(x).flatten(2, 3)  # [B, K+1, ncol, S]; ncol = own columns when tiled
        static = self._static.expand(b, -1, -1)
        z = self.model.encoder(xn[:, 0], static)  # the only encode of a state that is stepped
        z_true_prev = z
        pred_prev = self.model.decoder(z) if ("increment" in self.loss.weights) else None
        total = 0.0
        sums: dict[str, float] = {}
        for k in range(1, kp1):
            dz = self._advance(z)
            z = z + dz
            pred = self.model.decoder(z)
            dx = (x[:, k] - x[:, k - 1]).flatten(1, 2)
            # encoded truth for the latent terms (never a decoded state)
            z_true = self.model.encoder(xn[:, k], static) if self.latent_truth else None
            loss_k, terms = self._terms(
                pred_state=pred, true_state=xn[:, k], pred_z=z, pred_dz=dz, z_prev_true=z_true_prev, true_z=z_true,
                pred_tendency=self._tendency(dz), true_tendency=self.normalize_tendency(dx),
                weights=self._area, pred_increment=None if pred_prev is None else self.increment(pred, pred_prev),
            )
            pred_prev = pred
            z_true_prev = z_true
            total = total + loss_k
            for name, v in terms.items():
                sums[name] = sums.get(name, 0.0) + float(v)
        steps = kp1 - 1
        return total / steps, {name: v / steps for name, v in sums.items()}
