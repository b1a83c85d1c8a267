"""Growing a trained conv mixer without changing what it computes (a wider or deeper start for training).

A model trained for hours is the best start for a larger one. :func:`grow_conv_mixer` takes a trained
``LatentModel``'s weights and a freshly built larger model (more ``channel_hidden`` units in every block,
or more blocks) and returns the larger model's weights such that it computes the same function, up to
rounding (longer sums round differently):

* extra hidden units of a block keep their fresh input weights and get zero output weights, so they add
  ``0 * gelu(...)`` to the block's output;
* extra blocks keep their fresh norm and first layer and get a zero last layer (weight and bias), so each
  is the identity ``x + 0``.

Training then moves the zero weights first (their gradients are the units' activations), as in "Net2Net"
(Chen, Goodfellow & Shlens 2016), where the new units start as exact no-ops. Everything outside the
mixer's blocks must have the same shape in both models.
"""
from __future__ import annotations

import re

import torch

__all__ = ["grow_conv_mixer"]

_BLOCK = re.compile(r"^mixer\.blocks\.(\d+)\.(.+)$")


def grow_conv_mixer(old: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of the larger model ``fresh`` (its fresh initialisation) that computes what ``old`` does.

    ``old`` and ``fresh`` are ``LatentModel`` state dicts with a conv mixer; ``fresh`` may have more blocks and
    wider blocks (``channel_hidden``), nothing else may differ. Raises ``ValueError`` naming the first tensor
    that cannot be grown."""
    old_blocks = {int(m.group(1)) for k in old if (m := _BLOCK.match(k))}
    new_blocks = {int(m.group(1)) for k in fresh if (m := _BLOCK.match(k))}
    if not old_blocks or not new_blocks:
        raise ValueError("growing needs a conv mixer's blocks (mixer.blocks.N...) in both models")
    if not old_blocks <= new_blocks:
        raise ValueError(f"the larger model has blocks {sorted(new_blocks)}, fewer than the trained one's "
                         f"{sorted(old_blocks)}: growing only adds blocks")
    extra = sorted(set(old) - set(fresh))
    if extra:
        raise ValueError(f"the larger model has no tensor {extra[0]!r} of the trained one: only the mixer's "
                         "blocks may grow")
    out: dict[str, torch.Tensor] = {}
    for key, new in fresh.items():
        m = _BLOCK.match(key)
        if key not in old:
            if m is None or int(m.group(1)) in old_blocks:
                raise ValueError(f"{key!r} is new but not part of a new block: only the mixer's blocks may grow")
            # a new block: the identity x + 0 (its last layer zero), fresh norm and first layer
            out[key] = torch.zeros_like(new) if m.group(2).startswith("mlp.2.") else new.clone()
            continue
        src = old[key]
        if src.shape == new.shape:
            out[key] = src.clone()
            continue
        if m is None or src.ndim != new.ndim or any(s > n for s, n in zip(src.shape, new.shape)):
            raise ValueError(f"{key!r} is {tuple(src.shape)} in the trained model and {tuple(new.shape)} in the "
                             "larger one: only the blocks' hidden width (channel_hidden) may grow")
        part = m.group(2)
        if part.startswith("mlp.0."):  # rows = hidden units: the new ones keep their fresh input weights
            grown = new.clone()
            grown[: src.shape[0]] = src
        elif part == "mlp.2.weight":  # columns = hidden units: the new ones start at zero
            grown = torch.zeros_like(new)
            grown[:, : src.shape[1]] = src
        else:
            raise ValueError(f"{key!r} changed shape {tuple(src.shape)} -> {tuple(new.shape)}: only the blocks' "
                             "hidden width (channel_hidden) may grow")
        out[key] = grown
    return out
