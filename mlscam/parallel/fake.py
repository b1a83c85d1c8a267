"""An in-process fake MPI world: one thread per rank.

:func:`run_fake_world` runs ``fn(comm)`` on ``nranks`` threads, each with its
own :class:`FakeComm`, and returns the per-rank results.  ``FakeComm``
implements the subset of the mpi4py ``Comm`` API that ``mlscam.parallel``
uses, with mpi4py's signatures, so the same code runs on fake and real MPI:

* ``Get_rank()``, ``Get_size()``, ``Barrier()``, ``Free()``;
* buffer point-to-point ``Isend(buf, dest, tag)`` / ``Irecv(buf, source, tag)``
  on numpy arrays, returning requests with ``Wait()``;
* pickled-object collectives ``allreduce(obj, op=None)`` (``op=None`` is
  ``+``, like mpi4py's default ``MPI.SUM``; any callable ``op(a, b)`` works,
  including mpi4py's ``MPI.MIN``), ``bcast(obj, root)``, ``allgather(obj)``,
  ``gather(obj, root)``;
* ``Split(color, key)`` and ``Split_type(split_type, key)`` (ranks are grouped
  by their fake node, see ``ranks_per_node``), and ``Get_processor_name()``
  (the fake node's name; not an mpi4py ``Comm`` method).

Sends are buffered (the data are copied when ``Isend`` is called), so a send
never blocks.  Objects passed to collectives are pickled, as in MPI.  Any
blocking wait gives up at the world's deadline, and an exception on one rank
aborts the waits on all the others, so a test never hangs.
"""
from __future__ import annotations

import collections
import functools
import pickle
import threading
import time
from typing import Any, Callable

import numpy as np

__all__ = ["FakeComm", "FakeWorldError", "run_fake_world"]


class FakeWorldError(RuntimeError):
    """A rank of a fake world raised, hung, or misused the fake MPI API."""


class _Aborted(Exception):
    """Raised inside a rank that was waiting when another rank failed."""


class _Shared:
    """State shared by all the worlds (and sub-communicators) of one run."""

    def __init__(self, deadline: float):
        self.cond = threading.Condition()
        self.deadline = deadline
        self.aborted: str | None = None


class _World:
    """One communicator's mailboxes and collective slots."""

    def __init__(self, shared: _Shared, size: int, nodes: list[str], name: str):
        self.shared = shared
        self.size = size
        self.nodes = nodes
        self.name = name
        self.mail: dict[tuple[int, int, int], collections.deque] = collections.defaultdict(collections.deque)
        self.slots: dict[int, dict] = {}

    def wait_for(self, predicate: Callable[[], bool], rank: int, what: str) -> None:
        """Wait (holding ``shared.cond``) until ``predicate()``; raise on abort or timeout."""
        sh = self.shared
        while not predicate():
            if sh.aborted is not None:
                raise _Aborted(sh.aborted)
            left = sh.deadline - time.monotonic()
            if left <= 0:
                raise FakeWorldError(f"{self.name} rank {rank} timed out waiting for {what}")
            sh.cond.wait(timeout=min(left, 0.5))


class _SendRequest:
    def Wait(self, status: Any = None) -> None:
        return None


class _RecvRequest:
    def __init__(self, world: _World, rank: int, buf: np.ndarray, source: int, tag: int):
        self.world, self.rank, self.buf, self.source, self.tag = world, rank, buf, source, tag
        self.done = False

    def Wait(self, status: Any = None) -> None:
        if self.done:
            return None
        w = self.world
        key = (self.source, self.rank, self.tag)
        with w.shared.cond:
            w.wait_for(lambda: len(w.mail[key]) > 0, self.rank,
                       f"a message from rank {self.source} with tag {self.tag}")
            data = w.mail[key].popleft()
        if data.dtype != self.buf.dtype:
            raise FakeWorldError(
                f"{w.name} rank {self.rank}: message from rank {self.source} (tag {self.tag}) has dtype "
                f"{data.dtype} but the receive buffer has dtype {self.buf.dtype}"
            )
        if data.size > self.buf.size:
            raise FakeWorldError(
                f"{w.name} rank {self.rank}: message truncated: rank {self.source} sent {data.size} items "
                f"(tag {self.tag}) into a receive buffer of {self.buf.size}"
            )
        self.buf.reshape(-1)[: data.size] = data.reshape(-1)
        self.done = True
        return None


