"""The emulator as a component of a model run: :class:`Component` = an ``Emulator`` on this rank's tile,
a halo plan and the collective status protocol. Used by the rollout driver, the MPI driver and the C API.
"""
from __future__ import annotations

from mlscam.status import Status

from .collective import ComponentError, LocalError
from .component import Component, describe

__all__ = ["Component", "ComponentError", "LocalError", "Status", "describe"]
