"""Compiler and linker flags for host models: ``python -m mlscam.coupler.config --cflags --libs ...``.

Options (any combination, printed on one line in this order):

* ``--cflags``: ``-I`` of ``mlscam.h``;
* ``--libs``: ``-L``, an rpath and ``-lmlscam`` (so the host finds the
  library at run time without LD_LIBRARY_PATH);
* ``--fflags``: ``-I`` of the compiled Fortran module ``mlscam_mod.mod``;
* ``--flibs``: ``-lmlscam_fortran`` (the module's object) followed by ``--libs``;
* ``--prefix``: the directory that holds ``lib/``, ``include/``, ``fortran/``
  and ``pkgconfig/`` (``PKG_CONFIG_PATH=$(...--prefix)/pkgconfig``);
* ``--fsource``: the path of ``mlscam_mod.f90`` (compile it yourself with a
  Fortran compiler other than the one mlscam was built with);
* ``--cmake-dir``: the directory of ``mlscamConfig.cmake``, for
  ``cmake -Dmlscam_DIR=$(...--cmake-dir)`` and ``find_package(mlscam)``
  (imported targets ``mlscam::mlscam`` and ``mlscam::mlscam_fortran``).

The library is built first if it is missing or stale (a message goes to stderr).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlscam.coupler.build import NATIVE_DIR, ensure_built

__all__ = ["flags", "main"]


def flags(name: str, prefix: Path = NATIVE_DIR) -> str:
    """The text of one option (``cflags``, ``libs``, ``fflags``, ``flibs``, ``prefix``, ``fsource``, ``cmake-dir``)."""
    lib = prefix / "lib"
    table = {
        "prefix": str(prefix),
        "cflags": f"-I{prefix / 'include'}",
        "libs": f"-L{lib} -Wl,-rpath,{lib} -lmlscam",
        "fflags": f"-I{prefix / 'fortran'}",
        "flibs": f"-L{prefix / 'fortran'} -lmlscam_fortran -L{lib} -Wl,-rpath,{lib} -lmlscam",
        "fsource": str(prefix / "include" / "mlscam_mod.f90"),
        "cmake-dir": str(prefix / "lib" / "cmake" / "mlscam"),
    }
    return table[name]


ORDER = ("prefix", "cflags", "fflags", "libs", "flibs", "fsource", "cmake-dir")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlscam.coupler.config",
                                     description="print the flags to build a host against libmlscam")
    for name in ORDER:
        parser.add_argument(f"--{name}", action="store_true")
    args = parser.parse_args(argv)
    chosen = [name for name in ORDER if getattr(args, name.replace("-", "_"))]
    if not chosen:
        parser.error("give at least one of " + ", ".join(f"--{n}" for n in ORDER))
    info = ensure_built()
    if any(n in ("fflags", "flibs") for n in chosen) and not info.get("fortran_module"):
        print("mlscam: no Fortran compiler was found when libmlscam was built (set FC and run "
              "python -m mlscam.coupler.build --force), or compile the module yourself: "
              f"{flags('fsource')}", file=sys.stderr)
        return 1
    print(" ".join(flags(name) for name in chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
