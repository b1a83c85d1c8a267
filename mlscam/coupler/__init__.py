"""The emulator as a component of a host model: :class:`Component` (Python) and the drivers.

``python -m mlscam.coupler.run NAMELIST`` runs the component under MPI.
"""
from __future__ import annotations

from .component import Component, ComponentError, Status

__all__ = ["Component", "ComponentError", "Status"]
