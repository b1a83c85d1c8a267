"""Exact fixed-point sums of float64 values: the local half of the reproducible global sum.

A floating-point sum depends on the order of its terms, so a global mean summed
over ranks changes in the last bits with the decomposition. Here, as in CESM's
``shr_reprosum``, every value is converted to an integer at ONE fixed global
scale, the integers are summed exactly, and the exact total is converted back
to float64 once. Integer addition is associative, so the result is the same
bits whatever the order of the terms and however they are split between ranks,
threads or chunks.

Format (fixed, independent of the data, so no extra pass or exchange is needed):

* resolution ``2**-64`` (about 5.4e-20): each value is rounded to the nearest
  multiple of it (half to even); float64 values of magnitude ``>= 2**-12``
  (about 2.4e-4) are represented exactly;
* range ``|value| < 2**64`` (about 1.8e19);
* at most ``2**31 - 1`` values in one sum (all ranks together), so no int64 limb
  sum can overflow.

The value ``v * 2**64`` is held as four signed 32-bit limbs (int64 tensors,
``v * 2**64 = sum_k limb_k * 2**(32 k)``), so the sum of a column of limbs is
exact in int64. A *partial sum* is ``[..., NLIMBS + 1]`` int64: the limb sums
with carries propagated (limbs 0..2 in ``[0, 2**32)``, limb 3 signed) and, last,
the number of values that were not finite or out of range (those add 0 to the
limbs). Partial sums of several parts add exactly (:func:`add_partials`).
:func:`to_float` turns one into float64: the exact integer total, rounded to
float64 with an error below one unit in the last place; NaN where any value was
bad. Everything here is elementwise torch on the input's device (a GPU never
synchronises with the host) except the error checks, which read the counts.

``mlscam.parallel.reprosum`` builds the global sums over ranks on this (MPI
allgather of the partial sums); this module knows no MPI, so the engine's
serial sum (``mlscam.model.engine.Domain``) gives the same bits as N ranks.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["RESOLUTION_BITS", "RANGE_BITS", "LIMB_BITS", "NLIMBS", "MAX_TERMS", "RESOLUTION", "LIMIT",
           "ReprosumError", "partial_sums", "add_partials", "to_float", "to_int", "bad_count", "check_partials",
           "fixed_sum"]

RESOLUTION_BITS = 64  #: values are rounded to multiples of 2**-RESOLUTION_BITS
RANGE_BITS = 64  #: values must satisfy |v| < 2**RANGE_BITS
LIMB_BITS = 32
NLIMBS = (RESOLUTION_BITS + RANGE_BITS) // LIMB_BITS  # 4
MAX_TERMS = 2**31 - 1  #: most values in one sum: limb sums stay below 2**63
RESOLUTION = 2.0**-RESOLUTION_BITS
LIMIT = 2.0**RANGE_BITS


class ReprosumError(ValueError):
    """Values the reproducible sum cannot represent (not finite, or ``|v| >= 2**64``), or too many of them."""


def _as_float64(values) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().to(torch.float64)
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


def _normalise(limbs: torch.Tensor) -> torch.Tensor:
    """Propagate carries: limbs ``[..., NLIMBS]`` int64 -> limbs 0..NLIMBS-2 in ``[0, 2**32)``, the top one signed."""
    out = list(limbs.unbind(-1))
    base = 1 << LIMB_BITS
    for k in range(NLIMBS - 1):
        carry = torch.div(out[k], base, rounding_mode="floor")
        out[k] = out[k] - carry * base
        out[k + 1] = out[k + 1] + carry
    return torch.stack(out, -1)


def partial_sums(values, dim: int = -1) -> torch.Tensor:
    """Exact fixed-point partial sums of float ``values`` (torch or numpy) along ``dim``.

    Returns int64 ``[..., NLIMBS + 1]`` (``values``' shape without ``dim``, then the limbs and the count
    of bad values; see the module docstring), on ``values``' device. Never raises on bad values (they are
    counted); raises :class:`ReprosumError` when ``dim`` holds more than :data:`MAX_TERMS` values.
    """
    v = _as_float64(values)
    v = v.movedim(dim, -1)
    if v.shape[-1] > MAX_TERMS:
        raise ReprosumError(f"a reproducible sum takes at most {MAX_TERMS} values, got {v.shape[-1]}")
    bad = ~torch.isfinite(v) | (v.abs() >= LIMIT)
    x = torch.where(bad, torch.zeros_like(v), v) * 2.0**RESOLUTION_BITS  # exact (a power of two)
    limbs = []
    for k in range(NLIMBS - 1, 0, -1):  # top limb first; every remainder is exact
        scale = 2.0 ** (LIMB_BITS * k)
        limb = torch.trunc(x / scale)
        x = x - limb * scale
        limbs.append(limb)
    limbs.append(torch.round(x))  # the one rounding: to the resolution, half to even
    limbs = torch.stack([limb.to(torch.int64) for limb in reversed(limbs)], -1)  # [..., n, NLIMBS]
    sums = _normalise(limbs.sum(-2))
    return torch.cat([sums, bad.sum(-1, dtype=torch.int64).unsqueeze(-1)], -1)


def add_partials(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """The exact sum of partial sums of disjoint parts (any order gives the same integers)."""
    parts = list(parts)
    if not parts:
        raise ValueError("add_partials needs at least one partial sum")
    total = parts[0]
    for p in parts[1:]:
        total = total + p.to(total.device)
    return torch.cat([_normalise(total[..., :NLIMBS]), total[..., NLIMBS:]], -1)


def bad_count(partials: torch.Tensor) -> torch.Tensor:
    """``[...]`` int64: how many values of each sum were not finite or out of range."""
    return partials[..., NLIMBS]


def to_float(partials: torch.Tensor) -> torch.Tensor:
    """float64 ``[...]`` of partial sums ``[..., NLIMBS + 1]``: the exact total within one unit in the last
    place (summed from the smallest limb up, on the magnitude); NaN where a value was bad. No host sync."""
    limbs = _normalise(partials[..., :NLIMBS])
    negative = limbs[..., -1] < 0
    sign = torch.where(negative, -1, 1).to(torch.int64)
    mag = _normalise(limbs * sign.unsqueeze(-1))  # every limb >= 0: no cancellation below
    out = torch.zeros(mag.shape[:-1], dtype=torch.float64, device=mag.device)
    for k in range(NLIMBS):
        out = out + mag[..., k].to(torch.float64) * 2.0 ** (LIMB_BITS * k - RESOLUTION_BITS)
    out = out * sign.to(torch.float64)
    return torch.where(bad_count(partials) > 0, torch.full_like(out, float("nan")), out)


def to_int(partials: torch.Tensor) -> list[int]:
    """The exact totals, flattened, as Python integers in units of ``2**-64`` (tests, diagnostics)."""
    limbs = partials[..., :NLIMBS].reshape(-1, NLIMBS).cpu().tolist()
    return [sum(int(v) << (LIMB_BITS * k) for k, v in enumerate(row)) for row in limbs]


def check_partials(partials: torch.Tensor, what: str = "values") -> None:
    """Raise :class:`ReprosumError` if any value of the sums was bad (reads the counts: a host sync)."""
    n = int(bad_count(partials).sum())
    if n:
        raise ReprosumError(f"reproducible sum of {what}: {n} value(s) are not finite or outside "
                            f"|v| < 2**{RANGE_BITS} (= {LIMIT:.3g}), which the fixed-point format (resolution "
                            f"2**-{RESOLUTION_BITS}) cannot hold; check the input for NaN, Inf or a blow-up")


def fixed_sum(values, dim: int = -1, *, check: bool = True, what: str = "values") -> torch.Tensor:
    """The reproducible sum of ``values`` along ``dim`` (float64, on ``values``' device).

    ``check=True`` raises :class:`ReprosumError` naming the first bad value; ``check=False`` returns NaN
    for a sum with a bad value instead (no host synchronisation: what a step on a GPU needs).
    """
    v = _as_float64(values)
    if check:
        bad = ~torch.isfinite(v) | (v.abs() >= LIMIT)
        if bool(bad.any()):
            idx = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise ReprosumError(f"reproducible sum of {what}: {int(bad.sum())} value(s) are not finite or outside "
                                f"|v| < 2**{RANGE_BITS} (= {LIMIT:.3g}), the first {float(v[idx])!r} at index "
                                f"{idx}; the fixed-point format (resolution 2**-{RESOLUTION_BITS}) cannot hold them")
    return to_float(partial_sums(v, dim))
