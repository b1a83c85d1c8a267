"""Where a component's step time goes: halo exchanges and the rest, without a host sync per step on a GPU."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable

import torch

__all__ = ["StepTimer"]


class StepTimer:
    """Seconds spent in ``exchange`` (wrapped with :meth:`timed`) and in ``compute`` (the rest of a step).

    On a CPU the steps are timed with the wall clock. On a GPU a step is timed with
    CUDA events that are read only by :attr:`seconds` (the only place that waits for
    the GPU), so stepping itself never synchronises with the host. ``seconds`` is a
    dict that may be reset in place (``timer.seconds.update(exchange=0.0, compute=0.0)``).
    """

    def __init__(self, device: torch.device):
        self.on_gpu = torch.device(device).type == "cuda"
        self._seconds = {"exchange": 0.0, "compute": 0.0}
        self._spans: list[tuple[Any, Any, float]] = []  # CUDA (start, end, exchange s) not yet read

    def timed(self, exchange: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """``exchange`` with its wall time added to ``seconds['exchange']``."""
        def run(z: torch.Tensor) -> torch.Tensor:
            t0 = time.perf_counter()
            out = exchange(z)
            self._seconds["exchange"] += time.perf_counter() - t0
            return out

        return run

    @contextmanager
    def step(self):
        """Time the steps run inside the block (their exchange time is counted apart)."""
        t0, exchanged = time.perf_counter(), self._seconds["exchange"]
        start = None
        if self.on_gpu:
            start = torch.cuda.Event(enable_timing=True)
            start.record()
        yield
        if self.on_gpu:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._spans.append((start, end, self._seconds["exchange"] - exchanged))
        else:
            self._seconds["compute"] += time.perf_counter() - t0 - (self._seconds["exchange"] - exchanged)

    @property
    def seconds(self) -> dict[str, float]:
        if self._spans:
            spans, self._spans = self._spans, []
            for start, end, exchanged in spans:
                end.synchronize()
                self._seconds["compute"] += max(0.0, start.elapsed_time(end) / 1e3 - exchanged)
        return self._seconds
