"""Skill evaluation of forecasts: metrics (pure functions), baselines, plots and the CLI.

``python -m mlscam.evaluate --forecast F.nc [F2.nc ...] --truth T.nc --out DIR`` and, for long
rollouts, ``python -m mlscam.evaluate climate --forecast F.nc --truth T.nc --out DIR``; see
docs/evaluate.md.  Plotting (matplotlib) is imported only by the CLI and the plots modules.
"""
from __future__ import annotations

from .climate import zonal_mean_climate
from .climate_metrics import evaluate_climate
from .climate_stats import FieldClimate, RunClimate, read_run_climate
from .core import METRICS, SOURCES, combine_results, evaluate_forecast, evaluate_forecasts, series
from .inputs import EvaluationError, forecast_times, open_dataset
from .metrics import acc, area_weights, bias, ccc, mse, rmse, std_ratio, weighted_mean, zonal_mean, zonal_spectrum

__all__ = [
    "METRICS", "SOURCES", "EvaluationError", "evaluate_forecast", "evaluate_forecasts", "combine_results",
    "series", "zonal_mean_climate", "evaluate_climate", "read_run_climate", "RunClimate", "FieldClimate",
    "open_dataset", "forecast_times", "rmse", "mse", "bias", "acc", "ccc", "std_ratio", "weighted_mean",
    "area_weights", "zonal_mean", "zonal_spectrum",
]
