"""PNG figures of a climate evaluation (the dict of ``climate.json``); matplotlib Agg, written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .plots import save_figure, wavenumber_axes

__all__ = ["plot_climate_bias", "plot_climate_spectra", "plot_global_mean"]


def _arr(x) -> np.ndarray:
    return np.array(x, dtype=float)  # None -> NaN


def _units(result, var) -> str:
    u = result["meta"]["units"].get(var, "")
    return f" [{u}]" if u else ""


def _label(entry) -> str:
    return Path(entry["file"]).name


def _title_numbers(result, var) -> str:
    u = result["meta"]["units"].get(var, "")
    m = result["mean"][var]
    nf = result["noise_floor"][var]
    fmt = lambda x: "n/a" if x is None else f"{x:.3g}"  # noqa: E731
    floor = f"noise floor {fmt(nf['rms'])} {u} ({nf['n_years']} truth years)" if nf["rms"] is not None else \
        f"no noise floor ({nf['n_years']} truth year(s))"
    return f"bias RMS {fmt(m['zonal_mean_bias_rms'])} {u} (mean of {len(result['forecasts'])}), {floor}"


def plot_climate_bias(result: dict, var: str, path) -> None:
    """The truth's zonal-time mean and each forecast's zonal-time-mean bias (and, for several, the bias of
    their mean climate), latitude x sigma on one colour scale; curves for 2-D fields."""
    lat = _arr(result["meta"]["lat"])
    levels = result["meta"]["levels"][var]
    truth = _arr(result["truth"][var]["zonal_mean"])
    bias = _arr(result["mean"][var]["zonal_mean_bias"])
    u = _units(result, var)
    if levels == ["2d"] or len(levels) == 1:
        fig = Figure(figsize=(10, 3.6), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2)
        ax1.plot(lat, truth[0], color="k")
        ax1.set_ylabel(f"truth zonal-time mean {var}{u}")
        ax1.ticklabel_format(axis="y", useOffset=False)
        for entry in result["forecasts"]:
            ax2.plot(lat, _arr(entry["variables"][var]["zonal_mean_bias"])[0], lw=0.8, label=_label(entry))
        if len(result["forecasts"]) > 1:
            ax2.plot(lat, bias[0], color="k", lw=2, label="mean")
        ax2.axhline(0, color="0.5", lw=0.8)
        ax2.set_ylabel(f"forecast - truth{u}")
        ax2.legend(fontsize=8)
        for ax in (ax1, ax2):
            ax.set_xlabel("latitude [degrees north]")
            ax.grid(alpha=0.3)
    else:
        # the truth, each forecast's bias and (several forecasts) the bias of their mean, one colour scale
        lev = np.array([float(x) for x in levels])
        panels = [(_label(e), _arr(e["variables"][var]["zonal_mean_bias"]),
                   e["variables"][var]["zonal_mean_bias_rms"]["total"]) for e in result["forecasts"]]
        if len(panels) > 1:
            panels.append(("mean of the forecasts", bias, result["mean"][var]["bias_rms_of_mean_climate"]))
        ncol = min(3, len(panels) + 1)
        nrow = -(-(len(panels) + 1) // ncol)
        fig = Figure(figsize=(4.6 * ncol + 1, 3.6 * nrow + 0.4), layout="constrained")
        axes = fig.subplots(nrow, ncol, sharex=True, sharey=True, squeeze=False).ravel()
        m1 = axes[0].pcolormesh(lat, lev, truth, shading="nearest", cmap="viridis")
        axes[0].set_title(f"truth: zonal-time mean {var}", fontsize=9)
        fig.colorbar(m1, ax=axes[0], label=f"{var}{u}")
        finite = [np.abs(d)[np.isfinite(d)] for _, d, _ in panels]
        lim = max((float(f.max()) for f in finite if f.size), default=0.0) or 1.0
        for ax, (name, d, rms) in zip(axes[1:], panels):
            m2 = ax.pcolormesh(lat, lev, d, shading="nearest", vmin=-lim, vmax=lim, cmap="RdBu_r")
            ax.set_title(f"{name} - truth (RMS {'n/a' if rms is None else f'{rms:.3g}'})", fontsize=9)
        fig.colorbar(m2, ax=list(axes[1:len(panels) + 1]), label=f"bias{u}")
        for ax in axes[len(panels) + 1:]:
            ax.set_visible(False)
        axes[0].invert_yaxis()
        for ax in axes[::ncol]:
            ax.set_ylabel("sigma")
        for ax in axes:
            ax.set_xlabel("latitude [degrees north]")
    fig.suptitle(f"Zonal-time-mean {var}: {_title_numbers(result, var)}", fontsize=10)
    save_figure(fig, path)


def plot_climate_spectra(result: dict, var: str, path) -> None:
    """Zonal power spectra (time, area-weighted latitude and level mean) of each forecast and the truth, log-log."""
    k = np.asarray(result["meta"]["wavenumber"])
    T = result["meta"]["truncation"]
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for n, entry in enumerate(result["forecasts"]):
        m = entry["variables"][var]
        ax.loglog(k[1:], _arr(m["spectrum"])[1:], color=f"C{n}",
                  label=f"{_label(entry)} (share above T{T}: {_share(m)})")
    t = result["truth"][var]
    ax.loglog(k[1:], _arr(t["spectrum"])[1:], color="k", ls="--", label=f"truth (share above T{T}: {_share(t)})")
    ax.axvline(T, color="0.4", lw=1, ls=":")
    ax.text(T, 0.02, f" T{T}", transform=ax.get_xaxis_transform(), fontsize=8, color="0.3")
    wavenumber_axes(ax, k[-1], result["meta"]["units"].get(var, ""))
    ax.set_title(f"Zonal power spectrum of the {var} eddies\n(time mean, area-weighted latitude mean, level mean)",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def _share(m) -> str:
    s = m["share_above_truncation"]
    return "n/a" if s is None else f"{s:.2%}"


def plot_global_mean(result: dict, var: str, path) -> None:
    """Area-weighted global mean (plain mean over levels) against time, each forecast and the truth."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax = fig.subplots()
    for n, entry in enumerate(result["forecasts"]):
        gm = entry["variables"][var]["global_mean"]
        ax.plot(_arr(gm["days"]), _arr(gm["values"]), color=f"C{n}", lw=0.8,
                label=f"{_label(entry)} (trend {_fmt(gm['trend_per_year'])}/yr)")
    gm = result["truth"][var]["global_mean"]
    ax.plot(_arr(gm["days"]), _arr(gm["values"]), color="k", lw=0.8, ls="--",
            label=f"truth (trend {_fmt(gm['trend_per_year'])}/yr)")
    ax.set_xlabel("days since the initial time (forecasts) / the truth's first time")
    ax.set_ylabel(f"global mean {var}{_units(result, var)}")
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Global-mean {var} (area-weighted, plain mean over levels), after the spin-up", fontsize=10)
    save_figure(fig, path)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:+.3g}"
