"""Column-steps per second of the emulator on one GPU: grid sizes, fp32/bf16, eager/CUDA graph, 1 vs 2 ranks.

    python benchmarks/gpu_throughput.py [--checkpoint PATH] [--grids T21 T42 T85 T170]
        [--precisions fp32 bf16] [--modes eager graph] [--chunk-sizes 2048 8192 32768] [--seconds 0.5] [--budget 240]
        [--ranks-grid T42] [--ranks-steps 48] [--no-ranks] [--device auto|cpu|cuda] [--quick] [--out FILE]

``benchmarks/gpu/run.sh`` runs it (after the CUDA tests) and writes its report to
``results.txt``. On a CPU (no CUDA, or ``--device cpu``) it runs the same code on a tiny
grid: the CUDA-graph lines then say why they fell back to eager.

Sections of the report:

* ceilings: the measured fp32 and bf16 ``torch.mm`` rates and the device-to-device copy
  bandwidth (bytes read + written), to compare the step with (docs: METHOD.md's "two numbers");
* kernels per eager step (``torch.profiler``, CUDA only): what a CUDA graph saves launching;
* throughput: for every grid (the T21 weights on T42/T85/T170 through ``allow_other_grid``),
  precision and mode, column-steps/s of latent-only stepping (``Emulator.step``; timed with
  CUDA events, median of 3 calls of about ``--seconds`` each after a warm-up that captures the
  graphs), the achieved TFLOP/s (the model's analytic FLOPs per column-step, ``mlscam.model.summarize``),
  peak GPU memory, and whether the graph's latents equal eager's bit for bit;
* bf16 accuracy: day-1 (24 one-hour steps) decoded forecast of the shipped initial state in
  bf16 against fp32 (RMSE per variable), next to the fp32 forecast's day-1 RMSE against the
  truth from ``docs/skill/skill.json``: ``|RMSE_bf16 - RMSE_fp32| <= RMSE(bf16 - fp32)``;
* ranks: the :class:`~mlscam.runtime.Component` on 1 rank and on 2 ranks sharing the device
  (``mpirun -n 2`` when an MPI launcher works, else 2 threads of the in-process fake
  communicator), eager and CUDA graph: column-steps/s and whether the latents are identical.

The work stops starting new measurements once ``--budget`` seconds have passed (and says so).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before cuBLAS starts: deterministic matmuls

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

GRIDS = {"tiny": (8, 16), "T21": (32, 64), "T42": (64, 128), "T85": (128, 256), "T170": (256, 512)}
GOAL = 5e6  # column-steps/s on one H100 (issue 15)
DAY_STEPS = 24
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMP_NUM_THREADS": "1"}


# ----------------------------------------------------------------------------- device and timing
def pick_device(pref: str) -> torch.device:
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"error: --device {pref} but CUDA is not available (torch {torch.__version__})")
    return torch.device(pref)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Seconds of ``fn()``: CUDA events on a GPU, the host clock on a CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def device_lines(device: torch.device) -> list[str]:
    if device.type != "cuda":
        return [f"device: {device} (CUDA available: {torch.cuda.is_available()}; torch {torch.__version__})"]
    p = torch.cuda.get_device_properties(device)
    lines = [f"device: {p.name}, compute capability {p.major}.{p.minor}, {p.multi_processor_count} SMs, "
             f"{p.total_memory / 2**30:.1f} GiB; torch {torch.__version__}, CUDA {torch.version.cuda}, "
             f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}"]
    smi = shutil.which("nvidia-smi")
    if smi:
        q = subprocess.run([smi, "--query-gpu=driver_version,clocks.sm,clocks.max.sm,power.draw,temperature.gpu",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        lines.append(f"nvidia-smi (driver, SM clock, max SM clock, power, temperature): {q.stdout.strip() or q.stderr.strip()}")
    return lines


def ceilings(device: torch.device, report) -> dict:
    """Measured fp32/bf16 matmul rates and the device-to-device copy bandwidth."""
    if device.type != "cuda":
        report("ceilings: skipped (not a CUDA device)")
        return {}
    out = {}
    g = torch.Generator(device=device).manual_seed(0)
    for name, dtype, n in (("fp32", torch.float32, 8192), ("bf16", torch.bfloat16, 8192)):
        a = torch.randn(n, n, device=device, generator=g).to(dtype)
        b = torch.randn(n, n, device=device, generator=g).to(dtype)
        torch.mm(a, b)
        t = statistics.median(timed(lambda: torch.mm(a, b), device) for _ in range(5))
        out[name] = 2 * n**3 / t
        del a, b
    x = torch.randn(2**28 // 4 * 4, device=device, generator=g)  # 1 GiB of float32
    y = torch.empty_like(x)
    y.copy_(x)
    t = statistics.median(timed(lambda: y.copy_(x), device) for _ in range(5))
    out["copy"] = 2 * x.numel() * 4 / t
    del x, y
    torch.cuda.empty_cache()
    report(f"ceilings (measured, random data, median of 5): torch.mm 8192^3 fp32 {out['fp32'] / 1e12:.1f} TFLOP/s "
           f"(TF32 off), bf16 {out['bf16'] / 1e12:.1f} TFLOP/s; device-to-device copy "
           f"{out['copy'] / 1e12:.2f} TB/s (read + write)")
    return out


def kernels_per_step(em, z, report) -> None:
    """Kernel launches of one eager step (CUDA only): the launches a graph replays in one."""
    if em.device.type != "cuda":
        return
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            em.step(z, 1)
            sync(em.device)
        events = prof.events()
        n = sum(1 for e in events if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA)
        n = n or sum(len(getattr(e, "kernels", ())) for e in events)
        nchunks = -(-em.grid.ncol // em.chunk_size)
        if n:
            report(f"kernels per eager step at {em.grid.nlat}x{em.grid.nlon} ({nchunks} chunks of {em.chunk_size}): "
                   f"{n} ({n / nchunks:.1f} per chunk)")
        else:
            report("kernels per eager step: the profiler recorded no CUDA kernels")
    except Exception as exc:  # noqa: BLE001 - the profiler is a nice-to-have
        report(f"kernels per eager step: not counted ({type(exc).__name__}: {exc})")


# ----------------------------------------------------------------------------- the emulator
def checkpoint_path(arg: str) -> Path:
    from mlscam.assets import is_asset, resolve_asset

    path = resolve_asset(arg) if is_asset(arg) else Path(arg)
    if not path.is_file():
        raise SystemExit(f"error: checkpoint {arg} ({path}) not found")
    return path


def make_emulator(path: Path, grid, device: torch.device):
    from mlscam.emulator import Emulator

    em = Emulator.from_checkpoint(path, grid=grid, allow_other_grid=True, device=device, warn_blas=False)
    return em


def flops_per_column_step(path: Path) -> float:
    """The mixer's analytic FLOPs per column-step (Linear layers; ``mlscam.model.summarize``, on a CPU copy)."""
    from mlscam.model import summarize

    em = make_emulator(path, None, torch.device("cpu"))
    return float(summarize(em.model, em.layout).flops["mixer"])


