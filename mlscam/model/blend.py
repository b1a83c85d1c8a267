"""Blending two trained models of one architecture: ``(1 - w) * A + w * B``, tensor by tensor.

When B was trained from A (a fine-tuning run), the straight line between them is a path through models
that often trade what B learnt against what A kept (weight interpolation after fine-tuning, "WiSE-FT",
Wortsman et al. 2022; averaged fine-tuned weights, "model soups", Wortsman et al. 2022). Here: A a
climate-stable model, B the same network fine-tuned for the first day; no training is needed to make a blend,
and it is chosen on validation runs like any model. Measured once (``docs/demo_model.md``, B50, the mean of
16H grown and 16Z): between the two in day-1 skill and zonal-mean bias, with weaker temperature eddies
than either.
"""
from __future__ import annotations

import torch

__all__ = ["blend_state_dicts"]


def blend_state_dicts(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], weight: float) -> dict[str, torch.Tensor]:
    """``(1 - weight) * a + weight * b`` for every tensor (``weight`` 0 gives ``a``, 1 gives ``b``).

    Both state dicts must have the same keys and shapes; floating-point tensors are blended in float64 and
    cast back to their dtype, other tensors (integer buffers) must be equal and are taken from ``a``.
    Raises ``ValueError`` naming the first tensor that differs in name, shape or dtype."""
    weight = float(weight)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the blend weight must lie in [0, 1] (0: the first model, 1: the second), got {weight}")
    missing = sorted(set(a) ^ set(b))
    if missing:
        raise ValueError(f"the two models differ in tensor {missing[0]!r}: only models of one architecture "
                         "(the same &model sizes) blend")
    out: dict[str, torch.Tensor] = {}
    for key, ta in a.items():
        tb = b[key]
        if ta.shape != tb.shape or ta.dtype != tb.dtype:
            raise ValueError(f"{key!r} is {tuple(ta.shape)} {ta.dtype} in the first model and {tuple(tb.shape)} "
                             f"{tb.dtype} in the second: only models of one architecture (the same &model sizes) "
                             "blend (a smaller one can be grown first: python -m mlscam.checkpoint grow)")
        if ta.is_floating_point():
            out[key] = ((1.0 - weight) * ta.double() + weight * tb.double()).to(ta.dtype)
        elif torch.equal(ta, tb):
            out[key] = ta.clone()
        else:
            raise ValueError(f"{key!r} is a non-floating tensor that differs between the two models: it cannot "
                             "be blended")
    return out
