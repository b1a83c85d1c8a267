"""Writing mlscam's own NetCDF outputs; reading input data lives in mlscam.data.

``mlscam.io.cf`` is the one CF writer core (attribute table, atomic files,
dimensions/coordinates/variables); the forecast writer, the training-data
writer (``mlscam.datagen``), the statistics file and ``mlscam.data.subset`` use it.
"""
from .cf import CF_ATTRIBUTES, CONVENTIONS, AtomicDataset, atomic_dataset, cf_attributes, to_netcdf_atomic
from .forecast import ForecastWriter

__all__ = ["ForecastWriter", "cf_attributes", "CF_ATTRIBUTES", "CONVENTIONS", "AtomicDataset", "atomic_dataset",
           "to_netcdf_atomic"]
