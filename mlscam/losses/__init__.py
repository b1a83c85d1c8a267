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

The registry of terms (``mlscam.losses.registry``: names, inputs, which need
the encoded truth) is pure Python, and this package imports torch only when a
loss function is first used, so ``mlscam.config`` can check ``&loss`` against the
registry without torch.  This package is torch-only: no files, no MPI
(``mlscam.parallel`` supplies the all-reduce).
"""
from __future__ import annotations

import importlib

from mlscam.losses.registry import (LATENT_TERMS, TERM_INPUTS, TERM_NAMES, TERMS, LossTerm, needs_latent_truth,
                                    term_weights)

#: Public names of the torch modules, imported on first use.
_LAZY = {
    "Reduce": "statistics", "identity_reduce": "statistics", "reduce_many": "statistics",
    "ccc_loss": "ccc", "ccc_per_channel": "ccc",
    "mse_loss": "pointwise", "mae_loss": "pointwise",
    "barlow_twins_loss": "embedding", "vicreg_loss": "embedding",
    "LossComputer": "combined",
}

__all__ = [*_LAZY, "TERMS", "TERM_NAMES", "TERM_INPUTS", "LATENT_TERMS", "LossTerm", "needs_latent_truth",
           "term_weights"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"mlscam.losses.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlscam.losses' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
