"""Build libmlscam (the cffi-embedded C API) and the Fortran module into one directory.

Usage: ``python coupler/build_libmlscam.py OUTDIR`` (``setup.py`` and
``python -m mlscam.coupler.build`` call :func:`build`).  Standard library and
cffi only: it must run inside pip's isolated build environment.

OUTDIR receives::

    lib/libmlscam.so            the C API (links libpython; rpath to it)
    include/mlscam.h            the header (copied from coupler/mlscam.h)
    include/mlscam_mod.f90      the Fortran module source, generated from mlscam_mod.f90.in and the
                                header by coupler/fortran_module.py (for other Fortran compilers)
    fortran/mlscam_mod.mod      the module compiled with $FC (default gfortran), if one is found
    fortran/libmlscam_fortran.a its object
    pkgconfig/mlscam.pc         pkg-config file (from coupler/mlscam.pc.in)
    lib/cmake/mlscam/           CMake package: mlscamConfig.cmake and mlscamConfigVersion.cmake (from the
                                coupler/*.cmake.in templates; targets mlscam::mlscam, mlscam::mlscam_fortran)
    build_info.json             the python, version and source hashes of this build

The declarations of the public API are read from ``coupler/mlscam.h`` (between
its ``BEGIN/END DECLARATIONS`` markers): they are the single source of truth,
and compiling ``coupler/libmlscam.c`` against them checks the implementation.
The status codes reach the embedded start-up code through cffi's parse of them
(``lib.MLSCAM_*``) and the Fortran module through ``fortran_module.py``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# every source of the build (hashed to tell a stale build; setup.py ships them in a wheel's _native/src)
SOURCES = ("mlscam.h", "libmlscam.c", "embedded_init.py", "mlscam_mod.f90.in", "fortran_module.py", "mlscam.pc.in",
           "mlscamConfig.cmake.in", "mlscamConfigVersion.cmake.in", "build_libmlscam.py")
MODULE_NAME = "_mlscam_cffi"

# The Python side of each entry point (defined in embedded_init.py), and two C helpers Python calls.
INTERNAL_CDEF = """
extern "Python" int _mlscam_py_init(int *ran, const char *path, int fcomm, int nlon, int nlat, int nlev,
                                    int lon_start, int lon_end, int lat_start, int lat_end,
                                    double interval, intptr_t *id_out);
extern "Python" int _mlscam_py_info(int *ran, intptr_t id, int *nlev, int *n_state, int *n_variables, double *dt);
extern "Python" int _mlscam_py_variable(int *ran, intptr_t id, int index, char *name, int namelen, int *nlev);
extern "Python" int _mlscam_py_tile(int *ran, intptr_t id, int *lon_start, int *lon_end, int *lat_start,
                                    int *lat_end);
extern "Python" int _mlscam_py_array(int *ran, intptr_t id, int op, const char *name, void *data, int dtype,
                                     int nlon, int nlat, int nlev);
extern "Python" int _mlscam_py_step(int *ran, intptr_t id, int n);
extern "Python" int _mlscam_py_finalize(int *ran, intptr_t id);
void _mlscam_error_set(const char *message);
const char *_mlscam_library_path(void);
"""

# cffi defines the extern "Python" functions after our source: declare them first.
FORWARD = ";\n".join(
    "static " + decl.replace('extern "Python" ', "").strip()
    for decl in re.split(r";\s*", INTERNAL_CDEF) if decl.strip().startswith('extern "Python"')
) + ";\n"


def package_version(root: Path = HERE.parent) -> str:
    """``mlscam.__version__`` read from the package's ``__init__.py`` (without importing it)."""
    text = (root / "mlscam" / "__init__.py").read_text()
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.M)
    if match is None:
        raise RuntimeError(f"no __version__ in {root / 'mlscam' / '__init__.py'}")
    return match.group(1)


def public_declarations(header: Path = HERE / "mlscam.h") -> str:
    """The text between the BEGIN/END DECLARATIONS markers of mlscam.h (what cffi parses)."""
    text = header.read_text()
    match = re.search(r"BEGIN DECLARATIONS[^\n]*\n(.*?)\n[^\n]*END DECLARATIONS", text, re.S)
    if match is None:
        raise RuntimeError(f"{header} has no BEGIN/END DECLARATIONS markers")
    return match.group(1)


