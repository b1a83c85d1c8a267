"""The latent filter inside the step (mlscam/model/filters.py): closed forms, the engine, decomposition."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from component_case import GRID, LAYOUT, config, initial_states, make_checkpoint, write_initial
from mlscam.emulator import Emulator
from mlscam.grid import LatLonGrid
from mlscam.model.filters import LatentFilter, smooth, smooth_tiles
from mlscam.parallel import run_fake_world
from mlscam.runtime import Component


def _field(fn, grid: LatLonGrid, latent: int = 3) -> torch.Tensor:
    j, i = np.meshgrid(np.arange(grid.nlat), np.arange(grid.nlon), indexing="ij")
    return torch.tensor(np.repeat(fn(j, i)[..., None], latent, -1).reshape(1, grid.ncol, latent), dtype=torch.float64)


def test_shapiro_filter_keeps_the_mean_and_removes_the_two_grid_wave():
    grid = LatLonGrid.equiangular(8, 16)
    index = torch.tensor(grid.stencil().index)
    const = _field(lambda j, i: np.full(j.shape, 3.5), grid)
    assert torch.allclose(smooth(const, index), const, rtol=0, atol=1e-14)
    # the checkerboard away from the pole rows (whose fold partner is the same row) has S z = 0
    board = _field(lambda j, i: (-1.0) ** (i + j), grid)
    inner = slice(grid.nlon, (grid.nlat - 1) * grid.nlon)
    assert torch.allclose(smooth(board, index)[:, inner], torch.zeros_like(board[:, inner]), atol=1e-14)
    # a 2-dx wave in longitude only: response cos^2(pi/2) in lon, 1 in lat -> 0
    lon_wave = _field(lambda j, i: (-1.0) ** i, grid)
    assert torch.allclose(smooth(lon_wave, index)[:, inner], torch.zeros_like(lon_wave[:, inner]), atol=1e-14)


def test_filter_coefficients_grow_poleward_of_polar_lat_and_are_capped():
    f = LatentFilter(0.1, 60.0)
    nu = f.coefficients(np.array([0.0, 45.0, 60.0, -75.0, 89.99]))
    assert nu[0] == nu[1] == nu[2] == 0.1
    assert nu[3] == pytest.approx(0.1 * np.cos(np.radians(60)) / np.cos(np.radians(75)))
    assert nu[4] == 1.0
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
        LatentFilter(1.5)


def test_the_filtered_step_is_the_mixer_step_minus_the_damping(tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    plain = Emulator.from_checkpoint(ckpt)
    nu = 0.3
    filtered = Emulator.from_checkpoint(ckpt, latent_filter=LatentFilter(nu))
    z = plain.encode(torch.from_numpy(initial_states()[0]))
    flat = z.reshape(1, GRID.ncol, -1)
    nu_col = filtered.engine.damping  # [ncol, 1], nu on every row (no polar boost)
    assert torch.equal(nu_col, torch.full_like(nu_col, nu))
    with torch.no_grad():
        expected = flat + (plain.engine.advance(flat) - nu_col * (flat - smooth(flat, plain.engine.tile_index)))
    assert torch.equal(filtered.step(z).reshape(1, GRID.ncol, -1), expected)


def test_the_step_smooths_the_tiles_the_mixer_gathered_bit_for_bit(tmp_path):
    """``S z`` from the mixer's chunks (``apply_plan(tile_fn=smooth_tiles)``, no second gather; chunks that pad)
    equals :func:`smooth`, and the checkpointed path of training gives the same increment."""
    from mlscam.model.chunks import apply_plan
    from mlscam.model.engine import Engine

    ckpt = make_checkpoint(tmp_path / "c.pt")
    em = Emulator.from_checkpoint(ckpt, latent_filter=LatentFilter(0.3, 50.0), chunk_size=20)  # 72 = 3*20 + 12
    e = em.engine
    z = em.encode(torch.from_numpy(initial_states()[0])).reshape(1, GRID.ncol, -1)
    z2 = torch.cat([z, z.flip(1)])  # two batch members
    with torch.no_grad():
        plain = apply_plan(em.model.mixer, z2, e.tile_plan(z2))
        dz, smoothed = apply_plan(em.model.mixer, z2, e.tile_plan(z2), tile_fn=smooth_tiles)
        assert torch.equal(dz, plain)
        assert torch.equal(smoothed, smooth(z2, e.tile_index))
        want = e.advance(z2)
    ckpt_engine = Engine(em.model, em.layout, em.grid, em.normalization, chunk_size=20, grad_checkpointing=True,
                         latent_filter=LatentFilter(0.3, 50.0))
    with torch.enable_grad():
        got = ckpt_engine.advance(z2.clone().requires_grad_())
    assert torch.equal(got.detach(), want)


def test_a_strong_filter_damps_the_grid_scale_of_a_rollout(tmp_path):
    """nu = 1 on a checkerboard perturbation: the 2-dx part shrinks far more than without the filter."""
    ckpt = make_checkpoint(tmp_path / "c.pt")
    plain, filtered = Emulator.from_checkpoint(ckpt), Emulator.from_checkpoint(ckpt, latent_filter=LatentFilter(1.0))
    z = plain.encode(torch.from_numpy(initial_states()[0]))
    j, i = np.meshgrid(np.arange(GRID.nlat), np.arange(GRID.nlon), indexing="ij")
    board = torch.tensor((-1.0) ** (i + j), dtype=z.dtype)[..., None]

    def board_amplitude(em):
        dz = em.step(z + board, 4) - em.step(z, 4)
        return float((dz * board).mean())

    assert abs(board_amplitude(filtered)) < 0.2 * abs(board_amplitude(plain))


def _component_on_ranks_equals_the_serial_emulator(tmp_path, nranks, layout, filt: LatentFilter, **rollout):
    from dataclasses import replace

    ckpt, init = make_checkpoint(tmp_path / "c.pt"), write_initial(tmp_path / "x.nc")
    cfg = config(ckpt, init, **rollout)
    cfg = replace(cfg, parallel=replace(cfg.parallel, layout=layout))
    em = Emulator.from_checkpoint(ckpt, latent_filter=filt)
    ref = em.decode(em.step(em.encode(torch.from_numpy(initial_states()[1])), 5)).numpy()

    def rank_fn(comm):
        c = Component.init(cfg, comm)
        c.set_state_from_file(init, 1)
        c.step(5)
        x = c.gather_state(root=0)
        c.finalize()
        return x

    got = run_fake_world(nranks, rank_fn)[0]
    assert np.array_equal(got, ref)


@pytest.mark.decomposition
@pytest.mark.parametrize("nranks,layout", [(2, (1, 2)), (4, (2, 2)), (3, (3, 1))])
def test_filtered_component_on_ranks_equals_the_serial_emulator_bit_for_bit(tmp_path, nranks, layout):
    _component_on_ranks_equals_the_serial_emulator(tmp_path, nranks, layout, LatentFilter(0.2, 50.0),
                                                   latent_filter=0.2, latent_filter_polar_lat=50.0)


def test_training_unrolls_step_through_the_same_filtered_engine(tmp_path):
    """The objective's unroll uses the filter of &model latent_filter: its step equals the inference step."""
    from mlscam.config import LossConfig
    from mlscam.train.objective import Objective

    ckpt = make_checkpoint(tmp_path / "c.pt")
    em = Emulator.from_checkpoint(ckpt, latent_filter=LatentFilter(0.4, 40.0))
    x = torch.from_numpy(initial_states()).unsqueeze(0)  # [1, 3, nlat, nlon, S]: a 2-step unroll

    def objective(filt):
        return Objective(model=em.model, layout=LAYOUT, grid=GRID, normalization=em.normalization,
                         loss=LossConfig(mse=1.0).build(), mode="global_rollout", chunk_size=16,
                         latent_truth=False, latent_filter=filt)

    with_filter, without = objective(LatentFilter(0.4, 40.0)), objective(None)
    z = em.encode(x[0, 0]).reshape(1, GRID.ncol, -1)
    with torch.no_grad():
        assert torch.equal(with_filter.engine.step_once(z)[0], em.engine.step_once(z)[0])
    loss_f, _ = with_filter({"x": x})
    loss_0, _ = without({"x": x})
    assert loss_f.item() != loss_0.item()
    loss_f.backward()  # gradients flow through the damping term
    assert all(p.grad is not None for p in em.model.mixer.parameters())


