"""Training on the model's own climate: a free-running chain held to the training data's climate
(``&train free_run_weight``).

The losses of the other terms compare a few steps with the truth. At long leads
a pointwise loss cannot help: the weather there is unpredictable, and its MSE
is smallest for a model that blurs it away (stage 13 of docs/demo_model.md: three
days of pushforward gave a dead steady state). What a climate model needs at
long leads is the right *statistics*. This term asks for them.

The run keeps one free-running globe, the chain. Every training step:

1. the chain advances ``free_run_steps`` steps without gradients, with the step a
   forecast of the namelist takes (``&model`` stabilisers and fixers with the
   ``&rollout`` overrides). It starts from the first state of the first
   training batch and starts again from the batch's first state if it stops
   being finite;
2. it takes ``free_run_graded`` more steps with gradients. For each variable
   ``v`` of ``&train climate_variables``, each decoded state gives its zonal
   mean ``m_v [level, lat]`` and its eddy variance ``e_v [level, lat]`` (the
   variance along longitude);
3. running means ``M_v``, ``E_v`` of these (weight ``free_run_memory`` per
   training step on the old value; no gradient) estimate the chain's climate;
4. the term is the chain's climate error against the training data's,
   ``m*_v, e*_v`` (the same statistics of states read from ``&data files``)::

      C = sum_v  <(M_v - m*_v)^2> / tol_v^2  +  free_run_eddy * [ln(E_v / e*_v)^2] / ln(1.4)^2

   with ``<.>`` the area-weighted mean over latitude and the plain mean over
   levels, ``[.]`` the plain mean over levels of the ratio of each level's
   area-weighted eddy variances, and ``tol_v`` from ``&train
   climate_tolerances`` (a zonal-mean bias of ``tol_v`` everywhere, or an eddy
   variance 1.4 times the truth's, counts 1, as in the climate score of
   ``mlscam.train.climate``).

The running means start as plain means; the term gives a gradient only once
they hold ``1 / (1 - free_run_memory)`` training steps of the chain (before,
they are weather, not climate). Its gradient is that of the surrogate

    sum_v <2 (M_v - m*_v) / tol_v^2 * (m_v - m0_v)>  (+ the eddy part alike)

with ``M, E`` constant and ``m0_v`` the statistics of the chain's state
before the graded steps, decoded with gradients: a stochastic gradient of the
error of the *time means* (the squared error of each snapshot would also punish
the natural variability of zonal means, which the truth has too), taken
through the change the steps make. The decoder's offset cancels in
``m_v - m0_v``, so the term asks the steps to move the model's own states
towards the truth's climate instead of asking the decoder to shift its output.
This is a heuristic: the exact gradient of a long run's climate with respect
to the weights is not computable by backpropagation through a chaotic run.
The loss returned has the value ``C`` and the surrogate's gradient.

Whole globes on one rank: the zonal means need every longitude of a latitude
row (tile-parallel training with this term is refused).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..config import Config
from ..grid import LatLonGrid
from ..layout import ColumnLayout
from ..model.engine import Engine
from ..model.filters import LatentFilter
from ..model.network import LatentModel
from ..normalization import Normalization
from .climate import EDDY_TOLERANCE  # an eddy variance ratio of 1.4 counts 1, as in the climate score

__all__ = ["FreeRun", "zonal_statistics", "climate_of_source"]

TARGET_STATES = 720  # states read for the training climate (evenly spaced over the files)


def zonal_statistics(x: torch.Tensor, nlat: int, nlon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [ncol, C]`` (row-major columns of an ``nlat x nlon`` globe) -> zonal mean and eddy variance (the
    variance along longitude), both ``[C, nlat]``."""
    g = x.reshape(nlat, nlon, -1)
    mean = g.mean(dim=1)  # [nlat, C]
    eddy = (g - mean.unsqueeze(1)).square().mean(dim=1)
    return mean.T, eddy.T


