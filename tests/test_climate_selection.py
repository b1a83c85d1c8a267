"""``&train climate_truth`` / ``select_by = 'climate'``: the climate score of a long rollout at each validation,
the same numbers as ``python -m mlscam.evaluate climate`` on the rollout driver's forecast, and best.pt by it."""
from __future__ import annotations

import json
import math

import pytest
import torch

from advection import write_advection
from component_case import write_namelist
from mlscam.checkpoint import load_checkpoint
from mlscam.config import ConfigError
from mlscam.evaluate import open_dataset, read_run_climate
from mlscam.train import build_trainer
from mlscam.train.climate import ClimateScore, score_of
from test_train_modes import make_config, problem  # noqa: F401 (a fixture)

CLIMATE = ["train.climate_spinup_days=1", "train.climate_days=5", "train.climate_tolerances=1.5,2.0"]


@pytest.fixture(scope="module")
def climate_problem(problem):
    """The advection problem and the climate summary of a longer "truth" run of it (another pattern)."""
    write_advection(problem / "truth.nc", 40, seed=2)
    truth = read_run_climate(open_dataset(problem / "truth.nc"), ["temperature", "u"], spinup_days=0, progress=False)
    (problem / "truth_summary.json").write_text(json.dumps(truth.to_dict()))
    return problem


