"""Writing mlscam's own NetCDF outputs (forecasts); reading input data lives in mlscam.data."""
from .forecast import ForecastWriter, cf_attributes

__all__ = ["ForecastWriter", "cf_attributes"]
