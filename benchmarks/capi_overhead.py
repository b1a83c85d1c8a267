"""Overhead of the C boundary (libmlscam) against calling the component from Python, at T21.

    python benchmarks/capi_overhead.py [--nsteps 20] [--ncalls 2000] [--ranks 1] [--out FILE]

A T21 (32 x 64) checkpoint with the default model sizes (conv mixer, latent
128) and 8 levels of u, v, temperature plus surface_pressure (n_state 25),
untrained (timings do not depend on the weights).  For each rank count, per
coupling step = ``step(1)`` + decode the whole tile (``get_state`` /
``mlscam_state_get_all`` into a float64 host array), one torch thread per
rank, the emulator's default decomposition:

* Python: ``Component`` under ``mpirun -n N python`` (this file, --python-side);
* C: ``benchmarks/capi_overhead_host.c`` built with the printed flags, same N.

Also the fixed cost of one call that reaches the component (``step(0)``: the
boundary + argument checks + the collective status agreement) and the init
latency of the C host (``mlscam_init``: interpreter start, imports of torch and
mlscam, checkpoint load) on one rank.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NLAT, NLON, NLEV = 32, 64, 8
ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
       "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_mpi_yield_when_idle": "1", "OMP_NUM_THREADS": "1"}


def make_case(d: Path) -> Path:
    import numpy as np
    import torch

    from mlscam.checkpoint import Checkpoint, save_checkpoint
    from mlscam.config import Config, ModelConfig
    from mlscam.grid import LatLonGrid
    from mlscam.layout import ColumnLayout
    from mlscam.model import build_model
    from mlscam.normalization import Normalization

    levels = tuple(float(v) for v in np.linspace(0.05, 0.95, NLEV))
    layout = ColumnLayout(("u", "v", "temperature"), ("surface_pressure",), levels,
                          static_features=("sin_lat", "cos_lat"))
    torch.manual_seed(0)
    cfg = Config(model=ModelConfig())
    n = layout.n_state
    norm = Normalization(np.zeros(n), np.ones(n), np.zeros(n), np.ones(n))
    save_checkpoint(d / "t21.pt", Checkpoint(config=cfg, layout=layout, normalization=norm, dt_seconds=21600.0,
                                             grid=LatLonGrid.equiangular(NLAT, NLON),
                                             state_dict=build_model(cfg.model, layout).state_dict()))
    nml = d / "bench.nml"
    nml.write_text("&rollout\n  checkpoint_path = 't21.pt'\n/\n&parallel\n  device = 'cpu'\n  threads = 1\n/\n")
    return nml


def python_side(nml: str, nsteps: int, ncalls: int) -> None:
    """Run under mpirun: the same loop as the C host, from Python."""
    import numpy as np
    import torch

    from mlscam.config import load_config
    from mlscam.coupler import Component
    from mlscam.parallel import world

    torch.set_num_threads(1)
    comm = world()
    comp = Component.init(load_config(nml), comm)
    t = comp.tile
    out = np.zeros((t.nlat, t.nlon, comp.layout.n_state))
    comp.set_state(out.copy())
    for _ in range(3):
        comp.step(1)
        out[...] = comp.get_state()
    comm.Barrier()
    best = best_call = float("inf")  # minima, as in the C host: robust to other load on the machine
    for _ in range(nsteps):
        a = time.perf_counter()
        comp.step(1)
        out[...] = comp.get_state()
        best = min(best, time.perf_counter() - a)
    for _ in range(0, ncalls, 100):
        a = time.perf_counter()
        for _ in range(100):
            comp.step(0)
        best_call = min(best_call, (time.perf_counter() - a) / 100)
    # the copy the C side adds: decoded [lat, lon, n_state] float32 into the host's Fortran-order
    # float64 array, i.e. a transposed view [n_state, lat, lon].transpose(1, 2, 0), against a plain copy
    values = comp.get_state()
    host = np.zeros((comp.layout.n_state, t.nlat, t.nlon)).transpose(1, 2, 0)
    best_t = best_c = float("inf")
    for _ in range(50):
        a = time.perf_counter()
        host[...] = values
        b = time.perf_counter()
        out[...] = values
        best_t, best_c = min(best_t, b - a), min(best_c, time.perf_counter() - b)
    if comp.rank == 0:
        print(f"coupling_step_s {best:.6f}\ncall_s {best_call:.9f}\ncopy_extra_s {best_t - best_c:.9f}", flush=True)
    comp.finalize()


def _parse(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def _mpirun(n: int, args: list[str], cwd: Path) -> dict[str, float]:
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
    cmd = ["timeout", "-k", "10", "600", "mpirun", "--bind-to", "none", "-n", str(n), *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return _parse(proc.stdout)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nsteps", type=int, default=20)
    p.add_argument("--ncalls", type=int, default=2000)
    p.add_argument("--ranks", type=int, nargs="+", default=[1])
    p.add_argument("--out", default="")
    p.add_argument("--python-side", nargs=3, metavar=("NML", "NSTEPS", "NCALLS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.python_side:
        python_side(args.python_side[0], int(args.python_side[1]), int(args.python_side[2]))
        return 0
    sys.path.insert(0, str(ROOT))
    from mlscam.coupler.build import ensure_built
    from mlscam.coupler.config import flags

    ensure_built(quiet=True)
    with tempfile.TemporaryDirectory(prefix="capi-bench-") as tmp:
        d = Path(tmp)
        nml = make_case(d)
        exe = d / "capi_overhead_host"
        subprocess.run(["mpicc", "-O2", *flags("cflags").split(), "-o", str(exe),
                        str(ROOT / "benchmarks" / "capi_overhead_host.c"), *flags("libs").split()], check=True)
        lines = [f"# benchmarks/capi_overhead.py --nsteps {args.nsteps} --ncalls {args.ncalls} "
                 f"--ranks {' '.join(map(str, args.ranks))}",
                 f"# T21 {NLAT}x{NLON}, n_state {3 * NLEV + 1}, default model sizes, 1 torch thread per rank, "
                 f"{os.cpu_count()} cores; rank 0's minimum over steps",
                 "# boundary = C call - python call of step(0); added per coupling step = 2 boundaries + the extra",
                 "# cost of copying into a Fortran-order host array; 'added [%]' = that / python step+get",
                 "ranks  tile(lat x lon)  python step+get [ms]  C step+get [ms]  whole-step diff [%]  "
                 "python call [us]  C call [us]  boundary [us]  copy extra [us]  added [%]"]
        init_s = None
        for n in args.ranks:
            c = _mpirun(n, [str(exe), str(nml), str(NLON), str(NLAT), str(NLEV), str(args.nsteps),
                            str(args.ncalls)], d)
            py = _mpirun(n, [sys.executable, str(Path(__file__).resolve()), "--python-side", str(nml),
                             str(args.nsteps), str(args.ncalls)], d)
            init_s = c["init_s"] if n == 1 else init_s
            over = 100.0 * (c["coupling_step_s"] - py["coupling_step_s"]) / py["coupling_step_s"]
            tile = f"{NLAT}x{NLON // n}" if n > 1 else f"{NLAT}x{NLON}"
            boundary = c["call_s"] - py["call_s"]
            added = 2 * boundary + py["copy_extra_s"]
            lines.append(f"{n:5d}  {tile:>15s}  {1e3 * py['coupling_step_s']:20.2f}  {1e3 * c['coupling_step_s']:15.2f}"
                         f"  {over:19.2f}  {1e6 * py['call_s']:16.1f}  {1e6 * c['call_s']:11.1f}"
                         f"  {1e6 * boundary:13.1f}  {1e6 * py['copy_extra_s']:15.1f}"
                         f"  {100 * added / py['coupling_step_s']:9.3f}")
        if init_s is not None:
            lines.append(f"init latency (mlscam_init on 1 rank: interpreter, imports, checkpoint): {init_s:.2f} s")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
