"""The column layout: which physical quantities make up one grid column.

A column's *state vector* is, in this order: every level of every 3-D variable
(variable-major, levels in the layout's order), then every 2-D variable.
Static features (e.g. ``sin_lat``) are encoder inputs only: they are never
decoded, predicted or put in a loss.

This module knows nothing of files, MPI or torch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ColumnLayout", "KNOWN_STATIC_FEATURES", "DEFAULT_STATIC_FEATURES", "canonical_units"]

KNOWN_STATIC_FEATURES = ("sin_lat", "cos_lat", "sin_lon", "cos_lon")
#: The static features of a layout that names none (``&data static_features`` default; old checkpoints).
DEFAULT_STATIC_FEATURES = ("sin_lat", "cos_lat")


_FACTOR = re.compile(r"^([A-Za-z%]+)\^?([+-]?\d+)?$")


def canonical_units(units: str) -> str:
    """One spelling of a units string, so that equivalent spellings compare equal.

    Factors are sorted, exponents written UDUNITS-style (``s-1``); ``/``, ``^``, ``**``,
    ``*`` and ``.`` between factors are understood.  A string it cannot parse comes back
    stripped, unchanged.

    >>> canonical_units("m/s") == canonical_units("m s-1") == canonical_units("m s^-1") == "m s-1"
    True
    >>> canonical_units("kg/m2/s"), canonical_units("K"), canonical_units(" Pa "), canonical_units("")
    ('kg m-2 s-1', 'K', 'Pa', '1')
    """
    text = " ".join(str(units).split())
    if text in ("", "1", "-", "dimensionless"):
        return "1"
    spaced = re.sub(r"\*\*", "^", text)
    spaced = re.sub(r"(?<=[A-Za-z0-9])[*.\u00b7](?=[A-Za-z])", " ", spaced)
    powers: dict[str, int] = {}
    for k, part in enumerate(spaced.split("/")):
        factors = part.split()
        if not factors:
            return text
        for factor in factors:
            if factor == "1":
                continue
            m = _FACTOR.match(factor)
            if m is None:
                return text
            name, power = m.group(1), int(m.group(2) or 1)
            powers[name] = powers.get(name, 0) + (-power if k else power)
    kept = [(n, p) for n, p in sorted(powers.items()) if p]
    if not kept:
        return "1"
    return " ".join(n if p == 1 else f"{n}{p}" for n, p in kept)


@dataclass(frozen=True)
class ColumnLayout:
    """Variables, levels and units of one column.

    Attributes:
      variables_3d: names of the 3-D variables (model names, e.g. ``"u"``).
      variables_2d: names of the 2-D (surface) variables.
      levels: sigma-equivalent value of each level, in the order used everywhere.
      units: ``(name, units)`` pairs for every variable.
      static_features: names of per-column static inputs (see ``KNOWN_STATIC_FEATURES``).
    """

    variables_3d: tuple[str, ...]
    variables_2d: tuple[str, ...]
    levels: tuple[float, ...]
    units: tuple[tuple[str, str], ...] = ()
    static_features: tuple[str, ...] = DEFAULT_STATIC_FEATURES

    def __post_init__(self):
        for name in ("variables_3d", "variables_2d", "levels", "static_features"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "levels", tuple(float(x) for x in self.levels))
        units = self.units.items() if isinstance(self.units, dict) else self.units
        object.__setattr__(self, "units", tuple((str(k), str(v)) for k, v in units))
        names = self.variables_3d + self.variables_2d
        if not names:
            raise ValueError("a column layout needs at least one variable")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"variables listed twice in the column layout: {dup}")
        if self.variables_3d and not self.levels:
            raise ValueError("3-D variables need at least one level")
        bad = [s for s in self.static_features if s not in KNOWN_STATIC_FEATURES]
        if bad:
            raise ValueError(f"unknown static features {bad}; valid: {list(KNOWN_STATIC_FEATURES)}")

    # -- sizes ------------------------------------------------------------
    @property
    def nlev(self) -> int:
        return len(self.levels)

    @property
    def variables(self) -> tuple[str, ...]:
        return self.variables_3d + self.variables_2d

    @property
    def n_state(self) -> int:
        """Length of the state vector."""
        return len(self.variables_3d) * self.nlev + len(self.variables_2d)

    @property
    def n_static(self) -> int:
        return len(self.static_features)

    def slice_of(self, name: str) -> slice:
        """Where variable ``name`` lives in the state vector."""
        if name in self.variables_3d:
            k = self.variables_3d.index(name)
            return slice(k * self.nlev, (k + 1) * self.nlev)
        if name in self.variables_2d:
            k = len(self.variables_3d) * self.nlev + self.variables_2d.index(name)
            return slice(k, k + 1)
        raise KeyError(f"variable {name!r} is not in the column layout; it has {list(self.variables)}")

    def feature_of(self, index: int) -> tuple[str, int | None]:
        """The variable and level index (``None`` for a 2-D variable) of state-vector index ``index``.

        >>> ColumnLayout(("u", "t"), ("ps",), (0.2, 0.5, 0.9)).feature_of(4)
        ('t', 1)
        >>> ColumnLayout(("u", "t"), ("ps",), (0.2, 0.5, 0.9)).feature_of(6)
        ('ps', None)
        """
        index = int(index)
        if not 0 <= index < self.n_state:
            raise IndexError(f"state index {index} is outside 0..{self.n_state - 1}")
        n3 = len(self.variables_3d) * self.nlev
        if index < n3:
            return self.variables_3d[index // self.nlev], index % self.nlev
        return self.variables_2d[index - n3], None

    def describe_feature(self, index: int) -> str:
        """``"t level 1 (sigma 0.5)"`` or ``"ps"``: state-vector index ``index`` in words.

        >>> ColumnLayout(("u", "t"), ("ps",), (0.2, 0.5, 0.9)).describe_feature(4)
        't level 1 (sigma 0.5)'
        """
        name, level = self.feature_of(index)
        return name if level is None else f"{name} level {level} (sigma {self.levels[level]:g})"

    def units_of(self, name: str) -> str:
        return dict(self.units).get(name, "1")

    def channel_names(self) -> list[str]:
        """One name per state channel, e.g. ``u_L0``, ..., ``surface_pressure``."""
        out = [f"{v}_L{k}" for v in self.variables_3d for k in range(self.nlev)]
        return out + list(self.variables_2d)

    # -- (de)serialisation ---------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "variables_3d": list(self.variables_3d),
            "variables_2d": list(self.variables_2d),
            "levels": list(self.levels),
            "units": {k: v for k, v in self.units},
            "static_features": list(self.static_features),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ColumnLayout":
        return cls(**d)

    def canonical_units(self) -> dict[str, str]:
        """``{variable: units}`` of the variables with declared units, in one spelling (:func:`canonical_units`)."""
        return {name: canonical_units(u) for name, u in self.units}

    def same_as(self, other: "ColumnLayout") -> bool:
        """Equal but for the spelling of units (``'m s-1'`` is ``'m/s'``): the same columns.

        Units are compared where both layouts declare them.
        """
        mine, theirs = self.canonical_units(), other.canonical_units()
        return (all(getattr(self, n) == getattr(other, n)
                    for n in ("variables_3d", "variables_2d", "levels", "static_features"))
                and all(mine[k] == theirs[k] for k in mine.keys() & theirs.keys()))

    def describe_difference(self, other: "ColumnLayout") -> str:
        """Human-readable list of what differs from ``other`` ('' when :meth:`same_as`)."""
        lines = []
        for name in ("variables_3d", "variables_2d", "levels", "static_features"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                lines.append(f"  {name}: {list(a)} != {list(b)}")
        mine, theirs = self.canonical_units(), other.canonical_units()
        for name in self.variables:
            if name in mine and name in theirs and mine[name] != theirs[name]:
                lines.append(f"  units of {name}: {self.units_of(name)!r} != {other.units_of(name)!r}")
        return "\n".join(lines)
