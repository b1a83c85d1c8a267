"""Inference precision of the latent step: ``'fp32'`` (exact, the default) or ``'bf16'`` (autocast).

``bf16`` runs the mixer's matrix products under ``torch.autocast(dtype=torch.bfloat16)``
(CPU and CUDA alike): inputs of Linear/addmm/einsum are rounded to bfloat16, products
accumulate in float32, LayerNorm stays float32 (autocast's own policy). The latents
themselves stay float32: ``z[t+1] = z[t] + dz`` adds a bf16 increment to an fp32 state, so
rounding does not build up in ``z`` itself, only through the increments.
``fp32`` enters no context at all, so its results are bit for bit those of code that
never heard of this module. The weight-cast cache is off, so a bf16 step can be captured
in a CUDA graph (``mlscam.model.graphs``).
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["PRECISIONS", "check_precision", "autocast"]

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` lower-cased if it is one of :data:`PRECISIONS`, else a ValueError naming the valid ones."""
    p = str(precision).strip().lower()
    if p not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return p


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context a latent step of ``precision`` runs in on ``device`` (``nullcontext`` for fp32)."""
    p = check_precision(precision)
    if p == "fp32":
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    if device_type not in ("cpu", "cuda"):
        raise ValueError(f"precision 'bf16' needs a cpu or cuda device, got {device_type!r}")
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16, cache_enabled=False)
