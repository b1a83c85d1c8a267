"""Rank -> device and thread rules."""
from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from mlscam.parallel import (  # noqa: E402
    choose_device,
    choose_threads,
    configure_torch,
    node_local,
    node_local_rank,
    run_fake_world,
)


def test_node_local_rank_on_fake_nodes():
    results = run_fake_world(5, lambda comm: (node_local_rank(comm), node_local(comm)[1]), ranks_per_node=2)
    assert results == [(0, 2), (1, 2), (0, 2), (1, 2), (0, 1)]


def test_threads_are_cores_divided_by_ranks_on_the_node():
    cores = len(os.sched_getaffinity(0))
    results = run_fake_world(4, lambda comm: choose_threads(comm), ranks_per_node=2)
    assert results == [max(1, cores // 2)] * 4
    assert run_fake_world(1, lambda comm: choose_threads(comm)) == [cores]
    # many ranks on one node: at least one thread each
    assert run_fake_world(3 * cores, lambda comm: choose_threads(comm)) == [1] * (3 * cores)


def test_explicit_threads_win_and_negative_is_an_error():
    assert run_fake_world(2, lambda comm: choose_threads(comm, requested=7)) == [7, 7]
    with pytest.raises(Exception, match=r"threads must be >= 0 \(0 = choose\), got -1"):
        run_fake_world(1, lambda comm: choose_threads(comm, requested=-1), timeout=5)


def test_device_choice_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this test checks the CPU-only rules")
    assert run_fake_world(2, lambda comm: str(choose_device(comm))) == ["cpu", "cpu"]
    assert run_fake_world(1, lambda comm: str(choose_device(comm, "cpu"))) == ["cpu"]
    with pytest.raises(Exception, match=r"rank 0: device 'cuda' requested but CUDA is not available"):
        run_fake_world(1, lambda comm: choose_device(comm, "cuda"), timeout=5)
    with pytest.raises(Exception, match=r"device preference must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        run_fake_world(1, lambda comm: choose_device(comm, "gpu"), timeout=5)


def test_device_choice_with_cuda_uses_node_local_rank():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    count = torch.cuda.device_count()
    results = run_fake_world(4, lambda comm: str(choose_device(comm)), ranks_per_node=2)
    assert results == [f"cuda:{r % 2 % count}" for r in range(4)]


def test_configure_torch_sets_threads():
    before = torch.get_num_threads()
    try:
        configure_torch(torch.device("cpu"), 1)
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError, match=r"threads must be >= 1, got 0"):
            configure_torch("cpu", 0)
    finally:
        torch.set_num_threads(before)
