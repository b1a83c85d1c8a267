"""``mpirun -n N python -m mlscam.coupler.run`` against the serial ``python -m mlscam.rollout``.

Every mpirun runs under ``timeout`` (a hang fails in two minutes), with
``--bind-to none`` and yielding idle ranks (see tests/test_mpi_launch.py) and
one torch thread per rank, so results are compared at equal threads per rank.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from component_case import GRID, make_checkpoint, write_initial, write_namelist
from mpirun import kill_mpirun, mpirun, start_mpirun
from mlscam.rollout.__main__ import main as rollout_main

torch.set_num_threads(1)
VARS = ("u", "v", "temperature", "surface_pressure")
NSTEPS, EVERY = 4, 2


def _mpirun(nranks: int, args: list[str], timeout_s: int = 120) -> subprocess.CompletedProcess:
    return mpirun(nranks, args, timeout_s=timeout_s)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("coupler_run")
    ckpt, init = make_checkpoint(d / "m.pt"), write_initial(d / "init.nc")
    nml = write_namelist(d / "run.nml", ckpt, init, d / "serial.nc", num_steps=NSTEPS, output_every=EVERY)
    assert rollout_main([str(nml), "--start-time", "1", "--restart-out", str(d / "serial.rst")]) == 0
    assert rollout_main([str(nml), "--start-time", "1", "--num-steps", str(NSTEPS // 2), "--output-nc-path",
                         str(d / "half.nc"), "--restart-out", str(d / "half.rst")]) == 0
    return {"dir": d, "nml": str(nml), "serial": d / "serial.nc"}


def _same_forecast(a: Path, b: Path, steps: slice = slice(None)) -> None:
    with xr.open_dataset(a) as fa, xr.open_dataset(b) as fb:
        assert list(fa.time.values[steps]) == list(fb.time.values)
        for v in VARS:
            assert np.array_equal(fa[v].values[steps], fb[v].values), f"{v} differs between {a.name} and {b.name}"


@pytest.mark.decomposition
@pytest.mark.mpi
@pytest.mark.parametrize("nranks", [1, 2, 3, 4])
def test_mpirun_forecast_equals_serial_rollout(case, nranks):
    out, rst = case["dir"] / f"mpi{nranks}.nc", case["dir"] / f"mpi{nranks}.rst"
    proc = _mpirun(nranks, ["-m", "mlscam.coupler.run", case["nml"], "--start-time", "1",
                            "--output-nc-path", str(out), "--restart-out", str(rst)])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mpirun -n {nranks} failed (exit {proc.returncode}):\n{output[-3000:]}"
    for r in range(nranks):
        assert f"rank {r} of {nranks}: tile lat [" in proc.stdout and "device cpu, threads 1" in proc.stdout
    assert f"forecast written to {out}" in proc.stdout
    _same_forecast(case["serial"], out)
    with xr.open_dataset(out) as ds:
        assert ds.attrs["mpi_ranks"] == nranks
    # the restart written from N ranks holds the serial latents, in global column order
    assert torch.equal(torch.load(rst)["z"], torch.load(case["dir"] / "serial.rst")["z"])


#: the mass fixer (inside a projection, which the tiny checkpoint lacks): one reproducible global sum per step
FIXER = ["--set", "rollout.latent_projection=0.5", "--set", "rollout.mass_fixer=1"]


@pytest.fixture(scope="module")
def fixer_serial(case):
    d = case["dir"]
    assert rollout_main([case["nml"], *FIXER, "--start-time", "1", "--output-nc-path", str(d / "fixer.nc"),
                         "--restart-out", str(d / "fixer.rst")]) == 0
    return d / "fixer.nc"


@pytest.mark.decomposition
@pytest.mark.mpi
@pytest.mark.parametrize("nranks", [1, 2, 3, 4])
def test_mpirun_forecast_with_the_mass_fixer_equals_serial_rollout(case, fixer_serial, nranks):
    out, rst = case["dir"] / f"fixer_mpi{nranks}.nc", case["dir"] / f"fixer_mpi{nranks}.rst"
    proc = _mpirun(nranks, ["-m", "mlscam.coupler.run", case["nml"], *FIXER, "--start-time", "1",
                            "--output-nc-path", str(out), "--restart-out", str(rst)])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mpirun -n {nranks} failed (exit {proc.returncode}):\n{output[-3000:]}"
    _same_forecast(fixer_serial, out)
    with xr.open_dataset(fixer_serial) as a, xr.open_dataset(case["serial"]) as b:
        assert not np.array_equal(a["surface_pressure"].values, b["surface_pressure"].values)  # the fixer acted
    serial, mpi = torch.load(case["dir"] / "fixer.rst"), torch.load(rst)
    assert torch.equal(mpi["z"], serial["z"]) and mpi["mass_target"] == serial["mass_target"] is not None


#: the polar wind fixer with the mass fixer: [v] = 0 in the 2 rows next to each pole (zonal means over ranks)
POLAR = [*FIXER, "--set", "rollout.polar_wind_fixer=2"]


@pytest.fixture(scope="module")
def polar_serial(case):
    d = case["dir"]
    assert rollout_main([case["nml"], *POLAR, "--start-time", "1", "--output-nc-path", str(d / "polar.nc"),
                         "--restart-out", str(d / "polar.rst")]) == 0
    return d / "polar.nc"


@pytest.mark.decomposition
@pytest.mark.mpi
@pytest.mark.parametrize("nranks", [1, 2, 3, 4])
def test_mpirun_forecast_with_the_polar_wind_and_mass_fixers_equals_serial_rollout(case, fixer_serial, polar_serial,
                                                                                   nranks):
    out, rst = case["dir"] / f"polar_mpi{nranks}.nc", case["dir"] / f"polar_mpi{nranks}.rst"
    proc = _mpirun(nranks, ["-m", "mlscam.coupler.run", case["nml"], *POLAR, "--start-time", "1",
                            "--output-nc-path", str(out), "--restart-out", str(rst)])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mpirun -n {nranks} failed (exit {proc.returncode}):\n{output[-3000:]}"
    _same_forecast(polar_serial, out)
    with xr.open_dataset(polar_serial) as a, xr.open_dataset(fixer_serial) as b:
        v = a["v"].values.astype(np.float64)  # [time, lev, lat, lon], south to north like the initial state
        rows = [0, 1, GRID.nlat - 2, GRID.nlat - 1]
        assert np.abs(v.mean(-1)[..., rows]).max() <= np.spacing(np.float32(np.abs(v).max()))  # [v] = 0 there
        assert np.abs(b["v"].values.astype(np.float64).mean(-1)[..., rows]).max() > 1e-3  # not without the fixer
    serial, mpi = torch.load(case["dir"] / "polar.rst"), torch.load(rst)
    assert torch.equal(mpi["z"], serial["z"]) and mpi["mass_target"] == serial["mass_target"] is not None


@pytest.mark.decomposition
@pytest.mark.mpi
def test_mpirun_mass_fixer_with_projection_every_2_equals_serial_rollout(case, fixer_serial):
    """The fixer with &rollout latent_projection_every = 2, an output after every step (the odd ones do not
    project, so no global sum runs in them): 2 ranks equal the serial rollout, and every output keeps the
    initial global-mean surface pressure."""
    d, every2 = case["dir"], [*FIXER, "--set", "rollout.latent_projection_every=2", "--output-every", "1"]
    serial, out = d / "fixer_every2.nc", d / "fixer_every2_mpi2.nc"
    assert rollout_main([case["nml"], *every2, "--start-time", "1", "--output-nc-path", str(serial),
                         "--restart-out", str(d / "fixer_every2.rst")]) == 0
    proc = _mpirun(2, ["-m", "mlscam.coupler.run", case["nml"], *every2, "--start-time", "1",
                       "--output-nc-path", str(out), "--restart-out", str(d / "fixer_every2_mpi2.rst")])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mpirun -n 2 failed (exit {proc.returncode}):\n{output[-3000:]}"
    _same_forecast(serial, out)
    a, b = torch.load(d / "fixer_every2.rst"), torch.load(d / "fixer_every2_mpi2.rst")
    assert torch.equal(a["z"], b["z"]) and a["mass_target"] == b["mass_target"] is not None
    with xr.open_dataset(serial) as f, xr.open_dataset(fixer_serial) as every1:
        assert f.sizes["time"] == NSTEPS
        assert not np.array_equal(f["surface_pressure"].values[1::2], every1["surface_pressure"].values)  # M = 2
        ps = f["surface_pressure"].values.astype(np.float64)
        gmean = (ps * GRID.area_weights()).mean(axis=(-2, -1))
        assert np.all(np.abs(gmean - a["mass_target"]) <= 0.5 * np.spacing(np.float32(ps.max())) + 1e-9), gmean


@pytest.mark.decomposition
@pytest.mark.mpi
def test_mpirun_continues_a_serial_restart_bit_for_bit(case):
    """Serial restart read on 2 ranks (the restart written on 4 ranks is checked in the test above)."""
    out = case["dir"] / "continued.nc"
    proc = _mpirun(2, ["-m", "mlscam.coupler.run", case["nml"], "--restart-in", str(case["dir"] / "half.rst"),
                       "--num-steps", str(NSTEPS - NSTEPS // 2), "--output-nc-path", str(out)])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    _same_forecast(case["serial"], out, slice(1, None))  # serial outputs at steps 2, 4; continued: step 4


@pytest.mark.mpi
def test_nan_on_rank_1_ends_every_rank_and_leaves_no_output(case):
    out = case["dir"] / "nan.nc"
    start = time.monotonic()
    proc = _mpirun(2, ["tests/mpi/component_nan.py", "1", case["nml"], "--output-nc-path", str(out)], timeout_s=60)
    elapsed = time.monotonic() - start
    output = proc.stdout + proc.stderr
    assert proc.returncode not in (0, 124, 137), f"exit {proc.returncode}:\n{output[-3000:]}"
    assert elapsed < 60
    assert "error: Component.set_state_from_file: rank 1 of 2 failed" in proc.stderr, output[-3000:]
    assert "non-finite" in proc.stderr and "rank 0 of 2 failed" not in output
    assert not out.exists() and not [p for p in case["dir"].iterdir() if p.name.startswith(".nan.nc")]


@pytest.mark.mpi
def test_ctrl_c_to_mpirun_leaves_the_previous_forecast_and_no_part_file(case, tmp_path):
    """SIGINT to mpirun (it sends SIGTERM to every rank, then SIGKILL a second later) while the ranks step:
    a non-zero exit, a message, no hidden part file, and the complete forecast already at the output path
    untouched (issue 14 item 7). Rank 0, the writer, may be waiting in a collective for a rank that has
    already aborted when the signal comes; its part file must go all the same."""
    import hashlib
    import shutil
    import signal

    out = tmp_path / "fc.nc"
    shutil.copyfile(case["serial"], out)  # a previous, complete forecast
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    proc = start_mpirun(2, ["-m", "mlscam.coupler.run", case["nml"], "--start-time", "1", "--num-steps", "1000000",
                            "--output-every", "1", "--output-nc-path", str(out)])
    try:
        deadline = time.monotonic() + 180  # two torch imports on a busy 2-core machine
        while not any(p.stat().st_size > 40000 for p in tmp_path.glob(".fc.nc.*.part")):  # records written
            assert proc.poll() is None, f"exit {proc.returncode} before stepping:\n{proc.communicate()}"
            assert time.monotonic() < deadline, "no record written in 180 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        kill_mpirun(proc)
    assert proc.returncode not in (0, -signal.SIGKILL), f"exit {proc.returncode}:\n{stdout}\n{stderr}"
    assert "interrupted (signal SIGTERM); no forecast written to " in stderr, stderr
    assert "Traceback" not in stderr and f"forecast written to {out}" not in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc.nc"]  # no .fc.nc.PID.*.part
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before


@pytest.mark.mpi
@pytest.mark.slow
def test_mpirun_16_ranks_equals_serial_rollout(case):
    """16 ranks (2x8 tiles of 3x1 or 3x2 columns) on the 6x12 grid; slow: 16 torch imports."""
    out = case["dir"] / "mpi16.nc"
    proc = _mpirun(16, ["-m", "mlscam.coupler.run", case["nml"], "--start-time", "1", "--output-nc-path", str(out)],
                   timeout_s=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "rank 15 of 16: tile lat [3, 6) lon [" in proc.stdout
    _same_forecast(case["serial"], out)