# -- the manifold projection (the second stabiliser) --------------------------------------------------------------
def test_projection_is_validated_and_read_from_model_and_rollout_groups():
    from mlscam.config import ModelConfig, RolloutConfig

    with pytest.raises(ValueError, match=r"projection must be in \[0, 1\]"):
        LatentFilter(0.0, 0.0, 1.5)
    assert LatentFilter(0.0, 0.0, 0.5).active and not LatentFilter(0.0, 0.0, 0.5).damps
    model = ModelConfig(latent_projection=0.25)
    assert LatentFilter.of(model).projection == 0.25
    assert LatentFilter.of(model, RolloutConfig()).projection == 0.25  # -1: keep the checkpoint's
    assert LatentFilter.of(model, RolloutConfig(latent_projection=0.0)).projection == 0.0
    assert model.same_parameters(ModelConfig())  # a runtime key: init_from and resume ignore it
    with pytest.raises(ValueError, match="latent_projection"):
        ModelConfig(latent_projection=2.0)


def test_the_projected_step_relaxes_towards_encode_of_decode(tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    plain = Emulator.from_checkpoint(ckpt)
    z = plain.encode(torch.from_numpy(initial_states()[0])).reshape(1, GRID.ncol, -1)
    e = plain.engine
    with torch.no_grad():
        z1 = z + e.advance(z)
        reenc = e.encode_normalized(e.decode_normalized(z1))
        full = Emulator.from_checkpoint(ckpt, latent_filter=LatentFilter(0.0, 0.0, 1.0))
        half = Emulator.from_checkpoint(ckpt, latent_filter=LatentFilter(0.0, 0.0, 0.5))
        assert torch.allclose(full.engine.step_once(z)[0], reenc, rtol=0, atol=1e-6)
        assert torch.equal(half.engine.step_once(z)[0], z1 + 0.5 * (reenc - z1))
        # alpha = 1 lands on the encoder's manifold: projecting again moves it only by the autoencoder's error
        again = full.engine.step_once(z)[0]
        drift = (full.engine.project(again) - again).abs().max()
        assert drift < (z1 - reenc).abs().max()


@pytest.mark.decomposition
@pytest.mark.parametrize("nranks,layout", [(2, (1, 2)), (3, (3, 1))])
def test_projected_component_on_ranks_equals_the_serial_emulator_bit_for_bit(tmp_path, nranks, layout):
    _component_on_ranks_equals_the_serial_emulator(tmp_path, nranks, layout, LatentFilter(0.1, 0.0, 0.5),
                                                   latent_filter=0.1, latent_projection=0.5)


def test_projection_every_is_validated_and_read_from_model_and_rollout_groups():
    from mlscam.config import ModelConfig, RolloutConfig

    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match=r"projection_every must be an integer >= 1"):
            LatentFilter(0.0, 0.0, 0.5, projection_every=bad)
    model = ModelConfig(latent_projection=0.5, latent_projection_every=3)
    assert LatentFilter.of(model).projection_every == 3
    assert LatentFilter.of(model, RolloutConfig()).projection_every == 3  # 0: keep the checkpoint's
    assert LatentFilter.of(model, RolloutConfig(latent_projection_every=1)).projection_every == 1
    assert ModelConfig().latent_projection_every == 1 and model.same_parameters(ModelConfig())  # a runtime key
    with pytest.raises(ValueError, match="latent_projection_every"):
        ModelConfig(latent_projection_every=0)
    with pytest.raises(ValueError, match="latent_projection_every"):
        RolloutConfig(latent_projection_every=-1)


