"""Parameter counts and FLOPs of a ``LatentModel``.

FLOPs are counted from the shapes of the Linear layers: ``2 * in * out`` per
row a Linear is applied to (a token, a column, a head's channel). They are
measured by hooking every ``nn.Linear`` while one column (one tile for the
mixer) runs through each part. Biases, norms, activations, gathers and
residual additions are not counted (they are O(width), the matmuls O(width^2)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mlscam.layout import ColumnLayout

from .network import LatentModel

__all__ = ["ModelSummary", "summarize", "linear_flops"]


@dataclass(frozen=True)
class ModelSummary:
    """Parameters of each part and FLOPs per column (the mixer's per column-step)."""

    mixer_kind: str
    latent_dim: int
    params: dict[str, int]
    flops: dict[str, int]
    chunk_size: int | None = None

    @property
    def total_params(self) -> int:
        return sum(self.params.values())

    def __str__(self) -> str:
        lines = [f"mlscam LatentModel: {self.mixer_kind}, latent {self.latent_dim}",
                 f"{'part':<18}{'parameters':>14}{'FLOP/column':>16}"]
        for part, n in self.params.items():
            lines.append(f"{part:<18}{n:>14,}{self.flops[part]:>16,}")
        lines.append(f"{'total':<18}{self.total_params:>14,}")
        lines.append(f"mixer FLOP per column-step: {self.flops['mixer']:,}")
        if self.chunk_size:
            lines.append(f"mixer FLOP per chunk of {self.chunk_size} columns: {self.flops['mixer'] * self.chunk_size:,}")
        return "\n".join(lines)


def linear_flops(module: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of the Linear layers of ``module`` in one call ``module(*inputs)``."""
    total = 0

    def hook(lin: nn.Linear, args, _out) -> None:
        nonlocal total
        rows = args[0].numel() // lin.in_features
        total += 2 * lin.in_features * lin.out_features * rows

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Linear)]
    try:
        # the autograd path: without gradients on the CPU the conv mixer uses its Linear weights directly
        # (ConvMixer._forward_in_place), which the hooks would not see
        with torch.enable_grad():
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total


def summarize(model: LatentModel, layout: ColumnLayout, *, chunk_size: int | None = None) -> ModelSummary:
    """Parameter counts per part and FLOPs per column: encoder/decoders per column,
    mixer per column-step (one tile). ``chunk_size`` adds the FLOPs of one chunk call."""
    p = next(model.parameters())
    opt = {"dtype": p.dtype, "device": p.device}
    latent = model.latent_dim
    parts = {
        "encoder": (model.encoder, (torch.zeros(1, layout.n_state, **opt), torch.zeros(1, layout.n_static, **opt))),
        "mixer": (model.mixer, (torch.zeros(1, 9, latent, **opt), torch.zeros(1, 9, dtype=torch.bool, device=p.device))),
        "decoder": (model.decoder, (torch.zeros(1, latent, **opt),)),
        "tendency_decoder": (model.tendency_decoder, (torch.zeros(1, latent, **opt),)),
    }
    params = {name: sum(q.numel() for q in mod.parameters()) for name, (mod, _) in parts.items()}
    flops = {name: linear_flops(mod, *args) for name, (mod, args) in parts.items()}
    return ModelSummary(type(model.mixer).__name__, latent, params, flops, chunk_size)
