"""The global dry-mass fixer in THE latent step (mlscam/model/mass.py): the demo conserves its global-mean
surface pressure, configuration errors, the engine's contract, restarts and decompositions bit for bit,
and training."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import xarray as xr

from component_case import (GRID, LAYOUT, config, initial_states, make_checkpoint, serial_fixed_outputs,
                            write_initial, write_namelist)
from mlscam.assets import resolve_asset
from mlscam.config import Config, ConfigError, DataConfig, ModelConfig, RolloutConfig, TrainConfig
from mlscam.emulator import Emulator
from mlscam.model.filters import LatentFilter
from mlscam.parallel import run_fake_world
from mlscam.runtime import Component

torch.set_num_threads(1)
FIXER = LatentFilter(0.0, 0.0, 0.5, True)  # the tiny case: projection 0.5 with the fixer
FIXER_ROLLOUT = {"latent_projection": 0.5, "mass_fixer": 1}


def _global_mean_ps(x, grid=GRID, layout=LAYOUT) -> np.ndarray:
    """Area-weighted global mean of surface pressure of ``x [..., nlat, nlon, S]`` (float64, plain numpy)."""
    ps = np.asarray(x, dtype=np.float64)[..., layout.slice_of("surface_pressure").start]
    return (ps * grid.area_weights()).mean(axis=(-2, -1))


def _float32_rounding(x, layout=LAYOUT) -> float:
    """Half a float32 ulp of the largest surface pressure: the most a uniform shift can miss by in float32."""
    ps = np.abs(np.asarray(x)[..., layout.slice_of("surface_pressure").start]).max()
    return 0.5 * float(np.spacing(np.float32(ps))) + 1e-9


# -- the demo -------------------------------------------------------------------------------------------------------
def test_the_demo_keeps_its_global_mean_surface_pressure_with_the_fixer_and_not_without():
    ckpt = resolve_asset("mlscam:demo/checkpoint.pt")
    from mlscam.data.source import open_source

    src = open_source(DataConfig(files=(str(resolve_asset("mlscam:demo/initial_state.nc")),),
                                 variables_3d=("u", "v", "temperature"), time_step_hours=1.0))
    x0 = torch.from_numpy(src.read(0))
    fixed = Emulator.from_checkpoint(ckpt, warn_blas=False)
    model = fixed.checkpoint.config.model
    assert model.latent_projection > 0 and model.mass_fixer  # the shipped demo conserves dry mass
    plain = Emulator.from_checkpoint(ckpt, warn_blas=False,
                                     latent_filter=LatentFilter.of(model, RolloutConfig(mass_fixer=0)))
    grid, layout = plain.grid, plain.layout
    g0 = _global_mean_ps(x0.numpy(), grid, layout)
    assert float(fixed.mass_target(x0)) == pytest.approx(float(g0), abs=1e-8)
    drift_plain = [abs(_global_mean_ps(x.numpy(), grid, layout) - g0) for _, x in plain.rollout(x0, 48, output_every=8)]
    drift_fixed = []
    for step, x in fixed.rollout(x0, 48, output_every=8):
        drift_fixed.append(abs(_global_mean_ps(x.numpy(), grid, layout) - g0))
        assert drift_fixed[-1] <= _float32_rounding(x.numpy(), layout), (step, drift_fixed[-1])
    assert max(drift_plain) > 1.0, drift_plain  # Pa: the unfixed demo moves
    assert len(drift_fixed) == 6


# -- configuration --------------------------------------------------------------------------------------------------
def test_configuration_errors_say_what_to_change():
    with pytest.raises(ConfigError, match=r"model.mass_fixer = \.true\.: needs the manifold projection.*"
                                          r"latent_projection > 0"):
        ModelConfig(mass_fixer=True)
    ModelConfig(mass_fixer=True, latent_projection=0.1)
    with pytest.raises(ConfigError, match=r"rollout.mass_fixer = 2: must be -1 .*0 \(off\) or 1 \(on\)"):
        RolloutConfig(mass_fixer=2)
    with pytest.raises(ConfigError, match=r"rollout.mass_fixer = 1: = 1 needs the manifold projection"):
        RolloutConfig(mass_fixer=1, latent_projection=0.0)
    with pytest.raises(ConfigError, match=r"mass_fixer = \.true\. with &train mode = 'single_column'"):
        Config(model=ModelConfig(mass_fixer=True, latent_projection=0.1), train=TrainConfig(mode="single_column"))
    with pytest.raises(ValueError, match=r"mass fixer acts inside the manifold projection.*latent_projection > 0"):
        LatentFilter(0.1, 0.0, 0.0, True)


def test_the_rollout_group_overrides_the_checkpoint_and_the_key_changes_no_parameter():
    on = ModelConfig(latent_projection=0.1, mass_fixer=True)
    assert LatentFilter.of(on).mass_fixer and LatentFilter.of(on, RolloutConfig()).mass_fixer  # -1: keep
    assert not LatentFilter.of(on, RolloutConfig(mass_fixer=0)).mass_fixer
    assert LatentFilter.of(ModelConfig(latent_projection=0.1), RolloutConfig(mass_fixer=1)).mass_fixer
    with pytest.raises(ValueError, match="mass fixer acts inside the manifold projection"):
        LatentFilter.of(ModelConfig(), RolloutConfig(mass_fixer=1))  # the checkpoint has no projection
    assert on.same_parameters(ModelConfig()) and "mass_fixer" in ModelConfig.RUNTIME_KEYS


def test_a_layout_without_surface_pressure_is_a_clear_error(tmp_path):
    from mlscam.layout import ColumnLayout
    from mlscam.model import build_model
    from mlscam.model.engine import Engine
    from mlscam.normalization import Normalization

    layout = ColumnLayout(("u",), (), (0.5,), static_features=("sin_lat",))
    model = build_model(ModelConfig(latent_dim=4, encoder_hidden=8, decoder_hidden=8, channel_hidden=8,
                                    mixer_blocks=1, heads=2, chunk_size=16), layout)
    with pytest.raises(ValueError, match=r"no such 2-D variable.*mass_fixer = \.false\..*variables_2d"):
        Engine(model, layout, GRID, Normalization.identity(layout.n_state), chunk_size=16, latent_filter=FIXER)


def test_a_step_needs_the_target_and_the_fixed_step_is_the_projection_of_the_shifted_state(tmp_path):
    em = Emulator.from_checkpoint(make_checkpoint(tmp_path / "c.pt"), latent_filter=FIXER, warn_blas=False)
    x = torch.from_numpy(initial_states()[:2])  # two batch members
    z = em.encode(x)
    flat = z.reshape(2, GRID.ncol, -1)
    with pytest.raises(ValueError, match=r"mass fixer is on.*needs mass_target"):
        em.engine.step_once(flat)  # the engine's step always needs it
    with torch.no_grad():  # Emulator.step without a target keeps the mass of the decoded state it is given
        own = em.engine.mass_target(em.engine.decode(flat))
    assert torch.equal(em.step(z), em.step(z, mass_target=own))
    target = em.mass_target(x)
    assert target.shape == (2,) and target.dtype == torch.float64
    with pytest.raises(ValueError, match=r"one value per state \(2\)"):
        em.step(z, mass_target=target[:1])
    e, flat = em.engine, z.reshape(2, GRID.ncol, -1)
    with torch.no_grad():
        z1 = flat + e.advance(flat)
        xd = e.decode(z1)
        ch = LAYOUT.slice_of("surface_pressure").start
        xs = xd.clone()
        xs[..., ch] += (target - e.mass.global_mean(xd[..., ch])).float()[:, None]
        want = z1 + 0.5 * (e.encode(xs) - z1)
        got = em.step(z, mass_target=target).reshape(2, GRID.ncol, -1)
    assert torch.equal(got, want)
    out = em.decode(em.step(z, 3, mass_target=target), mass_target=target).numpy()
    assert np.all(np.abs(_global_mean_ps(out) - target.numpy()) <= _float32_rounding(out))
    raw = em.decode(em.step(z, 3, mass_target=target)).numpy()
    assert np.array_equal(np.delete(out, ch, -1), np.delete(raw, ch, -1))  # the shift touches ps alone
    assert np.ptp(out[..., ch] - raw[..., ch], axis=(1, 2)).max() <= 2 * _float32_rounding(out)  # uniformly


def test_the_graph_stepper_body_steps_with_the_target_like_the_engine(tmp_path):
    from mlscam.model.graphs import GraphSteps

    em = Emulator.from_checkpoint(make_checkpoint(tmp_path / "c.pt"), latent_filter=FIXER, warn_blas=False)
    x = torch.from_numpy(initial_states()[:2])
    z, target = em.encode(x).reshape(2, GRID.ncol, -1), em.mass_target(x)
    with torch.no_grad():
        steps = GraphSteps(em.engine, capture=False, max_steps=3)
        assert torch.equal(steps.step(z, 7, target), em.engine.step(z, 7, target))
        with pytest.raises(ValueError, match="needs mass_target"):
            steps.step(z, 1)


# -- the component: decompositions, outputs, restarts -----------------------------------------------------------------
@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("mass")
    ckpt, init = make_checkpoint(d / "m.pt"), write_initial(d / "init.nc")
    return {"dir": d, "ckpt": ckpt, "init": init, "cfg": config(ckpt, init, d / "f.nc", **FIXER_ROLLOUT)}


@pytest.mark.decomposition
@pytest.mark.parametrize("nranks,layout", [(1, (0, 0)), (2, (1, 2)), (3, (3, 1)), (4, (2, 2))])
def test_component_on_ranks_equals_the_serial_emulator_bit_for_bit(case, nranks, layout):
    cfg = replace(case["cfg"], parallel=replace(case["cfg"].parallel, layout=layout))
    refs, target = serial_fixed_outputs(case["ckpt"], FIXER, 3)

    def rank_fn(comm):
        c = Component.init(cfg, comm)
        c.set_state_from_file(case["init"], 1)
        got = []
        for _ in range(3):
            c.step(2)
            got.append(c.gather_state(root=0))
        mine = c.get_variable("surface_pressure")
        t = c.mass_target()
        c.finalize()
        return got, mine, t

    out = run_fake_world(nranks, rank_fn)
    for a, b in zip(out[0][0], refs):
        assert np.array_equal(a, b)
    assert all(t == float(target) for _, _, t in out)  # the same bits on every rank
    full = refs[-1][..., LAYOUT.slice_of("surface_pressure").start]
    assert abs(_global_mean_ps(refs[-1]) - float(target)) <= _float32_rounding(refs[-1])
    if nranks == 1:
        assert np.array_equal(out[0][1], full)


def test_tendencies_are_those_of_the_fixed_outputs(case):
    from mlscam.parallel import SelfComm

    c = Component.init(case["cfg"], SelfComm())
    c.set_state_from_file(case["init"], 0)
    c.step(1)
    before = c.get_state().astype(np.float64)
    c.step(1)
    after = c.get_state().astype(np.float64)
    assert np.array_equal(c.get_tendencies(), ((after - before) / c.dt_seconds).astype(np.float32))
    c.finalize()


@pytest.mark.decomposition
@pytest.mark.parametrize("ranks_before,ranks_after", [(1, 1), (2, 3)])
def test_restart_continues_bit_for_bit_with_the_target_of_the_first_run(case, ranks_before, ranks_after):
    path = case["dir"] / f"restart_{ranks_before}_{ranks_after}.pt"

    def run(comm, steps, restart_in=None, restart_out=None):
        c = Component.init(case["cfg"], comm)
        if restart_in:
            c.read_restart(restart_in)
        else:
            c.set_state_from_file(case["init"], 2)
        c.step(steps)
        if restart_out:
            c.write_restart(restart_out)
        out = c.gather_latent(), c.gather_state(), c.mass_target()
        c.finalize()
        return out

    z_full, x_full, t_full = run_fake_world(1, lambda comm: run(comm, 4))[0]
    run_fake_world(ranks_before, lambda comm: run(comm, 2, restart_out=path))
    assert torch.load(path)["mass_target"] == t_full
    z, x, t = run_fake_world(ranks_after, lambda comm: run(comm, 2, restart_in=path))[0]
    assert torch.equal(z, z_full) and np.array_equal(x, x_full) and t == t_full


def test_a_restart_without_a_target_takes_the_decoded_restart_state(case):
    from mlscam.parallel import SelfComm

    off = config(case["ckpt"], case["init"], case["dir"] / "g.nc", latent_projection=0.5)
    path = case["dir"] / "no_target.pt"
    c = Component.init(off, SelfComm())
    c.set_state_from_file(case["init"], 0)
    c.step(2)
    c.write_restart(path)
    raw = c.get_state()
    c.finalize()
    assert torch.load(path)["mass_target"] is None
    c = Component.init(case["cfg"], SelfComm())
    c.read_restart(path)
    assert c.mass_target() == pytest.approx(float(_global_mean_ps(raw)), abs=1e-6)
    c.finalize()


def test_the_rollout_driver_restarts_bit_for_bit_with_the_fixer(case):
    from mlscam.rollout.__main__ import main

    d = case["dir"]
    nml = str(write_namelist(d / "run.nml", case["ckpt"], case["init"], d / "x.nc", num_steps=4, output_every=2))
    on = ["--set", "rollout.mass_fixer=1", "--set", "rollout.latent_projection=0.5"]
    assert main([nml, *on, "--output-nc-path", str(d / "full.nc")]) == 0
    assert main([nml, *on, "--output-nc-path", str(d / "a.nc"), "--num-steps", "2", "--restart-out",
                 str(d / "half.rst")]) == 0
    assert main([nml, *on, "--output-nc-path", str(d / "b.nc"), "--num-steps", "2", "--restart-in",
                 str(d / "half.rst")]) == 0
    assert main([nml, "--output-nc-path", str(d / "plain.nc")]) == 0
    with xr.open_dataset(d / "full.nc") as f, xr.open_dataset(d / "a.nc") as a, xr.open_dataset(d / "b.nc") as b, \
            xr.open_dataset(d / "plain.nc") as p:
        for v in ("u", "v", "temperature", "surface_pressure"):
            assert np.array_equal(np.concatenate([a[v].values, b[v].values]), f[v].values), v
        ps = f["surface_pressure"].values.astype(np.float64)
        lat_w = GRID.area_weights()  # the file is south to north like the initial state
        g0 = _global_mean_ps(initial_states()[0])
        assert np.all(np.abs((ps * lat_w).mean(axis=(-2, -1)) - g0) <= 0.5 * np.spacing(np.float32(ps.max())))
        assert not np.array_equal(p["surface_pressure"].values, f["surface_pressure"].values)


# -- with latent_projection_every ----------------------------------------------------------------------------------
FIXER_EVERY2 = LatentFilter(0.0, 0.0, 0.5, True, projection_every=2)  # the fixer on every second step only


def test_projection_every_2_fixes_on_projecting_steps_and_every_decoded_output_keeps_the_target(tmp_path):
    """M = 2: the fixer lives inside the projection, so the odd steps of a run (no projection) are the plain
    M = 2 step bit for bit and the even ones differ; every decoded output, projecting step or not, has the
    initial global-mean surface pressure (the reproducible sum) to float32 rounding; pieces and the static
    stepper equal the run stepped at once."""
    from mlscam.model.graphs import GraphSteps

    ckpt = make_checkpoint(tmp_path / "c.pt")
    em = Emulator.from_checkpoint(ckpt, latent_filter=FIXER_EVERY2, warn_blas=False)
    plain = Emulator.from_checkpoint(ckpt, latent_filter=LatentFilter(0.0, 0.0, 0.5, projection_every=2),
                                     warn_blas=False)
    x0 = torch.from_numpy(initial_states()[:2])
    target = em.mass_target(x0)
    z = em.encode(x0)
    assert torch.equal(em.step(z, 1, mass_target=target, start=0), plain.step(z, 1, start=0))  # no projection
    assert not torch.equal(em.step(z, 1, mass_target=target, start=1), plain.step(z, 1, start=1))  # the fixer
    outputs = list(em.rollout(x0, 6, output_every=1))
    assert [k for k, _ in outputs] == [1, 2, 3, 4, 5, 6]
    for k, x in outputs:
        got = em.mass_target(x)  # the fixed-point global mean of the decoded output
        assert torch.all((got - target).abs() <= _float32_rounding(x.numpy())), (k, got - target)
        assert np.all(np.abs(_global_mean_ps(x.numpy()) - target.numpy()) <= _float32_rounding(x.numpy())), k
    # the run's latents: at once, in pieces across a projection phase, and from the static (graph) stepper
    with torch.no_grad():
        flat = z.reshape(2, GRID.ncol, -1)
        once = em.engine.step(flat, 6, target)
        assert torch.equal(em.engine.step(em.engine.step(flat, 3, target), 3, target, start=3), once)
        assert not torch.equal(em.engine.step(em.engine.step(flat, 3, target), 3, target), once)  # phase lost
        assert torch.equal(GraphSteps(em.engine, capture=False, max_steps=4).step(flat, 6, target), once)
        with pytest.raises(ValueError, match="needs mass_target"):
            em.engine.step(flat, 1)  # also on a step that does not project
    assert torch.equal(em.decode(once.reshape(z.shape), mass_target=target), outputs[-1][1])


@pytest.mark.decomposition
@pytest.mark.parametrize("ranks_before,ranks_after", [(1, 1), (2, 3)])
def test_projection_every_2_restarts_across_a_projection_phase_bit_for_bit_with_the_fixer(case, ranks_before,
                                                                                         ranks_after):
    """Restart after 3 steps (the next step projects): 3 + 3 steps on other rank counts equal 6 steps at once and
    the serial emulator, with the first run's target; the decoded state keeps the initial global mean."""
    cfg = replace(case["cfg"], rollout=replace(case["cfg"].rollout, latent_projection_every=2))
    path = case["dir"] / f"restart_every2_{ranks_before}_{ranks_after}.pt"

    def run(comm, steps, restart_in=None, restart_out=None):
        c = Component.init(cfg, comm)
        if restart_in:
            c.read_restart(restart_in)
        else:
            c.set_state_from_file(case["init"], 2)
        c.step(steps)
        if restart_out:
            c.write_restart(restart_out)
        out = c.gather_latent(), c.gather_state(), c.mass_target(), c.step_count
        c.finalize()
        return out

    z_full, x_full, t_full, n_full = run_fake_world(1, lambda comm: run(comm, 6))[0]
    run_fake_world(ranks_before, lambda comm: run(comm, 3, restart_out=path))
    assert torch.load(path)["mass_target"] == t_full
    z, x, t, n = run_fake_world(ranks_after, lambda comm: run(comm, 3, restart_in=path))[0]
    assert n == n_full == 6
    assert torch.equal(z, z_full) and np.array_equal(x, x_full) and t == t_full
    em = Emulator.from_checkpoint(case["ckpt"], latent_filter=FIXER_EVERY2, warn_blas=False)
    x0 = torch.from_numpy(initial_states()[2])
    target = em.mass_target(x0)
    assert float(target) == t_full
    serial = em.step(em.encode(x0), 6, mass_target=target)
    assert torch.equal(serial.reshape(z_full.shape), z_full)
    assert np.array_equal(em.decode(serial, mass_target=target).numpy(), x_full)
    assert abs(_global_mean_ps(x_full) - t_full) <= _float32_rounding(x_full)


