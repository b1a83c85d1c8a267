"""``python -m mlscam.train NAMELIST [--set group.key=value ...]``: train a model."""
from __future__ import annotations

import argparse
import sys

from ..config import ConfigError, add_config_arguments, config_from_args


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlscam.train", description=__doc__)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    from .. import blas

    blas.pin()  # before the first matmul: tile-parallel training equals serial bit for bit on any CPU
    try:
        cfg = config_from_args(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from ..model.summary import summarize  # after the namelist is known to be good
    from ..parallel import SelfComm, choose_device, choose_threads, configure_torch
    from ..parallel.torchdist import LaunchError, launch_world
    from .build import run_training

    try:
        comm = launch_world()  # MPI.COMM_WORLD under mpirun/srun with N > 1, else None
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    comm = comm if comm is not None else SelfComm()  # one rank: serial, without MPI
    size = comm.Get_size()
    where = f" (rank {comm.Get_rank()} of {size})" if size > 1 else ""
    try:  # process-wide settings, once, here: this rank's device and torch threads from &parallel
        device = choose_device(comm, cfg.parallel.device)
        configure_torch(device, choose_threads(comm, cfg.parallel.threads))
    except (ValueError, RuntimeError) as e:
        print(f"error{where}: {e}", file=sys.stderr)
        return 1
    try:
        trainer, result = run_training(cfg, comm, device=device)
    except (ValueError, FileNotFoundError) as e:
        print(f"error{where}: {e}", file=sys.stderr)
        return 1
    if trainer.is_root:
        print(summarize(trainer.model, trainer.layout))
        print(f"trained {result.steps} steps" + (f" on {size} ranks" if size > 1 else "")
              + f" in {result.wall_seconds:.1f} s; best {cfg.train.select_by.replace('_', ' ')} "
              f"{result.best_val_loss:.4g}; "
              f"checkpoints: {result.last_checkpoint}"
              + (f", {result.best_checkpoint}" if result.best_checkpoint else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
