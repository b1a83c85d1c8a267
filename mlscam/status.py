"""The status codes of every component call and of the C API: ``enum mlscam_status`` of ``coupler/mlscam.h``.

``coupler/mlscam.h`` is the single source of truth; ``tests/test_capi.py``
checks that this enum has exactly its names and values (the Fortran module's
constants are generated from the header and libmlscam's start-up code reads
them through cffi). Standard library only.
"""
from __future__ import annotations

import enum

__all__ = ["Status"]


class Status(enum.IntEnum):
    """``MLSCAM_OK``/``MLSCAM_ERR_*`` without the prefix; the component's older names are aliases."""

    OK = 0
    FAILED = 1          # anything not listed below
    ARGUMENT = 2        # shape, dtype, name, count, bounds
    VALUE = 3           # NaN or Inf in an input or a decoded state
    NO_STATE = 4        # step/get before a complete state was set
    FILE = 5            # missing or unreadable file
    CHECKPOINT = 6      # checkpoint or restart does not fit
    INTERVAL = 7        # coupling interval != checkpoint step
    DECOMPOSITION = 8   # bad layout or host bounds
    HANDLE = 9          # call before init or after finalize
    CONFIG = 10         # bad namelist
    MPI = 11            # MPI not initialised, finalised, or a bad communicator
    ENVIRONMENT = 12    # the embedded Python cannot import its packages
    PYTHON = 13         # the embedded Python did not run

    # the Python component's names for the same codes
    BAD_ARGUMENT = 2
    NON_FINITE = 3
    FILE_ERROR = 5
    FINALIZED = 9
