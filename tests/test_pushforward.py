"""&train pushforward_steps: global_rollout unrolls P steps without gradients, then K graded steps."""
from __future__ import annotations

import pytest
import torch

from component_case import GRID, LAYOUT, initial_states, make_checkpoint
from mlscam.config import ConfigError, LossConfig, TrainConfig
from mlscam.emulator import Emulator
from mlscam.train.objective import Objective


def _objective(em: Emulator, pushforward: int) -> Objective:
    return Objective(model=em.model, layout=LAYOUT, grid=GRID, normalization=em.normalization,
                     loss=LossConfig(mse=1.0).build(), mode="global_rollout", chunk_size=16, latent_truth=False,
                     pushforward_steps=pushforward)


def test_the_graded_step_starts_from_the_models_own_state_without_gradient_through_it(tmp_path):
    em = Emulator.from_checkpoint(make_checkpoint(tmp_path / "c.pt"))
    em.model.train()
    x = torch.from_numpy(initial_states()).unsqueeze(0)  # [1, 3, nlat, nlon, S]: P = 1 pushforward, K = 1 graded
    obj = _objective(em, 1)
    loss, _ = obj({"x": x})
    # by hand: encode x0, one step without gradient, one graded step compared with x2 (area-weighted MSE)
    e = obj.engine
    with torch.no_grad():
        xn = e.norm.apply(x).flatten(2, 3)
        z1 = e.step(e.encode_normalized(xn[:, 0]), 1)
        pred = e.decode_normalized(e.step(z1, 1))
        expected = ((pred - xn[:, 2]) ** 2 * obj.area[:, None]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    # the encoder only fed the pushforward: it gets no gradient; the mixer and decoder do
    assert all(p.grad is None or not p.grad.any() for p in em.model.encoder.parameters())
    assert any(p.grad is not None and p.grad.any() for p in em.model.mixer.parameters())
    em.model.zero_grad(set_to_none=True)
    loss0, _ = _objective(em, 0)({"x": x[:, :2]})
    loss0.backward()
    assert any(p.grad is not None and p.grad.any() for p in em.model.encoder.parameters())


def test_a_window_without_a_graded_step_is_refused(tmp_path):
    em = Emulator.from_checkpoint(make_checkpoint(tmp_path / "c.pt"))
    x = torch.from_numpy(initial_states()).unsqueeze(0)
    with pytest.raises(ValueError, match="no graded step after 2 pushforward steps"):
        _objective(em, 2)({"x": x})


def test_pushforward_needs_global_rollout():
    with pytest.raises(ConfigError, match="pushforward_steps"):
        TrainConfig(mode="global", pushforward_steps=3)
    assert TrainConfig(mode="global_rollout", pushforward_steps=3).pushforward_steps == 3


def test_truth_start_grades_the_windows_first_steps_from_the_truth(tmp_path):
    """truth_start = 2 on a pushforward window of 3 states is the pushforward-free loss of its first 2 steps:
    the same number as an objective without pushforward on those states, and the encoder gets a gradient."""
    em = Emulator.from_checkpoint(make_checkpoint(tmp_path / "c.pt"))
    em.model.train()
    x = torch.from_numpy(initial_states()).unsqueeze(0)  # [1, 3, ...]
    short = _objective(em, 1)({"x": x}, truth_start=2)[0]
    assert short.item() == pytest.approx(_objective(em, 0)({"x": x})[0].item(), rel=1e-6)
    assert short.item() != pytest.approx(_objective(em, 1)({"x": x})[0].item(), rel=1e-3)  # not the pushforward loss
    one = _objective(em, 1)({"x": x}, truth_start=1)[0]
    assert one.item() == pytest.approx(_objective(em, 0)({"x": x[:, :2]})[0].item(), rel=1e-6)
    short.backward()
    assert any(p.grad is not None and p.grad.any() for p in em.model.encoder.parameters())
    with pytest.raises(ValueError, match="holds no 3 steps to grade from the truth"):
        _objective(em, 1)({"x": x}, truth_start=3)


def test_truth_start_every_needs_a_pushforward_window_it_fits():
    with pytest.raises(ConfigError, match="truth_start_every"):
        TrainConfig(mode="global_rollout", truth_start_every=2)  # no pushforward to alternate with
    with pytest.raises(ConfigError, match="truth_start_steps.*fit the window of .* = 6 steps"):
        TrainConfig(mode="global_rollout", pushforward_steps=4, rollout_steps=2, truth_start_every=2,
                    truth_start_steps=7)
    ok = TrainConfig(mode="global_rollout", pushforward_steps=4, rollout_steps=2, truth_start_every=2,
                     truth_start_steps=6)
    assert (ok.truth_start_every, ok.truth_start_steps) == (2, 6)
