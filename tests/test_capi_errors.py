"""The C API from Fortran and C hosts under mpirun: error paths, the Fortran-order mapping and a
broken embedded environment.  Every failure must give the same non-zero status on every rank, the
expected message via mlscam_last_error, and leave the host running."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from capi_support import HOSTS, build_library, child_env, compile_host, config_flags, mpirun, toy_checkpoint
from mlscam.coupler.capi import Status

pytestmark = pytest.mark.mpi

NAMELIST = """&mlscam
  host_groups = 'test_host'
/
&test_host
  note = 'ignored by mlscam'
/
&rollout
  checkpoint_path = 'checkpoint.pt'
/
&parallel
  device = 'cpu'
  threads = 1
/
"""


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    build_library()
    d = tmp_path_factory.mktemp("capi_errors")
    toy_checkpoint(d / "checkpoint.pt")
    (d / "host.nml").write_text(NAMELIST)
    (d / "bad.nml").write_text("&rollout\n  checkpoint_pth = 'checkpoint.pt'\n/\n")
    return d


def _checks(stdout: str) -> dict[str, dict[int, tuple[int, str]]]:
    out: dict[str, dict[int, tuple[int, str]]] = {}
    for name, rank, status, msg in re.findall(r"^CHECK (\w+) rank=(\d+) status=(-?\d+) msg=(.*)$", stdout, re.M):
        out.setdefault(name, {})[int(rank)] = (int(status), msg)
    return out


# name -> (status, a piece of the message every rank must show)
EXPECTED = {
    "before_init": (Status.HANDLE, "mlscam_step: the handle is NULL: call mlscam_init first"),
    "missing_namelist": (Status.FILE, "namelist file not found: 'does_not_exist.nml'"),
    "bad_namelist": (Status.CONFIG, "unknown key 'checkpoint_pth' in &rollout; did you mean 'checkpoint_path'?"),
    "interval": (Status.INTERVAL, "coupling interval 3600 s differs from the checkpoint's step 21600 s"),
    "bounds": (Status.DECOMPOSITION, "tile bounds lon 1:13, lat "),
    "init": (Status.OK, ""),
    "init_again": (Status.HANDLE, "mlscam_init: rank 0 of 2 failed: the handle passed to mlscam_init already holds "
                                  "a live instance"),
    "second_instance": (Status.OK, ""), "finalize_other": (Status.OK, ""),
    "step_without_state": (Status.NO_STATE, "no state has been set"),
    "extents": (Status.ARGUMENT, "extents (nlon, nlat, nlev) = (13, 3, 2) but this rank's tile needs (12, 3, 2)"),
    "unknown_name": (Status.ARGUMENT, "unknown variable 'temprature'; the checkpoint's variables are "
                                      "['u', 'v', 'temperature', 'surface_pressure']"),
    "extents_2d": (Status.ARGUMENT, "= (12, 3, 2) but this rank's tile needs (12, 3, 1)"),
    "nan_on_rank1": (Status.VALUE, "rank 1 of 2 failed: mlscam_state_set('temperature'): 1 non-finite value(s) "
                                   "(NaN/Inf), the first nan at (lon=3, lat=1, lev=2) of this rank's tile = "
                                   "global (lon=3, lat=4)"),
    "set_u": (Status.OK, ""), "set_v": (Status.OK, ""), "set_t": (Status.OK, ""), "set_ps": (Status.OK, ""),
    "step_ok": (Status.OK, ""), "get_ok": (Status.OK, ""),
    "negative_steps": (Status.ARGUMENT, "mlscam_step: n = -1; pass the number of steps, n >= 0"),
    "finalize": (Status.OK, ""),
    "after_finalize": (Status.HANDLE, "mlscam_step: the handle was finalized by mlscam_finalize"),
    "init_after_finalize": (Status.OK, ""), "finalize_again": (Status.OK, ""),
}


def test_error_paths_from_fortran_give_one_status_on_every_rank_and_the_host_keeps_running(case):
    exe = compile_host(HOSTS / "errors_host.f90", case / "errors_host")
    proc = mpirun(2, [str(exe), "host.nml", "bad.nml"], case)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    checks = _checks(proc.stdout)
    assert list(checks) == list(EXPECTED), out[-4000:]
    for name, (status, piece) in EXPECTED.items():
        for rank in (0, 1):
            got_status, msg = checks[name][rank]
            assert got_status == status, f"{name} rank {rank}: status {got_status} != {status}: {msg}"
            assert piece in msg, f"{name} rank {rank}: {piece!r} not in {msg!r}"
        assert checks[name][0][1] == checks[name][1][1], f"{name}: ranks report different messages"
    assert sorted(re.findall(r"errors_host: DONE rank=(\d)", proc.stdout)) == ["0", "1"]


def test_fortran_order_arrays_arrive_in_place_and_come_back_unchanged(case, tmp_path):
    """The echo component (tests/hosts/echo_site) checks where each value landed and returns it as is."""
    exe = compile_host(HOSTS / "mapping_host.f90", case / "mapping_host")
    env = child_env(PYTHONPATH=str(HOSTS / "echo_site"), ECHO_DIR=str(tmp_path))
    proc = mpirun(3, [str(exe), "host.nml"], case, env=env, forward=("PYTHONPATH", "ECHO_DIR"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert sorted(re.findall(r"mapping_host: rank=(\d) mismatches=(\d+)", proc.stdout)) == [
        ("0", "0"), ("1", "0"), ("2", "0")], out[-4000:]
    # 12 longitudes over 3 ranks, 6 latitudes, 7 state channels: every value checked once, none misplaced
    for rank in range(3):
        assert (tmp_path / f"echo_rank{rank}.txt").read_text().split() == ["checked=168", "misplaced=0"]


@pytest.fixture(scope="module")
def env_host(case):
    return compile_host(HOSTS / "env_host.c", case / "env_host")


def _env_run(case, exe, **env):
    proc = mpirun(1, [str(exe), "host.nml"], case, env=child_env(**env), forward=tuple(env))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "env_host: still running (step on a NULL handle: status=9)" in proc.stdout, proc.stdout
    status = int(re.search(r"init status=(\d+) handle_null=1", proc.stdout).group(1))
    return status, re.search(r"^env_host: message=(.*)$", proc.stdout, re.M).group(1)


def test_a_broken_package_in_the_embedded_environment_names_the_interpreter(case, env_host, tmp_path):
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('a deliberately broken torch')\n")
    status, msg = _env_run(case, env_host, PYTHONPATH=str(tmp_path))
    assert status == Status.ENVIRONMENT
    assert "the embedded Python cannot import 'torch' (ImportError: a deliberately broken torch)" in msg
    assert f"sys.executable='{build_library()['python']}'" in msg  # the interpreter baked into the build
    assert f"sys.prefix='{sys.prefix}'" in msg and str(tmp_path) in msg and "MLSCAM_PYTHON" in msg


def test_python_that_did_not_run_is_never_a_silent_success(case, env_host, tmp_path):
    """A broken _cffi_backend makes cffi's start-up fail: cffi returns 0 without running Python; the guard."""
    (tmp_path / "_cffi_backend.py").write_text("raise ImportError('a deliberately broken _cffi_backend')\n")
    status, msg = _env_run(case, env_host, PYTHONPATH=str(tmp_path))
    assert status == Status.PYTHON
    assert "the Python side of libmlscam did not run" in msg and "MLSCAM_PYTHON" in msg