@pytest.fixture(scope="module")
def trained(climate_problem, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    cfg = make_config(climate_problem, "global", 6, val_every=2, out=out, overrides=CLIMATE + [
        f"train.climate_truth={climate_problem / 'truth_summary.json'}", "train.select_by=climate"])
    trainer = build_trainer(cfg)
    trainer.run()
    return trainer, cfg, out


def test_best_pt_is_the_validation_of_lowest_climate_score(trained):
    trainer, cfg, out = trained
    scores = [h["val_climate_score"] for h in trainer.history if "val_climate_score" in h]
    assert len(scores) == 3 and all(math.isfinite(s) for s in scores)
    assert len(set(scores)) == 3  # training changes the climate
    best = load_checkpoint(out / "ck" / "best.pt")
    assert best.train_state["best_val"] == min(scores) == trainer.best_val
    assert best.train_state["step"] == 2 * (1 + scores.index(min(scores)))
    # best.pt's own weights score exactly that
    rescored = ClimateScore(cfg, layout=trainer.layout, grid=trainer.grid, normalization=trainer.normalization,
                            dt_seconds=trainer.dt_seconds)(best.build_model())
    assert rescored["climate_score"] == min(scores)


def test_the_score_is_evaluate_climate_on_the_rollout_drivers_forecast(trained, climate_problem, tmp_path):
    from mlscam.evaluate.climate_cli import main as climate_main
    from mlscam.rollout.__main__ import main as rollout_main

    trainer, cfg, out = trained
    best = out / "ck" / "best.pt"
    mine = ClimateScore(cfg, layout=trainer.layout, grid=trainer.grid, normalization=trainer.normalization,
                        dt_seconds=trainer.dt_seconds)(load_checkpoint(best).build_model())
    nml = write_namelist(tmp_path / "r.nml", best, climate_problem / "val.nc", tmp_path / "fc.nc", num_steps=20,
                         output_every=4)
    assert rollout_main([str(nml)]) == 0
    assert climate_main(["--forecast", str(tmp_path / "fc.nc"), "--truth", str(climate_problem / "truth_summary.json"),
                         "--out", str(tmp_path / "clim"), "--spinup-days", "1", "--variables", "temperature", "u",
                         "--truncation", "10", "--no-plots"]) == 0
    result = json.loads((tmp_path / "clim" / "climate.json").read_text())
    for v in ("temperature", "u"):
        m = result["forecasts"][0]["variables"][v]
        assert mine[f"climate_{v}_bias"] == pytest.approx(m["zonal_mean_bias_rms"]["total"], rel=1e-5)
        assert mine[f"climate_{v}_eddy_ratio"] == pytest.approx(m["eddy_variance_ratio"]["total"], rel=1e-5)
    assert mine["climate_score"] == pytest.approx(score_of(result, {"temperature": 1.5, "u": 2.0}), rel=1e-5)


def test_the_score_counts_one_per_term_at_the_thresholds_and_inf_when_not_finite():
    def result(bias, ratio, finite=True):
        return {"forecasts": [{"variables": {"t": {"zonal_mean_bias_rms": {"total": bias},
                                                    "eddy_variance_ratio": {"total": ratio},
                                                    "stability": {"finite": finite}}}}]}

    assert score_of(result(1.5, 1.0), {"t": 1.5}) == pytest.approx(1.0)
    assert score_of(result(0.0, 1.4), {"t": 1.5}) == pytest.approx(1.0)
    assert score_of(result(0.0, 1 / 1.4), {"t": 1.5}) == pytest.approx(1.0)
    assert score_of(result(0.0, 1.0, finite=False), {"t": 1.5}) == math.inf
    assert score_of(result(None, 1.0), {"t": 1.5}) == math.inf


def test_bad_climate_settings_are_refused_with_the_fix(climate_problem, tmp_path):
    with pytest.raises(ConfigError, match="select_by.*needs &train climate_truth"):
        make_config(climate_problem, "global", 4, val_every=2, overrides=["train.select_by=climate"])
    with pytest.raises(ConfigError, match="climate_truth.*val_every > 0"):
        make_config(climate_problem, "global", 4,
                    overrides=[f"train.climate_truth={climate_problem / 'truth_summary.json'}"])
    with pytest.raises(ValueError, match="not variables of the model"):
        build_trainer(make_config(climate_problem, "global", 4, val_every=2, out=tmp_path, overrides=CLIMATE[:2] + [
            f"train.climate_truth={climate_problem / 'truth_summary.json'}", "train.climate_variables=temperature,v"]))
    (tmp_path / "not_a_summary.json").write_text("{}")
    with pytest.raises(Exception, match="not a climate summary"):
        build_trainer(make_config(climate_problem, "global", 4, val_every=2, out=tmp_path, overrides=CLIMATE + [
            f"train.climate_truth={tmp_path / 'not_a_summary.json'}"]))


def test_the_rollout_overrides_of_the_namelist_set_the_scored_step(trained):
    """A model trained without a stabiliser is scored with it when &rollout switches it on, as it would ship."""
    from dataclasses import replace

    trainer, cfg, out = trained
    model = load_checkpoint(out / "ck" / "best.pt").build_model()
    kw = dict(layout=trainer.layout, grid=trainer.grid, normalization=trainer.normalization,
              dt_seconds=trainer.dt_seconds)
    plain = ClimateScore(cfg, **kw)
    damped = ClimateScore(replace(cfg, rollout=replace(cfg.rollout, latent_filter=0.3)), **kw)
    assert plain.latent_filter.strength == 0.0 and damped.latent_filter.strength == 0.3
    assert damped(model)["climate_score"] != plain(model)["climate_score"]


def test_the_command_line_scores_a_checkpoint_file_as_training_does(trained, tmp_path, capsys):
    from mlscam.train.climate import main

    trainer, cfg, out = trained
    best = out / "ck" / "best.pt"
    assert main([str(best)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["start"] == 0 and printed["days"] == 5
    assert printed["climate_score"] == load_checkpoint(best).train_state["best_val"]
    assert main([str(best), "--start", "0", "4"]) == 0  # two initial times: two scores, the first the same
    first, other = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first == printed and other["start"] == 4
    # every time of the advection problem is the same pattern shifted east: the same zonal statistics
    assert other["climate_score"] == pytest.approx(first["climate_score"], rel=1e-4)
    assert main([str(best), "--start", "500"]) == 1
    assert "error:" in capsys.readouterr().err
    assert main([str(best), "--set", "train.select_by=val_loss", "--set", "train.climate_truth="]) == 1
    assert "pass --set train.climate_truth=" in capsys.readouterr().err
