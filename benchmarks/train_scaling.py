"""Tile-parallel training throughput and peak memory per rank against the number of ranks.

    python benchmarks/train_scaling.py [--ranks 1 2 4] [--steps 6] [--out benchmarks/train_scaling.txt]

Writes a T21-size synthetic file (32 x 64 grid, 10 levels, u/v/temperature/
surface_pressure, 12 six-hourly times) once, then for every N runs
``mpirun -n N python benchmarks/train_scaling.py --worker ...``: each rank builds
the tile-parallel trainer exactly as ``mpirun -n N python -m mlscam.train``
does (``mlscam.train.build_trainer`` on a ``TileContext``, torch.distributed on gloo),
takes 2 warm-up steps, then times ``--steps`` optimizer steps of
``global_rollout`` (2 latent steps, batch 2).  Reported: samples (global time
windows) per second, and the peak resident memory of every rank
(``getrusage``; includes ~0.3-0.4 GB of torch/library baseline per process).
One torch thread per rank.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

NLAT, NLON, NLEV, NT = 32, 64, 10, 12
MODEL = {"latent_dim": 64, "encoder_hidden": 128, "encoder_layers": 2, "decoder_hidden": 128, "decoder_layers": 2,
         "mixer": "conv", "mixer_blocks": 2, "channel_hidden": 128, "chunk_size": 512}
TRAIN = {"mode": "global_rollout", "rollout_steps": 2, "batch_size": 2, "warmup_steps": 0, "schedule": "constant",
         "val_every": 0, "checkpoint_every": 100000}
ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
       "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_mpi_yield_when_idle": "1", "OMP_NUM_THREADS": "1"}


def write_data(path: Path) -> None:
    from synthetic import make_fields, write_file

    from mlscam.grid import LatLonGrid

    grid = LatLonGrid.equiangular(NLAT, NLON)
    write_file(path, make_fields(NT, grid, NLEV, seed=0), grid, np.arange(NT) * 6.0,
               levels=(np.arange(NLEV) + 0.5) / NLEV)


def worker(data: str, steps: int, out: str) -> None:
    from mpi4py import MPI

    import torch

    from mlscam.parallel.context import TileContext

    torch.set_num_threads(1)
    comm = MPI.COMM_WORLD
    tile = TileContext.build(comm, NLAT, NLON)
    with tile.distributed("cpu"):
        _measure(comm, tile, data, steps, out)


def _measure(comm, tile, data: str, steps: int, out: str) -> None:
    from mlscam.config import config_from_dict
    from mlscam.train import build_trainer

    cfg = config_from_dict({"data": {"files": [data], "stats_path": str(Path(data).with_suffix(".stats.nc"))},
                            "model": MODEL, "train": {**TRAIN, "max_steps": steps + 2,
                                                      "checkpoint_dir": str(Path(out).parent / "ck")},
                            "output": {"progress": False}})
    trainer = build_trainer(cfg, tile=tile, device="cpu", progress=False)
    built_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    for _ in range(2):
        trainer.train_step()
    comm.Barrier()
    start = time.perf_counter()
    losses = [trainer.train_step()["loss"] for _ in range(steps)]
    comm.Barrier()
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rss = comm.gather(rss_mb, root=0)
    growth = comm.gather(rss_mb - built_mb, root=0)
    if comm.Get_rank() == 0:
        p = tile.plan
        Path(out).write_text(json.dumps({
            "ranks": comm.Get_size(), "seconds": seconds, "steps": steps,
            "samples_per_s": steps * cfg.train.batch_size / seconds, "peak_rss_mb": rss, "train_growth_mb": growth,
            "loss_last": losses[-1], "rank0_columns": p.n_local, "rank0_halo": p.halo_size,
        }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "train_scaling.txt"))
    ap.add_argument("--worker", nargs=3, metavar=("DATA", "STEPS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.worker[2])
        return
    tmp = Path(tempfile.mkdtemp(prefix="train_scaling_"))
    data = tmp / "t21.nc"
    write_data(data)
    rows = []
    for n in args.ranks:
        out = tmp / f"n{n}.json"
        cmd = ["timeout", "-k", "10", "600", "mpirun", "--bind-to", "none", "-n", str(n), sys.executable,
               str(Path(__file__).resolve()), "--worker", str(data), str(args.steps), str(out)]
        proc = subprocess.run(cmd, env={**os.environ, **ENV}, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"N={n} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
        rows.append(json.loads(out.read_text()))
    shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0]["samples_per_s"]
    lines = [
        "# mlscam tile-parallel training throughput (benchmarks/train_scaling.py)",
        f"# command: python benchmarks/train_scaling.py --ranks {' '.join(map(str, args.ranks))} --steps {args.steps}",
        f"# problem: {NLAT}x{NLON} grid, {NLEV} levels (31 channels), global_rollout K=2, batch 2, model {MODEL}",
        f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores (os.cpu_count), 1 torch thread per rank, "
        f"Python {platform.python_version()}",
        "# samples = global time windows; peak RSS includes the torch/library baseline of each process;",
        "# growth = peak RSS minus the peak before the first step (activations, optimizer state, buffers)",
        f"# load average before the runs: {os.getloadavg()[0]:.2f} (the machine is shared)",
        f"{'ranks':>5} {'cols/rank0':>10} {'halo/rank0':>10} {'samples/s':>10} {'speedup':>8}  "
        "peak RSS MB per rank | growth MB per rank",
    ]
    for r in rows:
        lines.append(f"{r['ranks']:>5} {r['rank0_columns']:>10} {r['rank0_halo']:>10} {r['samples_per_s']:>10.3f} "
                     f"{r['samples_per_s'] / base:>8.2f}  {' '.join(f'{m:.0f}' for m in r['peak_rss_mb'])} | "
                     f"{' '.join(f'{m:.0f}' for m in r['train_growth_mb'])}")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
