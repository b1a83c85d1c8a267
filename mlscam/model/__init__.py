"""The latent model: column encoder, 3x3 latent mixer, decoders, and THE engine that steps them.

torch only: no files, no MPI. The inference API over it is ``mlscam.emulator.Emulator``.
"""
from __future__ import annotations

from .chunks import advance_columns
from .decoder import ColumnDecoder, TendencyDecoder
from .encoder import ColumnEncoder
from .engine import Domain, Engine
from .mixer import ConvMixer, MLPMixer
from .network import LatentModel, build_model
from .summary import ModelSummary, summarize

__all__ = [
    "ColumnEncoder", "ColumnDecoder", "TendencyDecoder", "MLPMixer", "ConvMixer",
    "LatentModel", "build_model", "advance_columns", "Domain", "Engine", "ModelSummary", "summarize",
]
