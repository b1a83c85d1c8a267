"""Per-channel normalization statistics of states and one-step tendencies, and THE normalization formula.

``Normalization`` holds the statistics (numpy, float64; stored in checkpoints).
``Normalizer`` (``Normalization.tensors(dtype=, device=)``) applies them to torch
tensors: ``apply``/``inverse`` for states, ``inverse_difference`` for a difference
of two normalised states, ``apply_tendency``/``inverse_tendency`` for one-step changes. Every normalization in the project goes through it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Normalization", "Normalizer"]


@dataclass(frozen=True)
class Normalization:
    """Mean and standard deviation per state channel (``[n_state]`` float64 each).

    ``state_*`` normalise states: ``x_n = (x - state_mean) / state_std``.
    ``tendency_*`` are statistics of one-step differences ``x[t+1] - x[t]``.
    """

    state_mean: np.ndarray
    state_std: np.ndarray
    tendency_mean: np.ndarray
    tendency_std: np.ndarray

    def __post_init__(self):
        n = None
        for name in ("state_mean", "state_std", "tendency_mean", "tendency_std"):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.ndim != 1:
                raise ValueError(f"{name} must be 1-D [n_state], got shape {a.shape}")
            if n is not None and a.shape[0] != n:
                raise ValueError(f"{name} has {a.shape[0]} channels, expected {n}")
            n = a.shape[0]
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name} contains non-finite values")
            object.__setattr__(self, name, a)
        for name in ("state_std", "tendency_std"):
            a = getattr(self, name)
            if np.any(a <= 0):
                raise ValueError(f"{name} must be > 0 everywhere, got min {a.min()}")

    @property
    def n_state(self) -> int:
        return self.state_mean.shape[0]

    @classmethod
    def identity(cls, n_state: int) -> "Normalization":
        z, o = np.zeros(n_state), np.ones(n_state)
        return cls(z, o, z.copy(), o.copy())

    def tensors(self, *, dtype: torch.dtype = torch.float32, device=None) -> "Normalizer":
        """The statistics as tensors ``[n_state]`` of ``dtype`` on ``device``, with the formulas."""
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=dtype, device=device)

        return Normalizer(t(self.state_mean), t(self.state_std), t(self.tendency_mean), t(self.tendency_std))

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("state_mean", "state_std", "tendency_mean", "tendency_std")}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(**{k: np.asarray(v, dtype=np.float64) for k, v in d.items()})


@dataclass(frozen=True)
class Normalizer:
    """``Normalization`` on tensors: ``x_n = (x - mean) / std`` and its inverse, per state channel.

    Inputs end in the channel axis ``[..., n_state]``; they are cast to the
    statistics' dtype and device first.
    """

    state_mean: torch.Tensor
    state_std: torch.Tensor
    tendency_mean: torch.Tensor
    tendency_std: torch.Tensor

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Normalizer":
        return Normalizer(*(getattr(self, k).to(device=device, dtype=dtype)
                            for k in ("state_mean", "state_std", "tendency_mean", "tendency_std")))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Physical state -> normalised state."""
        return (x.to(self.state_mean) - self.state_mean) / self.state_std

    def inverse(self, x_n: torch.Tensor) -> torch.Tensor:
        """Normalised state -> physical state."""
        return x_n * self.state_std + self.state_mean

    def inverse_difference(self, dx_n: torch.Tensor) -> torch.Tensor:
        """Difference of two normalised states -> physical difference (the means cancel exactly)."""
        return dx_n * self.state_std

    def apply_tendency(self, dx: torch.Tensor) -> torch.Tensor:
        """Physical one-step change -> normalised tendency."""
        return (dx.to(self.tendency_mean) - self.tendency_mean) / self.tendency_std

    def inverse_tendency(self, dx_n: torch.Tensor) -> torch.Tensor:
        """Normalised tendency -> physical one-step change."""
        return dx_n * self.tendency_std + self.tendency_mean
