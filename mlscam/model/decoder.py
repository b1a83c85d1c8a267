"""The decoders: latent -> normalised state, and latent increment -> normalised tendency."""
from __future__ import annotations

import torch
from torch import nn

from .layers import mlp

__all__ = ["ColumnDecoder", "TendencyDecoder"]


class ColumnDecoder(nn.Module):
    """Per-column MLP ``z [..., latent_dim] -> normalised state [..., n_state]`` plus a linear skip path
    (see ``ColumnEncoder``)."""

    def __init__(self, latent_dim: int, n_state: int, hidden: int, layers: int, activation: str):
        super().__init__()
        self.latent_dim, self.n_state = latent_dim, n_state
        self.net = mlp(latent_dim, hidden, layers, n_state, activation)
        self.skip = nn.Linear(latent_dim, n_state, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z [..., latent_dim]`` -> ``x_n [..., n_state]`` (normalised with the state statistics)."""
        return self.net(z) + self.skip(z)


class TendencyDecoder(ColumnDecoder):
    """The seed's separate tendency head: latent increment ``dz [..., latent_dim]`` ->
    normalised one-step tendency ``[..., n_state]`` (normalised with the tendency statistics)."""
