import numpy as np
import pytest
import torch

from mlscam.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from mlscam.config import Config, ModelConfig
from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout
from mlscam.emulator import Emulator
from mlscam.model import build_model
from mlscam.normalization import Normalization

LAYOUT = ColumnLayout(("u", "temperature"), ("surface_pressure",), (0.3, 0.7),
                      units={"u": "m s-1", "temperature": "K", "surface_pressure": "Pa"})
GRID = LatLonGrid.equiangular(4, 8)
CFG = Config(model=ModelConfig(latent_dim=8, encoder_hidden=16, decoder_hidden=16, channel_hidden=16,
                               mixer_blocks=1, heads=2, chunk_size=16))


def _ckpt(seed=0):
    torch.manual_seed(seed)
    model = build_model(CFG.model, LAYOUT)
    rng = np.random.default_rng(seed)
    n = LAYOUT.n_state
    norm = Normalization(rng.normal(size=n), rng.uniform(1, 2, n), rng.normal(size=n), rng.uniform(1, 2, n))
    return Checkpoint(config=CFG, layout=LAYOUT, normalization=norm, dt_seconds=21600.0, grid=GRID,
                      state_dict=model.state_dict(), metadata={"note": "test"}), model


def test_round_trip_gives_identical_outputs_and_loads_weights_only(tmp_path):
    ckpt, model = _ckpt()
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    raw = torch.load(path, weights_only=True)  # plain containers: no code runs on load
    assert raw["format_version"] == 1 and raw["layout"]["levels"] == [0.3, 0.7]
    em1 = Emulator(model, LAYOUT, GRID, ckpt.normalization, 21600.0, chunk_size=16)
    em2 = Emulator.from_checkpoint(path)
    assert em2.layout == LAYOUT and em2.grid == GRID and em2.dt_seconds == 21600.0
    assert em2.checkpoint.config == CFG
    x0 = torch.randn(GRID.nlat, GRID.nlon, LAYOUT.n_state, generator=torch.Generator().manual_seed(3))
    out1 = [x for _, x in em1.rollout(x0, 3)]
    out2 = [x for _, x in em2.rollout(x0, 3)]
    assert all(torch.equal(a, b) for a, b in zip(out1, out2))


def test_a_mismatched_layout_is_refused_with_both_layouts(tmp_path):
    ckpt, _ = _ckpt()
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    other = ColumnLayout(("u", "temperature"), ("surface_pressure",), (0.2, 0.5, 0.8))
    with pytest.raises(CheckpointError, match=r"another column layout:\n  levels: \[0.3, 0.7\] != \[0.2, 0.5, 0.8\]"):
        load_checkpoint(path, expected_layout=other)


def test_another_grid_needs_the_explicit_option(tmp_path):
    ckpt, _ = _ckpt()
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    t42 = LatLonGrid.equiangular(8, 16)
    with pytest.raises(CheckpointError, match=r"trained on a 4x8 .* run is on a 8x16 grid.*allow_other_grid = .true."):
        Emulator.from_checkpoint(path, grid=t42)
    em = Emulator.from_checkpoint(path, grid=t42, allow_other_grid=True)
    z = em.step(em.encode(torch.zeros(8, 16, LAYOUT.n_state)))
    assert z.shape == (8, 16, 8)


