"""Sufficient statistics and the ``reduce`` hook shared by all losses.

``reduce`` is applied to local sums before they are combined (see the package
docstring for the tile-parallel contract).  ``reduce_many`` concatenates several
sums into one flat vector so that one evaluation costs one collective.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

__all__ = [
    "Reduce",
    "identity_reduce",
    "reduce_many",
    "check_pair",
    "check_weights",
    "weighted_sum",
    "sample_weight_total",
]

#: Sums a tensor of local sums over every rank holding part of the columns.
Reduce = Callable[[Tensor], Tensor]


def identity_reduce(x: Tensor) -> Tensor:
    """The serial ``reduce``: the local sums are already the global sums."""
    return x


def reduce_many(reduce: Optional[Reduce], *sums: Tensor) -> tuple[Tensor, ...]:
    """Apply ``reduce`` once to all of ``sums`` (any shapes) and return them in their shapes.

    The tensors are flattened and concatenated into one vector, reduced, then
    split again, so a loss evaluation costs one collective per moment pass.
    """
    if reduce is None:
        return sums
    flat = torch.cat([s.reshape(-1) for s in sums])
    out = reduce(flat)
    if out.shape != flat.shape:
        raise ValueError(
            f"reduce must return a tensor of the shape it was given, got {tuple(out.shape)} for "
            f"{tuple(flat.shape)}; pass a sum all-reduce (e.g. torch.distributed.nn.functional.all_reduce)"
        )
    parts = torch.split(out, [s.numel() for s in sums])
    return tuple(p.reshape(s.shape) for p, s in zip(parts, sums))


def check_pair(name: str, pred: Tensor, target: Tensor, *, min_dim: int = 2) -> None:
    """Raise a clear error unless ``pred`` and ``target`` have the same shape with ``>= min_dim`` dims."""
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: prediction and target must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if pred.dim() < min_dim:
        raise ValueError(
            f"{name}: expected at least {min_dim} dimensions ([..., ncol, channel] or [N, D]), "
            f"got shape {tuple(pred.shape)}"
        )


def check_weights(name: str, weights: Optional[Tensor], x: Tensor) -> Optional[Tensor]:
    """Return ``weights`` broadcast to ``x.shape[:-1]`` (``[..., ncol]``), or None.

    Raises a clear error when they do not broadcast.  Weights must be
    non-negative; that is not checked (it would synchronise a GPU every call).
    """
    if weights is None:
        return None
    weights = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
    try:
        w = torch.broadcast_to(weights, x.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"{name}: weights of shape {tuple(weights.shape)} do not broadcast to the sample and column "
            f"dimensions {tuple(x.shape[:-1])} of the field {tuple(x.shape)}; pass [ncol] area weights"
        ) from None
    return w


def weighted_sum(x: Tensor, w: Optional[Tensor]) -> Tensor:
    """``sum over all but the last dim of w * x``: ``[..., ncol, C] -> [C]`` (``w``: ``[..., ncol]`` or None)."""
    if w is not None:
        x = x * w.unsqueeze(-1)
    return x.reshape(-1, x.shape[-1]).sum(0)


def sample_weight_total(x: Tensor, w: Optional[Tensor]) -> Tensor:
    """The local weight total ``sum w`` over ``[..., ncol]`` (the count of samples when ``w`` is None), 0-d."""
    if w is None:
        return x.new_tensor(float(x.numel() // x.shape[-1]))
    return w.sum()
