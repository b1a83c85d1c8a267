"""``mlscam.coupler.run`` with a NaN injected into one rank's tile of the initial state (a script for mpirun).

    mpirun -n 2 python tests/mpi/component_nan.py BAD_RANK NAMELIST [driver flags ...]

Every rank reads its tile as usual; rank BAD_RANK then sees one NaN in it,
before the ranks agree on the status.  The driver must end every rank with a
non-zero status, the message naming BAD_RANK, and leave no output file.
Launched (under ``timeout``) by tests/test_coupler_run.py; not a pytest module.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlscam.runtime import component  # noqa: E402
from mlscam.coupler.run import main  # noqa: E402


def inject(bad_rank: int) -> None:
    original = component.Component._read_tile

    def read_with_nan(self, path, time_index):
        x, *rest = original(self, path, time_index)
        if self.rank == bad_rank:
            x = np.array(x, copy=True)
            x[0, 0, 0] = np.nan
        return (x, *rest)

    component.Component._read_tile = read_with_nan


if __name__ == "__main__":
    inject(int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
