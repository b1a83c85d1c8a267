"""The inference API: encode once, step in latent space, decode only when asked."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mlscam import blas
from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout
from mlscam.normalization import Normalization

from .chunks import advance_columns, map_columns
from .network import LatentModel

__all__ = ["Emulator"]


class Emulator:
    """A trained ``LatentModel`` on a grid, with physical <-> normalised conversion inside.

    Built from ``(model, layout, grid, normalization, dt_seconds)`` only. The model
    is put in eval mode; every method runs under ``torch.no_grad``. Tensors are
    ``[..., nlat, nlon, feature]`` (latitude ascending, longitude from 0 east);
    leading dimensions are batch dimensions. Work happens on the model's device
    and dtype.
    """

    def __init__(self, model: LatentModel, layout: ColumnLayout, grid: LatLonGrid,
                 normalization: Normalization, dt_seconds: float, *, chunk_size: int = 1024):
        if model.n_state != layout.n_state or model.n_static != layout.n_static:
            raise ValueError(
                f"model expects {model.n_state} state channels and {model.n_static} static features, "
                f"the column layout has {layout.n_state} and {layout.n_static}"
            )
        if normalization.n_state != layout.n_state:
            raise ValueError(
                f"normalization has {normalization.n_state} channels, the column layout {layout.n_state}"
            )
        if not dt_seconds > 0:
            raise ValueError(f"dt_seconds must be > 0, got {dt_seconds}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.blas_mode = blas.check()  # warns once if decompositions may differ in the last bits
        self.model = model.eval()
        self.layout, self.grid, self.normalization = layout, grid, normalization
        self.dt_seconds, self.chunk_size = float(dt_seconds), int(chunk_size)
        param = next(model.parameters())
        dev, dt = param.device, param.dtype

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.tensor(np.asarray(a), dtype=dt, device=dev)

        self._state_mean = tensor(normalization.state_mean)
        self._state_std = tensor(normalization.state_std)
        self._tend_mean = tensor(normalization.tendency_mean)
        self._tend_std = tensor(normalization.tendency_std)
        self._static = tensor(grid.static_stack(layout.static_features))
        stencil = grid.stencil()
        self._index = torch.tensor(stencil.index, device=dev)
        self._crossed = torch.tensor(stencil.crossed_pole, device=dev)

    @classmethod
    def from_checkpoint(cls, path, *, grid: LatLonGrid | None = None, allow_other_grid: bool = False,
                        device: torch.device | str = "cpu", chunk_size: int | None = None) -> "Emulator":
        """The emulator of a checkpoint file (see ``mlscam.checkpoint``).

        ``grid`` defaults to the training grid; another grid needs ``allow_other_grid=True``.
        """
        from mlscam.checkpoint import load_checkpoint  # files live above the model layer

        ckpt = load_checkpoint(path, grid=grid, allow_other_grid=allow_other_grid)
        model = ckpt.build_model().to(device)
        em = cls(model, ckpt.layout, grid or ckpt.grid, ckpt.normalization, ckpt.dt_seconds,
                 chunk_size=chunk_size or ckpt.config.model.chunk_size)
        em.checkpoint = ckpt
        return em

    def to(self, device: torch.device | str) -> "Emulator":
        """Move the model and the emulator's tensors to ``device``; returns ``self``."""
        self.model.to(device)
        for name in ("_state_mean", "_state_std", "_tend_mean", "_tend_std", "_static", "_index", "_crossed"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    def _check(self, a: torch.Tensor, width: int, what: str) -> None:
        want = (self.grid.nlat, self.grid.nlon, width)
        if a.ndim < 3 or tuple(a.shape[-3:]) != want:
            raise ValueError(f"{what} must be [..., {want[0]}, {want[1]}, {want[2]}] (lat, lon, feature), "
                             f"got shape {tuple(a.shape)}")

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Physical state ``x [..., nlat, nlon, n_state]`` -> latent ``z [..., nlat, nlon, L]``."""
        self._check(x, self.layout.n_state, "x")
        x_n = (x.to(self._state_mean) - self._state_mean) / self._state_std
        static = self._static.expand(*x_n.shape[:-1], self._static.shape[-1])
        return map_columns(self.model.encoder, x_n, static, chunk_size=self.chunk_size)

    @torch.no_grad()
    def step(self, z: torch.Tensor, n: int = 1) -> torch.Tensor:
        """``n`` latent steps ``z[t+1] = z[t] + mixer(tile(z[t]))``: ``[..., nlat, nlon, L]`` -> same shape."""
        self._check(z, self.latent_dim, "z")
        if n < 0:
            raise ValueError(f"number of steps must be >= 0, got {n}")
        flat = z.reshape(-1, self.grid.ncol, self.latent_dim)
        for _ in range(n):
            flat = flat + advance_columns(self.model.mixer, flat, self._index, self._crossed, self.chunk_size)
        return flat.reshape(z.shape)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``z [..., nlat, nlon, L]`` -> physical state ``[..., nlat, nlon, n_state]``."""
        self._check(z, self.latent_dim, "z")
        return map_columns(self.model.decoder, z, chunk_size=self.chunk_size) * self._state_std + self._state_mean

    @torch.no_grad()
    def decode_tendency(self, dz: torch.Tensor) -> torch.Tensor:
        """Latent increment ``dz [..., nlat, nlon, L]`` -> physical one-step change ``[..., nlat, nlon, n_state]``
        (per ``dt_seconds``) from the tendency decoder. Only a model trained with ``&loss tendency_mse > 0``
        has a trained tendency decoder (the shipped demo's is not: use ``decode(step(z)) - decode(z)``)."""
        self._check(dz, self.latent_dim, "dz")
        return map_columns(self.model.tendency_decoder, dz, chunk_size=self.chunk_size) * self._tend_std + self._tend_mean

    def rollout(self, x0: torch.Tensor, n_steps: int, *, output_every: int = 1) -> Iterator[tuple[int, torch.Tensor]]:
        """Forecast from ``x0 [..., nlat, nlon, n_state]`` (physical).

        Yields ``(step, x [..., nlat, nlon, n_state])`` for step = output_every,
        2*output_every, ... <= n_steps. Encodes once, steps in latent space and
        decodes only at output steps; a decoded state is never re-encoded.
        """
        if n_steps < 0 or output_every < 1:
            raise ValueError(f"need n_steps >= 0 and output_every >= 1, got {n_steps} and {output_every}")
        z = self.encode(x0)
        done = 0
        for target in range(output_every, n_steps + 1, output_every):
            z = self.step(z, target - done)
            done = target
            yield target, self.decode(z)
