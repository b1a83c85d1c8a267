"""``benchmarks/gpu/train.sh`` (data and training on a lent GPU) and its helpers ``benchmarks/gpu/train_tools.py``.

The tiny CPU mode (what every machine without CUDA gets) runs the whole chain, from the dycore to the copied
checkpoints, in a minute or two: marked slow. The seed rules, the statistics of an init_from run and the log
summary are checked in the default run."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu" / "train.sh"
DEMO = ROOT / "mlscam" / "assets" / "demo" / "checkpoint.pt"
NML = str(ROOT / "namelists" / "train_demo.nml")


def _tools():
    spec = importlib.util.spec_from_file_location("gpu_train_tools", ROOT / "benchmarks" / "gpu" / "train_tools.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path, *args, **env):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("env, message", [
    ({"GPU_DATA_SEED": "2"}, "GPU_DATA_SEED=2 refused: seeds 1 and 5 are the validation runs, 2 the test run, "
                             "3 the climate truth"),
    ({"GPU_DATA_SEED": "5"}, "GPU_DATA_SEED=5 refused"),
    ({"GPU_DATA_SEED": "1"}, "GPU_DATA_SEED=1 refused"),
    ({"GPU_DATA_SEED": "3"}, "GPU_DATA_SEED=3 refused"),
    ({"GPU_VAL_SEED": "3"}, "GPU_VAL_SEED=3 refused: seeds 2 and 3 are the test run and the climate truth"),
    ({"GPU_DATA_SEED": "11", "GPU_VAL_SEED": "11"}, "GPU_VAL_SEED=11 refused"),
    ({"GPU_DATA_SEED": "-4"}, "seeds are whole numbers >= 0"),
])
def test_training_never_uses_the_test_or_truth_seeds(tmp_path, env, message):
    proc = _run(tmp_path, "--cpu", **env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    text = (tmp_path / "out" / "results.txt").read_text()
    assert message in text and "wheels" not in text  # refused before anything ran


def test_stats_of_an_init_from_run_are_the_checkpoints(tmp_path, capsys):
    from mlscam.checkpoint import load_checkpoint
    from mlscam.data.stats import load_stats, write_stats
    from mlscam.normalization import Normalization

    tools = _tools()
    ckpt = load_checkpoint(DEMO)
    path = tmp_path / "stats.nc"
    base = [NML, "--set", f"data.stats_path={path}", "--set", "model.stencil_width=128"]
    # no init_from: the trainer computes them from the data
    assert tools.main(["stats", *base]) == 0
    assert "computed from the training data; no init_from/resume" in capsys.readouterr().out
    assert not path.exists()
    # init_from, no file yet: written from the checkpoint
    assert tools.main(["stats", *base, "--set", f"train.init_from={DEMO}"]) == 0
    assert "= the normalization of the init_from checkpoint" in capsys.readouterr().out
    got = load_stats(str(path), ckpt.layout).to_dict()
    for key, value in ckpt.normalization.to_dict().items():
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(value))
    # the file now exists and agrees: kept
    assert tools.main(["stats", *base, "--set", f"train.init_from={DEMO}"]) == 0
    assert "equals the normalization of the init_from checkpoint" in capsys.readouterr().out
    # another file (e.g. statistics of the new data) would feed the weights other inputs: refused
    other = tmp_path / "other.nc"
    norm = ckpt.normalization.to_dict()
    write_stats(str(other), Normalization(**{k: np.asarray(v) * (1.1 if k == "state_std" else 1.0)
                                             for k, v in norm.items()}), ckpt.layout)
    assert tools.main(["stats", NML, "--set", f"data.stats_path={other}", "--set", f"train.init_from={DEMO}"]) == 1
    assert "differs from the normalization of the init_from checkpoint" in capsys.readouterr().err
    # init_from without a stats path: refused
    assert tools.main(["stats", NML, "--set", "data.stats_path=", "--set", f"train.init_from={DEMO}"]) == 1


def test_summary_of_a_training_log(tmp_path, capsys):
    log = tmp_path / "train_log.jsonl"
    recs = [{"step": 1, "loss": 0.5, "lr": 1e-4, "grad_norm": 1.0},
            {"step": 2, "loss": 0.4, "lr": 1e-4, "grad_norm": 0.9, "val_loss": 0.3, "val_mse": 0.1},
            {"step": 3, "loss": 0.3, "lr": 1e-4, "grad_norm": 0.8},
            {"step": 4, "loss": 0.2, "lr": 1e-4, "grad_norm": 0.7, "val_loss": 0.35, "val_mse": 0.12}]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"step": 5, "lo')  # a line cut by the stop
    assert _tools().main(["summary", str(log)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "training: 4 steps logged, last step 4: loss 0.2, lr 0.0001, grad_norm 0.7"
    assert out[1] == "validation: 2 runs, steps 2..4"
    assert out[2].split() == ["first", "step", "2:", "val_loss", "0.3,", "val_mse", "0.1"]
    assert out[3].split()[:3] == ["best", "step", "2:"] and out[4].split()[:3] == ["final", "step", "4:"]


@pytest.mark.slow
def test_tiny_cpu_mode_generates_data_trains_and_returns_the_files(tmp_path):
    """The whole chain on the CPU (about 70 s here): the dycore (seed 10 and seed 1, 1 day each after a 1-day
    spin-up), the checkpoint's statistics, a baseline validation, 4 training steps from the shipped weights."""
    pytest.importorskip("dinosaur")
    proc = _run(tmp_path, "--cpu", "--set", "train.seed=1")
    out = tmp_path / "out"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "results.txt", "run.log",
                                                     "train_log.jsonl"]
    text = (out / "results.txt").read_text()
    lines = text.splitlines()
    assert lines[0] == "# benchmarks/gpu/train.sh --cpu --set train.seed=1"
    assert f"mlscam from {ROOT / 'mlscam' / '__init__.py'}" in lines
    assert "CPU mode: tiny data and a few steps on the CPU (its numbers mean nothing)" in lines
    assert any(line.startswith("probe cpu: probe jax ") for line in lines)
    assert "training file (seed 10, 1 days): exit 0; wrote hs_train_seed10.nc: 24 samples" in text
    assert "validation file (seed 1, 1 days): exit 0; wrote hs_val_seed1.nc: 24 samples" in text
    assert f"= the normalization of the init_from checkpoint {DEMO} (written)" in text
    assert any(line.startswith(f"baseline (step 0, {DEMO}, on cpu") for line in lines)
    assert "--set parallel.device=cpu" in text and text.rstrip().endswith("s") and "--set train.seed=1" in text
    assert "training: exit 0 after" in text and "validation: 2 runs, steps 2..4" in lines
    assert lines[-1].startswith("total ")
    from mlscam.checkpoint import load_checkpoint

    best, start = load_checkpoint(out / "best.pt"), load_checkpoint(DEMO)
    assert best.train_state["step"] == 4 and load_checkpoint(out / "last.pt").train_state["step"] == 4
    for key, value in start.normalization.to_dict().items():  # trained on the shipped weights' statistics
        np.testing.assert_array_equal(np.asarray(best.normalization.to_dict()[key]), np.asarray(value))
    assert best.config.train.seed == 1 and best.config.train.init_from == str(DEMO)
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 4
