"""mlscam.config: strict namelist reading, validation, paths, overrides, serialisation."""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

import pytest

import mlscam
from mlscam.assets import resolve_asset
from mlscam.config import (Config, ConfigError, DataConfig, ModelConfig, ParallelConfig, add_config_arguments,
                           apply_overrides, config_from_args, config_from_dict, config_to_dict,
                           config_to_namelist, load_config)

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = pathlib.Path(mlscam.__file__).resolve().parent


def write(tmp_path: pathlib.Path, text: str, name: str = "run.nml") -> pathlib.Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load_error(tmp_path: pathlib.Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: "):]


# ----------------------------------------------------------------------------- strict reading

def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_typo_key_names_it_lists_valid_keys_and_suggests(tmp_path):
    message = load_error(tmp_path, "&model latnet_dim = 64 /\n")
    assert message == (
        "unknown key 'latnet_dim' in &model; did you mean 'latent_dim'? Valid keys of &model: "
        "latent_dim, encoder_hidden, encoder_layers, decoder_hidden, decoder_layers, mixer, "
        "mixer_blocks, token_hidden, channel_hidden, stencil_width, heads, norm, activation, chunk_size, latent_filter, latent_filter_polar_lat, "
        "latent_projection, latent_projection_every, latent_substeps, mass_fixer, polar_wind_fixer")


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path):
    message = load_error(tmp_path, "&coupler zzz = 1 /\n")
    assert message == "unknown key 'zzz' in &coupler. Valid keys of &coupler: coupling_interval_seconds"


def test_keys_and_groups_are_case_insensitive(tmp_path):
    cfg = load_config(write(tmp_path, "&MODEL Latent_Dim = 64 /\n"))
    assert cfg.model.latent_dim == 64


@pytest.mark.parametrize("text, message", [
    ("&model latent_dim = 'big' /", "model.latent_dim = 'big': expected an integer"),
    ("&model latent_dim = 2.5 /", "model.latent_dim = 2.5: expected an integer"),
    ("&train lr = '1e-3' /", "train.lr = '1e-3': expected a real number"),
    ("&train bf16 = 1 /", "train.bf16 = 1: expected a logical (.true. or .false.)"),
    ("&model mixer = 3 /", "model.mixer = 3: expected a quoted string"),
    ("&model mixer = 'mlp', 'conv' /", "model.mixer = 'mlp', 'conv': expected one value, a quoted string, not a list"),
    ("&parallel layout = 1, 'a' /",
     "parallel.layout = 1, 'a': entry 2 ('a') is not an integer; expected a list of integers"),
])
def test_wrong_type_shows_key_value_and_what_is_allowed(tmp_path, text, message):
    assert load_error(tmp_path, text + "\n") == message


@pytest.mark.parametrize("text, message", [
    ("&model latent_dim = -3 /", "model.latent_dim = -3: must be > 0"),
    ("&model latent_dim = 0 /", "model.latent_dim = 0: must be > 0"),
    ("&model mixer = 'mpl' /", "model.mixer = 'mpl': must be one of 'mlp', 'conv'"),
    ("&model norm = 'batch' /", "model.norm = 'batch': must be one of 'layer', 'none'"),
    ("&model activation = 'relu' /", "model.activation = 'relu': must be one of 'gelu', 'silu'"),
    ("&model latent_dim = 30 heads = 4 /", "model.heads = 4: must divide latent_dim = 30"),
    ("&train mode = 'local' /", "train.mode = 'local': must be one of 'single_column', 'global', 'global_rollout'"),
    ("&train schedule = 'step' /", "train.schedule = 'step': must be one of 'cosine', 'linear', 'constant'"),
    ("&train min_lr_ratio = 2 /", "train.min_lr_ratio = 2.0: must be between 0 and 1"),
    ("&train lr = 0 /", "train.lr = 0.0: must be > 0"),
    ("&parallel device = 'tpu' /", "parallel.device = 'tpu': must be one of 'auto', 'cpu', 'cuda'"),
    ("&parallel layout = 2 /",
     "parallel.layout = 2: must be two non-negative integers (ranks along lat, lon), e.g. 2, 4; 0, 0 = automatic"),
    ("&parallel layout = 2, -1 /",
     "parallel.layout = 2, -1: must be two non-negative integers (ranks along lat, lon), e.g. 2, 4; 0, 0 = automatic"),
    ("&rollout num_steps = -1 /", "rollout.num_steps = -1: must be >= 0"),
    ("&rollout output_every = 0 /", "rollout.output_every = 0: must be > 0"),
    ("&data time_step_hours = 0 /", "data.time_step_hours = 0.0: must be > 0"),
    ("&data file_names_3d = 'U', 'V' /",
     "data.file_names_3d = 'U', 'V': must be empty or give one name per entry of variables_3d (3)"),
    ("&data variables_3d = 'u', 'u' /", "data.variables_3d = 'u', 'u': names must be unique; repeated: u"),
    ("&model mixer = 'mlp' stencil_width = 96 /",
     "model.stencil_width = 96: applies to the 'conv' mixer only; set &model stencil_width = 0 with mixer = 'mlp'"),
    ("&model stencil_width = -1 /", "model.stencil_width = -1: must be >= 0"),
    ("&loss mse = -1 /", "loss.mse = -1.0: must be >= 0.0"),
    ("&loss mse = 0 /", "loss.mse = 0.0: every loss weight is 0; give at least one of mse, mae, ccc, "
                        "ccc_latent, barlow, vicreg, tendency_mse, increment, latent_mse, reconstruction a weight > 0"),
    ("&rollout output_nc_path = 'mlscam:x.nc' /", "rollout.output_nc_path = 'mlscam:x.nc': package assets are "
                                                  "read-only; give a path (relative paths go under output.directory)"),
    ("&mlscam host_groups = 'model' /", "mlscam.host_groups = 'model': model is an mlscam group and cannot be a host group"),
])
def test_out_of_range_values(tmp_path, text, message):
    assert load_error(tmp_path, text + "\n") == message


