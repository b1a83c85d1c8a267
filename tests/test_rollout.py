"""``python -m mlscam.rollout``: CF output with valid times, decoding only at output steps,
atomic output, restart continuation and namelist errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from component_case import (GRID, LAYOUT, LEVELS, TIME_UNITS, fields, initial_states, make_checkpoint, serial_emulator,
                            write_initial, write_namelist)
from mlscam.checkpoint import file_hash
from mlscam.runtime import component as component_mod
from mlscam.status import Status
from mlscam.rollout import output_steps
from mlscam.rollout.__main__ import main
from synthetic import write_file

torch.set_num_threads(1)
VARS = ("u", "v", "temperature", "surface_pressure")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("rollout")
    ckpt, init = make_checkpoint(d / "m.pt"), write_initial(d / "init.nc")
    nml = write_namelist(d / "run.nml", ckpt, init, d / "default.nc", num_steps=6, output_every=2)
    return {"dir": d, "ckpt": ckpt, "init": init, "nml": str(nml)}


def _state(ds: xr.Dataset, k: int) -> np.ndarray:
    """``[nlat, nlon, n_state]`` of output index ``k`` in layout order."""
    parts = [np.moveaxis(ds[v].values[k], 0, -1) if v in LAYOUT.variables_3d else ds[v].values[k][..., None]
             for v in LAYOUT.variables]
    return np.concatenate(parts, axis=-1)


def test_output_steps():
    assert output_steps(0, 6, 2) == [2, 4, 6]
    assert output_steps(0, 7, 3) == [3, 6]
    assert output_steps(3, 3, 2) == [4, 6]
    assert output_steps(0, 0, 1) == []


def test_writes_a_cf_file_with_valid_times_and_the_serial_states(case, capsys):
    out = case["dir"] / "f.nc"
    assert main([case["nml"], "--output-nc-path", str(out), "--start-time", "1", "--num-steps", "5",
                 "--output-every", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"forecast written to {out}" in printed and "rank 0 of 1: tile lat [0, 6) lon [0, 12)" in printed
    with xr.open_dataset(out) as ds:
        assert ds.time.encoding["calendar"] == "noleap" and ds.time.encoding["units"] == "hours since 2001-03-01 00:00:00"
        # initial state at index 1 is 2001-03-01 06:00; outputs at steps 2 and 4 (6 h steps)
        assert [(t.day, t.hour) for t in ds.time.values] == [(1, 18), (2, 6)]
        assert ds.lead_time.values.tolist() == [12.0, 24.0]
        assert ds.attrs["Conventions"] == "CF-1.8"
        assert ds.attrs["checkpoint_sha256"] == file_hash(case["ckpt"])
        assert ds.attrs["checkpoint"] == str(case["ckpt"]) and ds.attrs["mpi_ranks"] == 1
        assert "&rollout" in ds.attrs["namelist"] and ds.attrs["mlscam_version"]
        assert ds["temperature"].attrs["units"] == "K" and ds["temperature"].dims == ("time", "level", "lat", "lon")
        assert ds["lat"].values.tolist() == list(GRID.lat_array())
        em = serial_emulator(case["ckpt"])
        ref = [x.numpy() for _, x in em.rollout(torch.from_numpy(initial_states()[1]), 5, output_every=2)]
        assert len(ref) == ds.sizes["time"] == 2
        for k in range(2):
            assert np.array_equal(_state(ds, k), ref[k])


def test_decodes_only_at_output_steps(case, monkeypatch):
    calls = []
    original = component_mod.Component._decode

    def counting(self, z):
        calls.append(self.step_count)
        return original(self, z)

    monkeypatch.setattr(component_mod.Component, "_decode", counting)
    assert main([case["nml"], "--output-nc-path", str(case["dir"] / "d.nc"), "--num-steps", "7",
                 "--output-every", "3"]) == 0
    assert calls == [3, 6]


@pytest.mark.parametrize("fail_at", [1, 5])
def test_an_interrupted_rollout_leaves_no_file(case, monkeypatch, capsys, fail_at):
    out = case["dir"] / f"interrupted{fail_at}.nc"
    original = component_mod.Component.step

    def failing(self, n=1):
        if self.step_count + n >= fail_at:
            raise KeyboardInterrupt(f"injected at step {fail_at}")
        return original(self, n)

    monkeypatch.setattr(component_mod.Component, "step", failing)
    # a message and exit status 130 (as a shell reports SIGINT), not a traceback
    assert main([case["nml"], "--output-nc-path", str(out), "--num-steps", "6", "--output-every", "1"]) == 130
    assert "interrupted (injected at step" in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in case["dir"].iterdir() if p.name.startswith(f".{out.name}")] == []


def test_a_blow_up_is_an_error_and_leaves_no_file(case, monkeypatch, capsys):
    out = case["dir"] / "blowup.nc"
    original = component_mod.Component._decode

    def nan_at_4(self, z):
        x = original(self, z)
        return x * float("nan") if self.step_count >= 4 else x

    monkeypatch.setattr(component_mod.Component, "_decode", nan_at_4)
    status = main([case["nml"], "--output-nc-path", str(out)])
    assert status == Status.NON_FINITE
    assert "step 4" in capsys.readouterr().err and not out.exists()


def test_a_nan_in_the_initial_file_is_named_by_variable_level_and_cell(case, tmp_path, capsys):
    """``python -m mlscam.rollout`` on an initial state with a NaN: variable, level and global (lat, lon) cell
    in words, not a tile/feature index; a status, no traceback, no file (issue 14 item 4)."""
    from component_case import LEVELS, TIME_UNITS, fields
    from synthetic import write_file

    f = fields(0)
    f["temperature"][1, 1, 4, 7] = np.nan  # time 1, level 1, lat index 4, lon index 7
    write_file(tmp_path / "init.nc", f, GRID, [0.0, 6.0, 12.0], levels=list(LEVELS), time_units=TIME_UNITS,
               calendar="noleap")
    out = tmp_path / "fc.nc"
    status = main([case["nml"], "--input-nc-path", str(tmp_path / "init.nc"), "--start-time", "1",
                   "--output-nc-path", str(out)])
    assert status == Status.NON_FINITE
    err = capsys.readouterr().err
    assert err.startswith(f"error: Component.set_state_from_file: rank 0 of 1 failed: the initial state of "
                          f"{tmp_path / 'init.nc'} at time index 1 has 1 non-finite value(s) (NaN/Inf), first at "
                          f"temperature level 1 (sigma {LEVELS[1]:g}), global cell (lat index 4, lon index 7; lat 45, lon 210 "
                          f"degrees): nan"), err
    assert "tile index" not in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["init.nc"]


@pytest.mark.decomposition
def test_restart_continues_bit_for_bit(case):
    d = case["dir"]
    assert main([case["nml"], "--output-nc-path", str(d / "full.nc"), "--restart-out", str(d / "full.rst")]) == 0
    assert main([case["nml"], "--output-nc-path", str(d / "a.nc"), "--num-steps", "3",
                 "--restart-out", str(d / "half.rst")]) == 0
    assert main([case["nml"], "--output-nc-path", str(d / "b.nc"), "--num-steps", "3",
                 "--restart-in", str(d / "half.rst"), "--restart-out", str(d / "end.rst")]) == 0
    full, end = torch.load(d / "full.rst"), torch.load(d / "end.rst")
    assert torch.equal(full["z"], end["z"]) and full["step"] == end["step"] == 6 and full["time"] == end["time"]
    with xr.open_dataset(d / "full.nc") as f, xr.open_dataset(d / "a.nc") as a, xr.open_dataset(d / "b.nc") as b:
        assert a.sizes["time"] == 1 and b.sizes["time"] == 2  # steps 2 | 4, 6
        for v in VARS:
            assert np.array_equal(np.concatenate([a[v].values, b[v].values]), f[v].values), v
        assert list(b.time.values) == list(f.time.values[1:])
        assert b.lead_time.values.tolist() == [24.0, 36.0]


def test_a_north_to_south_initial_state_gives_north_to_south_forecasts_also_after_a_restart(case):
    """The forecast keeps the initial-state file's latitude order; a restart carries it to the continuation.
    The numbers are those of the south-to-north file, flipped."""
    d = case["dir"]
    ns = d / "init_north_to_south.nc"
    write_file(ns, fields(0), GRID, [0.0, 6.0, 12.0], levels=list(LEVELS), time_units=TIME_UNITS,
               calendar="noleap", flip_lat=True)
    assert main([case["nml"], "--output-nc-path", str(d / "sn.nc"), "--num-steps", "4"]) == 0
    assert main([case["nml"], "--input-nc-path", str(ns), "--output-nc-path", str(d / "ns1.nc"), "--num-steps", "2",
                 "--restart-out", str(d / "ns.rst")]) == 0
    assert main([case["nml"], "--restart-in", str(d / "ns.rst"), "--output-nc-path", str(d / "ns2.nc"),
                 "--num-steps", "2"]) == 0
    with xr.open_dataset(d / "sn.nc") as sn, xr.open_dataset(d / "ns1.nc") as a, xr.open_dataset(d / "ns2.nc") as b:
        assert sn["lat"].values.tolist() == list(GRID.lat_array())
        assert a["lat"].values.tolist() == b["lat"].values.tolist() == list(GRID.lat_array()[::-1])
        for v in VARS:
            both = np.concatenate([a[v].values, b[v].values])
            assert np.array_equal(both[..., ::-1, :], sn[v].values), v


def test_restart_from_another_checkpoint_is_refused(case, capsys):
    d = case["dir"]
    assert main([case["nml"], "--output-nc-path", str(d / "r1.nc"), "--num-steps", "2",
                 "--restart-out", str(d / "r1.rst")]) == 0
    other = make_checkpoint(d / "other.pt", seed=5)
    status = main([case["nml"], "--checkpoint-path", str(other), "--restart-in", str(d / "r1.rst"),
                   "--output-nc-path", str(d / "r2.nc")])
    assert status == Status.CHECKPOINT
    assert "written with another checkpoint" in capsys.readouterr().err and not (d / "r2.nc").exists()


def test_bad_namelist_is_reported_before_any_work(case, tmp_path, capsys):
    bad = tmp_path / "bad.nml"
    bad.write_text("&rollout\n  num_step = 3\n/\n")
    assert main([str(bad), "--output-nc-path", str(tmp_path / "x.nc")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "num_step" in err and "num_steps" in err
    assert list(tmp_path.iterdir()) == [bad]
    assert main([case["nml"], "--output-every", "0"]) == 1
    assert "output_every" in capsys.readouterr().err


def test_quicklook_png_next_to_the_forecast(case):
    out = case["dir"] / "ql.nc"
    assert main([case["nml"], "--output-nc-path", str(out), "--set", "output.quicklook=true", "--num-steps", "2"]) == 0
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quicklook_leaves_matplotlib_and_pyplot_alone(case):
    """A library call must not switch the process's matplotlib backend or create pyplot figures."""
    import subprocess
    import sys
    from pathlib import Path

    out = case["dir"] / "ql2.nc"
    assert main([case["nml"], "--output-nc-path", str(out), "--num-steps", "2"]) == 0
    code = ("import sys, matplotlib\n"
            "matplotlib.rcParams['backend'] = 'svg'\n"
            "from mlscam.rollout.quicklook import write_quicklook\n"
            f"write_quicklook({str(out)!r})\n"
            "print(matplotlib.rcParams['backend'], 'matplotlib.pyplot' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["svg", "False"]
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"




@pytest.mark.decomposition
def test_run_forecast_on_fake_ranks_equals_the_serial_driver(case):
    """The same loop on 3 in-process ranks (host state via set_state + set_time) writes the serial file."""
    import cftime

    from component_case import config
    from mlscam.coupler import Component
    from mlscam.parallel import run_fake_world
    from mlscam.rollout import run_forecast

    d = case["dir"]
    assert main([case["nml"], "--output-nc-path", str(d / "serial3.nc"), "--start-time", "2"]) == 0
    x0 = initial_states()[2]
    t0 = cftime.DatetimeNoLeap(2001, 3, 1, 12)

    def rank_fn(comm):
        c = Component.init(config(case["ckpt"], case["init"]), comm, bounds=[(0, 2, 0, 12), (2, 6, 0, 7),
                                                                             (2, 6, 7, 12)][comm.Get_rank()])
        t = c.tile
        c.set_state(x0[t.lat0:t.lat1, t.lon0:t.lon1])
        c.set_time(t0, "hours since 2001-03-01 00:00:00", "noleap")
        path = run_forecast(c, num_steps=6, output_every=2, output_path=d / "fake3.nc", progress=False)
        c.finalize()
        return path

    assert run_fake_world(3, rank_fn) == [d / "fake3.nc"] * 3
    with xr.open_dataset(d / "serial3.nc") as a, xr.open_dataset(d / "fake3.nc") as b:
        assert list(a.time.values) == list(b.time.values)
        for v in VARS:
            assert np.array_equal(a[v].values, b[v].values), v
        assert b.attrs["mpi_ranks"] == 3


def test_another_grid_needs_allow_other_grid(case, tmp_path, capsys):
    from mlscam.grid import LatLonGrid
    from synthetic import make_fields, write_file

    g = LatLonGrid.equiangular(8, 16)
    init = tmp_path / "t8x16.nc"
    write_file(init, make_fields(1, g, 2, seed=3), g, [0.0], levels=[0.3, 0.8],
               time_units="hours since 2001-03-01 00:00:00")
    out = tmp_path / "f8x16.nc"
    status = main([case["nml"], "--input-nc-path", str(init), "--output-nc-path", str(out)])
    assert status == Status.CHECKPOINT and not out.exists()
    err = capsys.readouterr().err
    assert "is on a 8x16 grid, the component runs on 6x12" in err and "allow_other_grid = .true." in err
    assert main([case["nml"], "--input-nc-path", str(init), "--output-nc-path", str(out),
                 "--set", "rollout.allow_other_grid=true", "--num-steps", "2"]) == 0
    with xr.open_dataset(out) as ds:
        assert ds["temperature"].shape == (1, 2, 8, 16) and np.isfinite(ds["temperature"].values).all()


def test_output_initial_writes_the_decoded_initial_state_at_lead_0_first(case):
    out = case["dir"] / "init0.nc"
    assert main([case["nml"], "--output-nc-path", str(out), "--start-time", "1", "--num-steps", "4",
                 "--output-every", "2", "--output-initial"]) == 0
    em = serial_emulator(case["ckpt"])
    x0 = torch.from_numpy(initial_states()[1])
    ref = [x.numpy() for _, x in em.rollout(x0, 4, output_every=2)]
    with xr.open_dataset(out) as ds:
        assert ds.lead_time.values.tolist() == [0.0, 12.0, 24.0]
        assert [(t.day, t.hour) for t in ds.time.values] == [(1, 6), (1, 18), (2, 6)]  # initial time first
        with torch.no_grad():
            np.testing.assert_allclose(_state(ds, 0), em.decode(em.encode(x0)).numpy(), rtol=1e-6, atol=1e-6)
        for k in range(2):
            assert np.array_equal(_state(ds, k + 1), ref[k])


def test_num_steps_0_with_output_initial_writes_the_initial_state_alone(case):
    out = case["dir"] / "only0.nc"
    assert main([case["nml"], "--output-nc-path", str(out), "--num-steps", "0", "--output-initial"]) == 0
    with xr.open_dataset(out) as ds:
        assert ds.sizes["time"] == 1 and ds.lead_time.values.tolist() == [0.0]
        assert np.isfinite(_state(ds, 0)).all()


def test_num_steps_0_without_output_initial_is_an_error_that_says_what_to_do(case, tmp_path, capsys):
    out = tmp_path / "none.nc"
    assert main([case["nml"], "--output-nc-path", str(out), "--num-steps", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: rollout.num_steps = 0") and "no times" in err
    assert "--num-steps" in err and "--output-initial" in err and "output_initial = .true." in err
    assert not out.exists()
    nml = write_namelist(tmp_path / "zero.nml", case["ckpt"], case["init"], out, num_steps=0)
    assert main([str(nml)]) == 1 and "rollout.num_steps = 0" in capsys.readouterr().err
    assert main([str(nml), "--output-initial"]) == 0  # the namelist's 0 steps with the flag
    with xr.open_dataset(out) as ds:
        assert ds.lead_time.values.tolist() == [0.0]


def test_an_unwritable_restart_out_fails_before_stepping(case, monkeypatch, capsys, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "fc.nc"
    steps = []
    original = component_mod.Component.step
    monkeypatch.setattr(component_mod.Component, "step", lambda self, n=1: (steps.append(n), original(self, n)))
    status = main([case["nml"], "--output-nc-path", str(out), "--num-steps", "4",
                   "--restart-out", str(tmp_path / "file.txt" / "sub" / "r.rst")])
    assert status == Status.FILE_ERROR != 0
    err = capsys.readouterr().err
    assert "restart_out (--restart-out) = " in err and "cannot be written" in err and "Traceback" not in err
    assert steps == []  # not one step spent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # no forecast, no part file


def test_a_stale_part_file_of_a_killed_run_is_removed_by_the_next_run(case, tmp_path, capsys):
    out = tmp_path / "fc.nc"
    stale = tmp_path / ".fc.nc.999999999.x1y2z3.part"  # a pid no process has: a SIGKILLed run's
    legacy = tmp_path / ".fc.nc.8ab_c7d.part"  # the name older versions gave it
    stale.write_bytes(b"\0" * 4096)
    legacy.write_bytes(b"\0" * 4096)
    assert main([case["nml"], "--output-nc-path", str(out), "--num-steps", "2"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc.nc"]
    assert f"removed {stale}, a partial file of fc.nc left by an interrupted run" in capsys.readouterr().err


def test_an_interrupt_swallowed_during_a_write_still_ends_the_run(case, tmp_path, monkeypatch, capsys):
    """netCDF4 discards an exception raised while it checks a write (seen: 6 of 30 Ctrl-Cs went unnoticed and
    the run went on for ever); the driver must stop at the next step anyway, exit 130 and leave nothing."""
    import os
    import signal

    from mlscam.io import forecast

    real, calls = forecast.ForecastWriter.write, []

    def write(self, *args):
        calls.append(1)
        if len(calls) == 3:
            try:  # what netCDF4 does with a KeyboardInterrupt raised in its check (SIGTERM: see test_atomic)
                os.kill(os.getpid(), signal.SIGTERM)
            except KeyboardInterrupt:
                pass
        return real(self, *args)

    monkeypatch.setattr(forecast.ForecastWriter, "write", write)
    out = tmp_path / "fc.nc"
    assert main([case["nml"], "--output-nc-path", str(out), "--num-steps", "1000", "--output-every", "1"]) == 130
    assert len(calls) == 3 and list(tmp_path.iterdir()) == []
    assert "interrupted (signal SIGTERM); no forecast written" in capsys.readouterr().err


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_to_the_serial_driver_leaves_no_part_file(case, tmp_path, signame):
    """Ctrl-C (SIGINT) or SIGTERM (what mpirun sends its ranks) during the steps: a message, exit 130,
    and neither the forecast nor its hidden partial file."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "fc.nc"
    # SIGINT as a terminal delivers it: a test run started in the background (`cmd &` in a script) inherits
    # SIGINT ignored, and a program started so keeps ignoring it (POSIX), as the driver does; so the driver is
    # exec'd from a stub that restores SIGINT's default first (a disposition survives exec)
    argv = [sys.executable, "-m", "mlscam.rollout", str(case["nml"]), "--output-nc-path", str(out),
            "--num-steps", "1000000", "--output-every", "1"]
    stub = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
            "os.execv(sys.executable, sys.argv[1:])")
    proc = subprocess.Popen([sys.executable, "-c", stub, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 90
        while not any(p.stat().st_size > 40000 for p in tmp_path.glob(".fc.nc.*.part")):  # a few records in
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(getattr(signal, signame))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "no forecast written" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
