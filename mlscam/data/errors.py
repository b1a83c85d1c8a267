"""The one exception type of the data layer."""
from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A problem with input files; the message names the file, the bad value and the fix."""
