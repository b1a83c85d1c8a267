"""PNG figures of an evaluation result (matplotlib's Agg canvas; no pyplot state).

Every function takes the nested result of :func:`mlscam.evaluate.evaluate_forecast`
(or plain fields, for the map) and writes one PNG atomically.
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from .output import atomic_write_bytes

__all__ = ["plot_skill", "plot_zonal_mean", "plot_spectra", "plot_map", "save_figure"]

_STYLE = {"forecast": dict(color="C0", ls="-", marker="o", ms=3),
          "persistence": dict(color="C1", ls="--"),
          "climatology": dict(color="C2", ls=":")}



def wavenumber_axes(ax, kmax: float, units: str) -> None:
    """Log-scale zonal-wavenumber axis with integer ticks up to ``kmax``, and the power label in ``units``."""
    ticks = [t for t in (1, 2, 3, 4, 6, 10, 20, 30, 50, 100, 200, 500) if t <= kmax]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("zonal wavenumber k")
    ax.set_ylabel(f"power [({units})$^2$]" if units else "power")

def save_figure(fig: Figure, path) -> None:
    """Render ``fig`` to PNG and move it into place atomically."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    atomic_write_bytes(path, buf.getvalue())


def _lead_axis(hours):
    hours = np.asarray(hours, float)
    if hours.size and hours.max() >= 48:
        return hours / 24.0, "lead time [days]"
    return hours, "lead time [hours]"


def _units(result, var):
    u = result["meta"].get("units", {}).get(var, "")
    return f" [{u}]" if u else ""


def _level_label(lk):
    return "2-D field" if lk == "2d" else f"level (sigma) {lk}"


def plot_skill(result: dict, var: str, path) -> None:
    """RMSE (forecast, persistence, climatology) and ACC against lead time; one row per level."""
    table = result["metrics"][var]
    levels = list(table)
    fig = Figure(figsize=(10, 2.4 * len(levels) + 0.6), layout="constrained")
    axes = fig.subplots(len(levels), 2, squeeze=False)
    for row, lk in enumerate(levels):
        for col, metric in enumerate(("rmse", "acc")):
            ax = axes[row, col]
            for src, vals in table[lk][metric].items():
                keys = sorted(vals, key=float)
                x, xlabel = _lead_axis([float(k) for k in keys])
                y = np.array([np.nan if vals[k] is None else vals[k] for k in keys])
                if np.all(np.isnan(y)):
                    continue  # e.g. the ACC of the climatology: undefined
                ax.plot(x, y, label=src, **_STYLE.get(src, {}))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"RMSE{_units(result, var)}" if metric == "rmse" else "ACC")
            ax.set_title(f"{var}, {_level_label(lk)}: {metric.upper()}", fontsize=10)
            if metric == "acc":
                ax.axhline(0.6, color="0.6", lw=0.8)
                ax.set_ylim(top=1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"Skill of {var} against lead time (area-weighted; {len(result['meta']['initial_times'])} "
                 f"initial time(s))")
    save_figure(fig, path)


