"""The C API without MPI: the header, the build, the exported symbols, the flags CLI, and the
pure-C and in-process entry points (ctypes)."""
from __future__ import annotations

import ctypes
import os
import re
import runpy
import shutil
import subprocess
import sys

import pytest

import mlscam
from capi_support import ROOT, build_library, child_env, config_flags
from mlscam.coupler import Status as ComponentStatus
from mlscam.coupler.build import NATIVE_DIR
from mlscam.coupler.capi import OP_NAMES, Status

HEADER = ROOT / "coupler" / "mlscam.h"


@pytest.fixture(scope="module")
def info():
    return build_library()


@pytest.fixture(scope="module")
def lib(info):
    return ctypes.CDLL(str(NATIVE_DIR / info["library"]))


def _header_enum(name: str) -> dict[str, int]:
    body = re.search(rf"enum {name} \{{(.*?)\}};", HEADER.read_text(), re.S).group(1)
    return {k: int(v) for k, v in re.findall(r"(MLSCAM_\w+)\s*=\s*(\d+)", body)}


def _header_functions() -> list[str]:
    return re.findall(r"^int (mlscam_\w+)\(", HEADER.read_text(), re.M)


def _fortran_source() -> str:
    """mlscam_mod.f90 as the build generates it from coupler/mlscam_mod.f90.in and the header."""
    generator = runpy.run_path(str(ROOT / "coupler" / "fortran_module.py"))
    return generator["render"]((ROOT / "coupler" / "mlscam_mod.f90.in").read_text(), HEADER.read_text())


def test_status_codes_agree_between_header_python_side_and_component():
    codes = _header_enum("mlscam_status")
    assert codes["MLSCAM_OK"] == 0 and len(set(codes.values())) == len(codes)
    python = {f"MLSCAM_{'OK' if m.name == 'OK' else 'ERR_' + m.name}": int(m) for m in Status}  # no aliases
    assert python == codes
    # the component's status codes pass through unchanged: one enum for both
    assert ComponentStatus is Status
    same = {"FAILED": "FAILED", "BAD_ARGUMENT": "ARGUMENT", "NON_FINITE": "VALUE", "NO_STATE": "NO_STATE",
            "FILE_ERROR": "FILE", "CHECKPOINT": "CHECKPOINT", "INTERVAL": "INTERVAL",
            "DECOMPOSITION": "DECOMPOSITION", "FINALIZED": "HANDLE"}
    assert {k: int(getattr(ComponentStatus, k)) for k in same} == {k: codes[f"MLSCAM_ERR_{v}"] for k, v in same.items()}
    assert _header_enum("mlscam_dtype") == {"MLSCAM_FLOAT32": 4, "MLSCAM_FLOAT64": 8}
    # the embedded start-up code takes its codes from the header through cffi (lib.MLSCAM_*), no copy
    init = (ROOT / "coupler" / "embedded_init.py").read_text()
    assigned = dict(re.findall(r"^(_STATUS_\w+) = (.+?)(?:  #.*)?$", init, re.M))
    assert assigned == {"_STATUS_ENVIRONMENT": "lib.MLSCAM_ERR_ENVIRONMENT", "_STATUS_PYTHON": "lib.MLSCAM_ERR_PYTHON",
                        "_STATUS_FAILED": "lib.MLSCAM_ERR_FAILED"}


def test_fortran_module_binds_every_function_and_constant_of_the_header():
    f90 = _fortran_source()
    bound = set(re.findall(r'bind\(c, name="(mlscam_\w+)"\)', f90))
    assert bound == set(_header_functions())
    for name, value in {**_header_enum("mlscam_status"), **_header_enum("mlscam_dtype")}.items():
        assert re.search(rf"\b{name} = {value}\b", f90), f"{name} = {value} missing in mlscam_mod.f90"


def test_fortran_constants_follow_the_header():
    """The module's constants are generated from mlscam.h: a new code there appears in Fortran."""
    generator = runpy.run_path(str(ROOT / "coupler" / "fortran_module.py"))
    header = HEADER.read_text().replace("MLSCAM_ERR_PYTHON = 13", "MLSCAM_ERR_PYTHON = 13,\n    MLSCAM_ERR_NEW = 14")
    f90 = generator["render"]((ROOT / "coupler" / "mlscam_mod.f90.in").read_text(), header)
    assert re.search(r"\bMLSCAM_ERR_NEW = 14\b", f90)
    with pytest.raises(ValueError, match="must declare enum mlscam_status"):
        generator["render"]("@CONSTANTS@ @GENERICS@ @WRAPPERS@", "enum mlscam_dtype {\n    A = 1\n};\n")


