"""The polar wind fixer (mlscam/model/polar.py): [v] = 0 in the rows next to the poles, inside the projection and on
every decoded output; configuration errors; reproducible zonal means on any decomposition; the engine, the graph
stepper, training, the shipped demo, the component on 1-4 ranks and checkpoint export."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from component_case import (GRID, LAYOUT, config, initial_states, make_checkpoint, serial_fixed_outputs,
                            write_initial)
from mlscam.config import Config, ConfigError, ModelConfig, RolloutConfig, TrainConfig, apply_overrides
from mlscam.emulator import Emulator
from mlscam.fixedsum import add_partials, partial_sums, to_float
from mlscam.model.engine import Domain
from mlscam.model.filters import LatentFilter
from mlscam.model.polar import PolarWindFixer, polar_rows
from mlscam.parallel import run_fake_world
from mlscam.runtime import Component, ComponentError

torch.set_num_threads(1)
V = LAYOUT.slice_of("v")
PS = LAYOUT.slice_of("surface_pressure").start
POLAR = LatentFilter(0.0, 0.0, 0.5, polar_wind_rows=2)  # the tiny case: projection 0.5, 2 rows per pole
BOTH = LatentFilter(0.0, 0.0, 0.5, True, polar_wind_rows=2)  # with the mass fixer
PLAIN = LatentFilter(0.0, 0.0, 0.5)


def _zonal_v(x, layout=LAYOUT) -> np.ndarray:
    """``[v]`` of ``x [..., nlat, nlon, S]`` in float64 numpy: ``[..., nlat, nlev]``."""
    return np.asarray(x, dtype=np.float64)[..., layout.slice_of("v")].mean(-2)


def _v_rounding(x, layout=LAYOUT) -> float:
    """The most float32 rounding leaves of a removed zonal mean: one ulp of the largest |v|."""
    return float(np.spacing(np.float32(np.abs(np.asarray(x)[..., layout.slice_of("v")]).max())))


def _states(batch=2, seed=0) -> torch.Tensor:
    """Random physical states ``[B, ncol, S]`` float32 with winds of tens of m/s and a nonzero [v] everywhere."""
    g = torch.Generator().manual_seed(seed)
    x = 20.0 * torch.randn(batch, GRID.ncol, LAYOUT.n_state, generator=g) + 3.0
    x[..., PS] = 1e5 + 500.0 * torch.randn(batch, GRID.ncol, generator=g)
    return x


# -- the fix itself -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3])
def test_fix_zeroes_the_zonal_mean_v_in_the_polar_rows_and_changes_nothing_else(k):
    fixer = PolarWindFixer(LAYOUT, GRID, Domain.whole(GRID), k)
    x = _states()
    fixed = fixer.fix(x)
    assert fixed.dtype == x.dtype and fixed.shape == x.shape
    a, b = x.numpy().reshape(2, *GRID.shape, -1), fixed.numpy().reshape(2, *GRID.shape, -1)
    rows = polar_rows(GRID.nlat, k)
    assert list(rows) == list(range(k)) + list(range(GRID.nlat - k, GRID.nlat))
    other = np.setdiff1d(np.arange(GRID.nlat), rows)
    assert np.abs(_zonal_v(a)[:, rows]).min() > 1e-2  # there was something to remove
    assert np.abs(_zonal_v(b)[:, rows]).max() <= _v_rounding(b)  # [v] = 0 to float32 rounding
    assert np.array_equal(b[:, other], a[:, other])  # other rows: the same bits
    assert np.array_equal(np.delete(b, np.r_[V], -1), np.delete(a, np.r_[V], -1))  # other channels: the same bits
    # the eddies are kept: v - [v] in float32 of the float64 mean
    mean = _zonal_v(a)[:, rows].astype(np.float32)  # [B, 2k, nlev]
    assert np.array_equal(b[:, rows][..., V], a[:, rows][..., V] - mean[:, :, None, :])
    assert torch.equal(fixer.fix(fixed), fixer.fix(fixed))  # deterministic
    with pytest.raises(ValueError, match=r"takes states \[B, 72, S\]"):
        fixer.fix(x[0])


def test_the_correction_carries_no_gradient():
    fixer = PolarWindFixer(LAYOUT, GRID, Domain.whole(GRID), 2)
    x = _states().requires_grad_(True)
    fixer.fix(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # the identity's gradient: the subtracted mean is a constant


def test_a_layout_without_v_and_bad_rows_are_clear_errors():
    from mlscam.layout import ColumnLayout
    from mlscam.model import build_model
    from mlscam.model.engine import Engine
    from mlscam.normalization import Normalization

    layout = ColumnLayout(("u", "temperature"), ("surface_pressure",), (0.5,), static_features=("sin_lat",))
    with pytest.raises(ValueError, match=r"no such 3-D variable.*polar_wind_fixer = 0.*'v' in &data variables_3d"):
        PolarWindFixer(layout, GRID, Domain.whole(GRID), 1)
    model = build_model(ModelConfig(latent_dim=4, encoder_hidden=8, decoder_hidden=8, channel_hidden=8,
                                    mixer_blocks=1, heads=2, chunk_size=16), layout)
    with pytest.raises(ValueError, match=r"no such 3-D variable.*polar_wind_fixer = 0"):
        Engine(model, layout, GRID, Normalization.identity(layout.n_state), chunk_size=16, latent_filter=POLAR)
    for bad in (0, 4, -1, True, 1.5):
        with pytest.raises(ValueError, match=r"rows must be an integer in \[1, nlat // 2 = 3\]"):
            PolarWindFixer(LAYOUT, GRID, Domain.whole(GRID), bad)


# -- configuration --------------------------------------------------------------------------------------------------
def test_configuration_errors_say_what_to_change():
    with pytest.raises(ConfigError, match=r"model.polar_wind_fixer = 2: needs the manifold projection.*"
                                          r"latent_projection > 0.*polar_wind_fixer = 0"):
        ModelConfig(polar_wind_fixer=2)
    assert ModelConfig(polar_wind_fixer=2, latent_projection=0.1).polar_wind_fixer == 2
    with pytest.raises(ConfigError, match=r"model.polar_wind_fixer = -1: must be >= 0"):
        ModelConfig(polar_wind_fixer=-1, latent_projection=0.1)
    with pytest.raises(ConfigError, match=r"rollout.polar_wind_fixer = -2: must be -1 .*0 \(off\) or k > 0"):
        RolloutConfig(polar_wind_fixer=-2)
    with pytest.raises(ConfigError, match=r"rollout.polar_wind_fixer = 1: > 0 needs the manifold projection"):
        RolloutConfig(polar_wind_fixer=1, latent_projection=0.0)
    RolloutConfig(polar_wind_fixer=0, latent_projection=0.0)  # off needs nothing
    with pytest.raises(ConfigError, match=r"polar_wind_fixer = 2 with &train mode = 'single_column'"):
        Config(model=ModelConfig(polar_wind_fixer=2, latent_projection=0.1), train=TrainConfig(mode="single_column"))
    cfg = apply_overrides(Config(), ["rollout.polar_wind_fixer=2", "model.latent_projection=0.1",
                                     "model.polar_wind_fixer=1"])
    assert cfg.rollout.polar_wind_fixer == 2 and cfg.model.polar_wind_fixer == 1
    assert RolloutConfig().polar_wind_fixer == -1 and ModelConfig().polar_wind_fixer == 0


def test_latent_filter_validation_and_the_rollout_override():
    assert LatentFilter().polar_wind_rows == 0
    # the new field is the last one: the older positional order still holds
    assert LatentFilter(0.0, 0.0, 0.5, True, 2, 3) == LatentFilter(projection=0.5, mass_fixer=True,
                                                                     projection_every=2, polar_wind_rows=3)
    with pytest.raises(ValueError, match=r"polar wind fixer acts inside the manifold projection.*polar_wind_fixer = 0"):
        LatentFilter(0.1, 0.0, 0.0, polar_wind_rows=1)
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match=r"polar_wind_rows must be an integer >= 0"):
            LatentFilter(0.0, 0.0, 0.5, polar_wind_rows=bad)
    on = ModelConfig(latent_projection=0.1, polar_wind_fixer=2)
    assert LatentFilter.of(on).polar_wind_rows == 2
    assert LatentFilter.of(on, RolloutConfig()).polar_wind_rows == 2  # -1: keep
    assert LatentFilter.of(on, RolloutConfig(polar_wind_fixer=0)).polar_wind_rows == 0
    assert LatentFilter.of(on, RolloutConfig(polar_wind_fixer=3)).polar_wind_rows == 3
    assert LatentFilter.of(ModelConfig(latent_projection=0.1), RolloutConfig(polar_wind_fixer=1)).polar_wind_rows == 1
    with pytest.raises(ValueError, match="polar wind fixer acts inside the manifold projection"):
        LatentFilter.of(ModelConfig(), RolloutConfig(polar_wind_fixer=1))  # the checkpoint has no projection
    assert on.same_parameters(ModelConfig()) and "polar_wind_fixer" in ModelConfig.RUNTIME_KEYS


# -- reproducible zonal means -----------------------------------------------------------------------------------------
def test_partial_sums_of_an_empty_last_axis_are_zero():
    for values in (torch.zeros(2, 6, 0, dtype=torch.float64), np.zeros((2, 6, 0))):
        p = partial_sums(values)
        assert p.shape == (2, 6, 5) and not p.any()
        assert torch.equal(to_float(p), torch.zeros(2, 6, dtype=torch.float64))
    full = partial_sums(torch.arange(12.0, dtype=torch.float64).reshape(2, 6))
    assert torch.equal(add_partials([full, partial_sums(torch.zeros(2, 0, dtype=torch.float64))]), full)


def test_the_zonal_mean_is_numpy_s_to_1e_12_and_the_same_bits_when_the_columns_are_split():
    fixer = PolarWindFixer(LAYOUT, GRID, Domain.whole(GRID), 2)
    x = _states(batch=3, seed=4)
    got = fixer.zonal_mean(x)  # [B, 2k, nlev] float64
    assert got.shape == (3, 4, LAYOUT.nlev) and got.dtype == torch.float64
    want = _zonal_v(x.numpy().reshape(3, *GRID.shape, -1))[:, polar_rows(GRID.nlat, 2)]
    assert np.allclose(got.numpy(), want, rtol=0, atol=1e-12)
    # every constrained row's values ([B, 2k * nlev, nlon] float64), cut into column subsets (tiles; some hold
    # no polar row: an empty last axis), summed apart and added: the same bits as the fixer's sum at once
    v = x[..., V].to(torch.float64).reshape(3, *GRID.shape, -1)[:, polar_rows(GRID.nlat, 2)]  # [B, 2k, nlon, nlev]
    values = v.transpose(2, 3).reshape(3, -1, GRID.nlon)
    rng = np.random.default_rng(0)
    for _ in range(10):
        perm = rng.permutation(values.shape[-1])
        cuts = np.sort(rng.choice(np.arange(1, values.shape[-1]), 4, replace=False))
        parts = [partial_sums(values[..., torch.from_numpy(p)]) for p in np.split(perm, cuts)]
        parts.append(partial_sums(values[..., :0]))  # a tile with no polar row
        rng.shuffle(parts)
        split = to_float(add_partials(parts)).reshape(3, 4, LAYOUT.nlev) / GRID.nlon
        assert torch.equal(split, got)


@pytest.mark.decomposition
@pytest.mark.parametrize("nranks,layout", [(2, (1, 2)), (3, (3, 1)), (4, (2, 2))])
def test_the_fix_on_tiles_over_ranks_equals_the_serial_fix_bit_for_bit(nranks, layout):
    """Real tile domains (the component's halo plans) with the reproducible sum over a fake world's ranks; with
    3 x 1 tiles of the 6 rows the middle rank holds no polar row (width 0) and still takes part in the sums."""
    import functools

    from mlscam.parallel import Decomposition, HaloPlan
    from mlscam.parallel.reprosum import allreduce_sum

    x = _states(batch=2, seed=7)
    serial = PolarWindFixer(LAYOUT, GRID, Domain.whole(GRID), 2).fix(x)
    dec = Decomposition.cartesian(GRID.nlat, GRID.nlon, nranks, layout)

    def rank_fn(comm):
        plan = HaloPlan.build(dec, comm.Get_rank())
        t = dec.tiles[comm.Get_rank()]
        domain = Domain((t.nlat, t.nlon), plan.local_columns, plan.tile_index, plan.crossed, None,
                        functools.partial(allreduce_sum, comm, check=False))
        fixer = PolarWindFixer(LAYOUT, GRID, domain, 2)
        cols = torch.tensor(np.asarray(plan.local_columns), dtype=torch.int64)
        return cols, int(fixer.means.member.sum()), fixer.fix(x[:, cols])

    out = run_fake_world(nranks, rank_fn)
    for cols, _, fixed in out:
        assert torch.equal(fixed, serial[:, cols])
    if layout == (3, 1):
        assert [n for _, n, _ in out] == [2 * GRID.nlon, 0, 2 * GRID.nlon]


# -- the engine -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("polar") / "c.pt")


def test_rollout_outputs_have_no_zonal_mean_v_in_the_polar_rows_at_every_step(ckpt):
    em = Emulator.from_checkpoint(ckpt, latent_filter=BOTH, warn_blas=False)
    plain = Emulator.from_checkpoint(ckpt, latent_filter=replace(BOTH, polar_wind_rows=0), warn_blas=False)
    x0 = torch.from_numpy(initial_states()[:2])
    rows, other = polar_rows(GRID.nlat, 2), [2, 3]
    outs = list(em.rollout(x0, 6, output_every=2))
    assert [k for k, _ in outs] == [2, 4, 6]
    for k, x in outs:
        x = x.numpy()
        assert np.all(np.isfinite(x))
        assert np.abs(_zonal_v(x)[:, rows]).max() <= _v_rounding(x), k
        assert np.abs(_zonal_v(x)[:, other]).max() > 1e-3  # only the polar rows are constrained
    unfixed = [x.numpy() for _, x in plain.rollout(x0, 6, output_every=2)]
    assert np.abs(_zonal_v(unfixed[-1])[:, rows]).max() > 1e-2  # without the fixer: not zero
    assert not np.array_equal(unfixed[-1], outs[-1][1].numpy())
    # decode: fix=False is the raw decode; the fix touches v in the polar rows alone
    z = em.step(em.encode(x0), 2, mass_target=em.mass_target(x0))
    raw, fixed = em.decode(z, fix=False).numpy(), em.decode(z).numpy()
    assert np.abs(_zonal_v(fixed)[:, rows]).max() <= _v_rounding(fixed)
    assert np.array_equal(np.delete(raw, np.r_[V], -1), np.delete(fixed, np.r_[V], -1))
    assert np.array_equal(raw[:, other], fixed[:, other])
    assert torch.equal(torch.from_numpy(fixed), em.decode(z, mass_target=None))


def test_the_fixed_step_is_the_projection_of_the_fixed_state(ckpt):
    em = Emulator.from_checkpoint(ckpt, latent_filter=BOTH, warn_blas=False)
    x0 = torch.from_numpy(initial_states()[:2])
    e, target = em.engine, em.mass_target(x0)
    z = em.encode(x0).reshape(2, GRID.ncol, -1)
    with torch.no_grad():
        z1 = z + e.advance(z)
        xd = e.decode(z1, fix=False)
        xs = e.polar.fix(e.mass.fix(xd, target))
        assert torch.equal(e.fix(xd, target), xs)
        assert torch.equal(e.decode(z1, target), xs)
        want = z1 + 0.5 * (e.encode(xs) - z1)
        assert torch.equal(e.step(z, 1, target), want)
        assert torch.equal(e.fix(xd), e.polar.fix(xd))  # no target: the polar fixer alone


def test_rows_0_is_the_fixer_off_bit_for_bit(ckpt):
    x0 = torch.from_numpy(initial_states()[:2])
    for filt in (PLAIN, LatentFilter(0.0, 0.0, 0.5, True), LatentFilter(0.1, 0.0, 0.5, projection_every=2)):
        off = Emulator.from_checkpoint(ckpt, latent_filter=filt, warn_blas=False)
        zero = Emulator.from_checkpoint(ckpt, latent_filter=replace(filt, polar_wind_rows=0), warn_blas=False)
        via = Emulator.from_checkpoint(ckpt, warn_blas=False, latent_filter=LatentFilter.of(
            ModelConfig(latent_filter=filt.strength, latent_projection=filt.projection, mass_fixer=filt.mass_fixer,
                        latent_projection_every=filt.projection_every), RolloutConfig(polar_wind_fixer=0)))
        assert zero.engine.polar is None and via.engine.polar is None
        ref = [x for _, x in off.rollout(x0, 4, output_every=2)]
        for em in (zero, via):
            got = [x for _, x in em.rollout(x0, 4, output_every=2)]
            assert all(torch.equal(a, b) for a, b in zip(ref, got))


def test_pieces_with_start_and_the_static_stepper_equal_the_run_with_projection_every_2(ckpt):
    from mlscam.model.graphs import GraphSteps

    x0 = torch.from_numpy(initial_states()[:2])
    for filt in (replace(POLAR, projection_every=2), replace(BOTH, projection_every=2), POLAR):
        em = Emulator.from_checkpoint(ckpt, latent_filter=filt, warn_blas=False)
        e = em.engine
        target = em.mass_target(x0) if e.mass is not None else None
        with torch.no_grad():
            z = em.encode(x0).reshape(2, GRID.ncol, -1)
            once = e.step(z, 6, target)
            assert torch.equal(e.step(e.step(z, 3, target), 3, target, start=3), once)
            assert torch.equal(e.step(e.step(z, 1, target), 5, target, start=1), once)
            for max_steps in (1, 3, 4):
                assert torch.equal(GraphSteps(e, capture=False, max_steps=max_steps).step(z, 6, target), once)
            # the Emulator's pieces and its rollout's last output
            zz = em.step(em.step(em.encode(x0), 3, mass_target=target, start=0), 3, mass_target=target, start=3)
            assert torch.equal(zz.reshape(once.shape), once)
            assert torch.equal(em.decode(zz, mass_target=target), list(em.rollout(x0, 6, output_every=3))[-1][1])
        if filt.projection_every == 2:  # the first step does not project: no fixer acts in it
            plain = Emulator.from_checkpoint(ckpt, warn_blas=False,
                                             latent_filter=LatentFilter(0.0, 0.0, 0.5, projection_every=2))
            with torch.no_grad():
                assert torch.equal(e.step(z, 1, target), plain.engine.step(z, 1))
                assert not torch.equal(e.step(z, 2, target), plain.engine.step(z, 2))


def test_cuda_graphs_are_refused_only_with_an_mpi_global_sum(ckpt, monkeypatch):
    import mlscam.emulator as emulator_module
    from mlscam.fixedsum import fixed_sum

    monkeypatch.setattr(emulator_module, "capture_unavailable", lambda device: None)  # pretend a GPU
    serial = Emulator.from_checkpoint(ckpt, latent_filter=POLAR, warn_blas=False)
    assert serial._capture_unavailable("cpu") is None  # the serial sum is captured with the step
    domain = replace(Domain.whole(GRID), global_sum=lambda v: fixed_sum(v, check=False))  # as an MPI domain
    ranks = Emulator(serial.model, LAYOUT, GRID, serial.normalization, 3600.0, chunk_size=16, domain=domain,
                     latent_filter=POLAR, warn_blas=False)
    assert "polar wind fixer's global sum over ranks" in ranks._capture_unavailable("cpu")
    both = Emulator(serial.model, LAYOUT, GRID, serial.normalization, 3600.0, chunk_size=16, domain=domain,
                    latent_filter=BOTH, warn_blas=False)
    assert "mass fixer and the polar wind fixer's global sum" in both._capture_unavailable("cpu")
    assert Emulator(serial.model, LAYOUT, GRID, serial.normalization, 3600.0, chunk_size=16, domain=domain,
                    latent_filter=PLAIN, warn_blas=False)._capture_unavailable("cpu") is None


# -- training ---------------------------------------------------------------------------------------------------------
def test_training_predictions_are_fixed_with_finite_gradients_and_single_column_is_refused(ckpt):
    from mlscam.config import LossConfig
    from mlscam.train.objective import Objective

    em = Emulator.from_checkpoint(ckpt, warn_blas=False)
    x = torch.from_numpy(initial_states()).unsqueeze(0)  # [1, 3, nlat, nlon, S]: a 2-step window

    def objective(filt, mode="global_rollout"):
        return Objective(model=em.model, layout=LAYOUT, grid=GRID, normalization=em.normalization,
                         loss=LossConfig(mse=1.0, increment=1.0).build(), mode=mode, chunk_size=16,
                         latent_truth=False, latent_filter=filt)

    fixed, plain = objective(POLAR), objective(PLAIN)
    e = fixed.engine
    z = e.encode(x[:, 0].flatten(1, 2))
    with torch.no_grad():
        z1 = e.step_once(z)[0]
        pred = e.norm.inverse(fixed._decode(z1, None)).numpy().reshape(1, *GRID.shape, -1)
    assert np.abs(_zonal_v(pred)[:, polar_rows(GRID.nlat, 2)]).max() <= 2 * _v_rounding(pred)
    loss_f, _ = fixed({"x": x})
    loss_p, _ = plain({"x": x})
    assert torch.isfinite(loss_f) and loss_f.item() != loss_p.item()
    loss_f.backward()
    for net in (em.model.encoder, em.model.mixer, em.model.decoder):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    with pytest.raises(ValueError, match=r"polar wind fixer .* needs whole globes"):
        objective(POLAR, "single_column")


# -- the shipped demo -------------------------------------------------------------------------------------------------
def test_the_shipped_demo_has_no_zonal_mean_v_next_to_the_poles_and_rollout_0_switches_it_off():
    from mlscam.assets import resolve_asset
    from mlscam.config import DataConfig
    from mlscam.data.source import open_source

    ckpt = resolve_asset("mlscam:demo/checkpoint.pt")
    src = open_source(DataConfig(files=(str(resolve_asset("mlscam:demo/initial_state.nc")),),
                                 variables_3d=("u", "v", "temperature"), time_step_hours=1.0))
    x0 = torch.from_numpy(src.read(0))
    em = Emulator.from_checkpoint(ckpt, warn_blas=False)
    model = em.checkpoint.config.model
    assert model.polar_wind_fixer == 2 and model.mass_fixer  # shipped with both fixers (docs/demo_model.md)
    assert em.engine.polar is not None and em.engine.polar.rows == 2 and em.engine.mass is not None
    off = Emulator.from_checkpoint(ckpt, warn_blas=False,
                                   latent_filter=LatentFilter.of(model, RolloutConfig(polar_wind_fixer=0)))
    assert off.engine.polar is None and off.engine.mass is not None
    layout, nlat = em.layout, em.grid.nlat
    rows = polar_rows(nlat, 2)
    outs = list(em.rollout(x0, 3, output_every=1))
    for _, x in outs:
        x = x.numpy()
        assert np.all(np.isfinite(x))
        assert np.abs(_zonal_v(x, layout)[rows]).max() <= _v_rounding(x, layout)
    raw = list(off.rollout(x0, 3, output_every=3))[-1][1].numpy()
    assert np.abs(_zonal_v(raw, layout)[rows]).max() > 100 * _v_rounding(raw, layout)
    assert np.abs(_zonal_v(outs[-1][1].numpy(), layout)[nlat // 2]).max() > 1e-3  # the tropics keep their [v]


# -- the component --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("polar_component")
    ckpt, init = make_checkpoint(d / "m.pt"), write_initial(d / "init.nc")
    cfg = config(ckpt, init, d / "f.nc", latent_projection=0.5, mass_fixer=1, polar_wind_fixer=2)
    return {"dir": d, "ckpt": ckpt, "init": init, "cfg": cfg}


@pytest.mark.decomposition
@pytest.mark.parametrize("nranks,layout", [(1, (0, 0)), (2, (1, 2)), (3, (3, 1)), (4, (2, 2))])
def test_component_on_ranks_equals_the_serial_emulator_bit_for_bit(case, nranks, layout):
    cfg = replace(case["cfg"], parallel=replace(case["cfg"].parallel, layout=layout))
    refs, target = serial_fixed_outputs(case["ckpt"], BOTH, 2)

    def rank_fn(comm):
        c = Component.init(cfg, comm)
        assert c.polar_wind_fixer == 2 and c.mass_fixer
        c.set_state_from_file(case["init"], 1)
        got = []
        for _ in range(2):
            c.step(2)
            got.append(c.gather_state(root=0))
        mine, tile = c.get_variable("v"), (c.tile.lat0, c.tile.lat1, c.tile.lon0, c.tile.lon1)
        c.finalize()
        return got, mine, tile

    out = run_fake_world(nranks, rank_fn)
    for a, b in zip(out[0][0], refs):
        assert np.array_equal(a, b)
    for _, mine, (j0, j1, i0, i1) in out:
        assert np.array_equal(mine, refs[-1][j0:j1, i0:i1, V])
    assert np.abs(_zonal_v(refs[-1])[polar_rows(GRID.nlat, 2)]).max() <= _v_rounding(refs[-1])


def test_a_blow_up_in_a_polar_row_raises_on_every_rank(case):
    """A decoded v beyond the reproducible sum's range (|v| >= 2**64, finite in float32) in a polar row of rank 0:
    its row's zonal mean is NaN on the ranks that hold the row, and every rank raises the same error, also the
    middle rank of 3 x 1 tiles, which holds no polar row."""
    cfg = config(case["ckpt"], case["init"], case["dir"] / "g.nc", latent_projection=0.5, polar_wind_fixer=2)
    cfg = replace(cfg, parallel=replace(cfg.parallel, layout=(3, 1)))

    def rank_fn(comm):
        c = Component.init(cfg, comm)
        c.set_state_from_file(case["init"], 0)
        c.step(1)
        decoded = c._decoded_tile

        def huge():
            x = decoded()
            if c.rank == 0:
                x[0, 0, V.start] = 1e30
            return x

        c._decoded_tile = huge
        try:
            c.get_state()
        except ComponentError as err:
            return str(err)
        finally:
            c.finalize()
        return None

    msgs = run_fake_world(3, rank_fn)
    assert all(m is not None and "Component.get_state: the fixed decoded meridional wind at step 1 is not finite "
               "on rank 0 " in m for m in msgs), msgs


# -- checkpoints ----------------------------------------------------------------------------------------------------
def test_export_sets_the_key_and_an_older_checkpoint_without_it_loads_with_the_fixer_off(tmp_path, capsys):
    from mlscam.checkpoint import load_checkpoint, main

    src = make_checkpoint(tmp_path / "last.pt")
    out = tmp_path / "ship.pt"
    assert main(["export", str(src), str(out), "--set", "latent_projection=0.5", "--set", "polar_wind_fixer=2"]) == 0
    shipped = load_checkpoint(out)
    assert shipped.config.model.polar_wind_fixer == 2
    assert shipped.metadata["export_settings"] == {"model.latent_projection": "0.5", "model.polar_wind_fixer": "2"}
    assert shipped.config.model.same_parameters(load_checkpoint(src).config.model)
    em = Emulator.from_checkpoint(out, warn_blas=False)
    assert em.engine.polar is not None and em.engine.polar.rows == 2
    x0 = torch.from_numpy(initial_states()[:1])
    ref = Emulator.from_checkpoint(src, warn_blas=False, latent_filter=POLAR)
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(em.rollout(x0, 2), ref.rollout(x0, 2)))
    capsys.readouterr()
    assert main(["export", str(src), str(tmp_path / "bad.pt"), "--set", "polar_wind_fixer=2"]) == 1
    assert "polar_wind_fixer = 2: needs the manifold projection" in capsys.readouterr().err
    assert not (tmp_path / "bad.pt").exists()
    # a file written before the key existed: its &model has no polar_wind_fixer
    d = torch.load(out, weights_only=True)
    del d["config"]["model"]["polar_wind_fixer"]
    torch.save(d, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt")
    assert old.config.model.polar_wind_fixer == 0
    assert Emulator.from_checkpoint(tmp_path / "old.pt", warn_blas=False).engine.polar is None