def test_unknown_group_names_it_lists_groups_and_explains_host_groups(tmp_path):
    message = load_error(tmp_path, "&toy_host nsteps = 4 /\n")
    assert message == (
        "unknown group &toy_host. Valid mlscam groups: &mlscam, &data, &model, &loss, &train, &rollout, "
        "&parallel, &coupler, &output. If &toy_host belongs to a host model, declare it: "
        "&mlscam host_groups = 'toy_host' /")


def test_unknown_group_suggests_close_name_and_extends_existing_host_groups(tmp_path):
    message = load_error(tmp_path, "&mlscam host_groups = 'atm' /\n&modle latent_dim = 8 /\n")
    assert message.startswith("unknown group &modle; did you mean &model? Valid mlscam groups:")
    assert message.endswith("declare it: &mlscam host_groups = 'atm', 'modle' /")


def test_declared_host_group_is_ignored(tmp_path):
    cfg = load_config(write(tmp_path, "&mlscam host_groups = 'TOY_HOST', 'ocean' /\n"
                                      "&toy_host nsteps = 4 anything = 'goes' /\n&model latent_dim = 8 heads = 2 /\n"))
    assert cfg.mlscam.host_groups == ("toy_host", "ocean")
    assert cfg.model.latent_dim == 8


@pytest.mark.parametrize("text, message", [
    ("&data /\n&data /\n", "group &data appears more than once; merge its keys into one &data ... / group"),
    ("&data files(2) = 'a.nc' /\n",
     "data.files: indexed assignment (files(i) = ...) is not supported; give the whole list: files = a, b, ..."),
    ("just text\n", "no namelist group found; write groups as &group key = value, ... / "
                    "(an empty '&mlscam /' takes every default)"),
])
def test_structural_errors(tmp_path, text, message):
    assert load_error(tmp_path, text) == message


def test_unterminated_group_is_a_syntax_error(tmp_path):
    assert load_error(tmp_path, "&model latent_dim = 8\n").startswith("not a valid Fortran namelist")


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the namelist file"):
        load_config(tmp_path / "absent.nml")


def test_f90nml_quirks_scalar_for_list_int_for_real_logicals(tmp_path):
    cfg = load_config(write(tmp_path, "&data variables_2d = 'ps' time_step_hours = 3 /\n"
                                      "&train bf16 = T grad_checkpointing = .true. /\n&parallel layout = 2, 4 /\n"))
    assert cfg.data.variables_2d == ("ps",)
    assert cfg.data.time_step_hours == 3.0 and isinstance(cfg.data.time_step_hours, float)
    assert cfg.train.bf16 is True and cfg.train.grad_checkpointing is True
    assert cfg.parallel.layout == (2, 4)


def test_empty_string_is_an_empty_list_and_unset_path(tmp_path):
    cfg = load_config(write(tmp_path, "&data files = '' static_features = '' /\n&train resume = '' /\n"))
    assert cfg.data.files == () and cfg.data.static_features == ()
    assert cfg.train.resume == ""


def test_constructor_coerces_lists_to_tuples_and_validates():
    data = DataConfig(files=["a.nc", "b.nc"], variables_3d=["t"])
    assert data.files == ("a.nc", "b.nc") and data.variables_3d == ("t",)
    assert hash(Config(data=data)) == hash(Config(data=DataConfig(files=("a.nc", "b.nc"), variables_3d=("t",))))
    assert ParallelConfig(layout=[1, 2]).layout == (1, 2)
    with pytest.raises(ConfigError, match=r"^model.latent_dim = 0: must be > 0$"):
        ModelConfig(latent_dim=0)
    with pytest.raises(ConfigError, match="Config.model must be a ModelConfig"):
        Config(model={"latent_dim": 8})


