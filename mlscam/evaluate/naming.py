"""How the evaluation reads the truth's names and levels: ``--namelist``, ``--checkpoint``, the forecast's record.

A truth in the style of the training data (a CAM history file: ``T, U, V, PS`` on ``lev`` with
``hyam, hybm, P0``) is read as the data layer reads it (:func:`mlscam.data.fields.model_fields`) with a
:class:`mlscam.data.naming.Naming`, merged per variable from, first to last:

1. ``--namelist NML``: what its ``&data`` group sets (``file_names_3d/2d``, ``level_source``);
2. ``--checkpoint CKPT``: the ``&data`` group the model was trained with;
3. the first forecast's record: ``mlscam.rollout`` writes the names and the level source it read its
   initial state with as the global attributes ``input_file_names`` and ``input_level_source``;
4. model names, ``level_source = 'auto'``.

Forecasts themselves are read as mlscam writes them (model names, sigma ``level``).
"""
from __future__ import annotations

import argparse

from ..data.errors import DataError
from ..data.naming import Naming
from .inputs import EvaluationError

__all__ = ["add_naming_arguments", "truth_naming", "recorded_naming"]


def add_naming_arguments(p: argparse.ArgumentParser) -> None:
    """``--namelist`` and ``--checkpoint`` (both modes)."""
    p.add_argument("--namelist", metavar="NML",
                   help="namelist whose &data file_names_3d/2d and level_source say how the truth (and "
                        "climatology) name the model's variables and levels, e.g. the training namelist of a "
                        "model trained on CAM files; wins over --checkpoint and the forecast's record")
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="checkpoint whose training &data (file names, level source) applies to the truth; "
                        "default: what the forecast records (written by mlscam.rollout)")


def recorded_naming(forecast) -> Naming:
    """The naming a forecast dataset records (global attributes ``input_file_names``, ``input_level_source``);
    none (model names, ``'auto'``) for a forecast without them."""
    try:
        return Naming.parse(str(forecast.attrs.get("input_file_names", "")),
                            str(forecast.attrs.get("input_level_source", "auto")))
    except DataError as exc:
        raise EvaluationError(f"forecast {forecast.attrs.get('source_file', '')!r}: its input_file_names / "
                              f"input_level_source attributes do not parse ({exc}); pass --namelist or --checkpoint"
                              ) from None


def truth_naming(args: argparse.Namespace, forecast) -> Naming:
    """The naming of the truth: ``--namelist`` over ``--checkpoint`` over ``forecast``'s record."""
    naming = recorded_naming(forecast)
    if getattr(args, "checkpoint", None):
        from ..checkpoint import CheckpointError, load_checkpoint

        try:
            naming = Naming.of(load_checkpoint(args.checkpoint).config.data).over(naming)
        except CheckpointError as exc:
            raise EvaluationError(f"--checkpoint: {exc}") from None
    if getattr(args, "namelist", None):
        from ..config import ConfigError, load_config

        try:
            naming = Naming.of(load_config(args.namelist).data).over(naming)
        except (ConfigError, OSError) as exc:
            raise EvaluationError(f"--namelist {args.namelist}: {exc}") from None
    return naming
