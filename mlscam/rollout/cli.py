"""Command line shared by ``python -m mlscam.rollout`` and ``python -m mlscam.coupler.run``.

Both parse the same arguments (a namelist, ``--set`` overrides and the
``&rollout`` flags) and run :func:`drive` on a communicator: a one-rank
:class:`mlscam.parallel.SelfComm` for the serial driver, ``MPI.COMM_WORLD``
for the MPI one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from mlscam.config import Config, ConfigError, add_config_arguments, config_from_args

__all__ = ["build_parser", "load", "drive", "FLAGS"]

#: command-line flag -> &rollout key (the flag overrides the namelist)
FLAGS = {
    "--checkpoint-path": "checkpoint_path",
    "--input-nc-path": "input_nc_path",
    "--output-nc-path": "output_nc_path",
    "--num-steps": "num_steps",
    "--output-every": "output_every",
    "--start-time": "start_time",
    "--restart-in": "restart_in",
    "--restart-out": "restart_out",
}


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_arguments(parser)
    for flag, key in FLAGS.items():
        parser.add_argument(flag, dest=key, default=None, metavar=key.upper(),
                            help=f"overrides &rollout {key}")
    parser.add_argument("--output-initial", dest="output_initial", action="store_const", const=True, default=None,
                        help="sets &rollout output_initial = .true.: the decoded initial state is the first record "
                             "(lead 0)")
    return parser


def load(args: argparse.Namespace) -> Config:
    """The Config of the namelist with ``--set`` overrides, then the ``&rollout`` flags (flags win).

    Raises ConfigError also for ``num_steps = 0`` without ``output_initial`` (a forecast without times).
    """
    flags = [f"rollout.{key}={getattr(args, key)}" for key in FLAGS.values() if getattr(args, key) is not None]
    if getattr(args, "output_initial", None):
        flags.append("rollout.output_initial=.true.")
    args = argparse.Namespace(**{**vars(args), "overrides": list(args.overrides or []) + flags})
    cfg = config_from_args(args)
    # checked here, on the final values, not per group: a namelist num_steps = 0 with --output-initial is fine
    if cfg.rollout.num_steps == 0 and not cfg.rollout.output_initial:
        raise ConfigError("rollout.num_steps = 0: the forecast would have no times; run at least one step "
                          "(--num-steps N, &rollout num_steps), or write the initial state (lead 0) alone with "
                          "--output-initial (&rollout output_initial = .true.)")
    return cfg


def drive(argv: list[str] | None, prog: str, description: str, make_comm: Callable[[], Any],
          *, announce_every_rank: bool) -> int:
    """Parse, check the namelist (``error: ...``, exit 1, before any work), then run the forecast on ``make_comm()``.

    Returns the exit status (0, or a :class:`ComponentError` status).  Under
    MPI a failure calls :func:`mlscam.parallel.abort` instead of returning.
    """
    args = build_parser(prog, description).parse_args(argv)
    from mlscam import blas

    blas.pin()  # before the first matmul: the same bits on any number of ranks (Component.init says if not)
    try:
        cfg = load(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    from mlscam.atomic import interrupts_as_exceptions

    comm = make_comm()
    rank = comm.Get_rank()
    with interrupts_as_exceptions():  # SIGTERM (mpirun's Ctrl-C) too: the partial forecast is discarded
        return _drive(comm, rank, cfg, args, announce_every_rank)


def _drive(comm, rank: int, cfg: Config, args, announce_every_rank: bool) -> int:
    from mlscam.runtime import Component, ComponentError, describe
    from mlscam.parallel import abort, is_mpi

    from .loop import run_forecast
    from .quicklook import write_quicklook

    component = None
    try:
        r = cfg.rollout
        grid = None
        if r.allow_other_grid and not r.restart_in:  # run on the initial state's grid (rank 0 reads it)
            grid = comm.bcast(_input_grid(cfg) if rank == 0 else None, root=0)
        component = Component.init(cfg, comm, grid=grid)
        if announce_every_rank or rank == 0:
            print(describe(component), flush=True)
        if r.restart_in:
            component.read_restart(r.restart_in)
        else:
            component.set_state_from_file(r.input_nc_path, r.start_time)
        path = run_forecast(component, num_steps=r.num_steps, output_every=r.output_every,
                            output_path=r.output_nc_path, restart_out=r.restart_out or None,
                            output_initial=r.output_initial,
                            progress=cfg.output.progress,
                            attrs={"namelist_file": str(Path(args.namelist).resolve()),
                                   "initial_state": "" if r.restart_in else f"{r.input_nc_path} [{r.start_time}]",
                                   "restart_in": r.restart_in})
        component.finalize()
        if rank == 0:
            print(f"forecast written to {path}", flush=True)
            if r.restart_out:
                print(f"restart written to {r.restart_out}", flush=True)
            if cfg.output.quicklook:  # after finalize: no rank waits for the plot
                try:
                    print(f"quick-look written to {write_quicklook(path)}", flush=True)
                except Exception as exc:  # noqa: BLE001 - the forecast is complete; the picture is extra
                    print(f"warning: no quick-look for {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 0
    except ComponentError as exc:
        if rank == 0:
            print(f"error: {exc}", file=sys.stderr, flush=True)
        if is_mpi(comm):
            abort(comm, exc.status)
        return exc.status
    except KeyboardInterrupt as exc:  # SIGINT or SIGTERM: the partial forecast is already discarded
        print(f"error: rank {rank}: interrupted ({exc or 'SIGINT'}); no forecast written to "
              f"{cfg.rollout.output_nc_path}", file=sys.stderr, flush=True)
        if is_mpi(comm) and comm.Get_size() > 1:
            abort(comm, 130)
        return 130
    except BaseException as exc:  # a local failure outside the agreed checks: end the whole job
        if is_mpi(comm) and comm.Get_size() > 1:
            print(f"error: rank {rank} of {comm.Get_size()}: {type(exc).__name__}: {exc}", file=sys.stderr,
                  flush=True)
            abort(comm, 1)
        raise


def _input_grid(cfg: Config):
    """The grid of ``&rollout input_nc_path`` (None if it cannot be read: the component reports why).

    The file is opened with the names the component will read it with (the namelist's ``&data`` over
    the checkpoint's), so the checkpoint's config is read here too.
    """
    from mlscam.checkpoint import load_checkpoint
    from mlscam.data.naming import Naming, name_maps
    from mlscam.data.ncfile import NcFile

    try:
        ckpt = load_checkpoint(cfg.rollout.checkpoint_path, allow_other_grid=True)
        data = Naming.of(cfg.data).over(Naming.of(ckpt.config.data)).data_config(cfg.data, ckpt.layout)
        f = NcFile(cfg.rollout.input_nc_path, *name_maps(data), data.level_source)
    except Exception:  # noqa: BLE001 - Component.init and set_state_from_file give the full message on every rank
        return None
    try:
        return f.grid
    finally:
        f.close()
