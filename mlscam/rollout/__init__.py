"""The one forecast loop shared by ``python -m mlscam.rollout`` (one rank) and
``mpirun python -m mlscam.coupler.run`` (N ranks): :func:`run_forecast`.
"""
from __future__ import annotations

from .loop import output_steps, provenance, run_forecast

__all__ = ["run_forecast", "output_steps", "provenance"]