def test_projection_every_m_projects_the_steps_that_bring_the_count_to_multiples_of_m(tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    every3 = Emulator.from_checkpoint(ckpt, latent_filter=LatentFilter(0.1, 0.0, 0.5, projection_every=3)).engine
    every1 = Emulator.from_checkpoint(ckpt, latent_filter=LatentFilter(0.1, 0.0, 0.5)).engine
    z = every1.encode(torch.from_numpy(initial_states()[0]).reshape(1, GRID.ncol, -1))
    assert [every3.projects_after(k) for k in range(7)] == [False, False, True, False, False, True, False]
    assert all(every1.projects_after(k) for k in range(7))
    with torch.no_grad():
        want = z
        for k in range(1, 6):  # steps 2..6 of a run: the ones bringing the count to 3 and 6 project
            want, _ = every3.step_once(want, project=k in (2, 5))
        assert torch.equal(every3.step(z, 5, start=1), want)
        # a run stepped in pieces is the run stepped at once
        assert torch.equal(every3.step(every3.step(z, 2, start=1), 3, start=3), want)
        assert not torch.equal(every1.step(z, 5, start=1), want)  # M = 3 is another run than M = 1
        # the default (M = 1) projects every step, whatever the start
        assert torch.equal(every1.step(z, 2, start=4), every1.step_once(every1.step_once(z)[0])[0])


@pytest.mark.decomposition
def test_projection_every_restarts_and_ranks_bit_for_bit(tmp_path):
    """M = 3 from the &rollout override: 5 steps on 1 rank equal 2 steps on 2 ranks, a restart, 3 steps on 3 ranks
    (the step count, hence the projection's phase, comes back from the restart), and the serial emulator."""
    ckpt, init = make_checkpoint(tmp_path / "c.pt"), write_initial(tmp_path / "x.nc")
    cfg = config(ckpt, init, latent_projection=0.5, latent_projection_every=3)
    path = tmp_path / "r.rst"

    def run(nsteps, restart_in=None, restart_out=None):
        def rank_fn(comm):
            c = Component.init(cfg, comm)
            if restart_in:
                c.read_restart(restart_in)
            else:
                c.set_state_from_file(init, 1)
            c.step(nsteps)
            if restart_out:
                c.write_restart(restart_out)
            z = c.gather_latent()
            c.finalize()
            return z
        return rank_fn

    full = run_fake_world(1, run(5))[0]
    run_fake_world(2, run(2, restart_out=path))
    continued = run_fake_world(3, run(3, restart_in=path))[0]
    assert torch.equal(continued, full)
    em = Emulator.from_checkpoint(ckpt, latent_filter=LatentFilter(0.0, 0.0, 0.5, projection_every=3))
    serial = em.step(em.encode(torch.from_numpy(initial_states()[1])), 5)
    assert torch.equal(serial.reshape(full.shape), full)


def test_substeps_are_validated_and_read_from_model_and_rollout_groups():
    from mlscam.config import ModelConfig, RolloutConfig

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"substeps must be an integer >= 1"):
            LatentFilter(substeps=bad)
    assert LatentFilter(substeps=2).active  # sub-stepping alone makes the engine read the settings
    model = ModelConfig(latent_substeps=2)
    assert LatentFilter.of(model).substeps == 2
    assert LatentFilter.of(model, RolloutConfig()).substeps == 2  # 0: keep the checkpoint's
    assert LatentFilter.of(model, RolloutConfig(latent_substeps=3)).substeps == 3
    assert model.same_parameters(ModelConfig())  # a runtime key: init_from and export accept it
    with pytest.raises(ValueError, match="latent_substeps"):
        ModelConfig(latent_substeps=0)