def measure(em, z, seconds: float, k: int = 8) -> dict:
    """Column-steps/s of ``em.step`` from ``z`` (median of 3 calls of ~``seconds``, a multiple of ``k`` steps:
    8 = one full CUDA graph, ``mlscam.model.graphs.MAX_GRAPH_STEPS``), after a warm-up that captures it."""
    device = em.device
    em.step(z, k)  # warm-up: gather plan, cuBLAS, graph capture
    trial = timed(lambda: em.step(z, k), device) / k
    n = int(min(4000, max(k, round(seconds / max(trial, 1e-9) / k) * k)))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    runs = [timed(lambda: em.step(z, n), device) for _ in range(3)]
    t = statistics.median(runs)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return {"steps": n, "s_per_step": t / n, "col_steps_per_s": em.grid.ncol * n / t, "peak_mib": peak,
            "spread": (max(runs) - min(runs)) / t}


HEADER = (f"{'grid':<6} {'columns':>8} {'chunk':>6} {'prec':<5} {'mode':<6} {'steps':>6} {'ms/step':>9} "
          f"{'col-steps/s':>12} {'TFLOP/s':>8} {'peak MiB':>9} {'spread':>7}  {'=eager?':<8} goal 5e6")


def one_config(args, em, z, name: str, precision: str, mode: str, eager_z, report, deadline: float):
    """Measure one (precision, mode) of ``em`` and report its row; returns ``(row or None, check latents)``."""
    label = f"{name:<6} {em.grid.ncol:>8} {em.chunk_size:>6} {precision:<5} {mode:<6}"
    if time.monotonic() > deadline:
        report(f"{label} skipped: the --budget of {args.budget:g} s is spent")
        return None, None
    em.precision, em.cuda_graph = precision, mode == "graph"
    if mode == "graph" and em.step_mode.startswith("eager"):
        report(f"{label} skipped: {em.step_mode}")
        return None, None
    r = measure(em, z, args.seconds, args.block)
    check = em.step(z, args.block)
    if mode == "eager":
        same = "-"
    elif eager_z is None:
        same = "n/a"
    else:
        same = "yes" if torch.equal(check, eager_z) else f"NO {(check - eager_z).abs().max().item():.1e}"
    r.update(grid=name, ncol=em.grid.ncol, chunk=em.chunk_size, precision=precision, mode=mode, same=same,
             tflops=r["col_steps_per_s"] * args.flops / 1e12)
    report(f"{label} {r['steps']:>6} {r['s_per_step'] * 1e3:>9.3f} {r['col_steps_per_s']:>12.3g} "
           f"{r['tflops']:>8.2f} {r['peak_mib']:>9.1f} {r['spread'] * 100:>6.1f}%  {same:<8} "
           f"{'met' if r['col_steps_per_s'] >= GOAL else 'not met'}")
    return r, check


