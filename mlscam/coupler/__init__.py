"""The drivers of the component: ``python -m mlscam.coupler.run`` (MPI) and the C entry points (``capi``).

:class:`Component` lives in :mod:`mlscam.runtime`; it is re-exported here for
hosts that import it from the coupler. It (and torch with it) is imported on
first use, so light commands such as ``python -m mlscam.coupler.config --cflags``
start quickly.
"""
from __future__ import annotations

__all__ = ["Component", "ComponentError", "Status"]


def __getattr__(name: str):
    if name in __all__:
        from mlscam import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'mlscam.coupler' has no attribute {name!r}")
