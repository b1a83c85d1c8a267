"""The Held-Suarez set-up of the ``dinosaur`` spectral dynamical core (JAX).

Follows the package's own documented Held-Suarez example (Held & Suarez 1994):

* dry primitive equations on equidistant sigma levels, flat planet;
* initial state: isothermal (288 K) atmosphere at rest, p0 = 1000 hPa, plus a
  localised surface-pressure perturbation of amplitude p1 = 50 hPa whose centre
  is drawn from ``jax.random.PRNGKey(seed)``
  (``primitive_equations_states.isothermal_rest_atmosphere``);
* Held-Suarez forcing (``held_suarez.HeldSuarezForcing``: Rayleigh friction
  below sigma 0.7, Newtonian relaxation to the radiative-equilibrium
  temperature) composed with the primitive equations;
* IMEX SIL3 time stepping (``time_integration.imex_rk_sil3``) with the
  example's exponential step filter (tau = 0.0087504 in model time units,
  order 1.5, cutoff 0.8);
* time step 20 minutes at T21, 10 minutes at T42 (the example's T42 value);
* the spectral transforms in full float32 on every platform
  (:func:`pin_transform_precision`).

Output is evaluated from the spherical-harmonic coefficients directly at the
points of the equiangular, cell-centred grid of ``LatLonGrid.equiangular``
(exact spectral evaluation, no interpolation between grids): the longitudes
coincide with the dycore's, and the associated Legendre functions are
evaluated at the equiangular latitudes instead of the Gaussian ones.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

import dinosaur
import jax
import jax.numpy as jnp

from mlscam.grid import LatLonGrid

__all__ = ["RESOLUTIONS", "FILTER", "HeldSuarezModel", "dinosaur_version", "jax_version", "pin_transform_precision",
           "TRANSFORM_PRECISION"]

#: Supported truncations: dinosaur grid factory, default time step (minutes).
RESOLUTIONS: dict[str, tuple[str, int]] = {"T21": ("T21", 20), "T42": ("T42", 10)}
#: Exponential step filter of the example (nondimensional tau, order, cutoff).
FILTER = {"tau": 0.0087504, "order": 1.5, "cutoff": 0.8}
P0_PA = 1e5
P1_PA = 5e3
#: What the data files record of :func:`pin_transform_precision`.
TRANSFORM_PRECISION = "float32 (jax.lax.Precision.HIGHEST) on every platform"


def pin_transform_precision() -> None:
    """Make dinosaur's float32 matrix products, the spherical-harmonic transforms among them, full float32
    (``jax.lax.Precision.HIGHEST``) on every platform, as they are on the CPU.

    dinosaur 1.5 chooses the algorithm of a float32 product by platform: ``HIGHEST`` on the CPU, a bfloat16
    emulation (``BF16_BF16_F32_X6``) on GPUs, fixed in its own code, so ``JAX_DEFAULT_MATMUL_PRECISION`` does not
    reach it. The transform most exposed to rounding is that of the log of surface pressure, which is about
    44.8 everywhere in the model's units: a rounding that every node shares moves the global mean, which is the
    atmosphere's mass, and the dycore keeps that offset. One H200 run of seed 1 (2026-11-28,
    ``benchmarks/gpu/datagen_compare.txt``) held a global-mean surface pressure of 1042.4 hPa from the first
    sample on, against 1000.04 hPa on the CPU, and ``JAX_DEFAULT_MATMUL_PRECISION=highest`` changed it by less
    than 0.01 hPa. That this setting removes the offset on a GPU is the hypothesis the next GPU run checks;
    :func:`mlscam.datagen.held_suarez.generate` refuses a run whose mass moves (``MASS_TOLERANCE``) either way.

    The setting is process-wide (module attributes of dinosaur), takes effect for functions traced after the
    call, and changes nothing on the CPU.
    """
    from dinosaur import jax_numpy_utils, spherical_harmonic

    highest = jax.lax.Precision.HIGHEST
    if hasattr(jax_numpy_utils, "FLOAT32_DOT_ALGORITHM"):
        jax_numpy_utils.FLOAT32_DOT_ALGORITHM = highest
    if hasattr(spherical_harmonic, "FAST_TRANSFORM_DOT_ALGORITHM"):
        spherical_harmonic.FAST_TRANSFORM_DOT_ALGORITHM = highest


def dinosaur_version() -> str:
    return str(getattr(dinosaur, "__version__", "unknown"))


def jax_version() -> str:
    return str(jax.__version__)


@dataclass(frozen=True)
class _Scales:
    velocity: float  # m s-1 per model unit
    temperature: float  # K per model unit
    pressure: float  # Pa per model unit


class HeldSuarezModel:
    """Held-Suarez dycore at a given truncation and number of sigma levels.

    Args:
      resolution: ``"T21"`` or ``"T42"``.
      levels: number of equidistant sigma levels.
      dt_minutes: model time step (minutes); default per resolution.
    """

    def __init__(self, resolution: str, levels: int, dt_minutes: float | None = None):
        if resolution not in RESOLUTIONS:
            raise ValueError(f"unsupported resolution {resolution!r}; choose one of {sorted(RESOLUTIONS)}")
        if levels < 2:
            raise ValueError(f"need at least 2 sigma levels, got levels={levels}")
        factory, default_dt = RESOLUTIONS[resolution]
        pin_transform_precision()
        self.resolution = resolution
        self.dt_minutes = float(default_dt if dt_minutes is None else dt_minutes)
        if self.dt_minutes <= 0:
            raise ValueError(f"the time step must be positive, got dt_minutes={self.dt_minutes}")
        units = dinosaur.scales.units
        horizontal = getattr(dinosaur.spherical_harmonic.Grid, factory)()
        vertical = dinosaur.sigma_coordinates.SigmaCoordinates.equidistant(levels)
        self.coords = dinosaur.coordinate_systems.CoordinateSystem(horizontal=horizontal, vertical=vertical)
        self.physics = dinosaur.primitive_equations.PrimitiveEquationsSpecs.from_si()
        self._initial_state_fn, aux = dinosaur.primitive_equations_states.isothermal_rest_atmosphere(
            coords=self.coords,
            physics_specs=self.physics,
            p0=P0_PA * units.pascal,
            p1=P1_PA * units.pascal,
        )
        self.reference_temperature = np.asarray(aux[dinosaur.xarray_utils.REF_TEMP_KEY])
        orography = dinosaur.primitive_equations.truncated_modal_orography(
            aux[dinosaur.xarray_utils.OROGRAPHY], self.coords
        )
        dt = self.physics.nondimensionalize(self.dt_minutes * units.minute)
        primitive = dinosaur.primitive_equations.PrimitiveEquations(
            self.reference_temperature, orography, self.coords, self.physics
        )
        forcing = dinosaur.held_suarez.HeldSuarezForcing(
            coords=self.coords,
            physics_specs=self.physics,
            reference_temperature=self.reference_temperature,
            p0=P0_PA * units.pascal,
        )
        equation = dinosaur.time_integration.compose_equations([primitive, forcing])
        step = dinosaur.time_integration.imex_rk_sil3(equation, dt)
        self._step = dinosaur.time_integration.step_with_filters(
            step, [dinosaur.time_integration.exponential_step_filter(horizontal, dt, **FILTER)]
        )
        # The output grid: same spectral truncation, equiangular cell-centred nodes.
        self._out_horizontal = dataclasses.replace(horizontal, latitude_spacing="equiangular")
        nlon, nlat = self._out_horizontal.nodal_shape
        self.grid = LatLonGrid.equiangular(nlat, nlon)
        self._check_output_nodes()
        self._scales = _Scales(
            velocity=float(self.physics.dimensionalize(1.0, units.meter / units.second).magnitude),
            temperature=float(self.physics.dimensionalize(1.0, units.degK).magnitude),
            pressure=float(self.physics.dimensionalize(1.0, units.pascal).magnitude),
        )

    def _check_output_nodes(self) -> None:
        lon, sin_lat = self._out_horizontal.nodal_mesh
        lat_deg = np.rad2deg(np.arcsin(np.asarray(sin_lat[0], dtype=np.float64)))
        lon_deg = np.rad2deg(np.asarray(lon[:, 0], dtype=np.float64))
        if not (np.allclose(lat_deg, self.grid.lat_array(), atol=1e-4) and np.allclose(lon_deg, self.grid.lon_array(), atol=1e-4)):
            raise RuntimeError(
                "dinosaur's equiangular nodes do not match LatLonGrid.equiangular: "
                f"lat {lat_deg[:3]} vs {self.grid.lat_array()[:3]}, lon {lon_deg[:3]} vs {self.grid.lon_array()[:3]}"
            )

    # -- sizes and coordinates ------------------------------------------------
    @property
    def sigma(self) -> np.ndarray:
        """``[level]`` sigma at layer midpoints, top (small sigma) first, as the dycore orders them."""
        return np.asarray(self.coords.vertical.centers, dtype=np.float64)

    @property
    def sigma_bounds(self) -> np.ndarray:
        """``[level + 1]`` sigma at layer edges, top first."""
        return np.asarray(self.coords.vertical.boundaries, dtype=np.float64)

    # -- dynamics -----------------------------------------------------------
    def initial_state(self, seed: int):
        """The isothermal rest atmosphere with the seeded surface-pressure perturbation (modal state)."""
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        return self._initial_state_fn(jax.random.PRNGKey(seed))

    @functools.lru_cache(maxsize=4)
    def advance_fn(self, n_steps: int):
        """A jitted function advancing a modal state by ``n_steps`` time steps."""
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        return jax.jit(dinosaur.time_integration.repeated(self._step, n_steps))

    def digital_filter(self, state, hours: float):
        """A balanced state: the forward digital filter of the run from ``state`` over ``hours``.

        A state from elsewhere (an emulator's decoded forecast) is not in the dycore's balance: restarted
        as it is, it rings with gravity waves (surface pressure tendencies of ~300 Pa/h for hours, against
        ~20 Pa/h in the dycore's own run). The filter averages the states of the first ``hours`` with Lanczos
        weights (a low-pass with cut-off period ``hours``; Lynch and Huang 1992), which removes the
        oscillations; the result is the balanced state at about ``hours / 2`` after ``state``.
        """
        n = int(round(hours * 60.0 / self.dt_minutes))
        if n < 2:
            raise ValueError(f"the digital filter needs a span of at least 2 time steps, got hours={hours}")
        k = np.arange(n + 1) - n / 2.0
        cutoff = 2.0 * np.pi / n  # angular frequency of the period n steps
        h = np.sinc(cutoff * k / np.pi) * np.sinc(k / (n / 2.0 + 1.0))  # ideal low-pass x Lanczos window
        h = h / h.sum()
        one = self.advance_fn(1)
        acc = jax.tree_util.tree_map(lambda a: a * h[0], state)
        for w in h[1:]:
            state = one(state)
            acc = jax.tree_util.tree_map(lambda a, b, w=w: a + b * w, acc, state)
        return acc

    # -- output -------------------------------------------------------------
    @functools.cached_property
    def _nodal_fn(self):
        grid = self._out_horizontal
        ref = jnp.asarray(self.reference_temperature)[:, None, None]

        def nodal(state):
            u, v = dinosaur.spherical_harmonic.vor_div_to_uv_nodal(grid, state.vorticity, state.divergence)
            temperature = ref + grid.to_nodal(state.temperature_variation)
            log_ps = grid.to_nodal(state.log_surface_pressure)[0]
            return u, v, temperature, jnp.exp(log_ps)

        return jax.jit(nodal)

    @functools.cached_property
    def _modal_fn(self):
        grid = self._out_horizontal
        ref = jnp.asarray(self.reference_temperature)[:, None, None]

        def modal(u, v, temperature, ps):
            vorticity, divergence = dinosaur.spherical_harmonic.uv_nodal_to_vor_div_modal(grid, u, v)
            return dinosaur.primitive_equations.State(
                vorticity=vorticity,
                divergence=divergence,
                temperature_variation=grid.to_modal(temperature - ref),
                log_surface_pressure=grid.to_modal(jnp.log(ps)[None]),
            )

        return jax.jit(modal)

    def from_latlon(self, fields: dict[str, np.ndarray]):
        """The modal state of SI fields on ``self.grid`` (the inverse of :meth:`to_latlon` up to the truncation).

        ``fields``: ``u, v, temperature`` ``[level, lat, lon]`` and ``surface_pressure`` ``[lat, lon]`` (Pa), levels
        top first as :attr:`sigma`. The fields are projected on the model's spherical harmonics by the equiangular
        grid's quadrature, so a state from any source (an emulator's forecast, for instance) can restart the dycore.
        """
        nlev, shape = len(self.sigma), self.grid.shape
        for name, want in (("u", (nlev, *shape)), ("v", (nlev, *shape)), ("temperature", (nlev, *shape)),
                           ("surface_pressure", shape)):
            if name not in fields:
                raise KeyError(f"from_latlon needs the field {name!r}; got {sorted(fields)}")
            if np.shape(fields[name]) != want:
                raise ValueError(f"{name} must be {want} (levels top first, lat south to north), "
                                 f"got {np.shape(fields[name])}")
        ps = np.asarray(fields["surface_pressure"], dtype=np.float64)
        if not np.all(np.isfinite(ps)) or np.any(ps <= 0):
            raise ValueError("surface_pressure must be finite and positive to restart the dycore")
        s = self._scales
        # ours are [..., lat, lon]; dinosaur's nodal arrays are [..., lon, lat]
        nodal = [np.swapaxes(np.asarray(fields[k], dtype=np.float64), -1, -2) / scale for k, scale in
                 (("u", s.velocity), ("v", s.velocity), ("temperature", s.temperature), ("surface_pressure", s.pressure))]
        return self._modal_fn(*(jnp.asarray(a, dtype=jnp.float32) for a in nodal))

    def to_latlon(self, state) -> dict[str, np.ndarray]:
        """SI fields on ``self.grid``: ``u, v, temperature`` ``[level, lat, lon]``, ``surface_pressure`` ``[lat, lon]``."""
        u, v, t, ps = (np.asarray(x, dtype=np.float64) for x in self._nodal_fn(state))
        s = self._scales
        # dinosaur's nodal arrays are [..., lon, lat]; ours are [..., lat, lon].
        return {
            "u": np.swapaxes(u * s.velocity, -1, -2),
            "v": np.swapaxes(v * s.velocity, -1, -2),
            "temperature": np.swapaxes(t * s.temperature, -1, -2),
            "surface_pressure": np.swapaxes(ps * s.pressure, -1, -2),
        }
