"""A host model's communicator inside the embedded interpreter (the host owns MPI).

When mlscam runs inside a C or Fortran host (``libmlscam``), the host has
called ``MPI_Init`` and will call ``MPI_Finalize``.  mpi4py must then neither
initialize nor finalize MPI: :func:`configure_for_host` sets
``mpi4py.rc.initialize = mpi4py.rc.finalize = False`` before ``mpi4py.MPI``
is first imported.  :func:`host_comm` turns the host's Fortran integer handle
into an mpi4py communicator: the host's own, not a copy.  The component
duplicates it once (``Component.init``) and frees its duplicate in
``Component.finalize`` (``mlscam_finalize``, before the host's ``MPI_Finalize``).
"""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["HostCommError", "configure_for_host", "host_comm"]


class HostCommError(RuntimeError):
    """MPI is not usable from the host's side (not initialized, finalized, bad handle)."""


def configure_for_host() -> None:
    """Tell mpi4py that the host owns MPI_Init/MPI_Finalize.

    Must run before the first ``from mpi4py import MPI`` of the process; if
    mpi4py.MPI was already imported (e.g. a Python host), nothing is changed.
    """
    if "mpi4py.MPI" in sys.modules:
        return
    import mpi4py

    mpi4py.rc.initialize = False
    mpi4py.rc.finalize = False
    # Threads: the host decides; mlscam never asks MPI for a thread level.


def host_comm(fcomm: int) -> Any:
    """The host communicator given as a Fortran integer handle (``MPI.Comm.f2py``; not a copy).

    Local.  Raises :class:`HostCommError` when MPI is not initialized or
    already finalized, or the handle is not a communicator.  The result is the
    host's: never free it; communicate on a duplicate (``Component.init`` makes one).
    """
    configure_for_host()
    from mpi4py import MPI

    if not MPI.Is_initialized():
        raise HostCommError("MPI is not initialized: the host must call MPI_Init before mlscam_init")
    if MPI.Is_finalized():
        raise HostCommError("MPI is already finalized: call mlscam_init between the host's MPI_Init and "
                            "MPI_Finalize")
    try:
        host = MPI.Comm.f2py(int(fcomm))
    except (MPI.Exception, OverflowError, ValueError, TypeError) as exc:
        raise HostCommError(f"Fortran communicator handle {fcomm!r} is not valid ({exc}); pass MPI_COMM_WORLD "
                            "or your communicator (use mpi: the integer; use mpi_f08: comm%MPI_VAL; "
                            "C: MPI_Comm_c2f(comm))") from exc
    if host == MPI.COMM_NULL:
        raise HostCommError(f"Fortran communicator handle {fcomm} is MPI_COMM_NULL; pass a valid communicator")
    return host
