"""The one training loop learns a problem with a known answer, in every mode.

The problem (tests/advection.py): a structured random pattern moves east by one
cell per step.  After a short CPU training run, a 10-step latent rollout on an
unseen pattern must beat persistence by 5x (RMSE below 0.2x persistence).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from advection import write_advection
from mlscam.config import load_config
from mlscam.data.prepare_columns import prepare_columns
from mlscam.data.source import open_source
from mlscam.emulator import Emulator
from mlscam.train import build_trainer

NAMELIST = """
&data files='train.nc' val_files='val.nc' variables_3d='u','temperature' variables_2d='surface_pressure'
      columns_dir='{columns}' /
&model latent_dim=16 encoder_hidden=32 decoder_hidden=32 channel_hidden=32 mixer_blocks=1 heads=2
       chunk_size=256 mixer='conv' /
&loss mse=1.0 reconstruction=1.0 latent_mse=1.0 /
&train mode='{mode}' batch_size={batch} max_steps={steps} lr=3e-3 warmup_steps=20 rollout_steps=3
       val_every={val_every} val_batches=2 checkpoint_every={steps} checkpoint_dir='ck' /
&output directory='{out}' progress=.false. /
"""


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    d = tmp_path_factory.mktemp("advection")
    write_advection(d / "train.nc", 48, seed=0)
    write_advection(d / "val.nc", 24, seed=1)
    return d


def make_config(d, mode, steps, *, val_every=0, columns="", out=None, overrides=()):
    batch = 64 if mode == "single_column" else 4
    text = NAMELIST.format(mode=mode, steps=steps, batch=batch, val_every=val_every, columns=columns,
                           out=out or d / f"out_{mode}")
    path = d / f"{mode}.nml"
    path.write_text(text)
    return load_config(path, overrides)


def rollout_skill(trainer, cfg, n=10):
    em = Emulator(trainer.model, trainer.layout, trainer.grid, trainer.normalization, trainer.dt_seconds,
                  chunk_size=cfg.model.chunk_size)
    src = open_source(cfg.data, files=cfg.data.val_files)
    x = torch.from_numpy(np.stack([src.read(t) for t in range(n + 1)]))
    pred = dict(em.rollout(x[0], n))[n]
    std = torch.as_tensor(trainer.normalization.state_std, dtype=torch.float32)

    def rmse(a, b):
        return float((((a - b) / std) ** 2).mean().sqrt())

    return rmse(pred, x[n]), rmse(x[0], x[n])


@pytest.mark.parametrize("mode,steps", [("global", 1000), ("global_rollout", 600), ("single_column", 1500)])
def test_each_mode_learns_advection_and_beats_persistence_5x(problem, mode, steps):
    torch.set_num_threads(1)
    columns = str(problem / "columns") if mode == "single_column" else ""
    cfg = make_config(problem, mode, steps, columns=columns)
    if mode == "single_column":
        manifest = prepare_columns(cfg.data, progress=False)  # the preparation tool cuts every tile
        assert manifest["count"] == 47 * 16 * 32
    trainer = build_trainer(cfg)
    trainer.run()
    model_rmse, persistence = rollout_skill(trainer, cfg)
    assert model_rmse < 0.2 * persistence, (mode, model_rmse, persistence)


def test_global_rollout_never_encodes_a_decoded_state(problem):
    cfg = make_config(problem, "global_rollout", 1)
    trainer = build_trainer(cfg)
    encoded, decoded = [], []
    enc_forward, dec_forward = trainer.model.encoder.forward, trainer.model.decoder.forward

    def enc(x, static):
        encoded.append(x.detach().clone())
        return enc_forward(x, static)

    def dec(z):
        out = dec_forward(z)
        decoded.append(out.detach().clone())
        return out

    trainer.model.encoder.forward, trainer.model.decoder.forward = enc, dec
    batch = trainer.train_batches(0)
    trainer.objective(batch)
    n_state = trainer.layout.n_state
    truth = trainer.objective.engine.norm.apply(batch["x"]).reshape(4, 4, -1, n_state)  # [B, K+1, ncol, S]
    # the engine encodes in chunks of chunk_size columns (batch-major); together, the encoder's inputs are
    # exactly the true states at t (the one encode that is stepped) and at t+1..t+K (for the latent terms) ...
    assert all(x.shape == (trainer.config.model.chunk_size, n_state) for x in encoded)
    assert torch.equal(torch.cat(encoded), torch.cat([truth[:, k].reshape(-1, n_state) for k in range(1 + 3)]))
    # ... and never one of the decoded predictions
    for x in encoded:
        assert not any(x.shape == y.shape and torch.allclose(x, y) for y in decoded)


def straight_and_resumed(problem, tmp_path, steps: int, val_every: int, overrides: list[str]):
    """Two runs of ``steps`` global steps: one straight, one stopped at half-way and resumed from its last.pt."""
    torch.set_num_threads(1)
    straight = build_trainer(make_config(problem, "global", steps, val_every=val_every, out=tmp_path / "a",
                                         overrides=overrides))
    straight.run()
    first = build_trainer(make_config(problem, "global", steps, val_every=val_every, out=tmp_path / "b",
                                      overrides=overrides))
    first.run(stop_at=steps // 2)
    resumed = build_trainer(make_config(problem, "global", steps, val_every=val_every, out=tmp_path / "c",
                                        overrides=overrides + [f"train.resume={tmp_path / 'b' / 'ck' / 'last.pt'}"]))
    assert resumed.step == steps // 2
    return straight, resumed


def test_resume_is_bit_for_bit(problem, tmp_path):
    """Train 12 steps straight == train 6, stop, resume from last.pt, train 6 more (schedule and
    validation included)."""
    straight, resumed = straight_and_resumed(problem, tmp_path, 12, 4, ["train.warmup_steps=3",
                                                                       "train.schedule=cosine"])
    resumed.run()
    a, c = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert straight.history[-1]["loss"] == resumed.history[-1]["loss"]
    assert straight.best_val == resumed.best_val
    sa, sc = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sc[i]["exp_avg_sq"]) for i in sa)
    # the learning rate really changed along the way (the schedule is part of what resumes)
    lrs = [h["lr"] for h in straight.history]
    assert len(set(lrs)) > 6


def test_init_from_starts_a_new_run_from_weights(problem, tmp_path):
    first = build_trainer(make_config(problem, "global", 3, out=tmp_path / "a"))
    first.run()
    ck = tmp_path / "a" / "ck" / "last.pt"
    tuned = build_trainer(make_config(problem, "global_rollout", 3, out=tmp_path / "b",
                                      overrides=[f"train.init_from={ck}"]))
    assert tuned.step == 0  # a new run: fresh optimizer and schedule ...
    a, b = first.model.state_dict(), tuned.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # ... from the first run's weights
    with pytest.raises(ValueError, match="resume and init_from are both set"):
        build_trainer(make_config(problem, "global", 3, out=tmp_path / "c",
                                  overrides=[f"train.init_from={ck}", f"train.resume={ck}"]))


def test_a_run_from_a_checkpoint_keeps_its_normalization(problem, tmp_path, capsys):
    """init_from / resume: the weights were trained on inputs normalised with the checkpoint's statistics, so
    the run keeps them even when the data at hand (and their stats file) have others."""
    import dataclasses

    from mlscam.checkpoint import load_checkpoint, save_checkpoint
    from mlscam.data.stats import write_stats

    first = build_trainer(make_config(problem, "global", 3, out=tmp_path / "a"))
    first.run()
    ck = load_checkpoint(tmp_path / "a" / "ck" / "last.pt")
    # the checkpoint's statistics made different from what the data give (as after regenerating the data)
    shifted = dataclasses.replace(ck.normalization, state_mean=ck.normalization.state_mean + 0.5,
                                  state_std=ck.normalization.state_std * 1.25)
    ck.normalization = shifted
    path = save_checkpoint(tmp_path / "shifted.pt", ck)
    stats = tmp_path / "data_stats.nc"  # the data's own statistics in the stats file
    write_stats(str(stats), first.normalization, ck.layout)
    for key in ("init_from", "resume"):
        tuned = build_trainer(make_config(problem, "global", 4, out=tmp_path / key,
                                          overrides=[f"train.{key}={path}", f"data.stats_path={stats}"]))
        for name in ("state_mean", "state_std", "tendency_mean", "tendency_std"):
            np.testing.assert_array_equal(getattr(tuned.normalization, name), getattr(shifted, name))
        assert f"differs from the normalization of the &train {key} checkpoint" in capsys.readouterr().out
        # what the run writes carries them too
        tuned.run()
        saved = load_checkpoint(tmp_path / key / "ck" / "last.pt").normalization
        np.testing.assert_array_equal(saved.state_std, shifted.state_std)
    assert not np.array_equal(first.normalization.state_std, shifted.state_std)


def test_increment_term_is_the_decoded_change_in_tendency_units(problem, tmp_path):
    """``&loss increment``: (decode(z1) - decode(z0)) against x1 - x0, both over the tendency std,
    area weighted; a bias of the decoder (the autoencoder's error) cancels from it."""
    torch.set_num_threads(1)
    cfg = make_config(problem, "global", 1, out=tmp_path, overrides=["loss.increment=2.0"])
    trainer = build_trainer(cfg)
    obj, model = trainer.objective, trainer.model
    batch = trainer.train_batches(0)
    _, terms = obj(batch)
    x = batch["x"].flatten(2, 3)  # [B, 2, ncol, S]
    engine = obj.engine
    with torch.no_grad():
        static = engine.static.expand(x.shape[0], -1, -1)
        z0 = model.encoder(engine.norm.apply(x[:, 0]), static)
        z1 = z0 + engine.advance(z0)
        std = torch.as_tensor(trainer.normalization.state_std, dtype=torch.float32)
        tstd = torch.as_tensor(trainer.normalization.tendency_std, dtype=torch.float32)
        pred = (model.decoder(z1) - model.decoder(z0)) * std / tstd
        true = (x[:, 1] - x[:, 0]) / tstd
        w = obj.area / obj.area.sum()
        by_hand = float((((pred - true) ** 2).mean(-1) * w).sum(-1).mean())
    assert terms["increment"] == pytest.approx(by_hand, rel=1e-5)
    assert terms["increment_weighted"] == pytest.approx(2.0 * by_hand, rel=1e-5)
    # shift every decoded state by a constant (an autoencoder error): mse changes, increment does not
    with torch.no_grad():
        model.decoder.net[-1].bias.add_(0.3)
    _, shifted = obj(batch)
    assert shifted["increment"] == pytest.approx(terms["increment"], rel=1e-5)
    assert shifted["mse"] > terms["mse"] + 0.05


def test_init_partial_loads_matching_tensors_of_another_model(problem, tmp_path):
    first = build_trainer(make_config(problem, "global", 2, out=tmp_path / "a"))
    first.run()
    ck = tmp_path / "a" / "ck" / "last.pt"
    wider = ["model.stencil_width=24", f"train.init_from={ck}"]
    with pytest.raises(ValueError, match="init_partial"):
        build_trainer(make_config(problem, "global", 2, out=tmp_path / "b", overrides=wider))
    tuned = build_trainer(make_config(problem, "global", 2, out=tmp_path / "c",
                                      overrides=wider + ["train.init_partial=true"]))
    a, b = first.model.state_dict(), tuned.model.state_dict()
    for k in b:
        if k.startswith(("encoder.", "decoder.", "tendency_decoder.")) or k == "mixer.crossed_embedding":
            assert torch.equal(a[k], b[k]), k  # the trained parts come over ...
    assert b["mixer.stencil.weight"].shape == (24, 9 * 16) != a["mixer.stencil.weight"].shape  # ... the wider mixer is fresh


def test_pushforward_windows_hold_the_pushforward_and_the_graded_steps(problem, tmp_path):
    """&train pushforward_steps = 2 with rollout_steps = 3: batches of 2 + 3 + 1 states; training runs;
    an init_from run with the latent filter on (a runtime key of &model) loads the same weights."""
    first = build_trainer(make_config(problem, "global", 2, out=tmp_path / "a"))
    first.run()
    ck = tmp_path / "a" / "ck" / "last.pt"
    cfg = make_config(problem, "global_rollout", 2, out=tmp_path / "b",
                      overrides=["train.pushforward_steps=2", f"train.init_from={ck}", "model.latent_filter=0.1"])
    trainer = build_trainer(cfg)
    assert trainer.train_batches(0)["x"].shape[1] == 2 + 3 + 1
    a, b = first.model.state_dict(), trainer.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert trainer.objective.engine.damping is not None
    result = trainer.run()
    assert result.steps == 2 and np.isfinite(result.history[-1]["loss"])


def test_truth_start_every_alternates_the_first_steps_from_the_truth_with_pushforward_steps(problem, tmp_path):
    """&train truth_start_every = 2: training steps 0, 2, ... grade the window's first truth_start_steps from
    the truth, steps 1, 3, ... the steps after the pushforward (what the loop asks the objective for)."""
    cfg = make_config(problem, "global_rollout", 4, out=tmp_path / "t",
                      overrides=["train.truth_start_every=2", "train.truth_start_steps=3", "train.pushforward_steps=2"])
    trainer = build_trainer(cfg)
    seen = []
    call = trainer.objective.__call__

    def spy(batch, *, truth_start=0):
        seen.append(truth_start)
        return call(batch, truth_start=truth_start)

    trainer.objective = spy
    trainer.run()
    assert seen == [3, 0, 3, 0]


def test_an_unwritable_checkpoint_dir_fails_before_training(problem, tmp_path, capsys):
    from mlscam.train.__main__ import main

    (tmp_path / "file.txt").write_text("x")
    nml = tmp_path / "t.nml"
    nml.write_text(NAMELIST.format(mode="global", steps=2, batch=4, val_every=0, columns="", out=tmp_path / "o")
                   .replace("'train.nc'", f"'{problem / 'train.nc'}'").replace("'val.nc'", f"'{problem / 'val.nc'}'")
                   .replace("checkpoint_dir='ck'", f"checkpoint_dir='{tmp_path / 'file.txt' / 'ck'}'"))
    assert main([str(nml)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: &train checkpoint_dir = ") and "cannot be written" in err
    assert "set &train checkpoint_dir to a directory in a writable place" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "t.nml"]  # no statistics, no log


def test_resume_with_another_model_says_which_keys_differ(problem, tmp_path):
    from mlscam.checkpoint import CheckpointError

    first = build_trainer(make_config(problem, "global", 1, out=tmp_path / "a"))
    first.run()
    ck = tmp_path / "a" / "ck" / "last.pt"
    with pytest.raises(CheckpointError, match=r"(?s)&train resume = .*another &model.*\n  latent_dim = 16 in the "
                                              r"checkpoint, 8 in this run\n  mixer = 'conv' in the checkpoint, "
                                              r"'mlp' in this run\n.*init_from.*init_partial = .true."):
        build_trainer(make_config(problem, "global", 2, out=tmp_path / "b",
                                  overrides=["model.latent_dim=8", "model.mixer=mlp", f"train.resume={ck}"]))
    with pytest.raises(CheckpointError, match=r"(?s)init_from .*\n  latent_dim = 16 in the checkpoint, 8 in this run"):
        build_trainer(make_config(problem, "global", 2, out=tmp_path / "c",
                                  overrides=["model.latent_dim=8", f"train.init_from={ck}"]))


def test_mirror_reaches_the_training_batches_and_training_runs(problem, tmp_path):
    """&train mirror = .true.: the trainer's batches are the plain ones, about half flipped north-south with the
    mirror_negate variables negated (this problem has no v: u stands in); validation is never mirrored."""
    plain = build_trainer(make_config(problem, "global", 2, out=tmp_path / "a"))
    mirrored = build_trainer(make_config(problem, "global", 2, out=tmp_path / "b", overrides=["train.mirror=true", "train.mirror_negate=u"]))
    step = next(s for s in range(100) if mirrored.train_batches.draw(s)[1].any())  # a batch with a flipped window
    times, flips = mirrored.train_batches.draw(step)
    a, b = plain.train_batches(step)["x"].numpy(), mirrored.train_batches(step)["x"].numpy()
    v = mirrored.train_batches.negate
    assert v.size > 0
    for f, wa, wb in zip(flips, a, b):
        want = wa[:, ::-1].copy() if f else wa
        if f:
            want[..., v] *= -1
        np.testing.assert_array_equal(wb, want)
    assert not mirrored.val_batches.draw(0)[1].any()
    result = mirrored.run()
    assert result.steps == 2 and np.isfinite(result.history[-1]["loss"])
