"""The latent step time of two source trees, side by side in one run (before/after a change).

    git worktree add ../before <commit>
    python benchmarks/ab_step_time.py --tree before=../before --tree after=. [--rounds 7] [--out FILE]

Each measurement runs in a fresh child process whose working directory is the
tree, so that tree's ``mlscam`` is imported; it builds the demo ``Emulator``
(T21), pins the BLAS as the entry points do, encodes a state and times
``step(z, 24)`` (median of 5 calls after a warm-up). The trees take turns,
round after round, on 1 and 2 threads; reported is the median over rounds of
seconds per step and the ratio to the first tree. The children also check that
both trees give the same latents after 24 steps (bit for bit).
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
g = torch.Generator().manual_seed(0)
n = em.normalization
x = (torch.from_numpy(n.state_mean) + torch.from_numpy(n.state_std) * torch.randn(
    em.grid.nlat, em.grid.nlon, n.n_state, generator=g, dtype=torch.float64)).float()
z = em.encode(x)
z24 = em.step(z, 24)
times = []
for _ in range(6):
    t0 = time.perf_counter(); em.step(z, 24); times.append(time.perf_counter() - t0)
print(json.dumps({"s_per_step": statistics.median(times[1:]) / 24,
                  "digest": __import__("hashlib").sha256(z24.numpy().tobytes()).hexdigest()}))
"""


def measure(tree: Path, threads: int) -> dict:
    p = subprocess.run([sys.executable, "-c", CHILD, str(threads)], cwd=tree, capture_output=True, text=True,
                       timeout=600)
    if p.returncode:
        raise SystemExit(f"error: the child in {tree} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tree", action="append", required=True, help="LABEL=PATH of a source tree (two or more)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    trees = [(t.partition("=")[0], Path(t.partition("=")[2]).resolve()) for t in args.tree]
    report = bc.Report(args.out)
    report("# latent step time, source trees side by side (demo model, T21, 24 steps per call)")
    report(f"command: {bc.command_line(__file__)}")
    for line in bc.machine_lines():
        report(line)
    for label, path in trees:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True).stdout.strip()
        report(f"tree {label}: {path} at {rev.stdout.strip()}{' (+ uncommitted changes)' if dirty else ''}")
    report()
    report("threads tree           s/step    ratio to first   same latents as first")
    for threads in (1, 2):
        times: dict[str, list[float]] = {label: [] for label, _ in trees}
        digests: dict[str, str] = {}
        for _ in range(args.rounds):
            for label, path in trees:
                r = measure(path, threads)
                times[label].append(r["s_per_step"])
                digests[label] = r["digest"]
        base = statistics.median(times[trees[0][0]])
        for label, _ in trees:
            med = statistics.median(times[label])
            report(f"{threads:7d} {label:12s} {med:10.5f}   {med / base:10.3f}       "
                   f"{digests[label] == digests[trees[0][0]]}")
    report(bc.load_warning(2))
    report.save()


if __name__ == "__main__":
    main()
