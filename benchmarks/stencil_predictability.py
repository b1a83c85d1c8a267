"""How much of the one-step tendency can a stencil of the physical state explain?

A model-free bound on the demo's one-step skill: regress the true normalised
one-hour tendency ``(x[t+1] - x[t] - tendency_mean) / tendency_std`` of every
column on the normalised state of its ``(2r+1) x (2r+1)`` neighbourhood (r = 1
is the emulator's 3x3 stencil; the pole fold of ``mlscam.grid`` extended to two
rows) plus sin/cos latitude, with

* ordinary least squares (a linear stencil), and
* an MLP (3 hidden layers, GELU) trained with Adam for a fixed number of steps,

fitted on hours of the training run and scored on the validation run. The
score is the mean over channels of MSE / variance of the tendency: the
fraction of the tendency's variance left unexplained (1 = persistence,
0 = perfect). With ``--checkpoint`` the same number is measured for a trained
emulator's one step, ``decode(step(encode(x))) - decode(encode(x))``.

    python benchmarks/stencil_predictability.py --train data/h1_train.nc --val data/h1_val.nc \\
        --checkpoint mlscam_output/demo_stage4/best.pt --checkpoint mlscam/assets/demo/checkpoint.pt \\
        --out benchmarks/stencil_predictability.txt
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import Report, command_line, machine_lines  # noqa: E402

from mlscam.config import DataConfig
from mlscam.data.source import open_source
from mlscam.grid import LatLonGrid

VARS_3D, VARS_2D = ("u", "v", "temperature"), ("surface_pressure",)


def stencil_index(nlat: int, nlon: int, radius: int) -> np.ndarray:
    """``[ncol, (2r+1)^2]`` flat column index of every offset; rows beyond a pole fold back onto the
    opposite meridian (for r = 1 this is ``LatLonGrid.stencil().index``)."""
    j, i = np.meshgrid(np.arange(nlat), np.arange(nlon), indexing="ij")
    cols = []
    for dlat in range(-radius, radius + 1):
        for dlon in range(-radius, radius + 1):
            jj, ii = j + dlat, i + dlon
            south, north = jj < 0, jj >= nlat
            jj = np.where(south, -1 - jj, np.where(north, 2 * nlat - 1 - jj, jj))
            ii = np.where(south | north, ii + nlon // 2, ii) % nlon
            cols.append((jj * nlon + ii).reshape(-1))
    return np.stack(cols, 1)


def read(path: str, hours: int, stride: int):
    src = open_source(DataConfig(files=(path,), time_step_hours=1.0, variables_3d=VARS_3D, variables_2d=VARS_2D))
    times = np.arange(0, min(hours, src.ntime - 1), stride)
    x0 = np.stack([src.read(int(t)) for t in times])
    x1 = np.stack([src.read(int(t) + 1) for t in times])
    return src, x0, x1


def features(x0, index, stats, static):
    """``x0 [T, nlat, nlon, S]`` -> ``[T * ncol, (2r+1)^2 * S + 2]`` normalised stencil + latitude."""
    mean, std = stats
    xn = ((x0 - mean) / std).reshape(x0.shape[0], -1, x0.shape[-1])  # [T, ncol, S]
    tiles = xn[:, index].reshape(x0.shape[0], index.shape[0], -1)
    stat = np.broadcast_to(static, (x0.shape[0],) + static.shape)
    return torch.from_numpy(np.concatenate([tiles, stat], -1).reshape(-1, tiles.shape[-1] + static.shape[-1]).astype(np.float32))


def unexplained(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over channels of MSE / variance of the target."""
    return float((((pred - target) ** 2).mean(0) / target.var(0)).mean())


def fit_linear(x, y, xv, yv):
    a = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    sol = torch.linalg.lstsq(a, y.double()).solution
    return unexplained((torch.cat([xv, torch.ones(len(xv), 1)], 1).double() @ sol).float(), yv)


