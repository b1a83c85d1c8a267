"""Smoke runs of the benchmark scripts (``--quick``: tiny grid, one repeat): they run and write their report.

These are not timings: the numbers are not checked, only that every script runs
end to end and its report names the command and the machine.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NAMELIST = str(ROOT / "namelists" / "train_demo.nml")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name, expect", [
    ("rollout_throughput", "latent-only"),
    ("latent_vs_reencode", "re-encoding every step costs"),
    ("flops", "% of peak"),
])
def test_script_runs_quick(name, expect, tmp_path):
    out = tmp_path / f"{name}.txt"
    assert load_script(name).main(["--random-weights", NAMELIST, "--quick", "--threads", "1",
                                   "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# ")
    assert "command: python benchmarks/" in text and "load average" in text and "torch" in text
    assert expect in text


@pytest.mark.slow
def test_memory_quick(tmp_path):
    from synthetic import make_fields, write_file

    from mlscam.grid import LatLonGrid

    grid = LatLonGrid.equiangular(8, 16)
    nc = tmp_path / "init.nc"
    write_file(nc, make_fields(2, grid, 10, seed=0), grid, np.arange(2) * 1.0, levels=(np.arange(10) + 0.5) / 10)
    out = tmp_path / "memory.txt"
    assert load_script("memory").main(["--random-weights", NAMELIST, "--quick", "--input-nc", str(nc),
                                       "--out", str(out)]) == 0
    text = out.read_text()
    assert "peak of the 4-step run vs the 2-step run" in text


def test_stencil_predictability_runs_and_its_3x3_stencil_is_the_grid_stencil(tmp_path):
    from mlscam.grid import LatLonGrid

    mod = load_script("stencil_predictability")
    for nlat, nlon in ((4, 8), (6, 12)):
        assert np.array_equal(mod.stencil_index(nlat, nlon, 1), LatLonGrid.equiangular(nlat, nlon).stencil().index)
    five = mod.stencil_index(4, 8, 2)
    assert five.shape == (32, 25)
    # two rows south of row 0 is row 1 on the opposite meridian; the centre is the column itself
    assert five[0 * 8 + 3, 2] == 1 * 8 + 7 and np.array_equal(five[:, 12], np.arange(32))
    from synthetic import make_fields, write_file

    grid = LatLonGrid.equiangular(32, 64)  # the demo checkpoint's grid
    data = str(tmp_path / "hourly.nc")
    write_file(data, make_fields(4, grid, 10, seed=1), grid, np.arange(4) * 1.0, levels=(np.arange(10) + 0.5) / 10)
    out = tmp_path / "stencil.txt"
    mod.main(["--train", data, "--val", data, "--steps", "3", "--batch", "64", "--radii", "1",
              "--checkpoint", str(ROOT / "mlscam" / "assets" / "demo" / "checkpoint.pt"), "--out", str(out)])
    text = out.read_text()
    assert "command: python benchmarks/stencil_predictability.py" in text
    assert "MLP, 3x3 stencil" in text and "linear, 3x3 stencil" in text and "emulator one step" in text
