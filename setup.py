"""Build script: metadata lives in pyproject.toml.

Besides the plain setuptools build, ``build_py`` builds the C interface
(libmlscam, the cffi-embedded C API; the Fortran module; a pkg-config file)
with ``coupler/build_libmlscam.py`` into ``mlscam/coupler/_native/``:

* ``pip install -e .`` (editable): into the checkout's ``mlscam/coupler/_native/``;
* ``pip install .`` (wheel): into the wheel's ``mlscam/coupler/_native/``, with
  the build sources in ``_native/src/`` so ``python -m mlscam.coupler.build``
  can rebuild there.

A failed native build (no C compiler, no cffi) does not fail the install: it
warns, and ``python -m mlscam.coupler.build`` (or the first
``python -m mlscam.coupler.config ...``) builds the library later.
``MLSCAM_SKIP_CAPI=1`` skips it.
"""
import os
import runpy
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class build_py_with_capi(build_py):
    """build_py, then libmlscam into mlscam/coupler/_native of the install."""

    def run(self):
        super().run()
        if os.environ.get("MLSCAM_SKIP_CAPI"):
            return
        editable = getattr(self, "editable_mode", False)
        pkg = HERE / "mlscam" if editable else Path(self.build_lib) / "mlscam"
        native = pkg / "coupler" / "_native"
        try:
            builder = runpy.run_path(str(HERE / "coupler" / "build_libmlscam.py"))
            info = builder["build"](native, python=sys.executable)
            if not editable:
                (native / "src").mkdir(parents=True, exist_ok=True)
                for name in builder["SOURCES"]:
                    shutil.copy2(HERE / "coupler" / name, native / "src" / name)
            print(f"mlscam: built libmlscam in {native} for {info['python']}")
        except Exception as exc:  # noqa: BLE001 - the Python package stays installable
            print(f"WARNING: mlscam: libmlscam (the C/Fortran interface) was not built: {exc}; "
                  "run `python -m mlscam.coupler.build` after installing", file=sys.stderr)


setup(cmdclass={"build_py": build_py_with_capi})
