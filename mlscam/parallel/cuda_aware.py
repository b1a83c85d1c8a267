"""Can the MPI library of a communicator read and write CUDA device memory ("CUDA-aware MPI")?

The halo exchange (:mod:`mlscam.parallel.halo`) hands device buffers straight to MPI
when it can, and stages them through pinned host buffers otherwise. The answer, in
this order:

1. ``MLSCAM_CUDA_AWARE_MPI=1`` / ``=0`` in the environment decides (for libraries this
   module does not know, or to force the staged path);
2. a communicator that is not mpi4py's (the in-process fake one, ``SelfComm``): no;
3. Open MPI: ``MPIX_Query_cuda_support()`` of the loaded ``libmpi`` (Open MPI's CUDA
   extension, called through ctypes after ``MPI_Init``);
4. MPICH (``MPIR_CVAR_ENABLE_GPU=1``) and MVAPICH2 (``MV2_USE_CUDA=1``): their
   run-time switch in the environment;
5. otherwise no.

A wrong "yes" would crash or corrupt the exchange, a wrong "no" only costs two copies,
so anything uncertain says no.
"""
from __future__ import annotations

import ctypes
import os
from typing import Any, Callable, Mapping

__all__ = ["ENV", "cuda_aware_mpi", "decide"]

#: The environment variable that overrides the detection (``1`` or ``0``).
ENV = "MLSCAM_CUDA_AWARE_MPI"


def decide(library_version: str | None, environ: Mapping[str, str],
           ompi_query: Callable[[], int | None] = lambda: None) -> tuple[bool, str]:
    """``(cuda_aware, reason)`` from the MPI library's version string (``None``: not an MPI
    communicator), the environment and Open MPI's ``MPIX_Query_cuda_support`` (``None``: not found).

    >>> decide(None, {})
    (False, 'not an MPI communicator: host buffers')
    >>> decide("Open MPI v4.1.4, package: Debian OpenMPI", {}, lambda: 0)
    (False, 'Open MPI v4.1.4: MPIX_Query_cuda_support() = 0')
    >>> decide("MPICH Version: 4.1", {"MPIR_CVAR_ENABLE_GPU": "1"})
    (True, 'MPICH Version: 4.1: MPIR_CVAR_ENABLE_GPU=1')
    """
    forced = environ.get(ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1", f"{ENV}={forced}"
    if forced:
        raise ValueError(f"{ENV} must be 1 or 0 (or unset: detect), got {forced!r}")
    if library_version is None:
        return False, "not an MPI communicator: host buffers"
    name = library_version.strip().splitlines()[0].split(",")[0].strip() if library_version.strip() else "MPI"
    if "Open MPI" in library_version:
        answer = ompi_query()
        if answer is None:
            return False, f"{name}: MPIX_Query_cuda_support not found in libmpi"
        return bool(answer), f"{name}: MPIX_Query_cuda_support() = {int(answer)}"
    if "MVAPICH" in library_version:
        return environ.get("MV2_USE_CUDA") == "1", f"{name}: MV2_USE_CUDA={environ.get('MV2_USE_CUDA', 'unset')}"
    if "MPICH" in library_version:
        value = environ.get("MPIR_CVAR_ENABLE_GPU", "unset")
        return value == "1", f"{name}: MPIR_CVAR_ENABLE_GPU={value}"
    return False, f"{name}: CUDA support unknown (set {ENV}=1 if it has it)"


def _ompi_query() -> int | None:
    """``MPIX_Query_cuda_support()`` of the ``libmpi`` this process loaded, or ``None``."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "libmpi.so" in line.split()[-1]})
    except OSError:
        paths = []
    for path in paths:
        try:
            fn = getattr(ctypes.CDLL(path), "MPIX_Query_cuda_support", None)
        except OSError:
            continue
        if fn is not None:
            fn.restype = ctypes.c_int
            return int(fn())
    return None


def cuda_aware_mpi(comm: Any) -> tuple[bool, str]:
    """``(cuda_aware, reason)`` for ``comm``'s MPI library (see the module docstring). Local, not collective."""
    from .world import is_mpi

    if not is_mpi(comm):
        return decide(None, os.environ)
    from mpi4py import MPI

    return decide(MPI.Get_library_version(), os.environ, _ompi_query)
