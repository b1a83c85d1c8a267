"""The data CLIs: argument parsing and wiring to ``mlscam.config.load_config`` (stubbed here)."""
from __future__ import annotations

import json

import mlscam.config
import pytest

from mlscam.config import Config, DataConfig, OutputConfig
from mlscam.data import prepare_columns, stats
from mlscam.grid import LatLonGrid
from synthetic import make_fields, write_file

GRID = LatLonGrid.equiangular(4, 8)


@pytest.fixture
def fake_loader(tmp_path, monkeypatch):
    write_file(tmp_path / "d.nc", make_fields(4, GRID, 3, 0), GRID, [0.0, 6.0, 12.0, 18.0], levels=[0.2, 0.5, 0.9])
    calls = []

    def load_config(path, overrides):
        calls.append((path, list(overrides)))
        data = DataConfig(files=(str(tmp_path / "d.nc"),), stats_path=str(tmp_path / "st.nc"),
                          columns_dir=str(tmp_path / "cols"), columns_per_time=int(overrides[0].split("=")[1]) if overrides else 0)
        return Config(data=data, output=OutputConfig(progress=False))

    monkeypatch.setattr(mlscam.config, "load_config", load_config, raising=False)
    return calls


def test_stats_cli_writes_stats_path(tmp_path, fake_loader, capsys):
    assert stats.main(["run.nml"]) == 0
    assert fake_loader == [("run.nml", [])]
    assert (tmp_path / "st.nc").exists() and "wrote" in capsys.readouterr().out


def test_prepare_columns_cli_passes_overrides(tmp_path, fake_loader):
    assert prepare_columns.main(["run.nml", "--set", "data.columns_per_time=3"]) == 0
    assert fake_loader == [("run.nml", ["data.columns_per_time=3"])]
    manifest = json.loads((tmp_path / "cols" / "manifest.json").read_text())
    assert manifest["count"] == 3 * 3 and manifest["columns_per_time"] == 3


def test_cli_reports_data_errors_without_traceback(tmp_path, fake_loader, capsys):
    (tmp_path / "d.nc").unlink()
    assert stats.main(["run.nml"]) == 1
    assert "error: no file matches" in capsys.readouterr().err