def throughput(args, path: Path, device: torch.device, report, deadline: float) -> list[dict]:
    """The main table (the checkpoint's chunk size), then larger chunks on the first and last grid."""
    from mlscam.grid import LatLonGrid

    rows = []
    report(HEADER)
    ems = {}
    for name in args.grids:
        em = make_emulator(path, LatLonGrid.equiangular(*GRIDS[name]), device)
        z = em.encode(bc.initial_state(em).to(device))
        if name == args.grids[0]:
            kernels_per_step(em, z, report)
        for precision in args.precisions:
            eager_z = None
            for mode in args.modes:
                r, check = one_config(args, em, z, name, precision, mode, eager_z, report, deadline)
                if r:
                    rows.append(r)
                    eager_z = check if mode == "eager" else eager_z
        if name in (args.grids[0], args.grids[-1]):
            ems[name] = (em, z)
        del em, z
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.chunk_sizes:
        mode = "graph" if device.type == "cuda" else "eager"
        report()
        report(f"### other chunk sizes ({mode}; decomposition independence holds for any one chunk size, "
               "the bits differ between chunk sizes)")
        report(HEADER)
        for name, (em, z) in ems.items():
            for chunk in args.chunk_sizes:
                em.chunk_size = chunk
                for precision in args.precisions:
                    r, _ = one_config(args, em, z, name, precision, mode, None, report, deadline)
                    if r:
                        rows.append(r)
    ems.clear()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


# ----------------------------------------------------------------------------- components
def component_config(path: Path, device: torch.device, *, precision="fp32", cuda_graph=False):
    from mlscam.config import Config, OutputConfig, ParallelConfig, RolloutConfig

    return Config(rollout=RolloutConfig(checkpoint_path=str(path), allow_other_grid=True, precision=precision),
                  parallel=ParallelConfig(device=device.type, threads=1 if device.type == "cpu" else 0,
                                          cuda_graph=cuda_graph),
                  output=OutputConfig(quicklook=False, progress=False))


def accuracy(args, path: Path, device: torch.device, report) -> None:
    """Day-1 decoded forecast in bf16 against fp32, from the shipped initial state, on the training grid."""
    from mlscam.assets import resolve_asset
    from mlscam.parallel import SelfComm
    from mlscam.runtime import Component

    steps = args.accuracy_steps
    init = resolve_asset("mlscam:demo/initial_state.nc")
    states = {}
    for precision in ("fp32", "bf16"):
        c = Component.init(component_config(path, device, precision=precision), SelfComm())
        try:
            c.set_state_from_file(init, 0)
            source = f"{init.name} time 0"
        except Exception as exc:  # noqa: BLE001 - no netCDF4, or another grid
            x = bc.initial_state(c.emulator).numpy().astype(np.float64)
            c.set_state(x)
            source = f"a random state ({type(exc).__name__}: {exc})"
        c.step(steps)
        states[precision] = c.get_state().astype(np.float64)
        layout = c.layout
        c.finalize()
    skill = {}
    skill_file = bc.ROOT / "docs" / "skill" / "skill.json"
    if skill_file.is_file():
        rmse = json.loads(skill_file.read_text())["models"].get("demo", {}).get("rmse", {})
        skill = {v: rmse[v].get(str(steps)) for v in rmse}
    report(f"bf16 vs fp32 after {steps} steps ({steps * 3600 / 86400:.3g} days of 1-hour steps) from {source}, "
           f"{device.type}; RMSE over all levels and columns:")
    for var in layout.variables:
        sl = layout.slice_of(var)
        d = states["bf16"][..., sl] - states["fp32"][..., sl]
        rmse = float(np.sqrt(np.mean(d**2)))
        unit = dict(layout.units).get(var, "") if layout.units else ""
        ref = skill.get(var)
        extra = (f"; fp32 day-1 RMSE against the truth {ref:.3f} (docs/skill/skill.json): |change| <= "
                 f"{rmse:.2g} = {100 * rmse / ref:.2f}% of it") if ref and steps == DAY_STEPS else ""
        report(f"  {var:<17} RMSE(bf16 - fp32) {rmse:.3g} {unit}, max |diff| {np.abs(d).max():.3g}{extra}")


