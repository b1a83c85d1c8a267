"""Latent steps on static buffers, replayed from a CUDA graph when the device is a GPU.

A step of a fixed grid and chunking launches the same kernels on the same shapes every
time; a CUDA graph records them once and replays them with one launch, which removes the
per-kernel launch cost that bounds small grids on a GPU. What is captured is
:meth:`Engine.step_once <mlscam.model.engine.Engine.step_once>` itself (THE step), ``steps``
times in a row, on a static latent buffer ``z [B, ncol, L]`` that it updates in place.

* Whole-grid domain (no halo exchange): one graph runs ``steps`` steps.
* A domain with a halo exchange (a rank of the MPI component): the exchange is host code
  (MPI), so it cannot be captured. The graph holds one step; before each replay the real
  exchange fills a static source buffer ``z_src [B, nsrc, L]`` from ``z``, and the captured
  step reads it through a stand-in exchange. ``steps`` must then be 1.

With the mass fixer on, the step reads its target from a static buffer ``[B]`` float64
that every run fills first; the fixer's serial global sum (``mlscam.fixedsum``) runs on the
device without a host synchronisation, so it is captured with the step. A domain whose
global sum is an MPI collective cannot be captured (``Emulator`` steps it eagerly). The
polar wind fixer (``mlscam.model.polar``) needs no target; it runs inside the projection of
``Engine.step_once``, so every stepper (each phase of ``projection_every``) holds it, and its
serial zonal-mean sums are captured the same way.

Without capture (``capture=False``: any CPU, or a test) :meth:`StaticStepper.run` executes
the very same body eagerly on the same static buffers, so this logic is tested on CPU, and
its results equal :meth:`Engine.step` bit for bit. Nothing in the step may synchronise with
the host (``Engine.advance`` keeps its gather plan; see ``mlscam.model.chunks``), or capture
fails.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
from typing import Callable

import torch

from .engine import Engine

__all__ = ["capture_unavailable", "StaticStepper", "GraphSteps"]

#: Most steps one captured graph holds (longer runs replay it; the remainder has its own graph).
MAX_GRAPH_STEPS = 8

#: One capture at a time per process (torch's rule: the caching allocator tracks one capture underway). The
#: ranks of an in-process fake world are threads; they queue here, and each captures on its own stream
#: (torch's shared default capture stream would already be capturing for the other thread).
_CAPTURE_LOCK = threading.Lock()

Context = Callable[[], contextlib.AbstractContextManager]


def capture_unavailable(device: torch.device | str) -> str | None:
    """Why a CUDA graph cannot be captured on ``device`` (``None``: it can)."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"device {device} is not a CUDA device: CUDA graphs need one; stepping eagerly"
    if not torch.cuda.is_available():
        return f"CUDA is not available (torch {torch.__version__}); stepping eagerly"
    return None


