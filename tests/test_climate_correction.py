"""The climate correction (mlscam/model/correction.py): a fixed zonal-mean forcing inside the manifold projection
of THE latent step; its estimation (mlscam/train/correction.py); the checkpoint, the rollout driver, and
decompositions bit for bit."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import xarray as xr

from component_case import (DT, GRID, LAYOUT, LEVELS, TIME_UNITS, config, initial_states, make_checkpoint,
                            write_initial, write_namelist)
from mlscam.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mlscam.config import ConfigError, RolloutConfig
from mlscam.emulator import Emulator
from mlscam.model.correction import ClimateCorrection
from mlscam.model.filters import LatentFilter
from mlscam.parallel import run_fake_world
from mlscam.runtime import Component
from synthetic import make_fields, write_file
from test_train_modes import problem  # noqa: F401 (a fixture)

torch.set_num_threads(1)
PROJ = LatentFilter(0.0, 0.0, 0.5)  # the tiny case: projection 0.5 every step
PROJ2 = LatentFilter(0.0, 0.0, 0.5, projection_every=2)


def _rate(scale: float = 1.0) -> np.ndarray:
    """A forcing of temperature and u, varying with latitude and level (units per day)."""
    rate = np.zeros((GRID.nlat, LAYOUT.n_state))
    lat = np.asarray(GRID.lat)
    rate[:, LAYOUT.slice_of("temperature")] = scale * np.outer(np.cos(np.radians(lat)), [1.0, -0.5])
    rate[:, LAYOUT.slice_of("u")] = scale * np.outer(np.sin(np.radians(lat)), [2.0, 0.25])
    return rate


def _correction(scale: float = 1.0) -> ClimateCorrection:
    return ClimateCorrection(_rate(scale), ("temperature", "u"), DT, provenance={"test": True})


def test_a_projecting_step_re_encodes_the_decoded_state_plus_the_offset(tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    corr = _correction()
    em = Emulator.from_checkpoint(ckpt, latent_filter=PROJ, warn_blas=False)
    emc = Emulator(em.model, em.layout, em.grid, em.normalization, DT, latent_filter=PROJ, correction=corr,
                   warn_blas=False)
    x = torch.from_numpy(initial_states()[:2])
    z = em.encode(x).reshape(2, GRID.ncol, -1)
    offset = corr.rate * (DT / 86400.0) / 0.5  # rate * days per projecting step / alpha
    np.testing.assert_allclose(corr.offsets(0.5, 1), offset)
    with torch.no_grad():
        z1 = z + em.engine.advance(z)
        xd = em.engine.decode(z1) + torch.as_tensor(offset[np.arange(GRID.ncol) // GRID.nlon], dtype=torch.float32)
        want = z1 + 0.5 * (em.engine.encode(xd) - z1)
        got, _ = emc.engine.step_once(z)
    assert torch.equal(got, want)
    # the uncorrected step is another one, and decoded outputs get no offset (a tendency, not a state fix)
    assert not torch.equal(got, em.engine.step_once(z)[0])
    assert torch.equal(emc.decode(got.reshape(2, GRID.nlat, GRID.nlon, -1)),
                       em.decode(got.reshape(2, GRID.nlat, GRID.nlon, -1)))


def test_the_eddy_backscatter_amplifies_the_deviation_from_the_zonal_mean_inside_the_projection(tmp_path):
    """``eddy_rate`` beta: the decoded state plus the offset gets ``gain (x - [x])`` (gain = beta * days per
    projecting step / alpha, [x] the row means) before it is re-encoded; outputs get nothing."""
    ckpt = make_checkpoint(tmp_path / "c.pt")
    corr = ClimateCorrection(_rate(), ("temperature", "u"), DT, eddy_rate=0.2)
    em = Emulator.from_checkpoint(ckpt, latent_filter=PROJ, warn_blas=False)
    emc = Emulator(em.model, em.layout, em.grid, em.normalization, DT, latent_filter=PROJ, correction=corr,
                   warn_blas=False)
    gain = 0.2 * (DT / 86400.0) / 0.5
    assert corr.eddy_gain(0.5, 1) == pytest.approx(gain, rel=1e-15) and emc.engine.eddy_gain == corr.eddy_gain(0.5, 1)
    x = torch.from_numpy(initial_states()[:2])
    z = em.encode(x).reshape(2, GRID.ncol, -1)
    with torch.no_grad():
        z1 = z + em.engine.advance(z)
        xd = em.engine.decode(z1) + torch.as_tensor(corr.offsets(0.5, 1)[np.arange(GRID.ncol) // GRID.nlon],
                                                    dtype=torch.float32)
        g = xd.reshape(2, GRID.nlat, GRID.nlon, -1)
        eddy = (g - g.double().mean(dim=2, keepdim=True).float()).reshape(xd.shape)
        want = z1 + 0.5 * (em.engine.encode(xd + gain * eddy) - z1)
        got, _ = emc.engine.step_once(z)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)  # the row mean: a float64 fixed-point sum
    plain = Emulator(em.model, em.layout, em.grid, em.normalization, DT, latent_filter=PROJ,
                     correction=_correction(), warn_blas=False)
    assert not torch.allclose(got, plain.engine.step_once(z)[0], rtol=1e-5, atol=1e-6)
    assert torch.equal(emc.decode(got.reshape(2, GRID.nlat, GRID.nlon, -1)),
                       em.decode(got.reshape(2, GRID.nlat, GRID.nlon, -1)))
    back = ClimateCorrection.from_dict(corr.to_dict())
    assert back.eddy_rate == 0.2
    old = corr.to_dict()
    old.pop("eddy_rate")  # written before the backscatter existed: none
    assert ClimateCorrection.from_dict(old).eddy_rate == 0.0
    with pytest.raises(ValueError, match="eddy_rate must be a finite number >= 0"):
        ClimateCorrection(_rate(), ("u",), DT, eddy_rate=-0.1)


def test_the_offset_scales_with_the_projection_and_steps_that_do_not_project_get_none(tmp_path):
    corr = _correction()
    np.testing.assert_allclose(corr.offsets(0.1, 3), corr.rate * 3 * DT / 86400.0 / 0.1)
    em = Emulator.from_checkpoint(make_checkpoint(tmp_path / "c.pt"), latent_filter=PROJ2, warn_blas=False)
    emc = Emulator(em.model, em.layout, em.grid, em.normalization, DT, latent_filter=PROJ2, correction=corr,
                   warn_blas=False)
    z = em.encode(torch.from_numpy(initial_states()[:1]))
    assert torch.equal(emc.step(z, 1), em.step(z, 1))  # step 1 of 2 does not project
    assert not torch.equal(emc.step(z, 2), em.step(z, 2))


def test_bad_corrections_are_clear_errors(tmp_path):
    ckpt = make_checkpoint(tmp_path / "c.pt")
    em = Emulator.from_checkpoint(ckpt, latent_filter=PROJ, warn_blas=False)
    args = (em.model, em.layout, em.grid, em.normalization, DT)
    with pytest.raises(ValueError, match="acts inside the manifold projection, which is off"):
        Emulator(*args, latent_filter=LatentFilter(0.05, 0.0, 0.0), correction=_correction(), warn_blas=False)
    with pytest.raises(ValueError, match=r"\[5 latitudes, 8 channels\], the model has \[6, 7\]"):
        Emulator(*args, latent_filter=PROJ, warn_blas=False,
                 correction=ClimateCorrection(np.zeros((5, 8)), ("u",), DT))
    with pytest.raises(ValueError, match="estimated for a 3600 s step, the model steps 21600 s"):
        Emulator(*args, latent_filter=PROJ, warn_blas=False,
                 correction=ClimateCorrection(_rate(), ("u",), 3600.0))
    with pytest.raises(ValueError, match="non-finite"):
        ClimateCorrection(np.full((6, 7), np.nan), ("u",), DT)
    with pytest.raises(ConfigError, match="climate_correction"):
        RolloutConfig(climate_correction=2)


def _corrected_checkpoint(tmp_path, scale=1.0, eddy_rate=0.0):
    path = make_checkpoint(tmp_path / "c.pt")
    ckpt = load_checkpoint(path)
    ckpt.config = replace(ckpt.config, model=replace(ckpt.config.model, latent_projection=0.5))
    ckpt.correction = replace(_correction(scale), eddy_rate=eddy_rate)
    return save_checkpoint(tmp_path / "corrected.pt", ckpt)


def test_the_checkpoint_carries_it_and_the_rollout_driver_applies_it_unless_switched_off(tmp_path, capsys):
    from mlscam.rollout.__main__ import main as rollout_main

    path = _corrected_checkpoint(tmp_path)
    back = load_checkpoint(path)
    assert np.array_equal(back.correction.rate, _rate()) and back.correction.variables == ("temperature", "u")
    assert back.correction.provenance == {"test": True} and back.correction.step_seconds == DT
    assert load_checkpoint(make_checkpoint(tmp_path / "plain.pt")).correction is None
    bad = torch.load(path, weights_only=True)
    bad["climate_correction"].pop("step_seconds")
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="climate correction cannot be read"):
        load_checkpoint(tmp_path / "bad.pt")
    from mlscam.checkpoint import main as checkpoint_main

    assert checkpoint_main(["info", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["climate_correction"]["variables"] == ["temperature", "u"]
    assert checkpoint_main(["info", str(tmp_path / "plain.pt")]) == 0
    assert json.loads(capsys.readouterr().out)["climate_correction"] is None
    init = write_initial(tmp_path / "init.nc")
    runs = {}
    for switch in (1, 0):
        out = tmp_path / f"fc{switch}.nc"
        nml = write_namelist(tmp_path / f"r{switch}.nml", path, init, out, num_steps=4, output_every=2)
        assert rollout_main([str(nml), "--set", f"rollout.climate_correction={switch}"]) == 0
        with xr.open_dataset(out) as ds:
            runs[switch] = (ds["temperature"].values, ds.attrs["climate_correction"])
    assert runs[1][1] == "on: temperature, u" and runs[0][1] == "off"
    assert not np.array_equal(runs[1][0], runs[0][0])
    # the emulator of the file applies it too, and can leave it out
    x0 = torch.from_numpy(initial_states()[1])
    on = Emulator.from_checkpoint(path, warn_blas=False)
    off = Emulator.from_checkpoint(path, warn_blas=False, climate_correction=False)
    assert on.engine.correction is not None and off.engine.correction is None
    assert not torch.equal(on.step(on.encode(x0), 2), off.step(off.encode(x0), 2))


@pytest.mark.decomposition
@pytest.mark.parametrize("eddy_rate", [0.0, 0.5])
@pytest.mark.parametrize("nranks,layout", [(1, (0, 0)), (2, (1, 2)), (3, (3, 1)), (4, (2, 2))])
def test_component_on_ranks_equals_the_serial_emulator_bit_for_bit(tmp_path, nranks, layout, eddy_rate):
    """With the eddy backscatter too: its row means split across ranks are the same bits (RowMeans)."""
    path = _corrected_checkpoint(tmp_path, eddy_rate=eddy_rate)
    init = write_initial(tmp_path / "init.nc")
    cfg = config(path, init, tmp_path / "f.nc")
    cfg = replace(cfg, parallel=replace(cfg.parallel, layout=layout))
    em = Emulator.from_checkpoint(path, warn_blas=False)
    z = em.encode(torch.from_numpy(initial_states()[1]))
    refs = []
    for _ in range(3):
        z = em.step(z, 2)
        refs.append(em.decode(z).numpy())

    def rank_fn(comm):
        c = Component.init(cfg, comm)
        c.set_state_from_file(init, 1)
        got = []
        for _ in range(3):
            c.step(2)
            got.append(c.gather_state(root=0))
        what = c.climate_correction
        c.finalize()
        return got, what

    out = run_fake_world(nranks, rank_fn)
    for a, b in zip(out[0][0], refs):
        assert np.array_equal(a, b)
    want = "on: temperature, u" + ("; eddy backscatter 0.5/day" if eddy_rate else "")
    assert all(w == want for _, w in out)


def _truth(tmp_path, days=16):
    """A daily "truth" run on the tiny grid: the synthetic fields with a warm, westerly offset."""
    f = make_fields(days, GRID, len(LEVELS), seed=7)
    f["temperature"] = f["temperature"] + 3.0
    f["u"] = f["u"] + 2.0
    path = tmp_path / "truth.nc"
    write_file(path, f, GRID, [24.0 * k for k in range(days)], levels=list(LEVELS), time_units=TIME_UNITS,
               calendar="noleap")
    return path


def test_the_iteration_converges_on_a_known_linear_response(tmp_path):
    """With a zonal mean that responds to the forcing as ``mean = m0 + tau_r * rate`` (tau_r 12 days for T and 16
    for u), updates of ``-bias / 20 days`` shrink the bias by ``1 - tau_r / 20`` per update, and the best
    evaluated rate (the last) is written."""
    from mlscam.train.correction import estimate_correction

    path = make_checkpoint(tmp_path / "c.pt")
    ckpt = load_checkpoint(path)
    ckpt.config = replace(ckpt.config, model=replace(ckpt.config.model, latent_projection=0.5))
    truth = _truth(tmp_path)
    with xr.open_dataset(truth) as ds:  # the truth's zonal-time mean in the model's channels
        target = {v: ds[v].mean(("time", "lon")).transpose("lat", ...).values for v in ("temperature", "u")}
    bias0 = np.zeros((GRID.nlat, LAYOUT.n_state))
    bias0[:, LAYOUT.slice_of("temperature")] = 1.5 * np.cos(np.radians(np.asarray(GRID.lat)))[:, None]
    bias0[:, LAYOUT.slice_of("u")] = -2.5
    calls = []
    tau_r = np.zeros(LAYOUT.n_state)  # the response time of each channel's zonal mean (days)
    tau_r[LAYOUT.slice_of("temperature")], tau_r[LAYOUT.slice_of("u")] = 12.0, 16.0

    def response(rate):
        calls.append(rate.copy())
        mean = np.zeros((GRID.nlat, LAYOUT.n_state))
        for v in ("temperature", "u"):
            t = target[v] if target[v].ndim == 2 else target[v][:, None]
            mean[:, LAYOUT.slice_of(v)] = t
        return mean + bias0 + tau_r * rate

    corr, history = estimate_correction(ckpt, str(truth), starts=(0, 5), days=8, spinup_days=2, iterations=3,
                                        variables=("temperature", "u"), progress=False, log=lambda s: None,
                                        evaluate=response)
    assert [h["evaluation"] for h in history] == [0, 1, 2, 3] and len(calls) == 4
    assert not calls[0].any()  # the first evaluation is the model without a correction
    for k in range(4):
        assert history[k]["bias_rms"]["temperature"] == pytest.approx(
            history[0]["bias_rms"]["temperature"] * (1 - 12 / 20) ** k, rel=1e-4, abs=1e-5)
        assert history[k]["bias_rms"]["u"] == pytest.approx(2.5 * (1 - 16 / 20) ** k, rel=1e-4, abs=1e-5)
    assert corr.provenance["chosen_evaluation"] == 3
    np.testing.assert_allclose(corr.rate, calls[3])
    assert not np.any(np.delete(corr.rate, np.r_[LAYOUT.slice_of("temperature"), LAYOUT.slice_of("u")], axis=1))
    assert corr.provenance["history"] == history and corr.provenance["truth"] == "truth.nc"
    # from a checkpoint that has a correction, the first evaluation is that correction (a continuation)
    ckpt.correction = ClimateCorrection(0.5 * corr.rate, ("temperature", "u"), DT)
    calls.clear()
    estimate_correction(ckpt, str(truth), starts=(0,), days=8, spinup_days=2, iterations=1,
                        variables=("temperature", "u"), progress=False, log=lambda s: None, evaluate=response)
    assert np.array_equal(calls[0], 0.5 * corr.rate)


def test_the_symmetric_update_forces_the_hemispheric_mean_of_the_bias(tmp_path):
    from mlscam.train.correction import estimate_correction

    ckpt = load_checkpoint(make_checkpoint(tmp_path / "c.pt"))
    ckpt.config = replace(ckpt.config, model=replace(ckpt.config.model, latent_projection=0.5))
    truth = _truth(tmp_path)
    calls = []

    def response(rate):
        calls.append(rate.copy())
        return np.zeros((GRID.nlat, LAYOUT.n_state))  # a zero climate: the bias is minus the truth's mean

    for symmetric in (False, True):
        calls.clear()
        estimate_correction(ckpt, str(truth), starts=(0,), days=8, spinup_days=2, iterations=1, symmetric=symmetric,
                            variables=("temperature", "u"), progress=False, log=lambda s: None, evaluate=response)
        first = calls[1]
        T = first[:, LAYOUT.slice_of("temperature")]
        if symmetric:
            np.testing.assert_allclose(T, T[::-1], atol=1e-12)
        else:
            assert not np.allclose(T, T[::-1])  # the truth's one realisation is not symmetric


def test_the_command_line_writes_the_checkpoint_or_says_why_not(tmp_path):
    """On the tiny random model (whose decoder does not invert its encoder, so a forcing need not help) the
    command writes a corrected checkpoint only when a forcing beat none, and bad input is a clear error."""
    from mlscam.train.correction import main

    path = make_checkpoint(tmp_path / "c.pt")
    ckpt = load_checkpoint(path)
    plain = save_checkpoint(tmp_path / "plain.pt", ckpt)
    ckpt.config = replace(ckpt.config, model=replace(ckpt.config.model, latent_projection=0.5))
    src = save_checkpoint(tmp_path / "p.pt", ckpt)
    truth = _truth(tmp_path)
    out = tmp_path / "out.pt"
    common = ["--truth", str(truth), "--starts", "0", "5", "--days", "6", "--spinup-days", "2", "--no-progress"]
    status = main([str(src), str(out), *common, "--iterations", "2", "--response-days", "2"])
    assert status in (0, 1) and out.exists() == (status == 0)
    if status == 0:
        assert load_checkpoint(out).correction.provenance["chosen_evaluation"] > 0
    assert main([str(src), str(tmp_path / "x.pt"), *common, "--starts", "99"]) == 1
    assert main([str(src), str(tmp_path / "x.pt"), *common, "--variables", "humidity"]) == 1
    assert main([str(plain), str(tmp_path / "x.pt"), *common]) == 1  # no projection to act in
    assert main([str(src), str(tmp_path / "x.pt"), *common, "--days", "2"]) == 1
    assert main([str(src), str(tmp_path / "x.pt"), *common, "--eddy-rate", "-1"]) == 1
    assert main([str(src), str(tmp_path / "x.pt"), *common, "--iterations", "-1"]) == 1
    # --iterations 0 evaluates the checkpoint's own correction with the given backscatter, and writes it
    assert main([str(src), str(tmp_path / "e.pt"), *common, "--iterations", "0", "--eddy-rate", "0.05"]) == 0
    written = load_checkpoint(tmp_path / "e.pt").correction
    assert written.eddy_rate == 0.05 and not np.any(written.rate)
    (rec,) = written.provenance["history"]
    assert rec["eddy_rate"] == 0.05 and set(rec["eddy_ratio"]) == {"temperature", "u"}
    assert all(r > 0 for r in rec["eddy_ratio"].values())
    assert main([str(src), str(tmp_path / "x.pt"), *common, "--response-days", "0"]) == 1
    assert not (tmp_path / "x.pt").exists()


def test_training_with_a_correction_steps_with_it_everywhere_and_its_checkpoints_carry_it(tmp_path):
    """``&train climate_correction``: the weather unrolls and the free-run chain step with the named checkpoint's
    correction, the run's checkpoints carry it, and a file without one is a clear error."""
    from advection import write_advection
    from test_train_modes import make_config
    from mlscam.train import build_trainer

    torch.set_num_threads(1)
    write_advection(tmp_path / "train.nc", 48, seed=0)
    write_advection(tmp_path / "val.nc", 24, seed=1)
    common = ["model.latent_projection=0.5", "train.free_run_weight=0.1", "train.free_run_steps=2",
              "train.free_run_graded=1", "train.seed=3"]
    plain_cfg = make_config(tmp_path, "global_rollout", 2, out=tmp_path / "plain", overrides=common)
    plain = build_trainer(plain_cfg)
    plain.run()
    base = load_checkpoint(tmp_path / "plain" / "ck" / "last.pt")
    lay, grid = base.layout, base.grid
    rate = np.zeros((grid.nlat, lay.n_state))
    rate[:, lay.slice_of("temperature")] = 0.5
    rate[:, lay.slice_of("u")] = np.linspace(-1.0, 1.0, grid.nlat)[:, None]
    base.correction = ClimateCorrection(rate, ("temperature", "u"), base.dt_seconds, provenance={"made": "test"})
    corr_path = save_checkpoint(tmp_path / "with_corr.pt", base)
    cfg = make_config(tmp_path, "global_rollout", 2, out=tmp_path / "corr",
                      overrides=common + [f"train.climate_correction={corr_path}"])
    trainer = build_trainer(cfg)
    assert trainer.objective.engine.correction is not None and trainer.free_run.engine.correction is not None
    trainer.run()
    assert plain.history[0]["loss"] != trainer.history[0]["loss"]  # the first step's unroll is another one
    written = load_checkpoint(tmp_path / "corr" / "ck" / "last.pt").correction
    assert np.array_equal(written.rate, rate) and written.provenance == {"made": "test"}
    with pytest.raises(ValueError, match="has no climate correction"):
        build_trainer(make_config(tmp_path, "global_rollout", 2, out=tmp_path / "bad",
                                  overrides=common + [f"train.climate_correction={tmp_path / 'plain/ck/last.pt'}"]))
    with pytest.raises(ValueError, match="needs &train mode = 'global' or 'global_rollout' and &model "
                                         "latent_projection > 0"):
        build_trainer(make_config(tmp_path, "global_rollout", 2, out=tmp_path / "bad2",
                                  overrides=[f"train.climate_correction={corr_path}"]))