def rank_run(comm, path: Path, device_type: str, grid_name: str, steps: int, modes: list[str]) -> dict:
    """On every rank of ``comm``: a component on ``grid_name``, ``steps`` timed steps per mode.
    Returns (on rank 0) per mode the global latents, seconds and the halo transport."""
    from mlscam.grid import LatLonGrid
    from mlscam.runtime import Component, describe

    grid = LatLonGrid.equiangular(*GRIDS[grid_name])
    device = torch.device(device_type)
    out = {}
    for mode in modes:
        cfg = component_config(path, device, cuda_graph=mode == "graph")
        c = Component.init(cfg, comm, grid=grid)
        nrm = c.checkpoint.normalization
        rng = np.random.default_rng(0)
        x = nrm.state_mean + nrm.state_std * rng.standard_normal((grid.nlat, grid.nlon, nrm.n_state))
        t = c.tile
        c.set_state(x[t.lat0:t.lat1, t.lon0:t.lon1])
        c.step(8)  # warm-up and capture
        sync(c.device)
        comm.Barrier()
        t0 = time.perf_counter()
        c.step(steps)
        sync(c.device)
        comm.Barrier()
        seconds = time.perf_counter() - t0
        z = c.gather_latent()
        line = describe(c)
        c.finalize()
        if comm.Get_rank() == 0:
            out[mode] = {"z": z.numpy(), "seconds": seconds, "describe": line}
    return out


def ranks(args, path: Path, device: torch.device, report, deadline: float) -> None:
    from mlscam.parallel import SelfComm, run_fake_world

    grid = GRIDS[args.ranks_grid]
    ncol = grid[0] * grid[1]
    modes = [m for m in args.modes if m == "eager" or device.type == "cuda"]
    if time.monotonic() > deadline:
        report(f"ranks: skipped, the --budget of {args.budget:g} s is spent")
        return
    one = rank_run(SelfComm(), path, device.type, args.ranks_grid, args.ranks_steps, modes)
    two, how = None, ""
    launcher = shutil.which("mpirun") or shutil.which("mpiexec")
    if launcher and not args.no_mpirun:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "two.npz"
            version = subprocess.run([launcher, "--version"], capture_output=True, text=True, timeout=30).stdout
            flags = ["--bind-to", "none"] if "Open MPI" in version else []
            cmd = [launcher, *flags, "-n", "2", sys.executable, str(Path(__file__).resolve()), "--ranks-child",
                   str(out), "--checkpoint", str(path), "--device", device.type, "--ranks-grid", args.ranks_grid,
                   "--ranks-steps", str(args.ranks_steps), "--modes", *modes]
            env = {**os.environ, **MPI_ENV}
            env["PYTHONPATH"] = os.pathsep.join([str(bc.ROOT), env.get("PYTHONPATH", "")])
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.mpirun_timeout)
                if proc.returncode == 0 and out.is_file():
                    data = np.load(out, allow_pickle=True)
                    two = data["result"].item()
                    how = f"mpirun -n 2 ({version.strip().splitlines()[0] if version.strip() else launcher})"
                else:
                    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
                    how = f"mpirun failed (exit {proc.returncode}: {' | '.join(tail)}); "
            except subprocess.TimeoutExpired:
                how = f"mpirun timed out after {args.mpirun_timeout} s; "
    else:
        how = "no mpirun on this machine; " if not launcher else "--no-mpirun; "
    if two is None:
        two = run_fake_world(2, lambda comm: rank_run(comm, path, device.type, args.ranks_grid, args.ranks_steps,
                                                      modes), timeout=300)[0]
        how += "2 threads of the in-process fake communicator (timings indicative: one Python process)"
    report(f"1 vs 2 ranks sharing {device}: {args.ranks_grid} ({ncol} columns), {args.ranks_steps} steps, fp32, "
           f"2 ranks by {how}")
    for mode in modes:
        a, b = one[mode], two[mode]
        same = np.array_equal(a["z"], b["z"])
        report(f"  {mode:<6} 1 rank {ncol * args.ranks_steps / a['seconds']:.3g} col-steps/s, 2 ranks "
               f"{ncol * args.ranks_steps / b['seconds']:.3g} col-steps/s; latents identical: "
               f"{'yes' if same else 'NO, max |diff| %.2e' % np.abs(a['z'] - b['z']).max()}")
        report(f"         {b['describe']}")