def test_an_interpreter_that_cannot_start_is_a_status_not_an_exit(case, env_host):
    status, msg = _env_run(case, env_host, PYTHONHOME="/nonexistent/python-home")
    assert status == Status.PYTHON
    assert "the embedded Python interpreter failed to start" in msg
    assert "PYTHONHOME='/nonexistent/python-home'" in msg


def test_netcdf4_works_inside_a_host_that_links_the_system_libnetcdf(case, tmp_path):
    """Without RTLD_DEEPBIND (coupler/embedded_init.py) netCDF4 segfaulted in such a host."""
    if shutil.which("nc-config") is None:
        pytest.skip("the system libnetcdf (nc-config) is not installed")
    exe = case / "env_host_netcdf"
    cmd = ["mpicc", "-DWITH_NETCDF", *config_flags("--cflags"), "-o", str(exe), str(HOSTS / "env_host.c"),
           *config_flags("--libs"), "-lnetcdf"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    env = {"PYTHONPATH": str(HOSTS / "netcdf_site"), "NC_DIR": str(tmp_path)}
    proc = mpirun(1, [str(exe), "host.nml"], case, env=child_env(**env), forward=tuple(env))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "env_host: the host links libnetcdf" in proc.stdout
    assert "init status=1 handle_null=1" in proc.stdout
    assert "netCDF4 probe read [0.0, 1.0, 2.0]" in proc.stdout


def test_mlscam_python_points_the_library_at_another_environment(case, env_host, tmp_path):
    """A virtual environment (with the system site-packages): the embedded interpreter is the venv's."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    broken = tmp_path / "broken"
    (broken / "torch").mkdir(parents=True)
    (broken / "torch" / "__init__.py").write_text("raise ImportError('broken torch')\n")
    status, msg = _env_run(case, env_host, MLSCAM_PYTHON=str(venv / "bin" / "python"), PYTHONPATH=str(broken))
    assert status == Status.ENVIRONMENT
    assert f"sys.executable='{venv / 'bin' / 'python'}', sys.prefix='{venv}'" in msg


def test_init_before_mpi_init_is_refused_with_a_status(case):
    exe = case / "env_host_no_mpi_init"
    subprocess.run(["mpicc", "-DNO_MPI_INIT", *config_flags("--cflags"), "-o", str(exe), str(HOSTS / "env_host.c"),
                    *config_flags("--libs")], check=True, capture_output=True, text=True)
    status, msg = _env_run(case, exe)
    assert status == Status.MPI
    assert msg == "mlscam_init: MPI is not initialized: the host must call MPI_Init before mlscam_init"
