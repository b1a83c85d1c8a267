"""The fake communicator: mpi4py-like semantics, errors named by rank, no hangs."""
from __future__ import annotations

import time

import numpy as np
import pytest

from mlscam.parallel import FakeWorldError, run_fake_world


def test_rank_size_and_object_collectives():
    def fn(comm):
        r = comm.Get_rank()
        comm.Barrier()
        return (
            comm.Get_size(),
            comm.allreduce(r + 1),
            comm.allreduce([r]),
            comm.allreduce(r, op=max),
            comm.bcast({"from": r}, root=2),
            comm.allgather(r * r),
            comm.gather(r, root=1),
        )

    results = run_fake_world(4, fn)
    for r, (size, total, ranks, top, b, squares, gathered) in enumerate(results):
        assert size == 4 and total == 10 and ranks == [0, 1, 2, 3] and top == 3
        assert b == {"from": 2} and squares == [0, 1, 4, 9]
        assert gathered == ([0, 1, 2, 3] if r == 1 else None)


def test_isend_irecv_ring_copies_data():
    def fn(comm):
        r, n = comm.Get_rank(), comm.Get_size()
        send = np.full((2, 3), float(r))
        recv = np.empty((2, 3))
        req_r = comm.Irecv(recv, source=(r - 1) % n, tag=3)
        req_s = comm.Isend(send, dest=(r + 1) % n, tag=3)
        send[:] = -1.0  # buffered: changing the buffer after Isend does not change the message
        req_s.Wait()
        req_r.Wait()
        return recv

    for r, recv in enumerate(run_fake_world(3, fn)):
        np.testing.assert_array_equal(recv, np.full((2, 3), float((r - 1) % 3)))


def test_split_and_split_type_by_fake_node():
    def fn(comm):
        r = comm.Get_rank()
        even = comm.Split(color=r % 2, key=-r)  # reversed order inside each colour
        node = comm.Split_type(None, key=r)
        return even.Get_rank(), even.Get_size(), even.allgather(r), node.Get_rank(), node.Get_size()

    results = run_fake_world(5, fn, ranks_per_node=2)
    assert [x[2] for x in results] == [[4, 2, 0], [3, 1], [4, 2, 0], [3, 1], [4, 2, 0]]
    assert [x[0] for x in results] == [2, 1, 1, 0, 0]
    assert [(x[3], x[4]) for x in results] == [(0, 2), (1, 2), (0, 2), (1, 2), (0, 1)]


def test_exception_names_the_rank_and_aborts_the_others_fast():
    def fn(comm):
        if comm.Get_rank() == 2:
            raise KeyError("missing tile")
        comm.Barrier()  # the other ranks would wait for rank 2 forever

    t0 = time.monotonic()
    with pytest.raises(FakeWorldError, match=r"rank 2 of 3 raised KeyError: 'missing tile'") as info:
        run_fake_world(3, fn, timeout=20)
    assert isinstance(info.value.__cause__, KeyError)
    assert time.monotonic() - t0 < 5


def test_unmatched_receive_times_out_with_what_it_waited_for():
    def fn(comm):
        if comm.Get_rank() == 0:
            comm.Irecv(np.empty(3), source=1, tag=9).Wait()

    with pytest.raises(FakeWorldError, match=r"rank 0 timed out waiting for a message from rank 1 with tag 9"):
        run_fake_world(2, fn, timeout=0.5)


def test_mismatched_collectives_and_truncation_are_errors():
    def mismatched(comm):
        comm.Barrier() if comm.Get_rank() == 0 else comm.allgather(1)

    with pytest.raises(FakeWorldError, match=r"collective #0 mismatched across ranks"):
        run_fake_world(2, mismatched, timeout=5)

    def truncated(comm):
        if comm.Get_rank() == 0:
            comm.Isend(np.zeros(4), dest=1, tag=1)
        else:
            comm.Irecv(np.empty(2), source=0, tag=1).Wait()

    with pytest.raises(FakeWorldError, match=r"rank 1 of 2 raised FakeWorldError: .*message truncated: rank 0 sent 4 items"):
        run_fake_world(2, truncated, timeout=5)


def test_is_mpi_is_the_one_communicator_type_check():
    """Fake and one-rank communicators are not MPI; every module of mlscam.parallel asks world.is_mpi."""
    import subprocess
    import sys
    from pathlib import Path

    from mlscam.parallel import SelfComm, is_mpi

    assert run_fake_world(2, lambda comm: is_mpi(comm)) == [False, False]
    assert not is_mpi(SelfComm())
    root = Path(__file__).resolve().parents[1]
    code = "from mpi4py import MPI\nfrom mlscam.parallel import is_mpi\nprint(is_mpi(MPI.COMM_SELF))\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr
    copies = [p.name for p in (root / "mlscam" / "parallel").glob("*.py")
              if p.name != "world.py" and '__module__.startswith("mpi4py")' in p.read_text()]
    assert copies == [], f"{copies} test for mpi4py communicators themselves; use mlscam.parallel.world.is_mpi"