def source_hash(src: Path = HERE) -> str:
    """One hash over every source of the build (to tell a stale build)."""
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode())
        h.update((src / name).read_bytes())
    return h.hexdigest()[:16]


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_library(outdir: Path, python: str, version: str, verbose: bool = False) -> Path:
    """Compile lib/libmlscam.so into ``outdir``; returns its path."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(public_declarations())
    ffi.cdef(INTERNAL_CDEF)
    ffi.embedding_api("")  # embedding mode; every export is a C function of libmlscam.c
    ffi.embedding_init_code((HERE / "embedded_init.py").read_text())
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    source = (f"#define MLSCAM_BUILD_PYTHON {_c_string(python)}\n"
              f"#define MLSCAM_VERSION_STRING {_c_string(version)}\n"
              + FORWARD + (HERE / "libmlscam.c").read_text())
    ffi.set_source(MODULE_NAME, source, include_dirs=[str(HERE)], libraries=["dl"],
                   extra_compile_args=["-Wno-deprecated-declarations"],
                   extra_link_args=[f"-Wl,-rpath,{libdir}"] if libdir else [])
    (outdir / "lib").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlscam-build-") as tmp:
        built = ffi.compile(tmpdir=tmp, target="libmlscam.*", verbose=verbose)
        target = outdir / "lib" / "libmlscam.so"
        shutil.copy2(built, target.with_suffix(".so.tmp"))
        os.replace(target.with_suffix(".so.tmp"), target)
    return target


def fortran_module():
    """``coupler/fortran_module.py`` (the generator of the Fortran module), loaded by path."""
    spec = importlib.util.spec_from_file_location("mlscam_fortran_module", HERE / "fortran_module.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_fortran(outdir: Path, fc: str | None = None) -> Path | None:
    """Compile include/mlscam_mod.f90 into fortran/ with $FC (default gfortran); None if no compiler is found."""
    fc = fc or os.environ.get("FC") or "gfortran"
    if shutil.which(fc) is None:
        return None
    fdir = outdir / "fortran"
    fdir.mkdir(parents=True, exist_ok=True)
    obj = fdir / "mlscam_mod.o"
    flag = "-J" if "gfortran" in Path(fc).name else "-module"
    subprocess.run([fc, "-fPIC", "-O2", "-std=f2008", "-c", str(outdir / "include" / "mlscam_mod.f90"), flag,
                    str(fdir), "-o", str(obj)], check=True)
    archive = fdir / "libmlscam_fortran.a"
    archive.unlink(missing_ok=True)
    subprocess.run(["ar", "rcs", str(archive), str(obj)], check=True)
    obj.unlink()
    return archive


def write_pkgconfig(outdir: Path, version: str) -> Path:
    """pkgconfig/mlscam.pc; relocatable (prefix = ${pcfiledir}/..), so a wheel built elsewhere works."""
    text = (HERE / "mlscam.pc.in").read_text().replace("@VERSION@", version)
    (outdir / "pkgconfig").mkdir(parents=True, exist_ok=True)
    path = outdir / "pkgconfig" / "mlscam.pc"
    path.write_text(text)
    return path


CMAKE_DIR = Path("lib") / "cmake" / "mlscam"  # relative to OUTDIR: what -Dmlscam_DIR= names


def write_cmake_package(outdir: Path, version: str, fortran: str) -> Path:
    """lib/cmake/mlscam/mlscamConfig{,Version}.cmake; relocatable (paths from CMAKE_CURRENT_LIST_DIR)."""
    import struct

    cdir = outdir / CMAKE_DIR
    cdir.mkdir(parents=True, exist_ok=True)
    subst = {"@VERSION@": version, "@FORTRAN_COMPILER@": fortran or "none was found",
             "@SIZEOF_VOID_P@": str(struct.calcsize("P")), "@BITS@": str(8 * struct.calcsize("P"))}
    for name in ("mlscamConfig.cmake", "mlscamConfigVersion.cmake"):
        text = (HERE / f"{name}.in").read_text()
        for key, value in subst.items():
            text = text.replace(key, value)
        (cdir / name).write_text(text)
    return cdir


def build(outdir: str | os.PathLike, python: str | None = None, verbose: bool = False) -> dict:
    """Build everything into ``outdir``; returns the build info written to build_info.json.

    ``python``: the interpreter the library starts (default: the one running this build).
    """
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / ".gitignore").write_text("*\n")
    version = package_version()
    python = python or sys.executable
    lib = build_library(outdir, python, version, verbose)
    (outdir / "include").mkdir(exist_ok=True)
    shutil.copy2(HERE / "mlscam.h", outdir / "include" / "mlscam.h")
    fortran_module().generate(outdir / "include" / "mlscam_mod.f90", HERE)
    fortran = build_fortran(outdir)
    pc = write_pkgconfig(outdir, version)
    cmake = write_cmake_package(outdir, version, (os.environ.get("FC") or "gfortran") if fortran else "")
    info = {  # paths relative to outdir: a wheel's build directory is not its install directory
        "version": version, "python": python, "source_hash": source_hash(),
        "library": str(lib.relative_to(outdir)), "fortran_module": str(fortran.parent.relative_to(outdir)) if fortran else "",
        "pkgconfig": str(pc.relative_to(outdir)), "cmake": str(cmake.relative_to(outdir)),
    }
    (outdir / "build_info.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTDIR")
    print(json.dumps(build(sys.argv[1], verbose=True), indent=1))