ADAPT = ["train.free_run_weight=0.1", "train.free_run_memory=0.5", "train.free_run_steps=2",
         "train.free_run_graded=1", "model.latent_projection=0.5", "train.correction_every=2",
         "train.correction_response_days=4", "train.correction_symmetric=true"]


def test_the_online_update_is_minus_the_bias_over_the_response_time():
    """``mlscam.train.correction.adapted``: rate - bias / days per variable (transposed from [level, lat]),
    hemispherically averaged with ``symmetric``, the other channels untouched, the updates counted."""
    from mlscam.train.correction import adapted

    start = _correction()
    bias = {"temperature": np.arange(len(LEVELS) * GRID.nlat, dtype=float).reshape(len(LEVELS), GRID.nlat)}
    one = adapted(start, bias, LAYOUT, response_days=4.0, symmetric=False, step=7)
    t = LAYOUT.slice_of("temperature")
    np.testing.assert_array_equal(one.rate[:, t], start.rate[:, t] - bias["temperature"].T / 4.0)
    np.testing.assert_array_equal(one.rate[:, LAYOUT.slice_of("u")], start.rate[:, LAYOUT.slice_of("u")])
    assert one.provenance["online"]["updates"] == 1 and one.provenance["online"]["last_step"] == 7
    assert one.provenance["test"] is True  # what it started from stays recorded
    sym = adapted(one, bias, LAYOUT, response_days=4.0, symmetric=True, step=9)
    b = bias["temperature"].T
    np.testing.assert_array_equal(sym.rate[:, t], one.rate[:, t] - 0.5 * (b + b[::-1]) / 4.0)
    assert sym.provenance["online"]["updates"] == 2
    kept = adapted(replace(start, eddy_rate=0.02), bias, LAYOUT, response_days=4.0, symmetric=False, step=1)
    assert kept.eddy_rate == 0.02  # the backscatter rides along