# -- training -------------------------------------------------------------------------------------------------------
def test_training_unrolls_conserve_the_first_state_of_each_window_with_a_detached_shift(tmp_path):
    from mlscam.config import LossConfig
    from mlscam.train.objective import Objective

    em = Emulator.from_checkpoint(make_checkpoint(tmp_path / "c.pt"), warn_blas=False)
    x = torch.from_numpy(initial_states()).unsqueeze(0)  # [1, 3, nlat, nlon, S]: a 2-step window

    def objective(filt, mode="global_rollout"):
        return Objective(model=em.model, layout=LAYOUT, grid=GRID, normalization=em.normalization,
                         loss=LossConfig(mse=1.0).build(), mode=mode, chunk_size=16, latent_truth=False,
                         latent_filter=filt)

    fixed, plain = objective(FIXER), objective(LatentFilter(0.0, 0.0, 0.5))
    e = fixed.engine
    target = e.mass_target(x[:, 0].flatten(1, 2))
    z = e.encode(x[:, 0].flatten(1, 2))
    with torch.no_grad():
        z1 = e.step_once(z, target)[0]
        pred = e.norm.inverse(fixed._decode(z1, target)).numpy().reshape(1, *GRID.shape, -1)
    assert abs(_global_mean_ps(pred)[0] - float(target[0])) <= 2 * _float32_rounding(pred)
    loss_f, _ = fixed({"x": x})
    loss_p, _ = plain({"x": x})
    assert torch.isfinite(loss_f) and loss_f.item() != loss_p.item()
    loss_f.backward()
    for net in (em.model.encoder, em.model.mixer, em.model.decoder):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    with pytest.raises(ValueError, match="needs whole globes"):
        objective(FIXER, "single_column")


