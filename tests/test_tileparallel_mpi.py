"""Tile-parallel training under real mpirun (every launch under ``timeout``).

* tests/mpi/train_tileparallel_mpi.py on 2 and 4 ranks: loss and parameter
  gradients of the same global batch equal the serial values in float64
  (``max|g_N - g_1| <= 1e-10 max|g_1|``) in ``global`` and ``global_rollout``;
  the float32 differences are printed (run with ``-s``) and bounded.
* ``mpirun -n 2 python -m mlscam.train`` for 2 steps, resumed by ``mpirun -n 4``
  for 2 more, logs the losses of an uninterrupted serial 4-step run.
* ``mpirun -n 2 python -m mlscam.train`` with ``&train init_from`` starts from the
  checkpoint's weights: its first loss is the serial first loss from the same
  ``init_from``, not the loss of the seeded initialisation.
* ``mpirun -n 2 python -m mlscam.train`` with averaged weights and the climate score
  (``&train ema_decay``, ``climate_truth``, ``select_by = 'climate'``) logs the serial scores.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "mpi"))
import tileparallel_case as case  # noqa: E402
from mpirun import mpirun  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MPI_TIMEOUT_S = 180
#: float32 training (4 Adam steps) on N ranks vs serial: largest relative loss difference accepted
F32_LOSS_RTOL = 1e-5


def _mpirun(nranks: int, args: list[str]) -> subprocess.CompletedProcess:
    proc = mpirun(nranks, args, timeout_s=MPI_TIMEOUT_S, drop_env=("WORLD_SIZE", "RANK"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 124, f"mpirun -n {nranks} timed out after {MPI_TIMEOUT_S} s:\n{out[-3000:]}"
    assert proc.returncode == 0, f"mpirun -n {nranks} failed (exit {proc.returncode}):\n{out[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return case.write_data(tmp_path_factory.mktemp("tileparallel_mpi") / "synthetic.nc")


@pytest.mark.mpi
@pytest.mark.parametrize("nranks", [2, 4])
def test_loss_and_gradients_under_mpirun_equal_serial(nranks, data_path, tmp_path):
    proc = _mpirun(nranks, ["tests/mpi/train_tileparallel_mpi.py", data_path, str(tmp_path)])
    assert f"train_tileparallel_mpi: OK on {nranks} ranks" in proc.stdout, proc.stdout[-3000:]
    for mode in ("global", "global_rollout"):
        for dtype, tol in (("float64", 1e-10), ("float32", 1e-5)):
            loss1, g1 = case.serial_loss_and_grads(data_path, mode, dtype)
            got = np.load(tmp_path / f"{mode}_{dtype}.npz")
            top = max(np.abs(g).max() for g in g1.values())
            err = max(np.abs(got[n] - g).max() for n, g in g1.items()) / top
            loss_err = abs(float(got["loss"]) - loss1) / abs(loss1)
            print(f"N={nranks} {mode} {dtype}: max|g_N - g_1| / max|g_1| = {err:.3g}, "
                  f"|L_N - L_1| / |L_1| = {loss_err:.3g}")
            assert err <= tol, (mode, dtype, err)
            assert loss_err <= tol, (mode, dtype, loss_err)
    if nranks == 4:  # 2 time groups x 2 tiles: each group on one of the batch's 2 times
        loss1, g1 = case.serial_loss_and_grads(data_path, "global_rollout", "float64")
        got = np.load(tmp_path / "global_rollout_float64_groups2.npz")
        err = max(np.abs(got[n] - g).max() for n, g in g1.items()) / max(np.abs(g).max() for g in g1.values())
        print(f"N=4 as 2 time groups x 2 tiles, global_rollout float64: {err:.3g}")
        assert err <= 1e-10 and abs(float(got["loss"]) - loss1) <= 1e-12 * abs(loss1)


def _losses(log: Path, key: str = "loss") -> dict[int, float]:
    return {r["step"]: r[key] for r in map(json.loads, log.read_text().splitlines()) if key in r}


def _serial_run_and_namelist(data_path: str, tmp_path: Path, **train_keys) -> Path:
    """Train the tiny problem serially (one thread, validation on the training file, checkpoints in
    ``tmp_path/serial``) and return the namelist of that run, for the same run under mpirun."""
    import torch

    from mlscam.config import config_from_dict, config_to_namelist
    from mlscam.train import train

    d = case.config_dict(data_path, "global_rollout", checkpoint_dir=str(tmp_path / "serial"), **train_keys)
    d["data"]["val_files"] = [data_path]  # validation (eval mode, no gradients) runs tiled too
    cfg = config_from_dict(d)
    nml = tmp_path / "run.nml"
    nml.write_text(config_to_namelist(cfg))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg)
    finally:
        torch.set_num_threads(threads)
    return nml


@pytest.mark.mpi
def test_multi_rank_run_resumes_on_another_rank_count(data_path, tmp_path):
    """2 steps on 2 ranks, then 2 more on 4 ranks from the 2-rank last.pt == 4 serial steps (float32)."""
    nml = _serial_run_and_namelist(data_path, tmp_path, max_steps=4, checkpoint_every=1, val_every=2, val_batches=1)
    serial = _losses(tmp_path / "serial" / "train_log.jsonl")

    base = ["-m", "mlscam.train", str(nml), "--set", "parallel.threads=1"]
    _mpirun(2, base + ["--set", "train.max_steps=2", "--set", f"train.checkpoint_dir={tmp_path / 'a'}"])
    proc = _mpirun(4, base + ["--set", f"train.resume={tmp_path / 'a' / 'last.pt'}",
                              "--set", f"train.checkpoint_dir={tmp_path / 'b'}"])
    assert "trained 4 steps on 4 ranks" in proc.stdout, proc.stdout[-2000:]
    first, second = _losses(tmp_path / "a" / "train_log.jsonl"), _losses(tmp_path / "b" / "train_log.jsonl")
    assert sorted(first) == [1, 2] and sorted(second) == [3, 4]
    parallel = {**first, **second}
    rel = {s: abs(parallel[s] - serial[s]) / abs(serial[s]) for s in serial}
    print("resume 2 ranks -> 4 ranks vs serial, relative loss differences per step:", rel)
    assert max(rel.values()) <= F32_LOSS_RTOL, rel
    assert serial[4] != serial[1]  # training moved the loss
    val_serial = _losses(tmp_path / "serial" / "train_log.jsonl", "val_loss")
    val_parallel = {**_losses(tmp_path / "a" / "train_log.jsonl", "val_loss"),
                    **_losses(tmp_path / "b" / "train_log.jsonl", "val_loss")}
    assert sorted(val_serial) == sorted(val_parallel) == [2, 4]
    for s in val_serial:
        assert abs(val_parallel[s] - val_serial[s]) <= F32_LOSS_RTOL * abs(val_serial[s]), (val_parallel, val_serial)
    # checkpoints written by rank 0 only: no per-rank files
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["best.pt", "last.pt", "train_log.jsonl"]


@pytest.mark.mpi
def test_multi_rank_run_starts_from_init_from(data_path, tmp_path):
    """&train init_from on 2 ranks: the loss of step 1 (the starting weights' loss) equals the serial run's
    from the same checkpoint (float32), and differs from the loss of the seed's initial weights."""
    import torch

    from mlscam.config import config_from_dict, config_to_namelist
    from mlscam.train import train

    def cfg(name, **train_keys):
        d = case.config_dict(data_path, "global_rollout", checkpoint_dir=str(tmp_path / name), val_every=0,
                             **train_keys)
        return config_from_dict(d)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg("first", max_steps=3))
        ck = tmp_path / "first" / "last.pt"
        train(cfg("serial", max_steps=1, init_from=str(ck)))
        train(cfg("fresh", max_steps=1))
    finally:
        torch.set_num_threads(threads)
    serial = _losses(tmp_path / "serial" / "train_log.jsonl")[1]
    fresh = _losses(tmp_path / "fresh" / "train_log.jsonl")[1]
    nml = tmp_path / "run.nml"
    nml.write_text(config_to_namelist(cfg("parallel", max_steps=1, init_from=str(ck))))
    proc = _mpirun(2, ["-m", "mlscam.train", str(nml), "--set", "parallel.threads=1"])
    assert "trained 1 steps on 2 ranks" in proc.stdout, proc.stdout[-2000:]
    parallel = _losses(tmp_path / "parallel" / "train_log.jsonl")[1]
    print(f"first loss: serial from init_from {serial}, 2 ranks from init_from {parallel}, seeded start {fresh}")
    assert abs(parallel - serial) <= F32_LOSS_RTOL * abs(serial), (parallel, serial)
    assert abs(fresh - serial) > 1e-3 * abs(serial), (fresh, serial)  # the checkpoint's weights are another start