def test_not_a_checkpoint_and_newer_format_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"x.pt is not an mlscam checkpoint \(a torch file without 'format_version'\)"):
        load_checkpoint(tmp_path / "x.pt")
    ckpt, _ = _ckpt()
    d = ckpt.to_dict()
    d["format_version"] = 99
    torch.save(d, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="format 99 is newer"):
        load_checkpoint(tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_export_drops_optimizer_state_and_records_provenance(tmp_path):
    from mlscam.checkpoint import export_for_inference, main

    ckpt, _ = _ckpt()
    ckpt.optimizer_state = {"state": {}, "param_groups": []}
    ckpt.train_state = {"step": 7, "best_val": 0.5}
    src = save_checkpoint(tmp_path / "last.pt", ckpt)
    out = export_for_inference(src, tmp_path / "ship.pt")
    shipped = load_checkpoint(out)
    assert shipped.optimizer_state is None and shipped.train_state is None
    assert shipped.metadata["training"]["steps"] == 7 and shipped.metadata["training"]["best_val_loss"] == 0.5
    assert shipped.state_dict.keys() == ckpt.state_dict.keys()
    assert main(["info", str(out)]) == 0
    assert main(["info", str(tmp_path / "nope.pt")]) == 1


def test_text_truncated_and_foreign_files_are_not_checkpoints(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("this is a text file\n")
    with pytest.raises(CheckpointError, match=r"notes.pt is not an mlscam checkpoint \(not a torch file: "):
        load_checkpoint(text)
    ckpt, _ = _ckpt()
    whole = save_checkpoint(tmp_path / "m.pt", ckpt).read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match=r"cut.pt is not an mlscam checkpoint \(a damaged or truncated torch"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list.pt is not an mlscam checkpoint \(a torch file holding a list"):
        load_checkpoint(tmp_path / "list.pt")
    torch.save({"format_version": 1, "weights": torch.zeros(2)}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"w.pt is not an mlscam checkpoint \(a torch file without \["):
        load_checkpoint(tmp_path / "w.pt")


def test_unit_spellings_are_the_same_layout_and_real_differences_are_listed(tmp_path):
    from mlscam.layout import canonical_units

    assert canonical_units("m/s") == canonical_units("m s-1") == canonical_units("m s^-1") == "m s-1"
    assert canonical_units("kg m^-2 s**-1") == canonical_units("kg/m2/s") == "kg m-2 s-1"
    assert canonical_units("K") == "K" and canonical_units(" Pa") == "Pa" and canonical_units("hPa") != "Pa"
    ckpt, _ = _ckpt()
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    spelled = ColumnLayout(LAYOUT.variables_3d, LAYOUT.variables_2d, LAYOUT.levels,
                           units={"u": "m/s", "temperature": "K", "surface_pressure": "Pa"})
    assert load_checkpoint(path, expected_layout=spelled).layout == LAYOUT  # the demo's 'm/s' data resume
    hpa = ColumnLayout(LAYOUT.variables_3d, LAYOUT.variables_2d, LAYOUT.levels,
                       units={"u": "m/s", "temperature": "K", "surface_pressure": "hPa"})
    with pytest.raises(CheckpointError, match=r"another column layout:\n  units of surface_pressure: 'Pa' != 'hPa'\n"):
        load_checkpoint(path, expected_layout=hpa)


def test_a_checkpoint_from_before_level_source_loads_with_the_defaults(tmp_path):
    """Checkpoints written before &data level_source existed (and without a name map) still load:
    'auto' and model names, the behaviour they were made with."""
    ckpt, _ = _ckpt()
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    raw = torch.load(path, weights_only=True)
    del raw["config"]["data"]["level_source"], raw["config"]["data"]["file_names_3d"]
    torch.save(raw, tmp_path / "old.pt")
    data = load_checkpoint(tmp_path / "old.pt").config.data
    assert data.level_source == "auto" and data.file_names_3d == ()


def test_export_sets_runtime_keys_of_the_step_and_only_those(tmp_path, capsys):
    from mlscam.checkpoint import export_for_inference, main

    ckpt, _ = _ckpt()
    src = save_checkpoint(tmp_path / "last.pt", ckpt)
    out = export_for_inference(src, tmp_path / "ship.pt", {"latent_projection": "0.1", "mass_fixer": "true"})
    shipped = load_checkpoint(out)
    assert shipped.config.model.latent_projection == 0.1 and shipped.config.model.mass_fixer is True
    assert shipped.metadata["export_settings"] == {"model.latent_projection": "0.1", "model.mass_fixer": "true"}
    assert shipped.config.model.same_parameters(ckpt.config.model)
    assert main(["export", str(src), str(tmp_path / "bad.pt"), "--set", "latent_dim=3"]) == 1
    assert "only the &model runtime keys" in capsys.readouterr().err
    assert main(["export", str(src), str(tmp_path / "bad.pt"), "--set", "mass_fixer=maybe"]) == 1
    assert "expected true/false" in capsys.readouterr().err
    assert not (tmp_path / "bad.pt").exists()


def test_export_records_every_data_file_and_what_chose_the_weights(tmp_path):
    import dataclasses

    import netCDF4

    from mlscam.checkpoint import export_for_inference

    for name, seed in (("a.nc", 0), ("b.nc", 4)):
        with netCDF4.Dataset(tmp_path / name, "w") as ds:
            ds.setncattr("tool", "mlscam.datagen.held_suarez")
            ds.setncattr("seed", np.int64(seed))
    ckpt, _ = _ckpt()
    ckpt.config = dataclasses.replace(
        ckpt.config, data=dataclasses.replace(ckpt.config.data, files=(str(tmp_path / "*.nc"),)),
        train=dataclasses.replace(ckpt.config.train, select_by="climate", climate_truth="t.json", val_every=10))
    ckpt.train_state = {"step": 3, "best_val": 4.5}
    training = load_checkpoint(export_for_inference(save_checkpoint(tmp_path / "last.pt", ckpt),
                                                    tmp_path / "ship.pt")).metadata["training"]
    assert training["data"]["seed"] == 0  # the first file's, as before
    assert [(f["file"], f["seed"]) for f in training["data"]["per_file"]] == [("a.nc", 0), ("b.nc", 4)]
    assert training["selected_by"] == "climate" and training["best_val_loss"] == 4.5


def _rollout(path, x0, steps=4):
    em = Emulator.from_checkpoint(path)
    return torch.stack([x for _, x in em.rollout(x0, steps)])


@pytest.mark.parametrize("args", [{"channel_hidden": 24}, {"mixer_blocks": 3},
                                  {"channel_hidden": 32, "mixer_blocks": 2}])
def test_grow_gives_a_larger_mixer_that_computes_the_same(tmp_path, args):
    from mlscam.checkpoint import grow_checkpoint

    ckpt, model = _ckpt()
    with torch.no_grad():  # weights far from their near-identity start, so a changed function would show
        for p in model.mixer.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    ckpt.state_dict = model.state_dict()
    src = save_checkpoint(tmp_path / "m.pt", ckpt)
    dst = grow_checkpoint(src, tmp_path / "big.pt", **args)
    big = load_checkpoint(dst)
    assert big.config.model.channel_hidden == args.get("channel_hidden", 16)
    assert big.config.model.mixer_blocks == args.get("mixer_blocks", 1)
    assert big.metadata["grown_from"]["file"] == "m.pt" and big.optimizer_state is None
    grown_params = sum(v.numel() for v in big.state_dict.values())
    assert grown_params > sum(v.numel() for v in ckpt.state_dict.values())
    x0 = torch.randn(GRID.nlat, GRID.nlon, LAYOUT.n_state, generator=torch.Generator().manual_seed(3))
    before, after = _rollout(src, x0), _rollout(dst, x0)
    assert not torch.equal(before[1], before[0])  # the mixer does move the state
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    # the new parts are no-ops because their output weights are zero, not because their inputs are
    if "channel_hidden" in args:
        w2 = big.state_dict["mixer.blocks.0.mlp.2.weight"]
        assert torch.count_nonzero(w2[:, 16:]) == 0
        assert torch.count_nonzero(big.state_dict["mixer.blocks.0.mlp.0.weight"][16:]) > 0
    if args.get("mixer_blocks", 1) > 1:
        assert torch.count_nonzero(big.state_dict["mixer.blocks.1.mlp.2.weight"]) == 0
        assert torch.count_nonzero(big.state_dict["mixer.blocks.1.mlp.2.bias"]) == 0
        assert torch.count_nonzero(big.state_dict["mixer.blocks.1.mlp.0.weight"]) > 0


def test_grow_refuses_to_shrink_or_do_nothing_and_says_so(tmp_path, capsys):
    from mlscam.checkpoint import grow_checkpoint, main

    ckpt, _ = _ckpt()
    src = save_checkpoint(tmp_path / "m.pt", ckpt)
    with pytest.raises(CheckpointError, match="only grows: .* channel_hidden 16 and mixer_blocks 1, asked for 8 and 1"):
        grow_checkpoint(src, tmp_path / "s.pt", channel_hidden=8)
    assert main(["grow", str(src), str(tmp_path / "same.pt")]) == 1
    assert "nothing to grow" in capsys.readouterr().err and not (tmp_path / "same.pt").exists()


def test_blend_is_the_weighted_mean_of_two_models_and_refuses_what_does_not_fit(tmp_path, capsys):
    import dataclasses

    from mlscam.checkpoint import blend_checkpoints, grow_checkpoint, main

    ckpt, model = _ckpt()
    a = save_checkpoint(tmp_path / "a.pt", ckpt)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    ckpt.state_dict = model.state_dict()
    # a runtime key (a setting of the step, no parameter) may differ; the blend takes the second's
    ckpt.config = dataclasses.replace(ckpt.config, model=dataclasses.replace(ckpt.config.model, chunk_size=64))
    b = save_checkpoint(tmp_path / "b.pt", ckpt)
    sa, sb = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    assert main(["blend", str(a), str(b), str(tmp_path / "m.pt"), "--weight", "0.25"]) == 0
    mixed = load_checkpoint(tmp_path / "m.pt")
    for key in sa:
        if sa[key].is_floating_point():
            torch.testing.assert_close(mixed.state_dict[key], 0.75 * sa[key] + 0.25 * sb[key], rtol=1e-6, atol=1e-7)
    assert mixed.metadata["blended_from"]["weight_of_second"] == 0.25 and mixed.config.model.chunk_size == 64
    assert mixed.metadata["blended_from"]["first"]["file"] == "a.pt" and mixed.optimizer_state is None
    # the ends are the two models themselves
    for w, want in ((0.0, sa), (1.0, sb)):
        end = load_checkpoint(blend_checkpoints(a, b, tmp_path / f"e{w}.pt", weight=w)).state_dict
        assert all(torch.equal(end[k], want[k]) for k in want)
    # another architecture, other statistics, a weight outside [0, 1]: refused, nothing written
    bigger = grow_checkpoint(a, tmp_path / "wide.pt", channel_hidden=24)
    with pytest.raises(CheckpointError, match="channel_hidden is 16 in the first and 24 in the second"):
        blend_checkpoints(a, bigger, tmp_path / "x.pt", weight=0.5)
    other = load_checkpoint(b)
    other.normalization = dataclasses.replace(other.normalization, state_std=other.normalization.state_std * 2)
    c = save_checkpoint(tmp_path / "c.pt", other)
    with pytest.raises(CheckpointError, match="normalization statistics differ"):
        blend_checkpoints(a, c, tmp_path / "x.pt", weight=0.5)
    assert main(["blend", str(a), str(b), str(tmp_path / "x.pt"), "--weight", "1.5"]) == 1
    assert "must lie in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