def plot_zonal_mean(result: dict, var: str, path, lead: str | None = None) -> None:
    """Zonal means of forecast and truth at one lead (default: the last) and their difference.

    3-D fields: latitude x level cross-sections (sigma increasing downwards); 2-D fields: curves.
    """
    zm = result["zonal_mean"][var]
    lead = lead or sorted(zm["truth"], key=float)[-1]
    lat = np.asarray(zm["lat"])
    truth = np.array(zm["truth"][lead], dtype=float)  # [level, lat]
    diff = np.array(zm["bias"]["forecast"][lead], dtype=float)
    fc = truth + diff
    u = _units(result, var)
    when = f"lead {float(lead):g} h"
    if zm["levels"] == ["2d"] or len(zm["levels"]) == 1:
        fig = Figure(figsize=(10, 3.6), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2)
        ax1.plot(lat, fc[0], label="forecast", color="C0")
        ax1.plot(lat, truth[0], label="truth", color="k", ls="--")
        ax1.set_ylabel(f"zonal mean {var}{u}")
        ax1.ticklabel_format(axis="y", useOffset=False)
        ax1.legend()
        ax2.plot(lat, diff[0], color="C3")
        ax2.axhline(0, color="0.5", lw=0.8)
        ax2.set_ylabel(f"forecast - truth{u}")
        for ax in (ax1, ax2):
            ax.set_xlabel("latitude [degrees north]")
            ax.grid(alpha=0.3)
        fig.suptitle(f"Zonal mean {var} ({_level_label(zm['levels'][0])}), {when}")
        save_figure(fig, path)
        return
    lev = np.array([float(x) for x in zm["levels"]])
    fig = Figure(figsize=(14, 4), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    vmin, vmax = np.nanmin([fc, truth]), np.nanmax([fc, truth])
    for ax, data, title in ((axes[0], fc, "forecast"), (axes[1], truth, "truth")):
        m = ax.pcolormesh(lat, lev, data, shading="nearest", vmin=vmin, vmax=vmax, cmap="viridis")
        ax.set_title(f"{title}: zonal mean {var}")
    fig.colorbar(m, ax=axes[:2], label=f"{var}{u}")
    lim = np.nanmax(np.abs(diff)) or 1.0
    m2 = axes[2].pcolormesh(lat, lev, diff, shading="nearest", vmin=-lim, vmax=lim, cmap="RdBu_r")
    axes[2].set_title("forecast - truth")
    fig.colorbar(m2, ax=axes[2], label=f"difference{u}")
    axes[0].invert_yaxis()
    axes[0].set_ylabel("sigma")
    for ax in axes:
        ax.set_xlabel("latitude [degrees north]")
    fig.suptitle(f"Zonal-mean {var}, {when}")
    save_figure(fig, path)


def plot_spectra(result: dict, var: str, path, level: str | None = None, max_leads: int = 3) -> None:
    """Zonal power spectra (latitude-averaged) of forecast (solid) and truth (dashed) at a few leads.

    ``level`` defaults to the level nearest the surface (largest sigma).
    """
    spectra = result["spectra"][var]
    if level is None:
        keys = list(spectra)
        level = keys[0] if keys == ["2d"] else max(keys, key=float)
    sp = spectra[level]
    k = np.asarray(sp["wavenumber"])
    leads = sorted(sp["forecast"], key=float)
    pick = sorted({leads[int(round(i))] for i in np.linspace(0, len(leads) - 1, min(max_leads, len(leads)))},
                  key=float)
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for n, lead in enumerate(pick):
        f = np.array(sp["forecast"][lead], float)
        t = np.array(sp["truth"][lead], float)
        ax.loglog(k[1:], f[1:], color=f"C{n}", label=f"forecast, lead {float(lead):g} h")
        ax.loglog(k[1:], t[1:], color=f"C{n}", ls="--", label=f"truth, lead {float(lead):g} h")
    wavenumber_axes(ax, k[-1], result["meta"].get("units", {}).get(var, ""))
    ax.set_title(f"Zonal power spectrum of {var}, {_level_label(level)}\n(area-weighted mean over latitude)",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_map(fc, tr, path, *, title: str, units: str = "", name: str = "value") -> None:
    """Forecast, truth and their difference on a lat-lon map; ``fc``, ``tr`` are ``[lat, lon]`` DataArrays."""
    lat, lon = np.asarray(tr["lat"]), np.asarray(tr["lon"])
    f, t = np.asarray(fc, float), np.asarray(tr, float)
    d = f - t
    u = f" [{units}]" if units else ""
    fig = Figure(figsize=(15, 3.8), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    vmin, vmax = np.nanmin([f, t]), np.nanmax([f, t])
    for ax, data, name in ((axes[0], f, "forecast"), (axes[1], t, "truth")):
        m = ax.pcolormesh(lon, lat, data, shading="nearest", vmin=vmin, vmax=vmax, cmap="viridis")
        ax.set_title(name)
    fig.colorbar(m, ax=axes[:2], label=f"{name}{u}", shrink=0.9)
    lim = np.nanmax(np.abs(d)) or 1.0
    m2 = axes[2].pcolormesh(lon, lat, d, shading="nearest", vmin=-lim, vmax=lim, cmap="RdBu_r")
    axes[2].set_title("forecast - truth")
    fig.colorbar(m2, ax=axes[2], label=f"difference{u}", shrink=0.9)
    axes[0].set_ylabel("latitude [degrees north]")
    for ax in axes:
        ax.set_xlabel("longitude [degrees east]")
    fig.suptitle(title)
    save_figure(fig, path)