@pytest.mark.mpi
def test_a_failure_on_every_rank_exits_1_without_hanging(tmp_path):
    """A missing data file under mpirun: every rank prints the agreed message and exits 1 (no hang)."""
    from mlscam.config import config_to_namelist

    nml = tmp_path / "run.nml"
    nml.write_text(config_to_namelist(case.config(str(tmp_path / "missing.nc"), "global",
                                                  checkpoint_dir=str(tmp_path / "ck"))))
    proc = mpirun(2, ["-m", "mlscam.train", str(nml), "--set", "parallel.threads=1"], timeout_s=MPI_TIMEOUT_S,
                  drop_env=("WORLD_SIZE", "RANK"))
    assert proc.returncode not in (0, 124), proc.stdout + proc.stderr
    for r in (0, 1):
        assert f"error (rank {r} of 2): rank 0 of 2 failed: DataError: no file matches" in proc.stderr, proc.stderr
    assert not (tmp_path / "ck").exists()


@pytest.mark.mpi
def test_multi_rank_run_scores_the_climate_and_averages_weights_as_serial(data_path, tmp_path):
    """&train ema_decay, climate_truth and select_by = 'climate' on 2 ranks: every rank agrees on the score
    (rank 0 computes it), the logged scores equal a serial run's (float32), and best.pt follows the score."""
    import torch

    from mlscam.evaluate import open_dataset, read_run_climate

    truth = read_run_climate(open_dataset(data_path), ["temperature", "u"], spinup_days=0, progress=False)
    (tmp_path / "truth.json").write_text(json.dumps(truth.to_dict()))
    nml = _serial_run_and_namelist(data_path, tmp_path, max_steps=4, val_every=2, val_batches=1, ema_decay=0.5,
                                   climate_truth=str(tmp_path / "truth.json"), climate_days=2.0,
                                   climate_spinup_days=0.5, select_by="climate")
    _mpirun(2, ["-m", "mlscam.train", str(nml), "--set", "parallel.threads=1",
                "--set", f"train.checkpoint_dir={tmp_path / 'par'}"])
    serial = _losses(tmp_path / "serial" / "train_log.jsonl", "val_climate_score")
    parallel = _losses(tmp_path / "par" / "train_log.jsonl", "val_climate_score")
    assert sorted(serial) == sorted(parallel) == [2, 4]
    for s in serial:
        assert np.isfinite(serial[s]) and abs(parallel[s] - serial[s]) <= 1e-3 * abs(serial[s]), (parallel, serial)
    best = torch.load(tmp_path / "par" / "best.pt", weights_only=True)["train_state"]
    assert best["best_val"] == min(parallel.values()) and "raw_state_dict" in best
