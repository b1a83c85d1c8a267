"""The latent step time of two source trees, side by side in one run (before/after a change).

    git worktree add ../before <commit>
    python benchmarks/ab_step_time.py --tree before=../before --tree after=. [--rounds 7] [--threads 1 2]
        [--dycore] [--tree after-M2=. --every after-M2=2] [--out FILE]

Each measurement runs in a fresh child process whose working directory is the
tree, so that tree's ``mlscam`` is imported; it builds the demo ``Emulator``
(T21), pins the BLAS as the entry points do, encodes a state and times
``step(z, 24)`` (median of 5 calls after a warm-up) and a latent-only simulated
day, ``decode(step(encode(x), 1 day))`` as ``rollout_throughput.py`` times it
(median of 5). The trees take turns, round after round, on every thread count;
reported is the median over rounds of seconds per step and the ratio to the
first tree, in wall time and in CPU time of the child (``time.process_time``: on
one thread, the step's own work, less disturbed by other processes taking turns
on the cores; on two threads it includes OpenMP's waiting). The children also
check that both trees give the same latents after 24 steps (bit for bit).

``--dycore``: every round also times the Dinosaur Held-Suarez dycore at T21 L10
(``mlscam.datagen.dycore``, its jitted one-day ``advance_fn``, 3 days after the
JIT warm-up) in two children of the first tree: with JAX's default threading
(all cores), and on one core (the child's CPU affinity set to one core and XLA's
CPU thread pool off before JAX starts; the issue's "on one thread" for both
sides). Each tree's latent-only day gets the ratio emulator-days-per-second /
dycore-days-per-second of ``rollout_throughput.py`` against both, from the same run: the ratio of
the medians, and the ratio round by round (min / median / max), which cancels the machine's drift
between rounds (on these shared machines a side's time moves by 20-40% between identical runs).
``--every LABEL=M`` runs that tree with ``&model latent_projection_every = M``
(its latents then differ from the others': another run, not a faster one).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

CHILD = r"""
import json, statistics, sys, time
import torch
from mlscam import blas
blas.pin()
try:
    from mlscam.emulator import Emulator
except ImportError:  # trees from before the one-engine layout
    from mlscam.model import Emulator  # noqa: F401 - the layout before mlscam.emulator
torch.set_num_threads(int(sys.argv[1]))
em = Emulator.from_checkpoint("mlscam/assets/demo/checkpoint.pt")
if len(sys.argv) > 2:  # --every: the checkpoint's stabilisers with latent_projection_every = M
    import dataclasses
    em = Emulator.from_checkpoint("mlscam/assets/demo/checkpoint.pt", latent_filter=dataclasses.replace(
        em.engine.latent_filter, projection_every=int(sys.argv[2])))
g = torch.Generator().manual_seed(0)
n = em.normalization
x = (torch.from_numpy(n.state_mean) + torch.from_numpy(n.state_std) * torch.randn(
    em.grid.nlat, em.grid.nlon, n.n_state, generator=g, dtype=torch.float64)).float()
z = em.encode(x)
z24 = em.step(z, 24)
times, cpu = [], []
for _ in range(6):
    t0, c0 = time.perf_counter(), time.process_time(); em.step(z, 24)
    times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
per_day = round(86400 / em.dt_seconds)
days = []
for _ in range(5):
    t0 = time.perf_counter(); em.decode(em.step(em.encode(x), per_day)); days.append(time.perf_counter() - t0)
print(json.dumps({"s_per_step": statistics.median(times[1:]) / 24, "cpu_s_per_step": statistics.median(cpu[1:]) / 24,
                  "s_per_day": statistics.median(days),
                  "digest": __import__("hashlib").sha256(z24.numpy().tobytes()).hexdigest()}))
"""

DYCORE = r"""
import json, os, statistics, sys, time
if len(sys.argv) > 1 and sys.argv[1] == "one-core":  # before JAX starts its thread pools
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                               " intra_op_parallelism_threads=1").strip()
import jax
from mlscam.datagen.dycore import HeldSuarezModel
hs = HeldSuarezModel("T21", 10)
advance = hs.advance_fn(round(1440 / hs.dt_minutes))
state = jax.block_until_ready(advance(hs.initial_state(0)))  # compile + first day
days = []
for _ in range(3):
    t0 = time.perf_counter(); state = jax.block_until_ready(advance(state)); days.append(time.perf_counter() - t0)
