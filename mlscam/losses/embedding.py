"""Self-supervised embedding losses between two views: Barlow Twins and VICReg.

In mlscam the two views are the predicted latent increments and the increments
of the encoded truth.  ``a, b``: ``[..., D]``; every leading dimension is
flattened into ``N`` samples (columns x batch).  All statistics over the ``N``
samples are built from sums reduced with ``reduce`` (see ``mlscam.losses``), so
the loss on many ranks equals the serial loss.  These losses are not area
weighted: every column counts once.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from mlscam.losses.statistics import Reduce, check_pair, reduce_many

__all__ = ["barlow_twins_loss", "vicreg_loss"]


def _flatten(name: str, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    check_pair(name, a, b, min_dim=1)
    d = a.shape[-1]
    return a.reshape(-1, d), b.reshape(-1, d)


def _off_diagonal_sq_sum(m: Tensor) -> Tensor:
    """``sum_{i != j} m_ij^2`` of a square ``[D, D]`` matrix."""
    return m.square().sum() - torch.diagonal(m).square().sum()


def barlow_twins_loss(
    a: Tensor,
    b: Tensor,
    *,
    lambda_offdiag: float = 5e-3,
    eps: float = 1e-5,
    reduce: Optional[Reduce] = None,
) -> Tensor:
    """Barlow Twins redundancy-reduction loss, 0-d.

    Each view is standardised over the ``N`` samples with the population (biased)
    standard deviation ``sqrt(var + eps)`` (as BatchNorm without affine does), the
    cross-correlation matrix is ``C = (1/N) sum_n a_n b_n^T`` ``[D, D]``, and::

        loss = sum_i (1 - C_ii)^2 + lambda_offdiag * sum_{i != j} C_ij^2

    Args:
      a, b: ``[..., D]`` (leading dimensions are samples).
      lambda_offdiag: weight of the off-diagonal (redundancy) term.
      eps: added to the variances; a constant dimension then standardises to 0.
      reduce: sum over ranks of the local sums (None: serial).
    """
    a, b = _flatten("barlow_twins_loss", a, b)
    n, sa, sb = reduce_many(reduce, a.new_tensor(float(a.shape[0])), a.sum(0), b.sum(0))
    da, db = a - sa / n, b - sb / n
    saa, sbb, sab = reduce_many(reduce, da.square().sum(0), db.square().sum(0), da.T @ db)
    std_a = torch.sqrt(saa / n + eps)
    std_b = torch.sqrt(sbb / n + eps)
    c = (sab / n) / (std_a[:, None] * std_b[None, :])
    on = (1.0 - torch.diagonal(c)).square().sum()
    return on + lambda_offdiag * _off_diagonal_sq_sum(c)


def vicreg_loss(
    a: Tensor,
    b: Tensor,
    *,
    sim: float = 25.0,
    var: float = 25.0,
    cov: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
    reduce: Optional[Reduce] = None,
) -> dict[str, Tensor]:
    """VICReg (Bardes, Ponce & LeCun 2022), returned term by term.

    With ``N`` samples and ``D`` dimensions, and the *unbiased* (``N - 1``)
    covariance ``K(x) = sum_n (x_n - mean)(x_n - mean)^T / (N - 1)`` as in the
    paper's reference code (so the global ``N`` must be at least 2):

    * ``invariance = sum (a - b)^2 / (N D)`` (the MSE between the views);
    * ``variance = [mean_d relu(gamma - sqrt(K(a)_dd + eps)) + same for b] / 2``;
    * ``covariance = sum_{i != j} K(a)_ij^2 / D + sum_{i != j} K(b)_ij^2 / D``
      (summed over the two views, as in the paper);
    * ``total = sim * invariance + var * variance + cov * covariance``.

    Args:
      a, b: ``[..., D]`` (leading dimensions are samples).
      reduce: sum over ranks of the local sums (None: serial).

    Returns:
      ``{"invariance", "variance", "covariance", "total"}``, each 0-d.
    """
    a, b = _flatten("vicreg_loss", a, b)
    d = a.shape[-1]
    n, sa, sb, sdiff = reduce_many(
        reduce, a.new_tensor(float(a.shape[0])), a.sum(0), b.sum(0), (a - b).square().sum()
    )
    da, db = a - sa / n, b - sb / n
    kaa, kbb = reduce_many(reduce, da.T @ da, db.T @ db)
    kaa, kbb = kaa / (n - 1.0), kbb / (n - 1.0)
    invariance = sdiff / (n * d)
    std_a = torch.sqrt(torch.diagonal(kaa) + eps)
    std_b = torch.sqrt(torch.diagonal(kbb) + eps)
    variance = 0.5 * (torch.relu(gamma - std_a).mean() + torch.relu(gamma - std_b).mean())
    covariance = (_off_diagonal_sq_sum(kaa) + _off_diagonal_sq_sum(kbb)) / d
    total = sim * invariance + var * variance + cov * covariance
    return {"invariance": invariance, "variance": variance, "covariance": covariance, "total": total}
