"""Skill evaluation of forecasts: metrics (pure functions), baselines, plots and the CLI.

``python -m mlscam.evaluate --forecast F.nc [F2.nc ...] --truth T.nc --out DIR``;
see docs/evaluate.md.  Plotting (matplotlib) is imported only by the CLI and
:mod:`mlscam.evaluate.plots`.
"""
from __future__ import annotations

from .climate import zonal_mean_climate
from .core import METRICS, SOURCES, combine_results, evaluate_forecast, evaluate_forecasts, series
from .inputs import EvaluationError, forecast_times, open_dataset
from .metrics import acc, area_weights, bias, ccc, mse, rmse, std_ratio, weighted_mean, zonal_mean, zonal_spectrum

__all__ = [
    "METRICS", "SOURCES", "EvaluationError", "evaluate_forecast", "evaluate_forecasts", "combine_results",
    "series", "zonal_mean_climate", "open_dataset", "forecast_times", "rmse", "mse", "bias", "acc", "ccc", "std_ratio",
    "weighted_mean", "area_weights", "zonal_mean", "zonal_spectrum",
]
