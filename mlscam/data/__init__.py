"""NetCDF data: lazy reading (CF and CAM history files), statistics, column tiles, datasets.

``mlscam.data.datasets`` (torch) is imported on demand, not here.
"""
from __future__ import annotations

from mlscam.data.errors import DataError
from mlscam.data.source import DataSource, check_compatible, open_source
from mlscam.data.stats import compute_stats, load_stats, write_stats

__all__ = ["DataError", "DataSource", "open_source", "check_compatible", "compute_stats", "write_stats", "load_stats"]