def climate_of_source(source, layout: ColumnLayout, variables, *, max_states: int = TARGET_STATES
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The training data's climate: per variable, the time-mean zonal mean and eddy variance ``[level, lat]``
    (float64) of up to ``max_states`` states evenly spaced over ``source`` (a :class:`mlscam.data.DataSource`)."""
    n = source.ntime
    times = np.unique(np.linspace(0, n - 1, min(n, max_states)).round().astype(np.int64))
    sums = {v: [0.0, 0.0] for v in variables}
    for t in times:
        x = torch.as_tensor(np.asarray(source.read(int(t)), dtype=np.float64))  # [nlat, nlon, S]
        nlat, nlon = x.shape[:2]
        for v in variables:
            mean, eddy = zonal_statistics(x.reshape(nlat * nlon, -1)[:, layout.slice_of(v)], nlat, nlon)
            sums[v][0] = sums[v][0] + mean.numpy()
            sums[v][1] = sums[v][1] + eddy.numpy()
    return {v: (m / times.size, e / times.size) for v, (m, e) in sums.items()}


class FreeRun:
    """The free-running chain of a training run and its climate term (module docstring).

    Args:
      config: the run's namelist (``&train free_run_*``, ``climate_variables``, ``climate_tolerances``; the
        chain's step is a forecast's: ``&model`` stabilisers with the ``&rollout`` overrides).
      model: the trained networks (shared with the objective).
      target: per variable, ``(zonal mean, eddy variance)`` ``[level, lat]`` of the training data
        (:func:`climate_of_source`).
    """

    def __init__(self, config: Config, model: LatentModel, *, layout: ColumnLayout, grid: LatLonGrid,
                 normalization: Normalization, target: dict[str, tuple[np.ndarray, np.ndarray]],
                 correction=None):
        t = config.train
        unknown = [v for v in t.climate_variables if v not in layout.variables]
        if unknown:
            raise ValueError(f"&train climate_variables: {unknown} are not variables of the model "
                             f"({list(layout.variables)}); list the variables the free-run term holds to the "
                             "training climate")
        self.layout, self.grid = layout, grid
        self.steps, self.graded, self.memory = int(t.free_run_steps), int(t.free_run_graded), float(t.free_run_memory)
        self.tolerances = dict(zip(t.climate_variables, t.climate_tolerances))
        self.eddy = float(t.free_run_eddy)
        self.engine = Engine(model, layout, grid, normalization, chunk_size=config.model.chunk_size,
                             latent_filter=LatentFilter.of(config.model, override=config.rollout),
                             correction=correction)
        param = next(model.parameters())
        self.dtype, self.device = param.dtype, param.device
        w = np.asarray(grid.area_weights(), float).reshape(grid.nlat, grid.nlon)[:, 0]  # a row's cell area
        self.wlat = torch.as_tensor(w / w.sum(), dtype=param.dtype, device=param.device)  # [nlat], sums to 1
        self.target = {}
        for v in self.tolerances:
            mean, eddy = (torch.as_tensor(a, dtype=param.dtype, device=param.device) for a in target[v])
            if mean.shape != (layout.slice_of(v).stop - layout.slice_of(v).start, grid.nlat):
                raise ValueError(f"free-run target of {v!r} has shape {tuple(mean.shape)}, the model's zonal means "
                                 f"are [{layout.slice_of(v).stop - layout.slice_of(v).start}, {grid.nlat}]")
            self.target[v] = (mean, eddy.clamp_min(1e-12))
        self.z: torch.Tensor | None = None  # [1, ncol, L]: the chain
        self.mass_target: torch.Tensor | None = None  # [1] float64: the chain's dry mass (mass fixer on)
        self.means: dict[str, list[torch.Tensor]] = {}  # v -> [M, E], the running climate of the chain
        self.restarts = 0
        self.samples = 0  # training steps whose states are in the running means (since the chain started)

    @property
    def warm(self) -> bool:
        """Whether the running means hold ``1 / (1 - memory)`` training steps of the chain (its climate, not
        its weather): only then does the term give a gradient."""
        return self.samples >= 1.0 / (1.0 - self.memory) - 1e-9

    # -- state (exact resume) ----------------------------------------------------
    def state_dict(self) -> dict:
        return {"z": None if self.z is None else self.z.detach().cpu(),
                "mass_target": None if self.mass_target is None else self.mass_target.cpu(),
                "means": {v: [a.cpu() for a in ms] for v, ms in self.means.items()}, "restarts": self.restarts,
                "samples": self.samples}

    def load_state_dict(self, state: dict) -> None:
        dev = self.device
        self.z = None if state["z"] is None else state["z"].to(dev)
        self.mass_target = None if state["mass_target"] is None else state["mass_target"].to(dev)
        self.means = {v: [a.to(dev) for a in ms] for v, ms in state["means"].items()}
        self.restarts, self.samples = int(state["restarts"]), int(state["samples"])

    # -- the term ----------------------------------------------------------------
    def _start(self, x0: torch.Tensor) -> None:
        """(Re)start the chain from the physical state ``x0 [nlat, nlon, S]`` (its running means start again)."""
        self.means, self.samples = {}, 0
        x = x0.reshape(1, -1, x0.shape[-1]).to(device=self.device, dtype=self.dtype)
        with torch.no_grad():
            self.z = self.engine.encode(x)
            self.mass_target = self.engine.mass_target(x) if self.engine.mass is not None else None

    def biases(self) -> dict[str, np.ndarray] | None:
        """Per variable, the running zonal mean minus the training data's, ``[level, lat]`` (float64, physical
        units), once the running means are warm (their climate, not their weather); None before."""
        if not self.warm or not self.means:
            return None
        return {v: (self.means[v][0] - self.target[v][0]).double().cpu().numpy() for v in self.tolerances}

    def _eddy_log_ratio(self, e: torch.Tensor, e_t: torch.Tensor) -> torch.Tensor:
        """``ln`` of the ratio of the area-weighted eddy variances of each level, ``[level]``."""
        return ((e * self.wlat).sum(-1) / (e_t * self.wlat).sum(-1)).log()

    def _error(self) -> tuple[torch.Tensor, dict[str, float]]:
        """The climate error ``C`` of the running means (a number, no gradient) and its parts."""
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        parts = {}
        for v, tol in self.tolerances.items():
            (m, e), (m_t, e_t) = self.means[v], self.target[v]
            bias2 = ((m - m_t).square() * self.wlat).sum(-1).mean().double()
            ratio = (e * self.wlat).sum(-1).mean() / (e_t * self.wlat).sum(-1).mean()
            log2 = self._eddy_log_ratio(e, e_t).square().mean().double()
            total = total + bias2 / tol ** 2 + self.eddy * log2 / math.log(EDDY_TOLERANCE) ** 2
            parts[f"free_run_bias_{v}"] = float(bias2.sqrt())
            parts[f"free_run_eddy_ratio_{v}"] = float(ratio)
        return total, parts

    def _statistics(self, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per variable, the zonal mean and eddy variance ``[level, lat]`` of a physical state ``x [ncol, S]``."""
        return {v: zonal_statistics(x[:, self.layout.slice_of(v)], self.grid.nlat, self.grid.nlon)
                for v in self.tolerances}

    def __call__(self, x0: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The term of one training step: ``(loss, parts)``; ``loss`` has the value ``C`` and the surrogate's
        gradient. ``x0 [nlat, nlon, S]``: the physical state the chain (re)starts from when it has none or is
        not finite."""
        if self.z is None or not bool(torch.isfinite(self.z).all()):
            if self.z is not None:
                self.restarts += 1
            self._start(x0)
        e = self.engine
        with torch.no_grad():
            z = e.step(self.z, self.steps, self.mass_target)
        start = self._statistics(e.decode(z, self.mass_target)[0])  # the chain's state, decoded with gradients
        stats: dict[str, list] = {v: [0.0, 0.0] for v in self.tolerances}
        for _ in range(self.graded):
            z, _ = e.step_once(z, self.mass_target)
            for v, (mean, eddy) in self._statistics(e.decode(z, self.mass_target)[0]).items():
                stats[v][0] = stats[v][0] + mean / self.graded
                stats[v][1] = stats[v][1] + eddy / self.graded
        self.z = z.detach()
        if not all(bool(torch.isfinite(s).all()) for ms in stats.values() for s in ms):
            self.z = None  # not finite: no term this step, a fresh chain on the next
            self.restarts += 1
            return torch.zeros((), dtype=self.dtype, device=self.device), {"free_run_restarts": float(self.restarts)}
        # the running means: plain means of the first samples, exponential from 1 / (1 - memory) samples on
        a = min(self.memory, self.samples / (self.samples + 1.0))
        for v, (m, ev) in stats.items():
            if v not in self.means:
                self.means[v] = [m.detach(), ev.detach()]
            else:
                old_m, old_e = self.means[v]
                self.means[v] = [a * old_m + (1 - a) * m.detach(), a * old_e + (1 - a) * ev.detach()]
        self.samples += 1
        value, parts = self._error()
        parts["free_run_restarts"] = float(self.restarts)
        if not self.warm:  # the means are a few snapshots' (weather, not climate): no gradient yet
            return value.to(self.dtype), {"free_run": float(value), **parts}  # (no gradient)
        surrogate = torch.zeros((), dtype=self.dtype, device=self.device)
        for v, tol in self.tolerances.items():
            (mm, ee), (m_t, e_t) = self.means[v], self.target[v]
            # the change over the graded steps: the decoder's own offset cancels, the steps' tendency remains
            m, ev = stats[v][0] - start[v][0], stats[v][1] - start[v][1]
            grad_m = 2.0 * (mm - m_t) / tol ** 2
            level_e = (ee * self.wlat).sum(-1)  # [level]: the running eddy variance of each level
            grad_e = 2.0 * self.eddy * self._eddy_log_ratio(ee, e_t) / math.log(EDDY_TOLERANCE) ** 2 / level_e
            # the derivatives of C by M [level, lat] and by the levels' eddy variances, times their samples
            surrogate = surrogate + (grad_m * m * self.wlat).sum(-1).mean() + (grad_e * (ev * self.wlat).sum(-1)).mean()
        loss = surrogate - surrogate.detach() + value.to(self.dtype)
        return loss, {"free_run": float(value), **parts}