FORTRAN_CALLER = """\
program generics
  use, intrinsic :: iso_c_binding, only: c_float, c_double
  use mlscam_mod
  implicit none
  type(mlscam_t) :: em
  real(c_double) :: d3(4, 3, 2), d2(4, 3)
  real(c_float) :: s3(4, 3, 2), s2(4, 3)
  integer :: st
  d3 = 0; d2 = 0; s3 = 0; s2 = 0
  st = mlscam_state_set(em, 't', d3) + mlscam_state_set(em, 't', s3) + mlscam_state_set(em, 'ps', d2)
  st = mlscam_state_set(em=em, name='ps', field=s2)
  st = mlscam_state_get(em, 't', d3) + mlscam_state_get(em, 't', s3) + mlscam_state_get(em, 'ps', d2)
  st = mlscam_state_get(em, 'ps', s2)
  st = mlscam_tendency_get(em, 't', d3) + mlscam_tendency_get(em, 't', s3) + mlscam_tendency_get(em, 'ps', d2)
  st = mlscam_tendency_get(em, 'ps', s2)
  st = mlscam_state_set_all(em, d3) + mlscam_state_set_all(em=em, x=s3)
  st = mlscam_state_get_all(em, d3) + mlscam_state_get_all(em, s3)
  st = mlscam_tendency_get_all(em, d3) + mlscam_tendency_get_all(em, s3)
  if (st /= MLSCAM_OK .and. st == MLSCAM_ERR_HANDLE .and. MLSCAM_FLOAT64 == 8) print *, st
end program generics
"""