def test_training_adapts_the_correction_everywhere_and_resumes_bit_for_bit(problem, tmp_path):  # noqa: F811
    """``&train correction_every``: every N steps, once the chain is warm, the forcing moves by -sym(bias) / days
    with the chain's bias at that step; the weather unrolls, the chain and the checkpoints all carry the new one;
    a run stopped between updates and resumed ends bit for bit where the straight run ends."""
    from mlscam.train import build_trainer
    from mlscam.train.correction import updated_rate
    from test_train_modes import make_config, straight_and_resumed

    torch.set_num_threads(1)
    trainer = build_trainer(make_config(problem, "global", 8, out=tmp_path / "steps", overrides=ADAPT))
    assert not np.any(trainer.correction.rate)  # adapted from none
    updates = 0
    for _ in range(8):
        before = trainer.correction.rate.copy()
        rec = trainer.train_step()
        biases = trainer.free_run.biases()
        if trainer.step % 2 == 0 and biases is not None:
            updates += 1
            assert rec["correction_updates"] == updates
            bias = np.zeros_like(before)
            for v, b in biases.items():
                bias[:, trainer.layout.slice_of(v)] = b.T
            np.testing.assert_array_equal(trainer.correction.rate, updated_rate(before, bias, 4.0, True))
        else:
            assert "correction_updates" not in rec and np.array_equal(trainer.correction.rate, before)
        for engine in (trainer.objective.engine, trainer.free_run.engine):
            assert torch.equal(engine.correction, trainer.objective.engine.correction)
    assert updates >= 3 and np.any(trainer.correction.rate)
    want = trainer.correction.offsets(0.5, 1)[np.asarray(trainer.objective.engine.domain.columns)
                                              // trainer.grid.nlon]
    np.testing.assert_allclose(trainer.objective.engine.correction.numpy(), want, rtol=1e-6)
    straight, resumed = straight_and_resumed(problem, tmp_path, 8, 0, ADAPT)  # stopped at step 4
    assert resumed.correction.provenance["online"]["updates"] >= 1  # resumed with the forcing adapted so far
    resumed.run()
    assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in straight.model.state_dict().items())
    assert np.array_equal(straight.correction.rate, resumed.correction.rate)
    written = load_checkpoint(tmp_path / "a" / "ck" / "last.pt").correction
    assert np.array_equal(written.rate, straight.correction.rate)
    assert written.provenance["online"]["updates"] == straight.correction.provenance["online"]["updates"]