def ranks_child(args) -> int:
    """``--ranks-child OUT``: under mpirun, run :func:`rank_run` on COMM_WORLD; rank 0 saves the result."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    out = rank_run(comm, Path(args.checkpoint), args.device, args.ranks_grid, args.ranks_steps, args.modes)
    if comm.Get_rank() == 0:
        np.savez(args.ranks_child, result=np.array(out, dtype=object))
    return 0


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=bc.DEFAULT_CHECKPOINT)
    p.add_argument("--grids", nargs="+", default=["T21", "T42", "T85", "T170"], choices=list(GRIDS))
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--modes", nargs="+", default=["eager", "graph"], choices=["eager", "graph"])
    p.add_argument("--chunk-sizes", nargs="*", type=int, default=[2048, 8192, 32768],
                   help="also time these chunk sizes on the first and the last grid (CUDA graph on a GPU)")
    p.add_argument("--seconds", type=float, default=0.5, help="length of one timed call")
    p.add_argument("--budget", type=float, default=240.0, help="start no measurement after this many seconds")
    p.add_argument("--accuracy-steps", type=int, default=DAY_STEPS)
    p.add_argument("--ranks-grid", default="T42", choices=list(GRIDS))
    p.add_argument("--ranks-steps", type=int, default=48)
    p.add_argument("--no-ranks", action="store_true")
    p.add_argument("--no-mpirun", action="store_true", help="2 ranks on the fake communicator only")
    p.add_argument("--mpirun-timeout", type=int, default=150)
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--quick", action="store_true", help="tiny grid, few steps (the CPU mode of run.sh; seconds)")
    p.add_argument("--ranks-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.ranks_child:
        return ranks_child(args)
    device = pick_device(args.device)
    args.block = 8
    if args.quick:
        args.grids, args.seconds, args.accuracy_steps, args.block = ["tiny"], 0.01, 2, 2
        args.chunk_sizes = [64]
        args.ranks_grid, args.ranks_steps, args.no_mpirun = "tiny", 2, True
    torch.use_deterministic_algorithms(True)
    start = time.monotonic()
    deadline = start + args.budget
    path = checkpoint_path(args.checkpoint)

    report = bc.Report(args.out)
    report("# GPU throughput: column-steps/s of latent steps, fp32/bf16, eager/CUDA graph, 1 vs 2 ranks")
    report(f"command: {bc.command_line(__file__, argv)}")
    for line in bc.machine_lines() + device_lines(device):
        report(line)
    if device.type != "cuda":
        report("CPU mode: no CUDA device, so no CUDA graphs and no GPU numbers; the same code on a tiny grid")
    em = make_emulator(path, None, torch.device("cpu"))
    cfg = em.checkpoint.config.model
    args.flops = flops_per_column_step(path)
    report(f"model: checkpoint {path}; {cfg.mixer} mixer, latent {cfg.latent_dim}, stencil width "
           f"{cfg.stencil_width}, {cfg.mixer_blocks} blocks, channel_hidden {cfg.channel_hidden}, chunk "
           f"{em.chunk_size}; {args.flops:,.0f} FLOP per column-step (mixer Linear layers); "
           f"trained on {em.grid.nlat}x{em.grid.nlon}; deterministic algorithms on")
    del em
    failed = []

    def section(title: str, fn, default=None):
        """Run one section; a failure is reported (and fails the run) without losing the other sections."""
        report()
        report(f"## {title}")
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            report(f"{title}: FAILED: {type(exc).__name__}: {exc}")
            failed.append(title)
            return default

    section("ceilings", lambda: ceilings(device, report))
    rows = section("throughput (latent-only Emulator.step; CUDA-event timing; median of 3 calls)",
                   lambda: throughput(args, path, device, report, deadline), [])
    section("bf16 accuracy", lambda: accuracy(args, path, device, report))
    section("ranks", lambda: report("ranks: skipped (--no-ranks)") if args.no_ranks
            else ranks(args, path, device, report, deadline))
    report()
    report("## summary")
    for name in args.grids:
        best = max((r for r in rows if r["grid"] == name), key=lambda r: r["col_steps_per_s"], default=None)
        if best:
            report(f"{name}: best {best['col_steps_per_s']:.3g} col-steps/s ({best['precision']}, {best['mode']}, "
                   f"chunk {best['chunk']}); goal {GOAL:.0e}: {'met' if best['col_steps_per_s'] >= GOAL else 'not met'}")
    if failed:
        report(f"FAILED sections: {', '.join(failed)} (tracebacks on stderr)")
    report(f"total {time.monotonic() - start:.0f} s; load average at end: {bc.load_average()}")
    report.save()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
