"""Checks of the concatenated time axis: monotonic, no gaps, interval = model step."""
from __future__ import annotations

from collections.abc import Sequence

from mlscam.data.errors import DataError

__all__ = ["check_time_axis"]


def check_time_axis(times: Sequence, origins: Sequence[str], dt_seconds: float | None, tol: float = 1e-3) -> None:
    """Raise :class:`DataError` unless ``times`` advance by exactly ``dt_seconds`` (only increase, if None).

    Args:
      times: cftime datetimes of every time index (all files, concatenated).
      origins: the file of every time index (for the messages).
      dt_seconds: the model step.
    """
    diffs = [(times[n + 1] - times[n]).total_seconds() for n in range(len(times) - 1)]
    for n, d in enumerate(diffs):
        if d <= 0:
            raise DataError(
                f"times are not strictly increasing: index {n} ({times[n]}, {origins[n]}) is followed by "
                f"{times[n + 1]} ({origins[n + 1]}); files are concatenated in sorted name order, "
                "so check the file list and remove duplicated or out-of-order times"
            )
    if dt_seconds is None:
        return
    if diffs and all(abs(d - diffs[0]) <= tol for d in diffs) and abs(diffs[0] - dt_seconds) > tol:
        raise DataError(
            f"the data interval is {diffs[0]:g} s ({diffs[0] / 3600:g} h) but the model step is "
            f"{dt_seconds:g} s ({dt_seconds / 3600:g} h); set data.time_step_hours = {diffs[0] / 3600:g} "
            "or subsample the files"
        )
    for n, d in enumerate(diffs):
        if abs(d - dt_seconds) > tol:
            kind = "a gap in the time axis" if d > dt_seconds else "an irregular time step"
            raise DataError(
                f"{kind}: {times[n]} ({origins[n]}) is followed by {times[n + 1]} ({origins[n + 1]}), "
                f"{d:g} s apart, but the model step is {dt_seconds:g} s; supply the missing times "
                "or drop the files around them"
            )