print(json.dumps({"s_per_day": statistics.median(days)}))
"""


def _child(code: str, tree: Path, *args: str) -> dict:
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=tree, capture_output=True, text=True, timeout=600)
    if p.returncode:
        raise SystemExit(f"error: the child in {tree} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(tree: Path, threads: int, every: int | None = None) -> dict:
    return _child(CHILD, tree, str(threads), *([] if every is None else [str(every)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tree", action="append", required=True, help="LABEL=PATH of a source tree (two or more)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--dycore", action="store_true", help="also time the T21 dycore every round (ratio column)")
    p.add_argument("--every", action="append", default=[], metavar="LABEL=M",
                   help="run tree LABEL with &model latent_projection_every = M (a tree may be listed twice under "
                        "two labels, with and without)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    trees = [(t.partition("=")[0], Path(t.partition("=")[2]).resolve()) for t in args.tree]
    every = {e.partition("=")[0]: int(e.partition("=")[2]) for e in args.every}
    report = bc.Report(args.out)
    report("# latent step time, source trees side by side (demo model, T21, 24 steps per call)")
    report(f"command: {bc.command_line(__file__)}")
    for line in bc.machine_lines():
        report(line)
    for label, path in trees:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True).stdout.strip()
        report(f"tree {label}: {path} at {rev.stdout.strip()}{' (+ uncommitted changes)' if dirty else ''}"
               + (f", latent_projection_every = {every[label]}" if label in every else ""))
    times = {(t, label): [] for t in args.threads for label, _ in trees}
    cpu = {(t, label): [] for t in args.threads for label, _ in trees}
    days = {(t, label): [] for t in args.threads for label, _ in trees}
    digests: dict[tuple[int, str], str] = {}
    dycore: list[float] = []
    dycore_one: list[float] = []
    loads = []
    for _ in range(args.rounds):
        loads.append(bc.load_average().split()[0])
        if args.dycore:
            dycore.append(_child(DYCORE, trees[0][1])["s_per_day"])
            dycore_one.append(_child(DYCORE, trees[0][1], "one-core")["s_per_day"])
        for threads in args.threads:
            for label, path in trees:
                r = measure(path, threads, every.get(label))
                times[threads, label].append(r["s_per_step"])
                cpu[threads, label].append(r["cpu_s_per_step"])
                days[threads, label].append(r["s_per_day"])
                digests[threads, label] = r["digest"]
    report(f"{args.rounds} rounds; 1-minute load at the start of each: {' '.join(loads)}")
    if dycore:
        report(f"dycore T21 L10 (JAX default threads), s per simulated day: "
               f"{' '.join(f'{d:.3f}' for d in dycore)} -> median {statistics.median(dycore):.3f}")
        report(f"dycore T21 L10 (one core, XLA's thread pool off), s per simulated day: "
               f"{' '.join(f'{d:.3f}' for d in dycore_one)} -> median {statistics.median(dycore_one):.3f}")
    report()
    report("threads tree           s/step    ratio to first   CPU s/step  ratio   same latents as first   "
           "latent-only s/day" + ("   ratio to dycore (days/s): default threads, one core" if dycore else ""))
    for threads in args.threads:
        base = statistics.median(times[threads, trees[0][0]])
        cpu_base = statistics.median(cpu[threads, trees[0][0]])
        for label, _ in trees:
            med, day = statistics.median(times[threads, label]), statistics.median(days[threads, label])
            cpu_med = statistics.median(cpu[threads, label])
            line = (f"{threads:7d} {label:12s} {med:10.5f}   {med / base:10.3f}     {cpu_med:10.5f} {cpu_med / cpu_base:6.3f}"
                    f"   {str(digests[threads, label] == digests[threads, trees[0][0]]):>5}                 {day:10.3f}")
            if dycore:
                line += (f"          {statistics.median(dycore) / day:10.2f}"
                         f"  {statistics.median(dycore_one) / day:10.2f}")
            report(line)
    if dycore:
        # the same ratios round by round (each round's dycore against the same round's latent-only day): the
        # machine's speed drifts between rounds, a paired ratio cancels what both sides of a round share
        report()
        report("per-round paired ratio to the dycore (days/s), min / median / max over rounds:")
        for threads in args.threads:
            for label, _ in trees:
                for name, dy in (("default threads", dycore), ("one core", dycore_one)):
                    r = [d / day for d, day in zip(dy, days[threads, label])]
                    report(f"{threads:7d} {label:12s} {name:16s} {min(r):6.2f} {statistics.median(r):6.2f} "
                           f"{max(r):6.2f}   ({' '.join(f'{x:.2f}' for x in r)})")
    # the children run one at a time: the benchmark itself keeps one core busy
    report(bc.load_warning(1))
    report.save()


if __name__ == "__main__":
    main()
