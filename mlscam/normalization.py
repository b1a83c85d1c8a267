"""Per-channel normalization statistics of states and one-step tendencies."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Normalization"]


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

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("state_mean", "state_std", "tendency_mean", "tendency_std")}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(**{k: np.asarray(v, dtype=np.float64) for k, v in d.items()})
