"""``&train free_run_weight``: the free-running chain held to the training data's climate (mlscam/train/free_run.py)."""
from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch

from mlscam.config import ConfigError
from mlscam.data.source import open_source
from mlscam.train import build_trainer
from mlscam.train.free_run import climate_of_source, zonal_statistics
from test_train_modes import make_config, problem, straight_and_resumed  # noqa: F401 (a fixture)

TERM = ["train.free_run_weight=0.1", "train.free_run_memory=0.5", "train.free_run_steps=2",
        "train.free_run_graded=1", "train.free_run_eddy=1"]


def trainer_with_term(problem, tmp_path, extra=()):  # noqa: F811 (the fixture's name)
    torch.set_num_threads(1)
    return build_trainer(make_config(problem, "global", 4, out=tmp_path, overrides=TERM + list(extra)))


def test_zonal_statistics_are_the_mean_and_the_variance_along_longitude():
    x = torch.randn(5 * 8, 3, dtype=torch.float64)
    mean, eddy = zonal_statistics(x, 5, 8)
    g = x.numpy().reshape(5, 8, 3)
    assert mean.shape == eddy.shape == (3, 5)
    np.testing.assert_allclose(mean.numpy(), g.mean(axis=1).T, rtol=1e-12)
    np.testing.assert_allclose(eddy.numpy(), g.var(axis=1).T, rtol=1e-12)


def test_the_training_climate_is_the_time_mean_of_the_states_statistics(problem, tmp_path):  # noqa: F811
    cfg = make_config(problem, "global", 4, out=tmp_path, overrides=TERM)
    source = open_source(cfg.data, states_only=True)
    layout = build_trainer(cfg).layout
    got = climate_of_source(source, layout, ("temperature", "u"), max_states=source.ntime)
    states = source.read_window(0, source.ntime).astype(np.float64)  # [t, lat, lon, S]
    for v in ("temperature", "u"):
        x = states[..., layout.slice_of(v)]
        np.testing.assert_allclose(got[v][0], x.mean(axis=2).mean(axis=0).T, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got[v][1], x.var(axis=2).mean(axis=0).T, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("eddy", [0.0, 0.5])
def test_the_term_is_the_climate_error_of_the_running_means_and_gives_a_gradient_once_warm(problem, tmp_path, eddy):  # noqa: F811,E501
    trainer = trainer_with_term(problem, tmp_path, [f"train.free_run_eddy={eddy}"])
    fr = trainer.free_run
    x0 = torch.as_tensor(open_source(trainer.config.data, states_only=True).read(0))
    loss, parts = fr(x0)
    assert not fr.warm and not loss.requires_grad  # one snapshot is weather: no gradient yet
    assert fr.samples == 1
    first = {v: [a.clone() for a in ms] for v, ms in fr.means.items()}
    loss, parts = fr(x0)
    assert fr.warm and loss.requires_grad  # memory 0.5: warm after 1 / (1 - 0.5) = 2 samples
    # the running means: the plain mean of the first two samples (then exponential)
    assert all(not torch.equal(first[v][0], fr.means[v][0]) for v in first)
    w = trainer.grid.area_weights().reshape(trainer.grid.nlat, trainer.grid.nlon)[:, 0]
    w = w / w.sum()  # the area of a latitude row's cells
    expected = 0.0
    for v, tol in (("temperature", 1.5), ("u", 2.0)):
        m, e = (a.double().numpy() for a in fr.means[v])
        m_t, e_t = (a.double().numpy() for a in fr.target[v])
        bias2 = (((m - m_t) ** 2) * w).sum(-1).mean()
        log2 = (np.log((e * w).sum(-1) / (e_t * w).sum(-1)) ** 2).mean()
        expected += bias2 / tol ** 2 + eddy * log2 / math.log(1.4) ** 2
        assert parts[f"free_run_bias_{v}"] == pytest.approx(math.sqrt(bias2), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert parts["free_run"] == pytest.approx(expected, rel=1e-5)
    trainer.model.zero_grad()
    loss.backward()
    assert float(trainer.model.mixer.out.weight.grad.abs().sum()) > 0


def test_an_offset_of_the_decoder_gets_no_gradient_from_the_term(problem, tmp_path):  # noqa: F811
    """The term scores the change over the graded steps: a decoder bias shifts the chain's decoded start as much as
    its steps, so the term cannot be met by offsetting the output (no stabiliser feeds the decode back here)."""
    trainer = trainer_with_term(problem, tmp_path)
    x0 = torch.as_tensor(open_source(trainer.config.data, states_only=True).read(0))
    trainer.free_run(x0)
    loss, _ = trainer.free_run(x0)
    trainer.model.zero_grad()
    loss.backward()
    bias = trainer.model.decoder.net[-1].bias.grad
    weight = trainer.model.decoder.net[-1].weight.grad
    assert float(weight.abs().max()) > 0  # the decoder still learns from how it decodes the steps ...
    assert float(bias.abs().max()) < 1e-4 * float(weight.abs().max())  # ... but not a constant shift (to rounding)


def test_a_run_with_the_term_logs_it_and_resumes_bit_for_bit(problem, tmp_path):  # noqa: F811
    straight, resumed = straight_and_resumed(problem, tmp_path, 8, 4, TERM)
    resumed.run()
    assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in straight.model.state_dict().items())
    assert torch.equal(straight.free_run.z, resumed.free_run.z)
    assert straight.free_run.samples == resumed.free_run.samples == 8
    assert straight.history[-1]["free_run"] == resumed.history[-1]["free_run"]
    assert {"free_run", "free_run_bias_u", "free_run_eddy_ratio_temperature"} <= set(straight.history[0])


def test_a_chain_that_is_not_finite_starts_again_from_the_batch(problem, tmp_path):  # noqa: F811
    trainer = trainer_with_term(problem, tmp_path)
    fr = trainer.free_run
    x0 = torch.as_tensor(open_source(trainer.config.data, states_only=True).read(0))
    fr(x0)
    fr(x0)
    fr.z = torch.full_like(fr.z, float("nan"))
    loss, parts = fr(x0)
    assert parts["free_run_restarts"] == 1.0 and fr.samples == 1 and not fr.warm
    assert bool(torch.isfinite(fr.z).all()) and math.isfinite(float(loss))


@pytest.mark.parametrize("override, key", [
    (["train.free_run_weight=-1"], "free_run_weight"),
    (["train.free_run_memory=1.0"], "free_run_memory"),
    (["train.free_run_graded=0"], "free_run_graded"),
    (["train.free_run_steps=-1"], "free_run_steps"),
    (["train.free_run_eddy=-0.5"], "free_run_eddy"),
])
def test_bad_free_run_settings_name_the_key(problem, override, key):  # noqa: F811
    with pytest.raises(ConfigError, match=key):
        make_config(problem, "global", 4, overrides=override)


def test_single_column_training_cannot_have_the_term(problem):  # noqa: F811
    with pytest.raises(ConfigError, match="free_run_weight.*whole globe"):
        make_config(problem, "single_column", 4, overrides=["train.free_run_weight=0.1"])


def test_a_tile_parallel_run_refuses_the_term_with_the_fix(problem, tmp_path):  # noqa: F811
    trainer = trainer_with_term(problem, tmp_path)
    trainer.tile = types.SimpleNamespace(world_size=2)
    with pytest.raises(ValueError, match="one rank.*free_run_weight = 0"):
        trainer._build_free_run()
