"""Concordance correlation coefficient (Lin's CCC), per channel over space.

For every channel ``c`` the moments are taken over all columns and all leading
(sample) dimensions, with population (biased, ``1/sum w``) normalisation and
optional area weights ``w``::

    mean_p = sum w p / sum w                 var_p = sum w (p - mean_p)^2 / sum w
    cov    = sum w (p - mean_p)(t - mean_t) / sum w
    CCC    = 2 cov / (var_p + var_t + (mean_p - mean_t)^2 + eps)

``eps`` guards a zero denominator, which happens only when both fields are
constant and equal in that channel; such a channel then scores CCC = 0 (no
skill can be measured) with a finite gradient.  For non-degenerate fields it
changes CCC by a relative ``eps / denominator`` (1e-8 by default, on normalised
fields whose variances are ~1).

The moments come from two reduced passes (see ``mlscam.losses``), so the value
on many ranks equals the serial one.
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from mlscam.losses.statistics import (
    Reduce,
    check_pair,
    check_weights,
    reduce_many,
    sample_weight_total,
    weighted_sum,
)

__all__ = ["ccc_per_channel", "ccc_loss", "DEFAULT_CCC_EPS"]

DEFAULT_CCC_EPS = 1e-8


def ccc_per_channel(
    pred: Tensor,
    target: Tensor,
    *,
    weights: Optional[Tensor] = None,
    reduce: Optional[Reduce] = None,
    eps: float = DEFAULT_CCC_EPS,
) -> Tensor:
    """CCC of every channel, ``[C]`` (for logging and evaluation).

    Args:
      pred, target: ``[..., ncol, C]``; leading dimensions are samples.
      weights: area weights broadcastable to ``[..., ncol]`` (typically ``[ncol]``), or None.
      reduce: sum over ranks of the local sums (None: serial).
      eps: added to the denominator (see the module docstring).
    """
    check_pair("ccc", pred, target)
    w = check_weights("ccc", weights, pred)
    wsum, sp, st = reduce_many(
        reduce, sample_weight_total(pred, w), weighted_sum(pred, w), weighted_sum(target, w)
    )
    mean_p, mean_t = sp / wsum, st / wsum
    dp, dt = pred - mean_p, target - mean_t
    spp, stt, spt = reduce_many(
        reduce, weighted_sum(dp.square(), w), weighted_sum(dt.square(), w), weighted_sum(dp * dt, w)
    )
    var_p, var_t, cov = spp / wsum, stt / wsum, spt / wsum
    return 2.0 * cov / (var_p + var_t + (mean_p - mean_t).square() + eps)


def ccc_loss(
    pred: Tensor,
    target: Tensor,
    *,
    weights: Optional[Tensor] = None,
    reduce: Optional[Reduce] = None,
    eps: float = DEFAULT_CCC_EPS,
) -> Tensor:
    """Mean over channels of ``1 - CCC``, 0-d; 0 for identical fields, in ``[0, 2]``.

    Arguments as in ``ccc_per_channel``: ``pred, target`` ``[..., ncol, C]``.
    """
    return (1.0 - ccc_per_channel(pred, target, weights=weights, reduce=reduce, eps=eps)).mean()
