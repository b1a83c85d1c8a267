"""An exponential moving average of a model's weights (``&train ema_decay``).

Averaging the weights removes the noise of the last steps of stochastic
optimisation from the model that is validated and shipped; ACE2 ships such
averaged weights (issue 13's sources).  After ``n`` updates the average moves by
``1 - d`` towards the weights, with ``d = min(decay, (1 + n) / (10 + n))``, so
that the first steps of a run are not averaged with the initial weights for
thousands of steps.  The average is a plain function of the sequence of
weights: a resumed run that restores it continues bit for bit, and every rank
of a tile-parallel run (same weights after the averaged gradients) holds the
same average.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["WeightAverage"]


class WeightAverage:
    """The moving average of the parameters in ``model.state_dict()``; buffers (constant tables) are copied,
    so they keep their exact bits."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay!r}")
        self.decay = float(decay)
        self.updates = 0
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.averaged = frozenset(name for name, _ in model.named_parameters())

    def reset(self, model: torch.nn.Module) -> None:
        """Start averaging again from ``model``'s weights (after loading other weights into it)."""
        self.updates = 0
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        """The decay of the next update."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Move the average towards ``model``'s weights (call after each optimizer step)."""
        d = self.current_decay()
        for k, v in model.state_dict().items():
            avg = self.weights[k]
            if k in self.averaged:
                avg.mul_(d).add_(v.detach(), alpha=1.0 - d)
            else:
                avg.copy_(v)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module):
        """Within the block ``model`` holds the averaged weights; its own come back afterwards."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.weights)
        try:
            yield model
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict:
        """What a checkpoint needs to continue the average exactly (the weights go in the checkpoint's own
        ``state_dict``)."""
        return {"decay": self.decay, "updates": self.updates}

    def load(self, weights: dict[str, torch.Tensor], state: dict) -> None:
        """Restore the average of a checkpoint: its averaged ``weights`` and :meth:`state_dict`'s ``state``."""
        missing = sorted(set(self.weights) - set(weights))
        if missing:
            raise KeyError(f"the averaged weights lack {missing}")
        self.weights = {k: weights[k].detach().clone().to(self.weights[k].device) for k in self.weights}
        self.updates = int(state["updates"])
