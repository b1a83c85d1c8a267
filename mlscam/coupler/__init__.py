"""The emulator as a component of a host model: :class:`Component` (Python) and the drivers.

``python -m mlscam.coupler.run NAMELIST`` runs the component under MPI.  The
component (and torch with it) is imported on first use, so light commands such
as ``python -m mlscam.coupler.config --cflags`` start quickly.
"""
from __future__ import annotations

__all__ = ["Component", "ComponentError", "Status"]


def __getattr__(name: str):
    if name in __all__:
        from . import component

        return getattr(component, name)
    raise AttributeError(f"module 'mlscam.coupler' has no attribute {name!r}")
