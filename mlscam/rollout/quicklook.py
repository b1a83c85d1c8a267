"""A PNG quick-look of a forecast file: temperature and zonal wind at the lowest level, last output step."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_quicklook"]


def _lowest_level(ds) -> int:
    """Index of the level nearest the surface (largest sigma/pressure; ``positive: down``)."""
    if "level" not in ds.variables:
        return 0
    return int(np.argmax(np.asarray(ds["level"][:])))


def write_quicklook(forecast_path, png_path=None) -> Path:
    """Write ``png_path`` (default: the forecast's name with ``.png``): maps of the last output step.

    Draws on its own Agg canvas: neither pyplot's state nor the process's matplotlib backend changes.
    """
    import netCDF4
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    forecast_path = Path(forecast_path)
    png_path = Path(png_path) if png_path else forecast_path.with_suffix(".png")
    with netCDF4.Dataset(forecast_path) as ds:
        lat, lon = np.asarray(ds["lat"][:]), np.asarray(ds["lon"][:])
        ntime = len(ds.dimensions["time"])
        lead = float(ds["lead_time"][-1]) if ntime else 0.0
        k = _lowest_level(ds)
        names = [n for n in ("temperature", "u") if n in ds.variables]
        if not names:
            names = [n for n, v in ds.variables.items() if v.dimensions[:1] == ("time",) and v.ndim >= 3][:2]
        fields = []
        for n in names:
            v = ds[n]
            if ntime == 0:
                continue
            a = np.asarray(v[-1, k] if v.ndim == 4 else v[-1], dtype=np.float64)
            fields.append((n, getattr(v, "units", ""), a))
    fig = Figure(figsize=(5.5 * max(1, len(fields)), 3.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(1, len(fields)), squeeze=False)
    for ax, (name, units, a) in zip(axes[0], fields):
        mesh = ax.pcolormesh(lon, lat, a, shading="nearest", cmap="RdBu_r" if name == "u" else "viridis")
        fig.colorbar(mesh, ax=ax, label=units)
        ax.set_title(f"{name} (lowest level), lead {lead:g} h")
        ax.set_xlabel("longitude (degrees east)")
        ax.set_ylabel("latitude (degrees north)")
    if not fields:
        axes[0][0].text(0.5, 0.5, "no output steps", ha="center", va="center")
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=80)
    return png_path
