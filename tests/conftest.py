"""Shared pytest settings.

``tests/mpi/`` holds scripts that run under ``mpirun``; they are launched (with
a timeout) by ``tests/test_mpi_launch.py`` and friends, not collected directly.
"""
collect_ignore_glob = ["mpi/*"]
