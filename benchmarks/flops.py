"""Achieved FLOP/s of the latent step against the measured fp32 matmul peak of the same machine.

    python benchmarks/flops.py [--checkpoint PATH | --random-weights NAMELIST]
        [--grid T21] [--threads 1 2] [--matmul-size 2048] [--repeats 5] [--out FILE]

* Peak: ``torch.mm`` of two ``--matmul-size`` square fp32 matrices (2 n^3 FLOP),
  median of ``--repeats`` calls, per thread count.
* Latent step: ``Emulator.step`` of the whole grid (T21 = 2048 columns), median
  of ``--repeats`` x ``--steps`` steps; achieved = the analytic mixer FLOPs per
  column-step (``mlscam.model.summarize``: Linear layers only) x columns / time.
* Why not more: (a) every Linear of the mixer timed alone at its real shape
  (``chunk_size`` rows) with ``torch.nn.functional.linear`` -> GFLOP/s of each
  matmul shape; (b) ``torch.profiler`` self time per operator over a few steps
  (matmuls vs gather, LayerNorm, GELU, additions, copies).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

GRIDS = {"T21": (32, 64), "T42": (64, 128), "tiny": (8, 16)}


def matmul_peak(n: int, repeats: int) -> tuple[float, float]:
    """GFLOP/s of ``torch.mm`` of two ``n x n`` fp32 matrices: (from the median call, from the fastest call)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    med, times = bc.time_median(lambda: torch.mm(a, b), repeats)
    return 2.0 * n ** 3 / med / 1e9, 2.0 * n ** 3 / min(times) / 1e9


def linear_shapes(mixer: nn.Module, chunk: int, latent: int) -> list[tuple[str, int, int, int]]:
    """``(name, rows, in, out)`` of every Linear of the mixer in one chunk call."""
    shapes, handles = [], []
    for name, mod in mixer.named_modules():
        if isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(
                lambda m, a, _o, name=name: shapes.append((name, a[0].numel() // m.in_features,
                                                           m.in_features, m.out_features))))
    try:
        with torch.enable_grad():  # the autograd path calls every Linear module (the CPU inference path does not)
            mixer(torch.randn(chunk, 9, latent), torch.zeros(chunk, 9, dtype=torch.bool))
    finally:
        for h in handles:
            h.remove()
    return shapes


