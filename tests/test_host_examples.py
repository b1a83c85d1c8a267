"""host_examples/ build from a copy with their documented commands (make; CMake with find_package(mlscam) for
03_cmake_host) and run under mpirun (-n 1 to 4; -n 2 for the CMake one);
their final states equal the Python component's on the same inputs, bit for bit.

The hosts decode every step (a diagnostic) while the Python reference steps NSTEPS at once and
decodes only at the end: equality also shows that decoding never changes the latent state."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from capi_support import ROOT, build_library, child_env, config_flags, mpirun, require_tools
from mlscam.config import load_config
from mlscam.coupler import Component
from mlscam.parallel import SelfComm

pytestmark = pytest.mark.mpi

EXAMPLES = {"01_fortran_host": "fortran_host", "02_c_host": "c_host"}
NSTEPS = 3


@pytest.fixture(scope="module", params=list(EXAMPLES))
def example(request, tmp_path_factory):
    """The example copied out of the checkout, built with `make` and given `make checkpoint`."""
    require_tools("make", "mpicc", "mpif90")
    build_library()
    d = tmp_path_factory.mktemp(request.param) / request.param
    shutil.copytree(ROOT / "host_examples" / request.param, d, ignore=shutil.ignore_patterns(*EXAMPLES.values(),
                                                                                            "*.pt", "*.bin"))
    shutil.copy(ROOT / "host_examples" / "make_toy_checkpoint.py", d.parent)
    for target in (EXAMPLES[request.param], "checkpoint"):
        proc = subprocess.run(["make", f"PYTHON={sys.executable}", target], cwd=d, env=child_env(),
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    group = EXAMPLES[request.param]
    nml = (d / "host.nml").read_text()
    nml = re.sub(r"nsteps = \d+", f"nsteps = {NSTEPS}", nml)
    (d / "host.nml").write_text(re.sub(r"output_prefix = ''", "output_prefix = 'tile'", nml))
    return d, group


def _read_tiles(d: Path, nranks: int):
    """Global initial and final states [nlat, nlon, n_state] assembled from the ranks' files, and the tiles."""
    tiles, x0, x = [], None, None
    for r in range(nranks):
        raw = (d / f"tile_rank{r}.bin").read_bytes()
        lon0, lon1, lat0, lat1, ns = np.frombuffer(raw[:20], np.int32)
        n = (lon1 - lon0 + 1) * (lat1 - lat0 + 1) * ns
        data = np.frombuffer(raw[20:], np.float64)
        assert data.size == 2 * n
        shape = (ns, lat1 - lat0 + 1, lon1 - lon0 + 1)  # Fortran (lon, lat, c) read as C [c, lat, lon]
        a0, a1 = (data[:n].reshape(shape).transpose(1, 2, 0), data[n:].reshape(shape).transpose(1, 2, 0))
        if x0 is None:
            x0, x = np.full((6, 12, ns), np.nan), np.full((6, 12, ns), np.nan)
        x0[lat0 - 1:lat1, lon0 - 1:lon1], x[lat0 - 1:lat1, lon0 - 1:lon1] = a0, a1
        tiles.append((int(lat0), int(lat1), int(lon0), int(lon1)))
    assert not np.isnan(x0).any() and not np.isnan(x).any(), "the tiles do not cover the grid"
    return x0, x, tiles


def _python_component(d: Path, nml: str, x0: np.ndarray) -> np.ndarray:
    torch.set_num_threads(1)
    comp = Component.init(load_config(d / nml), SelfComm())
    try:
        comp.set_state(x0)
        comp.step(NSTEPS)
        return comp.get_state().astype(np.float64)
    finally:
        comp.finalize()


@pytest.mark.decomposition
@pytest.mark.parametrize("nranks", [1, 2, 3, 4])
def test_example_runs_and_equals_the_python_component(example, nranks):
    d, group = example
    for old in d.glob("tile_rank*.bin"):
        old.unlink()
    proc = mpirun(nranks, [f"./{group}", "host.nml"], d)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert f"{group}: OK ({NSTEPS} steps on {nranks} ranks)" in proc.stdout, out[-4000:]
    assert [int(s) for s in re.findall(rf"{group}: step (\d+) global mean", proc.stdout)] == list(range(1, NSTEPS + 1))
    x0, x, tiles = _read_tiles(d, nranks)
    if group == "fortran_host" and nranks > 1:  # latitude bands, unlike the emulator's longitude bands
        assert all((lon0, lon1) == (1, 12) for _, _, lon0, lon1 in tiles), tiles
    if group == "c_host" and nranks > 1:  # the emulator's default layout, queried with mlscam_tile_get
        assert all((lat0, lat1) == (1, 6) for lat0, lat1, _, _ in tiles), tiles
    np.testing.assert_array_equal(x, _python_component(d, "host.nml", x0))


