"""Collective agreement on one status before any exchange.

Every component call validates locally on each rank, then calls :func:`agree`
so that all ranks return the same status and message, even when only one rank
failed (a NaN in its tile, a missing file).  No rank enters a halo exchange
after a failure elsewhere, so nothing hangs.
"""
from __future__ import annotations

from typing import Any

__all__ = ["agree"]


def agree(comm: Any, ok: bool, message: str = "", code: int = 1, *, where: str = "") -> tuple[int, str]:
    """Combine every rank's ``(ok, message)`` into one ``(status, message)`` on all ranks.

    Collective over ``comm``: one ``allreduce`` (with mpi4py's default op,
    which sums Python lists, i.e. concatenates them) of the failing ranks'
    ``(rank, code, message, where)``.  Returns ``(0, "")`` when every rank is ok;
    otherwise the ``code`` of the lowest failing rank and a message naming all
    failing ranks, the lowest one's message first, e.g.
    ``"rank 1 of 4 failed: NaN in tile (also failed: ranks 3)"``, after
    ``"<where>: "`` when that rank gave a ``where`` (the check that failed, e.g.
    ``"Component.step"``: ranks that fail different checks in one agreement
    each name their own).
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    if not ok and int(code) == 0:
        raise ValueError(f"rank {rank}: a failure needs a non-zero status code, got code={code}")
    mine = [] if ok else [(rank, int(code), str(message), str(where))]
    failures = sorted(comm.allreduce(mine))
    if not failures:
        return 0, ""
    first_rank, first_code, first_message, first_where = failures[0]
    text = f"{first_where + ': ' if first_where else ''}rank {first_rank} of {size} failed: {first_message}"
    others = [r for r, _, _, _ in failures[1:]]
    if others:
        text += f" (also failed: rank{'s' if len(others) > 1 else ''} {', '.join(str(r) for r in others)})"
    return first_code, text
