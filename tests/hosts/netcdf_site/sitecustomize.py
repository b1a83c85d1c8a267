"""A stand-in component that uses netCDF4 inside the embedded interpreter (tests only).

Installed as ``mlscam.runtime.component`` at start-up (PYTHONPATH=this dir).
Its ``Component.init`` imports netCDF4 (after libmlscam's start-up code ran),
writes and reads back a small file in NC_DIR, and then refuses with a
ComponentError whose message carries what it read, so a C host linking the
system libnetcdf shows whether netCDF4 works there (pitfall: a segfault).
"""
import os
import sys
import types


class ComponentError(RuntimeError):
    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


class NetcdfComponent:
    @classmethod
    def init(cls, config, comm, bounds=None, coupling_interval_seconds=None, caller_error=None, host_indices=False):
        import netCDF4
        import numpy as np

        path = os.path.join(os.environ["NC_DIR"], "probe.nc")
        with netCDF4.Dataset(path, "w") as d:
            d.createDimension("x", 3)
            d.createVariable("a", "f8", ("x",))[:] = np.arange(3.0)
        with netCDF4.Dataset(path) as d:
            values = d["a"][:].tolist()
        raise ComponentError(f"netCDF4 probe read {values}")


_fake = types.ModuleType("mlscam.runtime.component")
_fake.Component, _fake.ComponentError, _fake.Status, _fake.describe = NetcdfComponent, ComponentError, None, repr
sys.modules["mlscam.runtime.component"] = _fake
