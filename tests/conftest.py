"""Shared pytest settings.

``tests/mpi/`` holds scripts that run under ``mpirun``; they are launched (with
a timeout) by ``tests/test_mpi_launch.py`` and friends, not collected directly.

The suite pins the BLAS to its reproducible mode before any test computes, as
every mlscam entry point does (``mlscam.blas``); subprocesses inherit it.
"""
from mlscam import blas

BLAS_MODE = blas.pin()

collect_ignore_glob = ["mpi/*"]


def pytest_report_header(config):
    import os

    isa = os.environ.get("MKL_ENABLE_INSTRUCTIONS", "the CPU's best")
    return f"BLAS mode: {BLAS_MODE.name} (reproducible: {BLAS_MODE.reproducible}); MKL instructions: {isa}"
