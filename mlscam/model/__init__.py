"""The latent emulator: column encoder, 3x3 latent mixer, decoders, and the ``Emulator`` API.

torch only: no files, no MPI.
"""
from __future__ import annotations

from .chunks import advance_columns
from .decoder import ColumnDecoder, TendencyDecoder
from .emulator import Emulator
from .encoder import ColumnEncoder
from .mixer import ConvMixer, MLPMixer
from .network import LatentModel, build_model
from .summary import ModelSummary, summarize

__all__ = [
    "ColumnEncoder", "ColumnDecoder", "TendencyDecoder", "MLPMixer", "ConvMixer",
    "LatentModel", "build_model", "advance_columns", "Emulator", "ModelSummary", "summarize",
]
