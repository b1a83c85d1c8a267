"""Normalization statistics of states and one-step tendencies, streamed over time.

``python -m mlscam.data.stats NAMELIST [--set group.key=value ...]`` writes
``data.stats_path``.  Accumulators are float64 and merged per time step
(Chan et al. parallel variance), so memory is one global field at a time.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import netCDF4
import numpy as np
from tqdm import tqdm

from mlscam.data.errors import DataError
from mlscam.data.finite import check_states
from mlscam.data.source import DataSource
from mlscam.io.cf import add_dimensions, add_variable, atomic_dataset, set_global_attributes
from mlscam.layout import ColumnLayout
from mlscam.normalization import Normalization

__all__ = ["RunningMoments", "compute_stats", "write_stats", "load_stats", "main"]

_FIELDS = ("state_mean", "state_std", "tendency_mean", "tendency_std")


class RunningMoments:
    """Per-channel count, mean and sum of squared deviations (float64), merged batch by batch."""

    def __init__(self, n: int):
        self.count = 0
        self.mean = np.zeros(n)
        self.m2 = np.zeros(n)
        self.min = np.full(n, np.inf)
        self.max = np.full(n, -np.inf)

    def add(self, x: np.ndarray) -> None:
        """Add samples ``[..., n]``."""
        x = np.asarray(x, np.float64).reshape(-1, self.mean.size)
        nb = x.shape[0]
        if nb == 0:
            return
        mb = x.mean(axis=0)
        m2b = ((x - mb) ** 2).sum(axis=0)
        n = self.count + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * nb / n
        self.m2 = self.m2 + m2b + delta**2 * self.count * nb / n
        self.count = n
        self.min = np.minimum(self.min, x.min(axis=0))
        self.max = np.maximum(self.max, x.max(axis=0))

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (numpy's ``ddof=0``)."""
        return np.sqrt(self.m2 / max(self.count, 1))


def compute_stats(source: DataSource, *, progress: bool = True) -> tuple[Normalization, dict]:
    """Mean and std per state channel of states and of ``x[t+1] - x[t]`` over all times and columns.

    Returns ``(Normalization, extras)``; ``extras`` holds counts and per-channel
    min/max of the states.
    """
    if source.ntime < 2:
        raise DataError(f"statistics need at least 2 times (for tendencies), the files have {source.ntime}")
    n = source.layout.n_state
    states, tend = RunningMoments(n), RunningMoments(n)
    prev = None
    for t in tqdm(range(source.ntime), desc="stats", disable=not progress, unit="time"):
        x = source.read(t).astype(np.float64)
        check_states(source, t, x[None], needs="statistics need", outcome="No statistics file was written")
        states.add(x)
        if prev is not None:
            tend.add(x - prev)
        prev = x if source.continues(t) else None  # no tendency across two independent files
    names = source.layout.channel_names()
    for label, mom in (("state", states), ("tendency", tend)):
        zero = [names[k] for k in np.flatnonzero(mom.std <= 0)]
        if zero:
            raise DataError(f"{label} standard deviation is 0 for channels {zero}: these channels are constant "
                            "in the data; drop the variable or use data with variability")
    norm = Normalization(states.mean, states.std, tend.mean, tend.std)
    extras = {"state_count": states.count, "tendency_count": tend.count, "state_min": states.min, "state_max": states.max}
    return norm, extras


def write_stats(path: str, normalization: Normalization, layout: ColumnLayout, *, attrs: dict | None = None) -> None:
    """Write NetCDF: per variable ``{name}_{state_mean,...}`` on dim ``level`` (3-D) or scalar (2-D); atomic."""
    if normalization.n_state != layout.n_state:
        raise DataError(f"normalization has {normalization.n_state} channels, layout {layout.n_state}")
    with atomic_dataset(path) as ds:
        add_dimensions(ds, {"level": layout.nlev})
        add_variable(ds, "level", ("level",), np.asarray(layout.levels))
        set_global_attributes(ds, {
            "layout": json.dumps(layout.to_dict()),
            "description": "mlscam normalization statistics (mean/std of states and one-step tendencies)",
            **(attrs or {}),
        })
        for name in layout.variables:
            sl = layout.slice_of(name)
            dims = ("level",) if name in layout.variables_3d else ()
            for field in _FIELDS:
                values = getattr(normalization, field)[sl]
                add_variable(ds, f"{name}_{field}", dims, values if dims else values[0],
                             attrs={"units": layout.units_of(name)})


def load_stats(path: str, layout: ColumnLayout) -> Normalization:
    """Read statistics written by :func:`write_stats`; the stored layout must equal ``layout``."""
    try:
        ds = netCDF4.Dataset(path, "r")
    except OSError as e:
        raise DataError(f"cannot open statistics file {path}: {e}; create it with python -m mlscam.data.stats") from e
    with ds:
        stored = ColumnLayout.from_dict(json.loads(ds.layout))
        same_vars = (stored.variables_3d, stored.variables_2d) == (layout.variables_3d, layout.variables_2d)
        same_levels = stored.nlev == layout.nlev and np.allclose(stored.levels, layout.levels, rtol=1e-5)
        if not (same_vars and same_levels):
            raise DataError(
                f"statistics file {path} was computed for another layout: it has variables_3d "
                f"{list(stored.variables_3d)}, variables_2d {list(stored.variables_2d)}, levels {list(stored.levels)}; "
                f"expected {list(layout.variables_3d)}, {list(layout.variables_2d)}, {list(layout.levels)}. "
                "Recompute it with python -m mlscam.data.stats"
            )
        out = {f: np.empty(layout.n_state) for f in _FIELDS}
        for name in layout.variables:
            for f in _FIELDS:
                out[f][layout.slice_of(name)] = np.asarray(ds[f"{name}_{f}"][...], np.float64).reshape(-1)
    return Normalization(**out)


def run(data_cfg, *, progress: bool = True) -> Normalization:
    """Compute the statistics of ``data_cfg.files`` and write ``data_cfg.stats_path``."""
    from mlscam.data.source import open_source

    if not data_cfg.stats_path:
        raise DataError("data.stats_path is empty; set where the statistics file goes")
    from mlscam.atomic import NotWritableError, check_writable

    try:  # before reading all the data, not after
        check_writable(data_cfg.stats_path, "&data stats_path")
    except NotWritableError as exc:
        raise DataError(str(exc)) from None
    with open_source(data_cfg) as src:
        norm, extras = compute_stats(src, progress=progress)
        write_stats(data_cfg.stats_path, norm, src.layout,
                    attrs={"source_files": json.dumps(src.paths), "state_count": int(extras["state_count"])})
    return norm


def main(argv: Sequence[str] | None = None) -> int:
    from mlscam.data.cli import run_data_command

    def work(cfg, data_cfg) -> str:
        run(data_cfg, progress=cfg.output.progress)
        return f"wrote {data_cfg.stats_path}"

    return run_data_command("python -m mlscam.data.stats", "normalization statistics of data.files -> data.stats_path",
                            argv, work)


if __name__ == "__main__":
    sys.exit(main())
