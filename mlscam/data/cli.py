"""Shared command-line plumbing of the data tools: ``NAMELIST [--set group.key=value ...]``."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["parse_args", "load_data_config", "run_data_command"]


def parse_args(prog: str, description: str, argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("namelist", help="namelist file (&data group)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="GROUP.KEY=VALUE",
                   help="override a namelist value (repeatable)")
    return p.parse_args(argv)


def load_data_config(args: argparse.Namespace):
    """``(Config, DataConfig)`` from the namelist and overrides (``mlscam.config.load_config``)."""
    from mlscam.config import load_config  # the strict namelist loader

    cfg = load_config(args.namelist, args.overrides)
    return cfg, cfg.data


def run_data_command(prog: str, description: str, argv: Sequence[str] | None, work: Callable) -> int:
    """The ``main`` of a data tool: parse ``NAMELIST [--set ...]``, run ``work(cfg, data_cfg)``.

    ``work`` returns the line printed on success (exit status 0); a ``DataError`` is printed
    as ``error: ...`` on stderr (exit status 1).
    """
    from mlscam.data.errors import DataError

    cfg, data_cfg = load_data_config(parse_args(prog, description, argv))
    try:
        done = work(cfg, data_cfg)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(done)
    return 0
