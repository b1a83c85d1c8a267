"""A climatological correction of the step: a fixed zonal-mean forcing (the flux adjustment of early climate models).

A learned stepper that forecasts well can still settle into a climate with a
systematic error, e.g. an eddy-driven jet a few degrees poleward of the
truth's (issue 13: the runs trained hardest on the first day). Early coupled
climate models met the same problem with a *flux adjustment*: a fixed forcing,
estimated once from the model's own long run against observations, that
cancels the mean drift without touching the dynamics. This module is that
forcing for the latent step:

    rate[lat, channel]    (physical units per day; zero for channels it does not correct)

is a tendency, constant in time and in longitude, per latitude row and
channel (a level of a 3-D variable, or a 2-D variable). It acts inside the
manifold projection (``mlscam.model.filters``), the one place where the step
sees a physical state: on each projecting step the decoded state gets

    offset = rate * (projection_every * step_seconds / 86400) / projection

before it is re-encoded. The projection moves the latent a fraction
``projection`` of the way to the re-encoded state, so the state moves by about
``rate`` per day (exactly so only where encoder and decoder are linear; the
estimation in ``mlscam.train.correction`` iterates on the outcome, not on this
nominal rate). Column-local, so bit for bit on any decomposition; a step that
does not project gets no correction, and decoded outputs get none (it is a
tendency, not a state fix).

``rate`` is estimated from a long rollout against the truth climate of a run
the model may be trained on, never against the data that choose or test it
(``python -m mlscam.train.correction``); the checkpoint carries it
(``Checkpoint.correction``) and ``&rollout climate_correction = 0`` switches it off.

An **eddy backscatter** can ride with it (``eddy_rate`` beta, per day; 0 = none).
A corrected mean state can expose eddies that are too weak (the learned step
and its stabilisers dissipate more than the truth's dynamics; issue 13's 16Z
with its correction kept 0.71-0.88 of the truth's eddy variance). Ocean models
meet excess dissipation with energy backscatter; here, on each projecting
step, the decoded state's deviation from its zonal mean (every channel, every
row) is amplified:

    x <- x + beta * (projection_every * step_seconds / 86400) / projection * (x - [x])

so the eddies grow by about ``beta`` per day on top of the dynamics. ``[x]`` is a
reproducible row mean (:class:`mlscam.model.zonal.RowMeans`; the same bits on
any decomposition, one more global sum per projecting step). Small values only:
on 16ZC2, beta = 0.01 per day raised the eddy variance of T from 0.73 to 1.07
of the truth's, 0.02 overshot to 1.38 (benchmarks/eddy_backscatter.txt), and
0.1 blew the eddies up.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ClimateCorrection"]


@dataclass(frozen=True)
class ClimateCorrection:
    """A fixed zonal-mean forcing ``rate [nlat, n_state]`` (physical units per day, latitudes south to north as
    the model grid) for a model whose step is ``step_seconds`` long; ``variables`` names the corrected ones;
    ``provenance`` says how it was estimated (free-form, JSON-able)."""

    rate: np.ndarray = field(compare=False)
    variables: tuple[str, ...]
    step_seconds: float
    provenance: dict = field(default_factory=dict, compare=False)
    eddy_rate: float = 0.0  # per day: the eddy backscatter (module doc); 0 = none

    def __post_init__(self):
        rate = np.asarray(self.rate, dtype=np.float64)
        if rate.ndim != 2:
            raise ValueError(f"a climate correction's rate must be [nlat, n_state], got shape {rate.shape}")
        if not np.isfinite(rate).all():
            raise ValueError("a climate correction's rate has non-finite values; estimate it again "
                             "(python -m mlscam.train.correction)")
        if not self.step_seconds > 0:
            raise ValueError(f"a climate correction needs the model's step > 0 s, got {self.step_seconds}")
        if not (np.isfinite(self.eddy_rate) and self.eddy_rate >= 0.0):
            raise ValueError(f"a climate correction's eddy_rate must be a finite number >= 0 per day, got "
                             f"{self.eddy_rate!r}")
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "eddy_rate", float(self.eddy_rate))
        object.__setattr__(self, "variables", tuple(self.variables))

    def offsets(self, projection: float, projection_every: int) -> np.ndarray:
        """The state offset ``[nlat, n_state]`` added to the decoded state on each projecting step of a step with
        the manifold projection ``projection`` alpha > 0, applied every ``projection_every`` steps."""
        if not projection > 0.0:
            raise ValueError(f"the climate correction acts inside the manifold projection, which is off (latent "
                             f"projection {projection}): set &model latent_projection > 0 (or &rollout "
                             "latent_projection), or switch the correction off (&rollout climate_correction = 0)")
        days = int(projection_every) * self.step_seconds / 86400.0
        return self.rate * (days / float(projection))

    def eddy_gain(self, projection: float, projection_every: int) -> float:
        """The factor of the deviation from the zonal mean added to the decoded state on each projecting step
        (``eddy_rate * (projection_every * step) / projection``, the step in days); 0 without backscatter."""
        if not self.eddy_rate:
            return 0.0
        self.offsets(projection, projection_every)  # the same check of the projection
        return self.eddy_rate * int(projection_every) * self.step_seconds / 86400.0 / float(projection)

    def check(self, nlat: int, n_state: int, step_seconds: float | None = None) -> None:
        """Refuse a correction made for another grid, column layout or (when given) step."""
        if self.rate.shape != (nlat, n_state):
            raise ValueError(f"the climate correction is [{self.rate.shape[0]} latitudes, {self.rate.shape[1]} "
                             f"channels], the model has [{nlat}, {n_state}]: estimate one for this model "
                             "(python -m mlscam.train.correction) or switch it off (&rollout climate_correction = 0)")
        if step_seconds is not None and abs(step_seconds - self.step_seconds) > 1e-6 * self.step_seconds:
            raise ValueError(f"the climate correction was estimated for a {self.step_seconds:g} s step, the model "
                             f"steps {step_seconds:g} s: estimate one for this model, or switch it off "
                             "(&rollout climate_correction = 0)")

    def to_dict(self) -> dict:
        return {"rate": self.rate.tolist(), "variables": list(self.variables),
                "step_seconds": float(self.step_seconds), "provenance": dict(self.provenance),
                "eddy_rate": float(self.eddy_rate)}

    @classmethod
    def from_dict(cls, d: dict) -> "ClimateCorrection":
        return cls(rate=np.asarray(d["rate"], dtype=np.float64), variables=tuple(d["variables"]),
                   step_seconds=float(d["step_seconds"]), provenance=dict(d.get("provenance") or {}),
                   eddy_rate=float(d.get("eddy_rate", 0.0)))