CMAKE_EXAMPLE = "03_cmake_host"
CMAKE_HOSTS = {"c_host": "host.nml", "fortran_host": "fortran_host.nml"}


@pytest.fixture(scope="module")
def cmake_example(tmp_path_factory):
    """03_cmake_host copied out of the checkout, configured with -Dmlscam_DIR=$(config --cmake-dir) and built."""
    require_tools("cmake", "mpicc", "mpif90")
    build_library()
    d = tmp_path_factory.mktemp("cmake") / CMAKE_EXAMPLE
    shutil.copytree(ROOT / "host_examples" / CMAKE_EXAMPLE, d, ignore=shutil.ignore_patterns("build", "*.pt", "*.bin"))
    shutil.copy(ROOT / "host_examples" / "make_toy_checkpoint.py", d.parent)
    cmake_dir = config_flags("--cmake-dir")
    assert len(cmake_dir) == 1 and (Path(cmake_dir[0]) / "mlscamConfig.cmake").is_file(), cmake_dir
    for cmd in (["cmake", "-S", ".", "-B", "build", f"-Dmlscam_DIR={cmake_dir[0]}"], ["cmake", "--build", "build"],
                [sys.executable, "../make_toy_checkpoint.py", "checkpoint.pt"]):
        proc = subprocess.run(cmd, cwd=d, env=child_env(), capture_output=True, text=True)
        assert proc.returncode == 0, " ".join(cmd) + "\n" + proc.stdout + proc.stderr
    cache = (d / "build" / "CMakeCache.txt").read_text()
    assert re.search(rf"^mlscam_DIR:\w+={re.escape(cmake_dir[0])}$", cache, re.M), "mlscam_DIR is not the printed one"
    assert "MPI_C_LIB_NAMES" in cache  # MPI was found by the package's find_dependency (the example asks for none)
    for group, name in CMAKE_HOSTS.items():
        nml = re.sub(r"nsteps = \d+", f"nsteps = {NSTEPS}", (d / name).read_text())
        (d / name).write_text(re.sub(r"output_prefix = ''", "output_prefix = 'tile'", nml))
    return d


@pytest.mark.decomposition
@pytest.mark.parametrize("group", list(CMAKE_HOSTS))
def test_cmake_example_builds_with_find_package_and_equals_the_python_component(cmake_example, group):
    """find_package(mlscam) + mlscam::mlscam / mlscam::mlscam_fortran give hosts that run under mpirun -n 2 and
    end in the Python component's state bit for bit (as the Makefile examples do)."""
    d, nranks = cmake_example, 2
    exe = d / "build" / group
    if group == "fortran_host" and not exe.is_file():
        pytest.skip("CMake built no Fortran host (no Fortran compiler, or libmlscam has no Fortran module)")
    for old in d.glob("tile_rank*.bin"):
        old.unlink()
    proc = mpirun(nranks, [str(exe), CMAKE_HOSTS[group]], d)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert f"{group}: OK ({NSTEPS} steps on {nranks} ranks)" in proc.stdout, out[-4000:]
    assert [int(s) for s in re.findall(rf"{group}: step (\d+) global mean", proc.stdout)] == list(range(1, NSTEPS + 1))
    x0, x, tiles = _read_tiles(d, nranks)
    if group == "c_host":  # the emulator's default layout (longitude bands)
        assert all((lat0, lat1) == (1, 6) for lat0, lat1, _, _ in tiles), tiles
    else:  # the Fortran host's own latitude bands
        assert all((lon0, lon1) == (1, 12) for _, _, lon0, lon1 in tiles), tiles
    np.testing.assert_array_equal(x, _python_component(d, CMAKE_HOSTS[group], x0))


def test_cmake_example_sources_are_the_makefile_examples_copies():
    """03_cmake_host carries copies (it must build on its own): they may not drift from 01/02."""
    ex = ROOT / "host_examples"
    assert (ex / CMAKE_EXAMPLE / "c_host.c").read_text() == (ex / "02_c_host" / "c_host.c").read_text()
    assert (ex / CMAKE_EXAMPLE / "fortran_host.f90").read_text() == (ex / "01_fortran_host" / "fortran_host.f90").read_text()
    for copy, original in (("host.nml", "02_c_host/host.nml"), ("fortran_host.nml", "01_fortran_host/host.nml")):
        strip = lambda p: re.sub(r"\s*!.*", "", p.read_text())  # noqa: E731 - comments name other commands
        assert strip(ex / CMAKE_EXAMPLE / copy) == strip(ex / original), copy
