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
    from ..parallel.torchdist import LaunchError, launch_world
    from .build import build_trainer

    try:
        comm = launch_world()  # MPI.COMM_WORLD under mpirun/srun with N > 1, else None
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if comm is not None:
        from .tiled import run_parallel

        try:
            trainer, result = run_parallel(cfg, comm)
        except ValueError as e:
            print(f"error (rank {comm.Get_rank()} of {comm.Get_size()}): {e}", file=sys.stderr)
            return 1
        if comm.Get_rank() == 0:
            print(summarize(trainer.model, trainer.layout))
            print(f"trained {result.steps} steps on {comm.Get_size()} ranks in {result.wall_seconds:.1f} s; "
                  f"best validation loss {result.best_val_loss:.4g}; checkpoints: {result.last_checkpoint}")
        return 0
    if cfg.parallel.threads > 0:
        import torch

        torch.set_num_threads(cfg.parallel.threads)
    try:
        trainer = build_trainer(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summarize(trainer.model, trainer.layout))
    result = trainer.run()
    print(f"trained {result.steps} steps in {result.wall_seconds:.1f} s; best validation loss "
          f"{result.best_val_loss:.4g}; checkpoints: {result.last_checkpoint}"
          + (f", {result.best_checkpoint}" if result.best_checkpoint else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