class FakeComm:
    """A rank's view of a fake world (see the module docstring for the API)."""

    def __init__(self, world: _World, rank: int):
        self._world = world
        self._rank = rank
        self._seq = 0

    # -- identity -----------------------------------------------------------
    def Get_rank(self) -> int:
        return self._rank

    def Get_size(self) -> int:
        return self._world.size

    def Get_processor_name(self) -> str:
        return self._world.nodes[self._rank]

    def Free(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"FakeComm({self._world.name}, rank {self._rank} of {self._world.size})"

    # -- point to point ---------------------------------------------------
    def _check_peer(self, peer: int, what: str) -> None:
        if not 0 <= peer < self._world.size:
            raise FakeWorldError(f"{self!r}: {what} rank {peer} does not exist")

    def Isend(self, buf: np.ndarray, dest: int, tag: int = 0) -> _SendRequest:
        self._check_peer(dest, "Isend to")
        if not isinstance(buf, np.ndarray):
            raise TypeError(f"FakeComm.Isend takes a numpy array, got {type(buf).__name__}")
        w = self._world
        with w.shared.cond:
            w.mail[(self._rank, dest, tag)].append(np.array(buf, copy=True))
            w.shared.cond.notify_all()
        return _SendRequest()

    def Irecv(self, buf: np.ndarray, source: int, tag: int = 0) -> _RecvRequest:
        self._check_peer(source, "Irecv from")
        if not isinstance(buf, np.ndarray) or not buf.flags.c_contiguous:
            raise TypeError("FakeComm.Irecv takes a C-contiguous numpy array")
        return _RecvRequest(self._world, self._rank, buf, source, tag)

    # -- collectives --------------------------------------------------------
    def _collective(self, kind: str, value: Any, finish: Callable[[list], list] | None = None) -> Any:
        """Deposit ``value``; once every rank has, return ``finish(values)[rank]`` (or all values)."""
        w = self._world
        seq = self._seq
        self._seq += 1
        payload = pickle.dumps(value)
        with w.shared.cond:
            slot = w.slots.setdefault(seq, {"kind": {}, "values": {}, "result": None, "read": 0})
            slot["kind"][self._rank] = kind
            slot["values"][self._rank] = payload
            w.shared.cond.notify_all()
            w.wait_for(lambda: len(slot["values"]) == w.size, self._rank, f"all ranks to enter {kind} #{seq}")
            kinds = set(slot["kind"].values())
            if len(kinds) > 1:
                raise FakeWorldError(
                    f"{w.name}: collective #{seq} mismatched across ranks: {dict(sorted(slot['kind'].items()))}"
                )
            if slot["result"] is None:
                values = [pickle.loads(slot["values"][r]) for r in range(w.size)]
                slot["result"] = finish(values) if finish else values
            result = slot["result"]
            slot["read"] += 1
            if slot["read"] == w.size:
                del w.slots[seq]
        return result[self._rank] if finish else pickle.loads(pickle.dumps(result))

    def Barrier(self) -> None:
        self._collective("Barrier", None)

    def allgather(self, sendobj: Any) -> list:
        return self._collective("allgather", sendobj)

    def gather(self, sendobj: Any, root: int = 0) -> list | None:
        values = self._collective(f"gather(root={root})", sendobj)
        return values if self._rank == root else None

    def bcast(self, obj: Any = None, root: int = 0) -> Any:
        self._check_peer(root, "bcast root")
        return self._collective(f"bcast(root={root})", obj if self._rank == root else None)[root]

    def allreduce(self, sendobj: Any, op: Callable[[Any, Any], Any] | None = None) -> Any:
        values = self._collective("allreduce", sendobj)
        reduce_op = op if op is not None else (lambda a, b: a + b)
        return functools.reduce(reduce_op, values)

    def Split(self, color: int = 0, key: int = 0) -> "FakeComm":
        def finish(values: list) -> list:
            groups: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)
            for r, (c, k) in enumerate(values):
                groups[c].append((k, r))
            out: list = [None] * len(values)
            for c, members in groups.items():
                members.sort()
                sub = _World(self._world.shared, len(members),
                             [self._world.nodes[r] for _, r in members], f"{self._world.name}/split{c}")
                for new_rank, (_, r) in enumerate(members):
                    out[r] = FakeComm(sub, new_rank)
            return out

        return self._collective("Split", (int(color), int(key)), finish)

    def Split_type(self, split_type: Any = None, key: int = 0) -> "FakeComm":
        """Group ranks by fake node (``split_type`` is ignored: only the shared-memory split exists)."""
        nodes = sorted(set(self._world.nodes))
        return self.Split(nodes.index(self._world.nodes[self._rank]), key)


def run_fake_world(
    nranks: int,
    fn: Callable[[FakeComm], Any],
    *,
    timeout: float = 30.0,
    ranks_per_node: int | None = None,
) -> list:
    """Run ``fn(comm)`` on ``nranks`` threads of one fake world; return the results in rank order.

    ``ranks_per_node`` puts consecutive ranks on fake nodes ``node0``,
    ``node1``, ... (default: all on one node).  If a rank raises, the others are
    aborted and :class:`FakeWorldError` naming the rank is raised, chained to
    the original exception; if the world has not finished after ``timeout``
    seconds, :class:`FakeWorldError` names the ranks still running.
    """
    if nranks < 1:
        raise ValueError(f"a fake world needs at least one rank, got nranks={nranks}")
    per_node = ranks_per_node or nranks
    shared = _Shared(time.monotonic() + timeout)
    world = _World(shared, nranks, [f"node{r // per_node}" for r in range(nranks)], "fake world")
    results: list = [None] * nranks
    errors: dict[int, BaseException] = {}

    def target(rank: int) -> None:
        try:
            results[rank] = fn(FakeComm(world, rank))
        except _Aborted:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            with shared.cond:
                errors[rank] = exc
                if shared.aborted is None:
                    shared.aborted = f"rank {rank} raised {type(exc).__name__}"
                shared.cond.notify_all()

    threads = [threading.Thread(target=target, args=(r,), name=f"fake-rank-{r}", daemon=True) for r in range(nranks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, shared.deadline - time.monotonic()) + 1.0)
    alive = [r for r, t in enumerate(threads) if t.is_alive()]
    if alive:
        with shared.cond:
            shared.aborted = "timeout"
            shared.cond.notify_all()
    if errors:
        rank = min(errors)
        exc = errors[rank]
        raise FakeWorldError(f"rank {rank} of {nranks} raised {type(exc).__name__}: {exc}") from exc
    if alive:
        raise FakeWorldError(f"fake world of {nranks} ranks timed out after {timeout} s; ranks still running: {alive}")
    return results