def test_fortran_generics_take_both_kinds_and_both_ranks_and_refuse_a_1d_array(info, tmp_path):
    if not info.get("fortran_module"):
        pytest.skip("no Fortran compiler was found when libmlscam was built")
    fdir = NATIVE_DIR / info["fortran_module"]
    (tmp_path / "generics.f90").write_text(FORTRAN_CALLER)
    ok = subprocess.run(["gfortran", "-std=f2008", "-c", f"-I{fdir}", "generics.f90"], cwd=tmp_path,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "rank1.f90").write_text(FORTRAN_CALLER.replace("d2(4, 3)", "d2(12)"))
    bad = subprocess.run(["gfortran", "-std=f2008", "-c", f"-I{fdir}", "rank1.f90"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "There is no specific function for the generic" in bad.stderr, bad.stderr


def test_the_build_hashes_and_ships_every_source_of_coupler():
    """build_libmlscam.SOURCES decides staleness and what a wheel ships (setup.py): no file may be missing."""
    sources = runpy.run_path(str(ROOT / "coupler" / "build_libmlscam.py"))["SOURCES"]
    present = {p.name for p in (ROOT / "coupler").iterdir() if p.is_file() and p.suffix != ".pyc"}
    assert set(sources) == present


def test_array_op_codes_match_the_c_side():
    c = (ROOT / "coupler" / "libmlscam.c").read_text()
    ops = {int(v): k for k, v in re.findall(r"#define MLSCAM_OP_(\w+) (\d+)", c)}
    assert {k: "mlscam_" + v.lower() for k, v in ops.items()} == OP_NAMES


def test_build_exports_every_header_function_and_ships_header_module_and_pkgconfig(info):
    native = NATIVE_DIR
    assert info["library"] == "lib/libmlscam.so" and info["version"] == mlscam.__version__
    assert os.path.realpath(info["python"]) == os.path.realpath(sys.executable)
    out = subprocess.run(["nm", "-D", "--defined-only", str(native / info["library"])], capture_output=True, text=True,
                         check=True).stdout
    exported = set(re.findall(r" T (mlscam_\w+)$", out, re.M))
    assert exported == set(_header_functions())
    assert (native / "include" / "mlscam.h").read_text() == HEADER.read_text()
    assert (native / "include" / "mlscam_mod.f90").read_text() == _fortran_source()
    if shutil.which("gfortran"):
        assert (native / "fortran" / "mlscam_mod.mod").is_file()
        assert (native / "fortran" / "libmlscam_fortran.a").is_file()
    pc = (native / "pkgconfig" / "mlscam.pc").read_text()
    assert "prefix=${pcfiledir}/.." in pc and f"Version: {mlscam.__version__}" in pc
    assert info["cmake"] == "lib/cmake/mlscam"
    config = (native / info["cmake"] / "mlscamConfig.cmake").read_text()
    version = (native / info["cmake"] / "mlscamConfigVersion.cmake").read_text()
    assert "@" not in config.replace("@VERSION@", "") and "@" not in version  # every template key substituted
    assert f'set(PACKAGE_VERSION "{mlscam.__version__}")' in version and str(native) not in config  # relocatable


def test_config_cli_prints_existing_paths_and_an_rpath(info):
    native = NATIVE_DIR
    assert config_flags("--prefix") == [str(native)]
    cflags, libs = config_flags("--cflags"), config_flags("--libs")
    assert cflags == [f"-I{native / 'include'}"] and (native / "include" / "mlscam.h").is_file()
    assert libs == [f"-L{native / 'lib'}", f"-Wl,-rpath,{native / 'lib'}", "-lmlscam"]
    both = config_flags("--cflags", "--libs")
    assert both == cflags + libs
    bad = subprocess.run([sys.executable, "-m", "mlscam.coupler.config"], cwd=ROOT, env=child_env(),
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "give at least one of --prefix" in bad.stderr
    assert config_flags("--cmake-dir") == [str(native / "lib" / "cmake" / "mlscam")]


CMAKE_PROBE = """cmake_minimum_required(VERSION 3.13)
project(probe LANGUAGES C Fortran)
find_package(mlscam {version} REQUIRED)
foreach(t mlscam::mlscam mlscam::mlscam_fortran)
  get_target_property(libs ${{t}} INTERFACE_LINK_LIBRARIES)
  get_target_property(loc ${{t}} IMPORTED_LOCATION)
  message(STATUS "PROBE ${{t}} | ${{libs}} | ${{loc}}")
endforeach()
"""


def test_cmake_package_gives_targets_that_carry_mpi_and_refuses_another_major_version(info, tmp_path):
    if shutil.which("cmake") is None or not info.get("fortran_module"):
        pytest.skip("needs cmake and a libmlscam built with a Fortran compiler")
    def configure(version: str) -> subprocess.CompletedProcess:
        src = tmp_path / version
        src.mkdir()
        (src / "CMakeLists.txt").write_text(CMAKE_PROBE.format(version=version))
        return subprocess.run(["cmake", "-S", str(src), "-B", str(src / "build"),
                               f"-Dmlscam_DIR={config_flags('--cmake-dir')[0]}"], capture_output=True, text=True,
                              env=child_env())
    ok = configure(mlscam.__version__)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    probe = dict(line.split("PROBE ")[1].split(" | ", 1) for line in ok.stdout.splitlines() if "PROBE " in line)
    assert probe["mlscam::mlscam"] == f"MPI::MPI_C | {NATIVE_DIR / 'lib' / 'libmlscam.so'}"
    assert probe["mlscam::mlscam_fortran"] == ("mlscam::mlscam;MPI::MPI_Fortran | "
                                               f"{NATIVE_DIR / info['fortran_module'] / 'libmlscam_fortran.a'}")
    major = int(mlscam.__version__.split(".")[0]) + 1
    bad = configure(f"{major}.0")
    msg = " ".join(bad.stderr.split())
    assert bad.returncode != 0 and f'compatible with requested version "{major}.0"' in msg, bad.stderr
    assert f"version: {mlscam.__version__}" in msg, bad.stderr


def test_pkg_config_file_gives_the_same_flags(info):
    if shutil.which("pkg-config") is None:
        pytest.skip("pkg-config is not installed")
    native = NATIVE_DIR
    out = subprocess.run(["pkg-config", "--cflags", "--libs", "mlscam"], capture_output=True, text=True, check=True,
                         env={**child_env(), "PKG_CONFIG_PATH": str(native / "pkgconfig")}).stdout.split()
    resolved = [re.sub(r"(-I|-L|-Wl,-rpath,)(.*)", lambda m: m.group(1) + os.path.realpath(m.group(2)), f) for f in out]
    assert set(resolved) == set(config_flags("--cflags", "--libs"))


def test_version_and_last_error_are_pure_c_and_truncate_safely(lib):
    buf = ctypes.create_string_buffer(64)
    assert lib.mlscam_version(buf, 64) == 0 and buf.value.decode() == mlscam.__version__
    small = ctypes.create_string_buffer(3)
    assert lib.mlscam_version(small, 3) == 0 and small.value.decode() == mlscam.__version__[:2]
    assert lib.mlscam_version(None, 10) == Status.ARGUMENT
    assert lib.mlscam_last_error(buf, 0) == Status.ARGUMENT


def test_null_handle_gives_a_handle_error_without_python(lib):
    """(A Python process must not call entry points that reach Python: cffi's embedding then spins in
    _cffi_carefully_make_gil; those paths are tested from C and Fortran hosts.)"""
    msg = ctypes.create_string_buffer(4096)
    for name in ("mlscam_step", "mlscam_finalize"):
        assert getattr(lib, name)(None, *([1] if name == "mlscam_step" else [])) == Status.HANDLE
        lib.mlscam_last_error(msg, 4096)
        assert msg.value.decode() == f"{name}: the handle is NULL: call mlscam_init first and check that it returned 0"


def test_init_refuses_a_null_handle_pointer_and_a_null_path_without_python(lib):
    msg = ctypes.create_string_buffer(4096)
    args = (0, 12, 6, 2, 1, 12, 1, 6, ctypes.c_double(0.0))
    assert lib.mlscam_init(b"x.nml", *args, None) == Status.ARGUMENT
    lib.mlscam_last_error(msg, 4096)
    assert "the handle argument is NULL" in msg.value.decode()
    handle = ctypes.c_void_p(0)
    assert lib.mlscam_init(None, *args, ctypes.byref(handle)) == Status.ARGUMENT
    lib.mlscam_last_error(msg, 4096)
    assert "namelist_path is NULL" in msg.value.decode() and handle.value is None
