"""Start-up code of libmlscam's embedded interpreter (passed to cffi's ``embedding_init_code``).

It runs once, on the first call that reaches Python, with ``_mlscam_cffi`` (this
library as a Python module) importable.  It uses the standard library only, so
that it runs even when torch, mpi4py or mlscam itself cannot be imported; it
then defines the ``extern "Python"`` side of every entry point of
``coupler/libmlscam.c``.  Each of them

* sets ``*ran = 1`` first (the C guard against cffi's silent "return 0"),
* checks the environment on ``mlscam_init`` (numpy, mpi4py, torch, mlscam), and
  reports a failure with the interpreter's ``sys.executable``, ``sys.prefix``
  and ``sys.path`` and how to fix it,
* forwards to ``mlscam.coupler.capi``, which never raises; anything that
  escapes anyway becomes a status and a message here, never an exception
  crossing into C.

Its status codes are the header's: cffi parsed ``enum mlscam_status`` of
``coupler/mlscam.h`` and serves its values as ``lib.MLSCAM_*``.
"""
import importlib
import os
import sys
import traceback

from _mlscam_cffi import ffi, lib

# The status codes come from enum mlscam_status of coupler/mlscam.h, through cffi's parse of the header.
_STATUS_ENVIRONMENT = lib.MLSCAM_ERR_ENVIRONMENT
_STATUS_PYTHON = lib.MLSCAM_ERR_PYTHON  # an exception escaping an entry point (cffi's default)
_STATUS_FAILED = lib.MLSCAM_ERR_FAILED
_REQUIRED = ("numpy", "mpi4py", "torch", "mlscam")


def _package_root():
    """The directory holding the ``mlscam`` package this library was built in, or None."""
    here = os.path.dirname(os.path.abspath(ffi.string(lib._mlscam_library_path()).decode() or "."))
    while True:
        if os.path.isfile(os.path.join(here, "mlscam", "__init__.py")):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


_ROOT = _package_root()
if _ROOT is not None and _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)  # the mlscam that owns this library comes first


def _protect_netcdf4():
    """Import netCDF4 with RTLD_DEEPBIND when the host process links a libnetcdf of its own.

    The netCDF4 wheel bundles its own libnetcdf/HDF5; in a host that links the
    system libnetcdf, a plain ``import netCDF4`` binds the wheel's extension to
    the host's library symbols and segfaults on first use (measured: netCDF4
    1.7 / libnetcdf 4.9 in a gfortran or C host).  RTLD_DEEPBIND makes the
    extension prefer its own bundled libraries.  mlscam's coupled path itself
    never imports netCDF4; this protects any later import (file reading,
    user code).  Without a host libnetcdf nothing is imported.
    """
    if "netCDF4" in sys.modules or not hasattr(os, "RTLD_DEEPBIND"):
        return
    try:
        with open("/proc/self/maps") as maps:
            host_has_libnetcdf = any("libnetcdf" in line and "netCDF4" not in line for line in maps)
    except OSError:
        return
    if not host_has_libnetcdf:
        return
    old = sys.getdlopenflags()
    sys.setdlopenflags(os.RTLD_NOW | os.RTLD_DEEPBIND)
    try:
        import netCDF4  # noqa: F401
    except BaseException:  # noqa: BLE001 - netCDF4 is optional on the coupled path
        pass
    finally:
        sys.setdlopenflags(old)


_protect_netcdf4()


def _set_error(message):
    lib._mlscam_error_set(str(message).encode("utf-8", "replace")[:16000])


def _interpreter():
    return (f"sys.executable={sys.executable!r}, sys.prefix={sys.prefix!r}, "
            f"sys.path={sys.path!r}")


def _environment_error():
    """A message if a required package cannot be imported, else None."""
    for name in _REQUIRED:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - any failure of a broken package
            return (f"mlscam_init: the embedded Python cannot import '{name}' "
                    f"({type(exc).__name__}: {exc}). Interpreter: {_interpreter()}. "
                    f"Fix: install the missing package into that environment "
                    f"('{sys.executable} -m pip install {name}' or 'pip install -e .' of mlscam there), "
                    "or point libmlscam at the python of the environment where mlscam is installed "
                    "with MLSCAM_PYTHON=/path/to/bin/python; check PYTHONPATH and PYTHONHOME.")
    return None


def _unexpected(where):
    text = "".join(traceback.format_exc(limit=6))
    _set_error(f"{where}: internal error in the Python side of libmlscam (please report it): {text}")
    return _STATUS_FAILED


def _capi():
    return importlib.import_module("mlscam.coupler.capi")


@ffi.def_extern(error=_STATUS_PYTHON)
def _mlscam_py_init(ran, path, fcomm, nlon, nlat, nlev, lon_start, lon_end, lat_start, lat_end, interval, id_out):
    ran[0] = 1
    try:
        problem = _environment_error()
        if problem is not None:
            _set_error(problem)
            return _STATUS_ENVIRONMENT
        return _capi().init(path, fcomm, nlon, nlat, nlev, lon_start, lon_end, lat_start, lat_end,
                            interval, id_out)
    except BaseException:  # noqa: BLE001 - nothing crosses the boundary
        return _unexpected("mlscam_init")


def _forward(extern: str, target: str, what: str) -> None:
    """Define the ``extern "Python"`` function ``extern``: ``mlscam.coupler.capi.<target>(*args)``."""
    def entry(ran, *args):
        ran[0] = 1
        try:
            return getattr(_capi(), target)(*args)
        except BaseException:  # noqa: BLE001 - nothing crosses the boundary
            return _unexpected(what)

    entry.__name__ = extern
    ffi.def_extern(name=extern, error=_STATUS_PYTHON)(entry)


for _extern, _target, _what in (("_mlscam_py_info", "info", "mlscam_info_get"),
                                ("_mlscam_py_variable", "variable", "mlscam_variable_get"),
                                ("_mlscam_py_tile", "tile", "mlscam_tile_get"),
                                ("_mlscam_py_array", "array", "mlscam array call"),
                                ("_mlscam_py_step", "step", "mlscam_step"),
                                ("_mlscam_py_finalize", "finalize", "mlscam_finalize")):
    _forward(_extern, _target, _what)
