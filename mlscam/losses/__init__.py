"""Loss functions of mlscam: CCC, MSE/MAE, Barlow Twins, VICReg and their weighted combination.

Every loss here that is a statistic over columns is computed from *sufficient
statistics*: sums, sums of squares, cross products and counts (area-weighted
where weights are given).  Each such loss takes ``reduce: Callable[[Tensor],
Tensor]`` (default: the identity), which is applied to those local sums before
they are combined into moments and the loss.

The tile-parallel contract
--------------------------
``reduce(x)`` must return the sum of ``x`` over all ranks that hold a part of
the columns (an all-reduce with ``op=SUM``); every rank must call the loss with
its own columns, in the same order of calls.  Then the loss value on N ranks
equals the serial loss on the whole field (up to the order of floating-point
summation).  Each loss calls ``reduce`` at most twice per evaluation, on one
flat concatenated vector each time:

1. first moments: ``[sum w, sum w*x, ...]`` -> global means;
2. centred second moments: ``[sum w*(x - mean)^2, sum w*(x - mean)*(y - mean), ...]``.

The two-pass form costs one extra tiny collective but is numerically stable in
float32, unlike the one-pass ``E[x^2] - E[x]^2`` which cancels catastrophically
when ``|mean| >> std``.

For training, ``reduce`` must be *differentiable*: its backward is again a sum
all-reduce of the incoming gradients (as ``torch.distributed.nn.functional.
all_reduce`` does).  Every rank then back-propagates the same global loss, so
the gradient each rank obtains for its own inputs is N times its share of the
serial gradient; averaging parameter gradients over the N ranks (what
DistributedDataParallel does) gives exactly the serial parameter gradient.
``tests/test_losses.py`` simulates this with N threads and checks both facts.

Shapes
------
* Field losses (``ccc_loss``, ``mse_loss``, ``mae_loss``): ``pred, target``
  ``[..., ncol, C]``; every leading dimension is a sample dimension; ``weights``
  (e.g. cell areas) broadcastable to ``[..., ncol]``, typically ``[ncol]``.
* Embedding losses (``barlow_twins_loss``, ``vicreg_loss``): ``a, b`` ``[..., D]``;
  all leading dimensions are flattened into ``N`` samples (columns).

This package is torch-only: no files, no MPI (``mlscam.parallel`` supplies the
all-reduce).
"""
from __future__ import annotations

from mlscam.losses.ccc import ccc_loss, ccc_per_channel
from mlscam.losses.combined import TERM_INPUTS, LossComputer
from mlscam.losses.embedding import barlow_twins_loss, vicreg_loss
from mlscam.losses.pointwise import mae_loss, mse_loss
from mlscam.losses.statistics import Reduce, identity_reduce, reduce_many

__all__ = [
    "Reduce",
    "identity_reduce",
    "reduce_many",
    "ccc_loss",
    "ccc_per_channel",
    "mse_loss",
    "mae_loss",
    "barlow_twins_loss",
    "vicreg_loss",
    "LossComputer",
    "TERM_INPUTS",
]
