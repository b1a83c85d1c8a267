"""Shared command-line plumbing of the data tools: ``NAMELIST [--set group.key=value ...]``."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["parse_args", "load_data_config"]


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
