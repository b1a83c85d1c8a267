"""Status agreement: every rank gets the same status and a message naming the failing ranks."""
from __future__ import annotations

import pytest

from mlscam.parallel import FakeWorldError, agree, run_fake_world


def test_all_ok_gives_zero_everywhere():
    assert run_fake_world(3, lambda comm: agree(comm, True, "")) == [(0, "")] * 3


def test_one_failing_rank_is_named_on_every_rank():
    def fn(comm):
        r = comm.Get_rank()
        return agree(comm, r != 1, f"NaN in the tile of rank {r}" if r == 1 else "", code=3)

    results = run_fake_world(4, fn)
    assert results == [(3, "rank 1 of 4 failed: NaN in the tile of rank 1")] * 4


def test_several_failing_ranks_lowest_first():
    def fn(comm):
        r = comm.Get_rank()
        return agree(comm, r not in (1, 3, 4), f"file missing on rank {r}", code=10 + r)

    results = run_fake_world(5, fn)
    assert results == [(11, "rank 1 of 5 failed: file missing on rank 1 (also failed: ranks 3, 4)")] * 5


def test_failure_with_zero_code_is_rejected():
    with pytest.raises(FakeWorldError, match=r"a failure needs a non-zero status code, got code=0"):
        run_fake_world(1, lambda comm: agree(comm, False, "bad", code=0), timeout=5)


def test_each_failing_rank_names_its_own_check_and_the_lowest_ones_leads():
    """One agreement over two kinds of check (a caller's and the component's): the text names the check
    of the lowest failing rank."""
    def fn(comm):
        r = comm.Get_rank()
        where = {1: "", 2: "Component.step"}.get(r, "unused")
        return agree(comm, r not in (1, 2), f"problem on rank {r}", code=r + 1, where=where)

    assert run_fake_world(3, fn) == [(2, "rank 1 of 3 failed: problem on rank 1 (also failed: rank 2)")] * 3

    def fn2(comm):
        r = comm.Get_rank()
        return agree(comm, r != 1, "n = -1", code=2, where="Component.step" if r == 1 else "")

    assert run_fake_world(2, fn2) == [(2, "Component.step: rank 1 of 2 failed: n = -1")] * 2
