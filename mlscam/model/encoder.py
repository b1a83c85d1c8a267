"""The column encoder: one column's normalised state (+ static features) -> latent vector."""
from __future__ import annotations

import torch
from torch import nn

from .layers import mlp

__all__ = ["ColumnEncoder"]


class ColumnEncoder(nn.Module):
    """Per-column MLP ``[n_state + n_static] -> [latent_dim]`` plus a linear skip path.

    The linear path (``skip``) lets encoder and decoder represent an exact
    linear autoencoder from the start when ``latent_dim >= n_state``; the MLP
    learns the rest.  Static features (e.g. ``sin_lat``) are inputs only;
    nothing decodes them.
    """

    def __init__(self, n_state: int, n_static: int, latent_dim: int, hidden: int, layers: int, activation: str):
        super().__init__()
        self.n_state, self.n_static, self.latent_dim = n_state, n_static, latent_dim
        self.net = mlp(n_state + n_static, hidden, layers, latent_dim, activation)
        self.skip = nn.Linear(n_state + n_static, latent_dim, bias=False)

    def forward(self, x_state: torch.Tensor, x_static: torch.Tensor) -> torch.Tensor:
        """``x_state [..., n_state]`` and ``x_static [..., n_static]`` (normalised) -> ``z [..., latent_dim]``."""
        if x_state.shape[-1] != self.n_state or x_static.shape[-1] != self.n_static:
            raise ValueError(
                f"encoder expects [..., {self.n_state}] state and [..., {self.n_static}] static features, "
                f"got {tuple(x_state.shape)} and {tuple(x_static.shape)}"
            )
        x = torch.cat([x_state, x_static], dim=-1)
        return self.net(x) + self.skip(x)
