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
