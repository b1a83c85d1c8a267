"""Every shipped namelist parses and validates; the reference doc is current."""
from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import subprocess
import sys

import pytest

import mlscam
from mlscam.config import GROUPS, load_config, reference_markdown

REPO = pathlib.Path(__file__).resolve().parents[1]
NAMELISTS = sorted((REPO / "namelists").glob("*.nml"))
ASSETS = pathlib.Path(mlscam.__file__).resolve().parent / "assets"


def run_cli(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "mlscam.config", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_expected_namelists_are_shipped():
    names = {p.name for p in NAMELISTS}
    assert {"demo.nml", "train_held_suarez.nml", "train_single_column.nml", "train_global_rollout.nml",
            "coupled_host.nml"} <= names


@pytest.mark.parametrize("path", NAMELISTS, ids=[p.name for p in NAMELISTS])
def test_every_namelist_loads(path):
    load_config(path)


def test_demo_namelist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(REPO / "namelists" / "demo.nml")
    assert cfg.rollout.checkpoint_path == str(ASSETS / "demo" / "checkpoint.pt")
    assert cfg.rollout.input_nc_path == str(ASSETS / "demo" / "initial_state.nc")
    assert (cfg.rollout.num_steps, cfg.rollout.output_every) == (120, 6)
    assert cfg.output.directory == str(tmp_path / "mlscam_output")
    assert cfg.rollout.output_nc_path == str(tmp_path / "mlscam_output" / "forecast.nc")


def test_held_suarez_training_namelist():
    cfg = load_config(REPO / "namelists" / "train_held_suarez.nml")
    assert cfg.data.files == (str(REPO / "data" / "hs_train.nc"),)
    assert cfg.data.val_files == (str(REPO / "data" / "hs_val.nc"),)
    assert cfg.data.time_step_hours == 6.0
    assert cfg.model.latent_dim == 64
    assert cfg.loss.mse > 0 and cfg.loss.ccc > 0
    assert cfg.train.mode == "global"


def test_training_modes_and_host_group():
    assert load_config(REPO / "namelists" / "train_single_column.nml").train.mode == "single_column"
    assert load_config(REPO / "namelists" / "train_global_rollout.nml").train.mode == "global_rollout"
    coupled = load_config(REPO / "namelists" / "coupled_host.nml")
    assert coupled.mlscam.host_groups == ("toy_host",)
    assert coupled.coupler.coupling_interval_seconds == 3600.0  # the shipped demo checkpoint's 1-hour step


@pytest.mark.parametrize("path", NAMELISTS, ids=[p.name for p in NAMELISTS])
def test_validate_cli_accepts_shipped_namelists_and_prints_resolved_config(path, tmp_path, monkeypatch):
    result = run_cli("validate", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    printed = tmp_path / "printed.nml"
    printed.write_text(result.stdout)
    monkeypatch.chdir(tmp_path)  # the printed paths are absolute; outputs resolved against the same cwd
    assert load_config(printed) == load_config(path)


def test_validate_cli_rejects_bad_namelist(tmp_path):
    bad = tmp_path / "bad.nml"
    bad.write_text("&model latnet_dim = 64 /\n")
    result = run_cli("validate", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {bad}: unknown key 'latnet_dim' in &model; did you mean 'latent_dim'?")


def test_validate_cli_applies_and_checks_overrides(tmp_path):
    demo = str(REPO / "namelists" / "demo.nml")
    ok = run_cli("validate", demo, "--set", "rollout.num_steps=8", cwd=tmp_path)
    assert ok.returncode == 0 and re.search(r"^    num_steps +=  ?8$", ok.stdout, re.M), ok.stdout
    bad = run_cli("validate", demo, "--set", "rollout.num_steps=-2", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: --set rollout.num_steps=-2: rollout.num_steps = -2: must be >= 0"


def test_reference_doc_is_current():
    doc = REPO / "docs" / "namelist.md"
    assert doc.read_text() == reference_markdown(), (
        "docs/namelist.md is out of date; regenerate it with: python -m mlscam.config reference > docs/namelist.md")


def test_reference_lists_every_group_and_key():
    text = reference_markdown()
    for name, cls in GROUPS.items():
        assert f"## `&{name}`" in text
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in text
    assert "| `latent_dim` | integer | `128` | width of the latent vector of one column |" in text
    assert "| `files` | list of strings, input path | (empty) |" in text
