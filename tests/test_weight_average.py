"""``&train ema_decay``: the moving average of the weights, what validation and best.pt use, and exact resumes."""
from __future__ import annotations

import pytest
import torch

from mlscam.checkpoint import load_checkpoint
from mlscam.config import ConfigError
from mlscam.train import build_trainer
from mlscam.train.average import WeightAverage
from test_train_modes import make_config, problem, straight_and_resumed  # noqa: F401 (a fixture)


def test_the_average_follows_the_formula_and_keeps_buffers_exact():
    model = torch.nn.BatchNorm1d(3)  # parameters (weight, bias) and buffers (running stats, a counter)
    avg = WeightAverage(model, 0.9)
    expected = model.weight.detach().clone()
    for n in range(30):
        with torch.no_grad():
            model.weight.add_(1.0)
            model.running_mean.add_(0.3)
        d = min(0.9, (1 + n) / (10 + n))
        assert avg.current_decay() == d
        avg.update(model)
        expected = d * expected + (1 - d) * model.weight.detach()
    assert torch.allclose(avg.weights["weight"], expected, rtol=0, atol=1e-5)
    assert not torch.allclose(avg.weights["weight"], model.weight)  # an average lags the weights
    assert torch.equal(avg.weights["running_mean"], model.running_mean)  # buffers are copied, not averaged
    own = model.weight.detach().clone()
    with avg.applied(model):
        assert torch.equal(model.weight, avg.weights["weight"])
    assert torch.equal(model.weight, own)


def test_the_decay_must_be_below_one(problem):
    with pytest.raises(ConfigError, match="ema_decay"):
        make_config(problem, "global", 4, overrides=["train.ema_decay=1.0"])


def test_validation_and_best_pt_use_the_average_and_last_pt_keeps_the_raw_weights(problem, tmp_path):
    torch.set_num_threads(1)
    cfg = make_config(problem, "global", 8, val_every=4, out=tmp_path, overrides=["train.ema_decay=0.9"])
    trainer = build_trainer(cfg)
    trainer.run()
    raw = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert any(not torch.equal(raw[k], trainer.average.weights[k]) for k in raw)
    val = trainer.validate()
    assert all(torch.equal(raw[k], v) for k, v in trainer.model.state_dict().items())  # restored after
    trainer.model.load_state_dict(trainer.average.weights)
    trainer.average = None  # the same objective with the averaged weights loaded by hand
    assert trainer.validate()["loss"] == val["loss"]
    last = load_checkpoint(tmp_path / "ck" / "last.pt")
    assert all(torch.equal(last.state_dict[k], trainer.model.state_dict()[k]) for k in raw)
    assert all(torch.equal(last.train_state["raw_state_dict"][k], raw[k]) for k in raw)
    assert last.train_state["weight_average"]["updates"] == 8


def test_a_resumed_run_continues_the_average_bit_for_bit(problem, tmp_path):
    straight, resumed = straight_and_resumed(problem, tmp_path, 10, 5, ["train.ema_decay=0.8",
                                                                       "train.warmup_steps=3"])
    assert resumed.average.updates == 5
    resumed.run()
    a, c = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert all(torch.equal(straight.average.weights[k], resumed.average.weights[k]) for k in a)
    assert straight.best_val == resumed.best_val


def test_init_from_starts_the_average_at_the_loaded_weights(problem, tmp_path):
    torch.set_num_threads(1)
    build_trainer(make_config(problem, "global", 3, out=tmp_path / "a")).run()
    source = load_checkpoint(tmp_path / "a" / "ck" / "last.pt")
    trainer = build_trainer(make_config(problem, "global", 3, out=tmp_path / "b", overrides=[
        "train.ema_decay=0.99", f"train.init_from={tmp_path / 'a' / 'ck' / 'last.pt'}"]))
    assert trainer.average.updates == 0
    assert all(torch.equal(trainer.average.weights[k], v) for k, v in source.state_dict.items())
