"""A stand-in for mlscam.runtime.component inside the embedded interpreter (tests only).

Put this directory on PYTHONPATH of a host run: Python's ``site`` imports
``sitecustomize`` at start-up, which installs :class:`EchoComponent` as
``mlscam.runtime.component.Component``.  The echo component keeps every array
it is given and returns it unchanged, and it checks that each value arrived at
the place the Fortran host put it: the host sets
``field(i, j, k) = 1e6 * v + 1e4 * k + 100 * jg + ig`` (variable v, level k,
global 1-based lat jg and lon ig), so the value at ``[j, i, k]`` of the
component's ``[lat, lon, lev]`` tile is known.  Each rank writes
``echo_rank<r>.txt`` (ECHO_DIR) with the counts of checked and misplaced values.
"""
import os
import sys
import types

import numpy as np

NLAT, NLON, NLEV = 6, 12, 2
V3, V2 = ("u", "v", "temperature"), ("surface_pressure",)


class ComponentError(RuntimeError):
    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


class _Tile:
    def __init__(self, lat0, lat1, lon0, lon1):
        self.lat0, self.lat1, self.lon0, self.lon1 = lat0, lat1, lon0, lon1
        self.nlat, self.nlon = lat1 - lat0, lon1 - lon0


class _Layout:
    variables_3d, variables_2d, nlev = V3, V2, NLEV
    variables = V3 + V2
    n_state = len(V3) * NLEV + len(V2)

    def slice_of(self, name):
        if name in V3:
            k = V3.index(name)
            return slice(k * NLEV, (k + 1) * NLEV)
        k = len(V3) * NLEV + V2.index(name)
        return slice(k, k + 1)


class _Grid:
    nlat, nlon = NLAT, NLON


def expected(name, tile):
    v = _Layout.variables.index(name) + 1
    j = np.arange(tile.lat0 + 1, tile.lat1 + 1)[:, None, None]
    i = np.arange(tile.lon0 + 1, tile.lon1 + 1)[None, :, None]
    k = np.arange(1, NLEV + 1)[None, None, :] if name in V3 else np.zeros((1, 1, 1))
    out = 1e6 * v + 1e4 * k + 100 * j + i
    return out if name in V3 else out[..., 0]


def _refuse(caller_error):
    """What the real component does with its caller's own failure: fail on every rank."""
    if caller_error is not None:
        raise ComponentError(str(caller_error), caller_error.status)


class EchoComponent:
    @classmethod
    def init(cls, config, comm, bounds=None, coupling_interval_seconds=None, caller_error=None, host_indices=False):
        _refuse(caller_error)
        self = cls()
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()
        self.grid, self.layout, self.dt_seconds = _Grid(), _Layout(), 21600.0
        lat0, lat1, lon0, lon1 = bounds if bounds is not None else (0, NLAT, 0, NLON)
        self.tile = _Tile(lat0, lat1, lon0, lon1)
        self.x = np.zeros((self.tile.nlat, self.tile.nlon, self.layout.n_state))
        self.checked = self.misplaced = 0
        return self

    def set_variable(self, name, values, caller_error=None):
        _refuse(caller_error)
        want = expected(name, self.tile)
        self.checked += want.size
        self.misplaced += int((np.asarray(values) != want).sum())
        self.x[..., self.layout.slice_of(name)] = np.asarray(values).reshape(want.shape[:2] + (-1,))

    def set_state(self, x, caller_error=None):
        _refuse(caller_error)
        self.x[...] = x

    def step(self, n=1, caller_error=None):
        _refuse(caller_error)

    def get_variable(self, name, caller_error=None):
        _refuse(caller_error)
        out = self.x[..., self.layout.slice_of(name)].copy()
        return out if name in V3 else out[..., 0]

    def get_state(self, caller_error=None):
        _refuse(caller_error)
        return self.x.copy()

    def get_tendencies(self, caller_error=None):
        _refuse(caller_error)
        return np.zeros_like(self.x)

    def finalize(self):
        path = os.path.join(os.environ.get("ECHO_DIR", "."), f"echo_rank{self.rank}.txt")
        with open(path, "w") as f:
            f.write(f"checked={self.checked} misplaced={self.misplaced}\n")


_fake = types.ModuleType("mlscam.runtime.component")
_fake.Component, _fake.ComponentError, _fake.Status = EchoComponent, ComponentError, None
_fake.describe = repr
sys.modules["mlscam.runtime.component"] = _fake