class StaticStepper:
    """``steps`` latent steps of ``engine`` on a static buffer ``z [B, ncol, L]`` (like ``z_like``).

    ``capture=True`` records the steps in a ``torch.cuda.CUDAGraph`` on the first :meth:`run`
    (after two warm-up runs on a side stream, which build the gather plan and cuBLAS's
    workspaces; the buffer is restored after them); ``capture=False`` runs the same body
    eagerly. ``context`` (e.g. ``mlscam.model.precision.autocast``) is entered around the
    steps, captured or not. With a halo exchange, every run calls it once per step, on every
    rank alike (it is collective), and nothing else does. ``start``: the run's step count before
    the first of the steps (which of them project, ``Engine.projects_after``; a run of the
    same stepper repeats that pattern).
    """

    def __init__(self, engine: Engine, z_like: torch.Tensor, steps: int, *, capture: bool,
                 context: Context = contextlib.nullcontext, start: int = 0):
        if steps < 1:
            raise ValueError(f"a static stepper needs steps >= 1, got {steps}")
        self.exchange = engine.domain.exchange
        if self.exchange is not None and steps != 1:
            raise ValueError(f"a domain with a halo exchange steps one step per graph (the exchange runs between "
                             f"replays), got steps={steps}")
        if capture and capture_unavailable(z_like.device) is not None:
            raise RuntimeError(f"cannot capture a CUDA graph: {capture_unavailable(z_like.device)}")
        self.steps, self.capture, self.context = int(steps), bool(capture), context
        self.project = [engine.projects_after(int(start) + k) for k in range(self.steps)]
        self.z = torch.empty_like(z_like)  # [B, ncol, L], updated in place by every run
        # [B] float64: the mass fixer's target, filled by every run (None: the fixer is off)
        self.target = (torch.zeros(z_like.shape[0], dtype=torch.float64, device=z_like.device)
                       if engine.mass is not None else None)
        self.src: torch.Tensor | None = None  # [B, nsrc, L] when there is an exchange (set by the first run)
        self.graph: torch.cuda.CUDAGraph | None = None
        if self.exchange is None:
            self._engine = engine
        else:  # the captured step reads the static source buffer the real exchange filled
            self._engine = copy.copy(engine)
            self._engine.domain = dataclasses.replace(engine.domain, exchange=self._static_source)

    def _static_source(self, z: torch.Tensor) -> torch.Tensor:
        return self.src

    def _body(self) -> None:
        z = self.z
        with self.context():
            for project in self.project:
                z, _ = self._engine.step_once(z, self.target, project=project)
        self.z.copy_(z)

    def _capture(self) -> "torch.cuda.CUDAGraph":
        device = self.z.device
        start = self.z.clone()
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(2):
                self._body()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: other threads may use the GPU meanwhile (the ranks of a fake world are threads)
        with _CAPTURE_LOCK, torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
            self._body()
        self.z.copy_(start)
        return graph

    def run(self, z: torch.Tensor, repeats: int = 1, mass_target: torch.Tensor | None = None) -> torch.Tensor:
        """``repeats * steps`` steps from ``z [B, ncol, L]`` (``mass_target [B]``: with the mass fixer, required);
        returns the static buffer (copy it to keep it)."""
        if z.shape != self.z.shape or z.dtype != self.z.dtype or z.device != self.z.device:
            raise ValueError(f"this stepper holds z {tuple(self.z.shape)} {self.z.dtype} on {self.z.device}, got "
                             f"{tuple(z.shape)} {z.dtype} on {z.device}")
        if self.target is not None:
            self.target.copy_(self._engine.check_mass_target(mass_target, z))
        if z.data_ptr() != self.z.data_ptr():
            self.z.copy_(z)
        for _ in range(repeats):
            if self.exchange is not None:
                src = self.exchange(self.z)
                if self.src is None:
                    self.src = src.detach().clone()
                else:
                    self.src.copy_(src)
            if self.capture and self.graph is None:
                self.graph = self._capture()
            if self.graph is not None:
                self.graph.replay()
            else:
                self._body()
        return self.z


class GraphSteps:
    """``n`` steps of an engine from CUDA graphs of at most ``max_steps`` steps, captured on first use.

    Graphs are kept per step count (one of ``max_steps`` and one for a remainder: a rollout
    that decodes every ``k`` steps keeps at most two; with ``projection_every`` M > 1, per phase
    too) for one shape, dtype, device and chunk size; anything else rebuilds them. ``capture=False`` uses the same static buffers
    without capture (see :class:`StaticStepper`).
    """

    def __init__(self, engine: Engine, *, capture: bool = True, context: Context = contextlib.nullcontext,
                 max_steps: int = MAX_GRAPH_STEPS):
        self.engine, self.capture, self.context = engine, bool(capture), context
        self.max_steps = 1 if engine.domain.exchange is not None else int(max_steps)
        self._key: tuple | None = None
        self._steppers: dict[tuple[int, int], StaticStepper] = {}  # (steps, phase: start mod projection_every)

    def clear(self) -> None:
        """Drop every captured graph (their memory pools go with them)."""
        self._steppers.clear()
        self._key = None

    def _stepper(self, z: torch.Tensor, steps: int, phase: int) -> StaticStepper:
        key = (tuple(z.shape), z.dtype, z.device, self.engine.chunk_size)
        if key != self._key:
            self.clear()
            self._key = key
        if (steps, phase) not in self._steppers:
            self._steppers[steps, phase] = StaticStepper(self.engine, z, steps, capture=self.capture,
                                                         context=self.context, start=phase)
        return self._steppers[steps, phase]

    def step(self, z: torch.Tensor, n: int, mass_target: torch.Tensor | None = None, *,
             start: int = 0) -> torch.Tensor:
        """``n >= 0`` steps of ``z [B, ncol, L]`` after ``start`` steps of the run (``Engine.step``;
        ``mass_target [B]``: with the mass fixer); a new tensor (the static buffers stay private)."""
        if n < 0:
            raise ValueError(f"number of steps must be >= 0, got {n}")
        every = self.engine.projection_every if self.engine.projection > 0.0 else 1
        done, n = 0, int(n)
        while done < n:
            steps = min(self.max_steps, n - done)
            # a graph repeats while every repeat starts at the same phase
            repeats = (n - done) // steps if steps % every == 0 else 1
            z = self._stepper(z, steps, (start + done) % every).run(z, repeats, mass_target)
            done += steps * repeats
        return z.clone()
