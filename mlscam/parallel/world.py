"""The communicators the drivers start from, and the job abort.

* :func:`world` is ``MPI.COMM_WORLD`` (imports mpi4py, which initialises MPI);
* :class:`SelfComm` is a one-rank in-process communicator with the subset of
  the mpi4py ``Comm`` API that mlscam uses, so a serial run needs no mpi4py;
* :func:`abort` ends the whole job: ``comm.Abort(code)`` on an mpi4py
  communicator, ``SystemExit(code)`` otherwise.
"""
from __future__ import annotations

import socket
import sys
from typing import Any, Callable

__all__ = ["world", "SelfComm", "abort", "is_mpi"]


def world() -> Any:
    """``mpi4py.MPI.COMM_WORLD`` (initialises MPI on first use)."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


def is_mpi(comm: Any) -> bool:
    """Whether ``comm`` is an mpi4py communicator (else a :class:`SelfComm` or ``FakeComm``).

    The one such check of mlscam: it looks at the type's module, so it never imports mpi4py.
    """
    return type(comm).__module__.startswith("mpi4py")


class SelfComm:
    """A communicator of one rank: collectives return the caller's own values.

    There are no peers, so point-to-point calls are refused (a one-rank halo
    plan has no messages).
    """

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1

    def Get_processor_name(self) -> str:
        return socket.gethostname()

    def Dup(self) -> "SelfComm":
        return SelfComm()

    def Free(self) -> None:
        return None

    def Barrier(self) -> None:
        return None

    def allreduce(self, sendobj: Any, op: Callable[[Any, Any], Any] | None = None) -> Any:
        return sendobj

    def allgather(self, sendobj: Any) -> list:
        return [sendobj]

    def gather(self, sendobj: Any, root: int = 0) -> list:
        self._check_root(root)
        return [sendobj]

    def bcast(self, obj: Any = None, root: int = 0) -> Any:
        self._check_root(root)
        return obj

    def Isend(self, buf: Any, dest: int, tag: int = 0) -> Any:
        raise ValueError(f"SelfComm has one rank: no peer {dest} to send to")

    def Irecv(self, buf: Any, source: int, tag: int = 0) -> Any:
        raise ValueError(f"SelfComm has one rank: no peer {source} to receive from")

    @staticmethod
    def _check_root(root: int) -> None:
        if root != 0:
            raise ValueError(f"SelfComm has one rank (0), got root={root}")

    def __repr__(self) -> str:
        return "SelfComm(rank 0 of 1)"


def abort(comm: Any, code: int = 1) -> None:
    """End every rank of the job with a non-zero ``code``: ``comm.Abort`` under MPI, else ``SystemExit``."""
    code = int(code) or 1
    sys.stdout.flush()
    sys.stderr.flush()
    if is_mpi(comm):
        comm.Abort(code)
    raise SystemExit(code)
