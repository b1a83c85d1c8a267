"""NetCDF data: lazy reading (CF and CAM history files), statistics, column tiles, datasets.

Submodules: ``source`` (DataSource, open_source), ``ncfile`` (one file), ``naming`` (the ``&data``
name map and level source, merged with a checkpoint's), ``levels`` (sigma from hybrid coefficients
or a level coordinate), ``fields`` (whole fields under model names, for evaluation), ``finite`` (the
NaN/Inf report and scan), ``stats`` (statistics; CLI), ``columns`` / ``prepare_columns`` (tile
shards; CLI), ``datasets`` (torch). See docs/data.md.
Only the reader is imported here, so ``python -m mlscam.data.stats`` runs cleanly.
"""
from __future__ import annotations

from mlscam.data.errors import DataError
from mlscam.data.source import DataSource, check_compatible, open_source

__all__ = ["DataError", "DataSource", "open_source", "check_compatible"]