def test_training_unrolls_with_projection_every_2_fix_on_the_projecting_steps_only(tmp_path):
    """M = 2 in a 2-step window: step 1 of the unroll does not project (the plain M = 2 step, no global sum), step 2
    projects with the fixer; predictions get the shift after both; the loss has finite gradients."""
    from mlscam.config import LossConfig
    from mlscam.train.objective import Objective

    em = Emulator.from_checkpoint(make_checkpoint(tmp_path / "c.pt"), warn_blas=False)
    x = torch.from_numpy(initial_states()).unsqueeze(0)  # [1, 3, nlat, nlon, S]

    def objective(filt):
        return Objective(model=em.model, layout=LAYOUT, grid=GRID, normalization=em.normalization,
                         loss=LossConfig(mse=1.0).build(), mode="global_rollout", chunk_size=16, latent_truth=False,
                         latent_filter=filt)

    every2, every1 = objective(FIXER_EVERY2), objective(FIXER)
    plain2 = objective(LatentFilter(0.0, 0.0, 0.5, projection_every=2))
    e = every2.engine
    target = e.mass_target(x[:, 0].flatten(1, 2))
    z = e.encode(x[:, 0].flatten(1, 2))
    with torch.no_grad():
        z1 = e.step_once(z, target, project=e.projects_after(0))[0]
        assert torch.equal(z1, plain2.engine.step_once(z, project=False)[0])  # the first step does not project
        z2 = e.step_once(z1, target, project=e.projects_after(1))[0]
        for zk in (z1, z2):
            pred = e.norm.inverse(every2._decode(zk, target)).numpy().reshape(1, *GRID.shape, -1)
            assert abs(_global_mean_ps(pred)[0] - float(target[0])) <= 2 * _float32_rounding(pred)
    loss2, _ = every2({"x": x})
    loss1, _ = every1({"x": x})
    assert torch.isfinite(loss2) and loss2.item() != loss1.item()
    loss2.backward()
    for net in (em.model.encoder, em.model.mixer, em.model.decoder):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
