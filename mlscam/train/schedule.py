"""Learning-rate schedule: linear warm-up, then cosine, linear or constant decay."""
from __future__ import annotations

import math

__all__ = ["lr_factor"]


def lr_factor(step: int, *, warmup_steps: int, max_steps: int, schedule: str, min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based).

    >>> lr_factor(0, warmup_steps=10, max_steps=100, schedule="cosine")
    0.1
    >>> lr_factor(100, warmup_steps=10, max_steps=100, schedule="linear", min_lr_ratio=0.1)
    0.1
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    if schedule == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "linear":
        shape = 1.0 - progress
    else:
        raise ValueError(f"unknown schedule {schedule!r}; valid: 'cosine', 'linear', 'constant'")
    return min_lr_ratio + (1.0 - min_lr_ratio) * shape