def time_linear(rows: int, n_in: int, n_out: int, repeats: int) -> float:
    """Median seconds of ``F.linear`` on ``[rows, n_in]`` with an ``[n_out, n_in]`` weight and a bias."""
    x, w, b = torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(n_out)
    inner = max(1, int(2e8 // (2 * rows * n_in * n_out)))  # ~0.2 GFLOP per timed call

    def run():
        for _ in range(inner):
            torch.nn.functional.linear(x, w, b)

    med, _ = bc.time_median(run, repeats)
    return med / inner


def profile_steps(em, z0, steps: int, top: int) -> list[tuple[str, float, int]]:
    """``(operator, self CPU seconds per step, calls per step)`` of the top operators over ``steps`` steps."""
    from torch.profiler import ProfilerActivity, profile

    em.step(z0, 1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        em.step(z0, steps)
    rows = [(e.key, e.self_cpu_time_total / 1e6 / steps, e.count // steps) for e in prof.key_averages()]
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.add_model_arguments(p)
    p.add_argument("--grid", default="T21", choices=list(GRIDS))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--matmul-size", type=int, default=2048)
    p.add_argument("--steps", type=int, default=10, help="steps per timed latent-step run")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny grid, 256-wide matmul, 1 repeat")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.grid, args.matmul_size, args.repeats, args.steps = "tiny", 256, 1, 1
    from mlscam.grid import LatLonGrid
    from mlscam.model import summarize

    grid = LatLonGrid.equiangular(*GRIDS[args.grid])
    report = bc.Report(args.out)
    report("# achieved FLOP/s of the latent step vs the measured fp32 matmul peak")
    report(f"command: {bc.command_line(__file__, argv)}")
    for line in bc.machine_lines():
        report(line)
    spec = bc.load_spec(args, grid=grid if args.quick else None)
    summ = summarize(spec.model, spec.layout, chunk_size=spec.chunk_size)
    flop_col = summ.flops["mixer"]
    report(f"model: {spec.source}; {summ.mixer_kind}, latent {summ.latent_dim}, chunk {spec.chunk_size}")
    report(f"analytic mixer FLOP per column-step (Linear layers only): {flop_col:,}; grid {args.grid} "
           f"{grid.ncol} columns -> {flop_col * grid.ncol / 1e9:.3f} GFLOP per step")
    shapes = linear_shapes(spec.model.mixer, spec.chunk_size, summ.latent_dim)
    results = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        report()
        report(f"## {threads} thread(s)")
        load = bc.load_average()
        peak, peak_best = matmul_peak(args.matmul_size, args.repeats)
        report(f"matmul peak: torch.mm {args.matmul_size}^2 fp32 -> {peak:.1f} GFLOP/s median, {peak_best:.1f} "
               f"fastest call (load before {load})")
        em = spec.emulator(grid)
        z0 = em.encode(bc.initial_state(em))
        load = bc.load_average()
        med, times = bc.time_median(lambda: em.step(z0, args.steps), args.repeats)
        step_s, best_s = med / args.steps, min(times) / args.steps
        achieved, achieved_best = flop_col * grid.ncol / step_s / 1e9, flop_col * grid.ncol / best_s / 1e9
        results[threads] = (achieved, peak, achieved_best, peak_best)
        report(f"latent step: {step_s * 1e3:.2f} ms per step of {grid.ncol} columns (median; fastest run "
               f"{best_s * 1e3:.2f} ms) -> {achieved:.1f} GFLOP/s = {100 * achieved / peak:.1f}% of peak "
               f"(fastest vs fastest: {achieved_best:.1f} GFLOP/s = {100 * achieved_best / peak_best:.1f}%) "
               f"(load before {load})")
        report("each Linear of the mixer alone, at its shape in one chunk:")
        report(f"  {'layer':<18} {'rows x in -> out':<22} {'us/call':>9} {'GFLOP/s':>8} {'% peak':>7}")
        lin_total = 0.0
        for name, rows, n_in, n_out in shapes:
            t = time_linear(rows, n_in, n_out, args.repeats)
            lin_total += t
            gf = 2 * rows * n_in * n_out / t / 1e9
            report(f"  {name:<18} {f'{rows} x {n_in} -> {n_out}':<22} {t * 1e6:>9.1f} {gf:>8.1f} {100 * gf / peak:>7.1f}")
        chunks = -(-grid.ncol // spec.chunk_size)
        report(f"  Linear layers alone: {lin_total * chunks * 1e3:.2f} ms per step ({chunks} chunks) = "
               f"{100 * lin_total * chunks / step_s:.0f}% of the step time")
        prof_steps = 2 if args.quick else 5
        report(f"torch.profiler, self CPU time per step over {prof_steps} steps (top operators):")
        prof = profile_steps(em, z0, prof_steps, 12)
        total = sum(r[1] for r in prof)
        for key, sec, calls in prof:
            report(f"  {key:<32} {sec * 1e3:>8.2f} ms {100 * sec / total:>5.1f}%  {calls} calls")
    report()
    for threads, (achieved, peak, achieved_best, peak_best) in results.items():
        report(f"threads {threads}: latent step {achieved:.1f} GFLOP/s of a {peak:.1f} GFLOP/s matmul peak = "
               f"{100 * achieved / peak:.1f}% (medians; fastest runs: {100 * achieved_best / peak_best:.1f}%) "
               "(threshold 30%)")
    report(f"load average at end: {bc.load_average()}; {bc.load_warning()}")
    report.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
