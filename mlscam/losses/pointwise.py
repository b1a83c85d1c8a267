"""Area-weighted MSE and MAE built from reduced sums.

``pred, target``: ``[..., ncol, C]``; ``weights``: broadcastable to ``[..., ncol]``.
The loss is ``sum_{s,col,c} w (pred - target)^p / (C * sum_{s,col} w)`` with
``p = 2`` (MSE) or ``p = 1`` (MAE): the weighted mean over samples and columns
of the plain mean over channels.  Without weights it is the ordinary mean.
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from mlscam.losses.statistics import Reduce, check_pair, check_weights, reduce_many, sample_weight_total

__all__ = ["mse_loss", "mae_loss"]


def _weighted_mean_error(name: str, err: Tensor, weights: Optional[Tensor], reduce: Optional[Reduce]) -> Tensor:
    w = check_weights(name, weights, err)
    if w is not None:
        err = err * w.unsqueeze(-1)
    total, wsum = reduce_many(reduce, err.sum(), sample_weight_total(err, w))
    return total / (wsum * err.shape[-1])


def mse_loss(
    pred: Tensor, target: Tensor, *, weights: Optional[Tensor] = None, reduce: Optional[Reduce] = None
) -> Tensor:
    """Weighted mean squared error, 0-d.  ``pred, target``: ``[..., ncol, C]``; ``weights``: ``[ncol]``."""
    check_pair("mse_loss", pred, target)
    return _weighted_mean_error("mse_loss", (pred - target).square(), weights, reduce)


def mae_loss(
    pred: Tensor, target: Tensor, *, weights: Optional[Tensor] = None, reduce: Optional[Reduce] = None
) -> Tensor:
    """Weighted mean absolute error, 0-d.  ``pred, target``: ``[..., ncol, C]``; ``weights``: ``[ncol]``."""
    check_pair("mae_loss", pred, target)
    return _weighted_mean_error("mae_loss", (pred - target).abs(), weights, reduce)
