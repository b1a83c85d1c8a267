"""Small building blocks shared by the encoder, decoders and mixers."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "NORMS", "make_activation", "make_norm", "mlp", "shrink_init"]

ACTIVATIONS = ("gelu", "silu")
NORMS = ("layer", "none")


def make_activation(name: str) -> nn.Module:
    """``'gelu'`` or ``'silu'`` as a module."""
    if name == "gelu":
        return nn.GELU()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"unknown activation {name!r}; valid: {list(ACTIVATIONS)} (&model activation)")


def make_norm(name: str, width: int) -> nn.Module:
    """``'layer'`` (LayerNorm over the last dimension) or ``'none'`` (identity, the seed's "NNorm")."""
    if name == "layer":
        return nn.LayerNorm(width)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {name!r}; valid: {list(NORMS)} (&model norm)")


def mlp(n_in: int, hidden: int, layers: int, n_out: int, act: str) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden`` (Linear + activation), then Linear to ``n_out``.

    ``layers = 0`` is a single Linear ``n_in -> n_out``. Applies to the last dimension.
    """
    if layers < 0 or (layers > 0 and hidden < 1):
        raise ValueError(f"an MLP needs layers >= 0 and hidden >= 1, got layers={layers}, hidden={hidden}")
    mods: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), make_activation(act)]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)


def shrink_init(linear: nn.Linear, scale: float = 1e-2) -> nn.Linear:
    """Scale a Linear's default weights by ``scale`` and zero its bias (a near-identity residual start)."""
    with torch.no_grad():
        linear.weight.mul_(scale)
        if linear.bias is not None:
            linear.bias.zero_()
    return linear

