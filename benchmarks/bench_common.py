"""Shared parts of the benchmark scripts: the model to time, the machine description, timing helpers.

Every benchmark times either the checkpoint named by ``--checkpoint`` (default
the shipped demo, ``mlscam:demo/checkpoint.pt``) or, with ``--random-weights
NAMELIST``, the model of that namelist's ``&model`` with random weights, the
identity normalization and the step ``&data time_step_hours`` (speed does not
depend on the weights). The random-weights layout is the demo's columns:
``&data variables_3d`` on ``--levels`` equidistant sigma levels plus
``&data variables_2d``.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/X.py`: use this tree's mlscam
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mlscam import blas  # noqa: E402
from mlscam.config import RolloutConfig  # noqa: E402

# As the entry points do: the measured step is the one users run (blas_mode.py's children set their own mode).
BLAS_MODE = blas.mode() if os.environ.get("MLSCAM_BENCH_NO_PIN") else blas.pin()

#: The shipped demo's checkpoint and initial state: the &rollout defaults.
DEFAULT_CHECKPOINT = RolloutConfig().checkpoint_path
DEFAULT_INITIAL_STATE = RolloutConfig().input_nc_path
UNITS = {"u": "m s-1", "v": "m s-1", "temperature": "K", "surface_pressure": "Pa"}


# ----------------------------------------------------------------------------- arguments
def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint PATH`` | ``--random-weights NAMELIST`` (+ ``--levels``)."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                   help=f"checkpoint to time (default {DEFAULT_CHECKPOINT}; 'mlscam:' names a package asset)")
    g.add_argument("--random-weights", metavar="NAMELIST", default=None,
                   help="time the &model of NAMELIST with random weights, identity normalization and "
                        "the step &data time_step_hours instead of a checkpoint")
    parser.add_argument("--levels", type=int, default=10,
                        help="levels of the random-weights column layout (default 10, as the demo data)")


def command_line(script: str, argv: list[str] | None = None) -> str:
    """The command ``python SCRIPT ARGV`` (``argv`` default: this process's arguments), from the repository root."""
    path = Path(script).resolve()
    try:
        path = path.relative_to(ROOT)
    except ValueError:
        pass
    args = sys.argv[1:] if argv is None else argv
    return "python " + " ".join(shlex.quote(a) for a in [str(path), *args])


# ----------------------------------------------------------------------------- the model
@dataclass
class ModelSpec:
    """What a benchmark needs to build an ``Emulator`` on any grid."""

    source: str  # "checkpoint PATH" or "random weights from NAMELIST"
    model: torch.nn.Module
    layout: object  # ColumnLayout
    normalization: object  # Normalization
    dt_seconds: float
    train_grid: object  # LatLonGrid
    chunk_size: int
    model_config: object  # ModelConfig
    checkpoint_path: Path | None = None

    def emulator(self, grid=None):
        """An ``Emulator`` on ``grid`` (default the training grid). A checkpoint on another grid goes
        through ``Emulator.from_checkpoint(..., allow_other_grid=True)``."""
        from mlscam.emulator import Emulator

        grid = grid or self.train_grid
        if self.checkpoint_path is not None:
            return Emulator.from_checkpoint(self.checkpoint_path, grid=grid,
                                            allow_other_grid=grid != self.train_grid)
        return Emulator(self.model, self.layout, grid, self.normalization, self.dt_seconds,
                        chunk_size=self.chunk_size)


def random_layout(cfg, levels: int):
    from mlscam.layout import ColumnLayout

    names = tuple(cfg.data.variables_3d) + tuple(cfg.data.variables_2d)
    return ColumnLayout(tuple(cfg.data.variables_3d), tuple(cfg.data.variables_2d),
                        tuple((np.arange(levels) + 0.5) / levels),
                        units=tuple((n, UNITS.get(n, "1")) for n in names),
                        static_features=tuple(cfg.data.static_features))


def load_spec(args: argparse.Namespace, *, grid=None) -> ModelSpec:
    """The model named by the arguments. ``grid`` sets the random-weights training grid (default T21, 32x64)."""
    from mlscam.grid import LatLonGrid
    from mlscam.model import build_model
    from mlscam.normalization import Normalization

    if args.random_weights:
        from mlscam.config import load_config

        cfg = load_config(args.random_weights)
        layout = random_layout(cfg, args.levels)
        with torch.random.fork_rng():  # seeded weights; the process's RNG is left as it was
            torch.manual_seed(0)
            model = build_model(cfg.model, layout).eval()
        return ModelSpec(f"random weights, &model of {args.random_weights}", model, layout,
                         Normalization.identity(layout.n_state), cfg.data.time_step_hours * 3600.0,
                         grid or LatLonGrid.equiangular(32, 64), cfg.model.chunk_size, cfg.model)
    from mlscam.assets import is_asset, resolve_asset
    from mlscam.checkpoint import load_checkpoint

    path = resolve_asset(args.checkpoint) if is_asset(args.checkpoint) else Path(args.checkpoint)
    if not path.is_file():
        raise SystemExit(f"error: checkpoint {args.checkpoint} ({path}) not found; give --checkpoint PATH, or "
                         "--random-weights namelists/train_demo.nml to time the demo model with random weights")
    ckpt = load_checkpoint(path)
    return ModelSpec(f"checkpoint {path}", ckpt.build_model(), ckpt.layout, ckpt.normalization,
                     ckpt.dt_seconds, ckpt.grid, ckpt.config.model.chunk_size, ckpt.config.model, path)


def initial_state(em, seed: int = 0) -> torch.Tensor:
    """A state ``[nlat, nlon, n_state]`` drawn around the normalization mean (speed does not depend on it)."""
    g = torch.Generator().manual_seed(seed)
    nrm = em.normalization
    x = torch.randn(em.grid.nlat, em.grid.nlon, nrm.n_state, generator=g, dtype=torch.float64)
    return (torch.from_numpy(nrm.state_mean) + torch.from_numpy(nrm.state_std) * x).float()


# ----------------------------------------------------------------------------- machine and timing
def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine_lines() -> list[str]:
    return [
        f"machine: {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
        f"{platform.system()} {platform.release()}",
        f"python {platform.python_version()}, torch {torch.__version__} "
        f"(default threads {torch.get_num_threads()}), numpy {np.__version__}, BLAS mode {BLAS_MODE.name}",
        f"load average (1, 5, 15 min) at start: {load_average()}",
    ]


def load_warning(threads: int = 2) -> str:
    """A line saying whether the machine was busy (1-minute load above its free share)."""
    one = os.getloadavg()[0]
    ncpu = len(os.sched_getaffinity(0))
    if one > max(ncpu - threads, 0) + 0.5:
        return (f"NOTE: 1-minute load {one:.2f} on {ncpu} cores: other work shared the machine; "
                "times are upper bounds, rerun at a quiet moment")
    return f"load {one:.2f} on {ncpu} cores: machine quiet enough"


def time_median(fn: Callable[[], object], repeats: int, *, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time (s) of ``fn()`` over ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


class Report:
    """Lines printed as they come and written to ``--out`` at the end."""

    def __init__(self, out: str | None):
        self.out, self.lines = out, []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def save(self) -> None:
        if self.out:
            Path(self.out).write_text("\n".join(self.lines) + "\n")
            print(f"written to {self.out}", flush=True)
