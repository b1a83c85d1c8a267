"""``python -m mlscam.rollout NAMELIST [--set ...] [--num-steps N] ...``: a forecast on one rank.

Runs the same component and loop as the MPI driver (``mlscam.coupler.run``) on
an in-process one-rank communicator; mpi4py is not imported.
"""
from __future__ import annotations

import sys

from mlscam.rollout.cli import drive


def main(argv: list[str] | None = None) -> int:
    from mlscam.parallel import SelfComm

    return drive(argv, "python -m mlscam.rollout",
                 "Forecast from a checkpoint and an initial state (one rank); writes CF NetCDF atomically.",
                 SelfComm, announce_every_rank=False)


if __name__ == "__main__":
    sys.exit(main())