def test_a_substepped_step_is_k_partial_steps_each_from_its_own_tiles(tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    one = Emulator.from_checkpoint(ckpt, latent_filter=LatentFilter(0.2, 50.0)).engine
    two = Emulator.from_checkpoint(ckpt, latent_filter=LatentFilter(0.2, 50.0, substeps=2)).engine
    z = one.encode(torch.from_numpy(initial_states()[0]).reshape(1, GRID.ncol, -1))
    with torch.no_grad():
        half = z + one.advance(z) / 2
        want = half + one.advance(half) / 2
        got, dz = two.step_once(z)
    assert torch.equal(got, want) and torch.equal(dz, want - z)
    assert not torch.equal(got, one.step_once(z)[0])
    # the first-order agreement that makes a trained one-step model a start for a sub-stepped one
    with torch.no_grad():
        step1 = one.step_once(z)[0]
    assert (got - step1).abs().max() < 0.5 * (step1 - z).abs().max()


@pytest.mark.decomposition
@pytest.mark.parametrize("nranks,layout", [(2, (1, 2)), (3, (3, 1))])
def test_substepped_component_on_ranks_equals_the_serial_emulator_bit_for_bit(tmp_path, nranks, layout):
    """Every sub-step exchanges its own halo: the tiled component stays the serial emulator, bit for bit."""
    _component_on_ranks_equals_the_serial_emulator(tmp_path, nranks, layout, LatentFilter(0.1, 0.0, 0.5, substeps=2),
                                                   latent_filter=0.1, latent_projection=0.5, latent_substeps=2)