def test_adapting_the_correction_needs_the_free_run_chain():
    from mlscam.config import TrainConfig

    with pytest.raises(ConfigError, match="correction_every"):
        TrainConfig(mode="global", correction_every=10)
    with pytest.raises(ConfigError, match="correction_response_days"):
        TrainConfig(mode="global", free_run_weight=0.1, correction_every=10, correction_response_days=0.0)


def test_adapting_needs_the_projection(problem, tmp_path):  # noqa: F811
    from mlscam.train import build_trainer
    from test_train_modes import make_config

    over = [a for a in ADAPT if not a.startswith("model.latent_projection")]
    with pytest.raises(ValueError, match="correction_every = 0"):
        build_trainer(make_config(problem, "global", 2, out=tmp_path / "x", overrides=over))


def test_row_means_are_the_zonal_means_of_every_listed_row():
    from mlscam.model.engine import Domain
    from mlscam.model.zonal import RowMeans

    x = torch.randn(2, GRID.ncol, LAYOUT.n_state)
    rows = np.array([4, 0, 2])
    means = RowMeans(GRID, Domain.whole(GRID), rows, 1, 5)
    got = means.mean(x)  # [B, rows, channels] float64
    want = x.double().reshape(2, GRID.nlat, GRID.nlon, -1)[:, rows, :, 1:5].mean(dim=2)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    cols = means.per_column(got, torch.float64).reshape(2, GRID.nlat, GRID.nlon, -1)
    assert torch.equal(cols[:, 4, 3], got[:, 0]) and torch.equal(cols[:, 2, 0], got[:, 2])
    assert not cols[:, 1].any()  # a row not listed: exact zeros