def fit_mlp(x, y, xv, yv, *, hidden: int, steps: int, batch: int, seed: int):
    torch.manual_seed(seed)
    act = torch.nn.GELU
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), act(), torch.nn.Linear(hidden, hidden), act(),
                              torch.nn.Linear(hidden, hidden), act(), torch.nn.Linear(hidden, y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        loss = ((net(x[idx]) - y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        return unexplained(net(x[:200_000]), y[:200_000]), unexplained(net(xv), yv)


def emulator_one_step(path, x0, x1, tstats):
    from mlscam.emulator import Emulator

    em = Emulator.from_checkpoint(path)
    tmean, tstd = tstats
    with torch.no_grad():
        z0 = em.encode(torch.from_numpy(x0))
        d = em.decode(em.step(z0, 1)) - em.decode(z0)
    pred = ((d.numpy() - tmean) / tstd).reshape(-1, x0.shape[-1])
    true = ((x1 - x0 - tmean) / tstd).reshape(-1, x0.shape[-1])
    return unexplained(torch.from_numpy(pred), torch.from_numpy(true))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, help="hourly training run (NetCDF)")
    p.add_argument("--val", required=True, help="hourly validation run (another seed)")
    p.add_argument("--train-hours", type=int, default=720, help="hours of --train to sample from")
    p.add_argument("--stride", type=int, default=2, help="use every STRIDE-th hour")
    p.add_argument("--radii", type=int, nargs="+", default=[1, 2], help="stencil radii (1 = 3x3)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--steps", type=int, default=3000, help="Adam steps of the MLP")
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--checkpoint", action="append", default=[], help="also score this emulator's one step (repeatable)")
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Report(args.out)
    out("# how much of the 1-hour tendency a stencil of the physical state explains")
    out(f"command: {command_line('benchmarks/stencil_predictability.py', argv)}")
    for line in machine_lines():
        out(line)
    src, x0, x1 = read(args.train, args.train_hours, args.stride)
    _, v0, v1 = read(args.val, 10 ** 6, 1)
    s = x0.shape[-1]
    mean, std = x0.reshape(-1, s).mean(0), x0.reshape(-1, s).std(0)
    d = (x1 - x0).reshape(-1, s)
    tmean, tstd = d.mean(0), d.std(0)
    grid = LatLonGrid.equiangular(x0.shape[1], x0.shape[2])
    static = grid.static_stack(("sin_lat", "cos_lat")).reshape(grid.ncol, -1)
    y = torch.from_numpy(((x1 - x0 - tmean) / tstd).reshape(-1, s).astype(np.float32))
    yv = torch.from_numpy(((v1 - v0 - tmean) / tstd).reshape(-1, s).astype(np.float32))
    out(f"data: {x0.shape[0]} training hours (every {args.stride}th of the first {args.train_hours} of {args.train}), "
        f"{v0.shape[0]} validation hours of {args.val}; {s} channels; grid {grid.nlat} x {grid.nlon}")
    out(f"MLP: 3 x {args.hidden} GELU, Adam 1e-3 cosine, {args.steps} steps of {args.batch} columns, {args.threads} thread(s)")
    out("score: fraction of the tendency variance left unexplained on the validation run (persistence = 1)")
    out()
    out(f"{'predictor':<34}{'train':>8}{'val':>8}{'seconds':>9}")
    for r in args.radii:
        idx = stencil_index(grid.nlat, grid.nlon, r)
        x, xv = features(x0, idx, (mean, std), static), features(v0, idx, (mean, std), static)
        t = time.perf_counter()
        lin = fit_linear(x[::4], y[::4], xv, yv)
        out(f"{f'linear, {2*r+1}x{2*r+1} stencil':<34}{'':>8}{lin:>8.3f}{time.perf_counter() - t:>9.1f}")
        t = time.perf_counter()
        tr, va = fit_mlp(x, y, xv, yv, hidden=args.hidden, steps=args.steps, batch=args.batch, seed=0)
        out(f"{f'MLP, {2*r+1}x{2*r+1} stencil':<34}{tr:>8.3f}{va:>8.3f}{time.perf_counter() - t:>9.1f}")
        del x, xv
    for ck in args.checkpoint:
        t = time.perf_counter()
        em = emulator_one_step(ck, v0, v1, (tmean, tstd))
        out(f"{'emulator one step (' + ck.rsplit('/', 2)[-2] + ')':<34}{'':>8}{em:>8.3f}{time.perf_counter() - t:>9.1f}")
    out.save()


if __name__ == "__main__":
    main()
