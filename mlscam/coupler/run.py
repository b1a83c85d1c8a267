"""``mpirun -n N python -m mlscam.coupler.run NAMELIST [--set ...] [--num-steps N] ...``.

The forecast of ``python -m mlscam.rollout`` on N MPI ranks: each rank owns a
tile, reads only its tile of the initial state and exchanges one-column latent
halos every step; the output file is gathered to rank 0 and is identical to the
serial one.  Every rank prints one line at start (rank, tile, device, threads).
On a failure rank 0 prints the message and the job is aborted (non-zero exit,
no partial output).
"""
from __future__ import annotations

import sys

from mlscam.rollout.cli import drive


def main(argv: list[str] | None = None) -> int:
    from mlscam.parallel import world

    return drive(argv, "mpirun -n N python -m mlscam.coupler.run",
                 "Forecast with the emulator component on MPI ranks (one tile per rank).",
                 world, announce_every_rank=True)


if __name__ == "__main__":
    sys.exit(main())