# ----------------------------------------------------------------------------- paths

def test_input_paths_resolve_against_namelist_dir_from_any_cwd(tmp_path, monkeypatch):
    nml = write(tmp_path, "&data files = '../data/*.nc', '/abs/x.nc' val_files = 'v.nc' /\n"
                          "&train resume = 'ck/last.pt' /\n", name="runs/exp/run.nml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(nml)
    assert cfg.data.files == (str(tmp_path / "runs" / "data" / "*.nc"), "/abs/x.nc")
    assert cfg.data.val_files == (str(tmp_path / "runs" / "exp" / "v.nc"),)
    assert cfg.train.resume == str(tmp_path / "runs" / "exp" / "ck" / "last.pt")
    monkeypatch.chdir(tmp_path)  # a relative namelist path; input paths do not depend on the cwd
    again = load_config(os.path.relpath(nml))
    assert (again.data, again.train.resume) == (cfg.data, cfg.train.resume)


def test_package_assets(tmp_path):
    assert resolve_asset("mlscam:demo/checkpoint.pt") == PACKAGE / "assets" / "demo" / "checkpoint.pt"
    cfg = load_config(write(tmp_path, "&rollout input_nc_path = 'mlscam:demo/initial_state.nc' /\n"))
    assert cfg.rollout.input_nc_path == str(PACKAGE / "assets" / "demo" / "initial_state.nc")
    for bad in ("mlscam:", "mlscam:../secret", "mlscam:/etc/passwd", "demo/x.pt"):
        with pytest.raises(ValueError):
            resolve_asset(bad)
    message = load_error(tmp_path, "&rollout checkpoint_path = 'mlscam:../x.pt' /\n")
    assert message == ("rollout.checkpoint_path = 'mlscam:../x.pt': the part after 'mlscam:' must be a relative "
                       "path inside mlscam/assets using '/' and no '..'")


def test_output_paths_resolve_under_output_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nml = write(tmp_path, "&output directory = 'out' /\n&rollout output_nc_path = 'f/forecast.nc' "
                          "restart_out = '/abs/restart.nc' /\n&data stats_path = 'stats.nc' /\n", name="cfg/run.nml")
    cfg = load_config(nml)
    assert cfg.output.directory == str(tmp_path / "out")
    assert cfg.rollout.output_nc_path == str(tmp_path / "out" / "f" / "forecast.nc")
    assert cfg.rollout.restart_out == "/abs/restart.nc"
    assert cfg.train.checkpoint_dir == str(tmp_path / "out" / "checkpoints")
    assert cfg.data.stats_path == str(tmp_path / "out" / "stats.nc")
    assert cfg.data.columns_dir == ""


def test_resolution_is_idempotent_through_namelist_text(tmp_path):
    cfg = load_config(write(tmp_path, "&data files = 'd/*.nc' /\n&output directory = 'o' /\n", name="a/run.nml"))
    again = load_config(write(tmp_path, config_to_namelist(cfg), name="b/c/resolved.nml"))
    assert again == cfg


# ----------------------------------------------------------------------------- overrides

def test_overrides_parse_by_field_type(tmp_path):
    nml = write(tmp_path, "&model latent_dim = 64 /\n")
    cfg = load_config(nml, ["model.latent_dim=32", "parallel.layout=2,4", "train.bf16=.TRUE.",
                            "loss.ccc=1d-1", "model.mixer='mlp'", "data.static_features=", "Train.Lr=3e-4",
                            "loss.self_normalise=t"])
    assert cfg.model.latent_dim == 32 and cfg.model.mixer == "mlp"
    assert cfg.parallel.layout == (2, 4)
    assert cfg.train.bf16 is True and cfg.loss.self_normalise is True
    assert cfg.loss.ccc == 0.1 and cfg.train.lr == 3e-4
    assert cfg.data.static_features == ()
    assert apply_overrides(cfg, ["train.bf16=false", "train.bf16=F"]).train.bf16 is False


def test_overrides_of_a_group_are_checked_together_in_any_order(tmp_path):
    """A check across keys sees every override: the pushforward may come before the mode it needs."""
    nml = write(tmp_path, "&train mode = 'global' /\n")
    cfg = load_config(nml, ["train.pushforward_steps=24", "train.truth_start_every=2", "train.truth_start_steps=30",
                            "train.rollout_steps=6", "train.mode=global_rollout"])
    assert (cfg.train.mode, cfg.train.pushforward_steps, cfg.train.truth_start_steps) == ("global_rollout", 24, 30)
    with pytest.raises(ConfigError) as info:  # still refused when the final values do not fit, naming every --set
        load_config(nml, ["train.pushforward_steps=24", "model.latent_dim=32"])
    assert str(info.value).startswith("--set train.pushforward_steps=24: train.pushforward_steps = 24: applies to "
                                      "mode = 'global_rollout' only"), str(info.value)


@pytest.mark.parametrize("override, message", [
    ("model.latnet_dim=3", "--set model.latnet_dim=3: unknown key 'latnet_dim' in &model; did you mean 'latent_dim'?"),
    ("model.latent_dim=big", "--set model.latent_dim=big: model.latent_dim = big: expected an integer"),
    ("model.latent_dim=-8", "--set model.latent_dim=-8: model.latent_dim = -8: must be > 0"),
    ("train.bf16=yes", "--set train.bf16=yes: train.bf16 = yes: expected true/false/.true./.false./t/f"),
    ("parallel.layout=2,x", "--set parallel.layout=2,x: parallel.layout = 2,x: expected an integer"),
    ("model.heads", "--set model.heads: expected --set group.key=value, e.g. --set model.latent_dim=64"),
    ("modle.heads=2", "--set modle.heads=2: unknown group &modle; did you mean &model?"),
    ("toy_host.nsteps=2", "--set toy_host.nsteps=2: &toy_host is a host-model group; mlscam does not read it"),
])
def test_override_errors(tmp_path, override, message):
    nml = write(tmp_path, "&mlscam host_groups = 'toy_host' /\n&toy_host nsteps = 1 /\n")
    with pytest.raises(ConfigError) as info:
        load_config(nml, [override])
    assert str(info.value).startswith(message), str(info.value)


def test_override_paths_resolve_against_cwd_and_output_directory(tmp_path, monkeypatch):
    nml = write(tmp_path, "&rollout input_nc_path = 'init.nc' /\n", name="cfg/run.nml")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(nml, ["rollout.checkpoint_path=ck/model.pt", "output.directory=results"])
    assert cfg.rollout.checkpoint_path == str(tmp_path / "ck" / "model.pt")
    assert cfg.rollout.input_nc_path == str(tmp_path / "cfg" / "init.nc")
    assert cfg.rollout.output_nc_path == str(tmp_path / "results" / "forecast.nc")


def test_argparse_integration(tmp_path):
    nml = write(tmp_path, "&model latent_dim = 64 /\n")
    parser = add_config_arguments(argparse.ArgumentParser())
    args = parser.parse_args([str(nml), "--set", "model.latent_dim=16", "--set", "model.heads=2"])
    cfg = config_from_args(args)
    assert (cfg.model.latent_dim, cfg.model.heads) == (16, 2)
    assert config_from_args(parser.parse_args([str(nml)])).model.latent_dim == 64


# ----------------------------------------------------------------------------- serialisation

def test_dict_round_trip_is_plain_json(tmp_path):
    cfg = load_config(write(tmp_path, "&mlscam host_groups = 'h' /\n&h x = 1 /\n&data files = 'a.nc', 'b.nc' /\n"
                                      "&parallel layout = 1, 2 /\n&train bf16 = .true. /\n"))
    d = config_to_dict(cfg)
    assert json.loads(json.dumps(d)) == d
    assert d["data"]["files"] == [str(tmp_path / "a.nc"), str(tmp_path / "b.nc")]
    assert d["parallel"]["layout"] == [1, 2] and d["mlscam"]["host_groups"] == ["h"]
    assert config_from_dict(json.loads(json.dumps(d))) == cfg


def test_dict_loading_is_strict_and_fills_defaults():
    assert config_from_dict({"model": {"latent_dim": 8, "heads": 2}}) == Config(model=ModelConfig(latent_dim=8, heads=2))
    with pytest.raises(ConfigError, match="unknown key 'latnet_dim' in &model; did you mean 'latent_dim'"):
        config_from_dict({"model": {"latnet_dim": 8}})
    with pytest.raises(ConfigError, match="unknown group &nope"):
        config_from_dict({"nope": {}})
    with pytest.raises(ConfigError, match="model.latent_dim = 'x': expected an integer"):
        config_from_dict({"model": {"latent_dim": "x"}})


def test_namelist_text_escapes_quotes(tmp_path):
    cfg = Config(data=DataConfig(variables_3d=("it's",)))
    again = load_config(write(tmp_path, config_to_namelist(cfg)))
    assert again.data.variables_3d == ("it's",)


def test_config_imports_no_torch_mpi_or_netcdf():
    code = ("import sys, mlscam.config; bad = {'torch', 'mpi4py', 'xarray', 'netCDF4'} & set(sys.modules); "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
