"""Halo plan and exchange on the fake communicator reproduce the serial 3x3 tiles bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from mlscam.grid import LatLonGrid
from mlscam.parallel import Decomposition, FakeWorldError, HaloExchange, HaloPlan, run_fake_world

HOST_BOUNDS_6x12 = [  # arbitrary rectangles, not a Cartesian product
    (0, 1, 0, 12), (1, 4, 0, 3), (1, 4, 3, 10), (1, 4, 10, 12), (4, 6, 0, 7), (4, 6, 7, 12),
]


def _decompositions():
    yield "1x1", Decomposition.cartesian(6, 12, 1, (1, 1))
    yield "1x4", Decomposition.cartesian(6, 12, 4, (1, 4))
    yield "2x2", Decomposition.cartesian(6, 12, 4, (2, 2))
    yield "4x2", Decomposition.cartesian(6, 12, 8, (4, 2))
    yield "3x5-uneven", Decomposition.cartesian(6, 12, 15, (3, 5))
    yield "6x1-bands", Decomposition.cartesian(6, 12, 6, (6, 1))
    yield "host-bounds", Decomposition.from_bounds(6, 12, HOST_BOUNDS_6x12)


def _run_exchange(decomp, z_global, **kw):
    """Every rank exchanges its slice of ``z_global [B, ncol, L]``; returns [(plan, z_src)] per rank."""

    def fn(comm):
        plan = HaloPlan.build(decomp, comm.Get_rank())
        exchange = HaloExchange(plan, comm)
        return plan, exchange.exchange(z_global[:, decomp.local_columns(comm.Get_rank())])

    return run_fake_world(decomp.nranks, fn, **kw)


@pytest.mark.parametrize("name, decomp", list(_decompositions()), ids=[n for n, _ in _decompositions()])
def test_tiles_equal_serial_stencil_bit_for_bit(name, decomp):
    stencil = LatLonGrid.equiangular(decomp.nlat, decomp.nlon).stencil()
    z_global = np.random.default_rng(5).standard_normal((2, decomp.ncol, 3))  # float64, B=2
    results = _run_exchange(decomp, z_global)
    covered = np.zeros(decomp.ncol, dtype=bool)
    for rank, (plan, z_src) in enumerate(results):
        own = decomp.local_columns(rank)
        assert z_src.shape == (2, plan.n_local + plan.halo_size, 3) and z_src.dtype == np.float64
        np.testing.assert_array_equal(z_src[:, plan.tile_index], z_global[:, stencil.index[own]])
        np.testing.assert_array_equal(plan.crossed, stencil.crossed_pole[own])
        covered[own] = True
    assert covered.all()
    # the pole rows and the seam were part of the check
    assert stencil.crossed_pole.any() and any(p.crossed.any() for p, _ in results)


def test_hand_written_halo_of_two_half_globes():
    d = Decomposition.cartesian(4, 8, 2, (1, 2))
    plan = HaloPlan.build(d, 0)
    # rank 0 owns longitudes 0..3: its halo is longitudes 4 and 7 on every row (east edge and seam)
    # plus, across both poles, longitudes 5 and 6 of the edge rows (i' + nlon/2 for i' in -1..4).
    assert plan.halo_cells.tolist() == [4, 5, 6, 7, 12, 15, 20, 23, 28, 29, 30, 31]
    assert plan.halo_owner.tolist() == [1] * 12
    assert plan.recv == ((1, 0, 12),)
    assert plan.halo_size == 12 and plan.n_local == 16 and plan.n_src == 28
    # rank 0 sends rank 1 the mirror image: longitudes 0 and 3 everywhere, 1 and 2 on the edge rows
    ((peer, positions),) = plan.send
    assert peer == 1
    assert plan.local_columns[positions].tolist() == [0, 1, 2, 3, 8, 11, 16, 19, 24, 25, 26, 27]
    # column (0, 0): its southern tokens cross the pole to (0, -1 + 4), (0, 0 + 4), (0, 1 + 4): own local
    # column 3, then halo slots 0 and 1 (after the 16 own columns)
    assert plan.tile_index[0].tolist()[:3] == [3, 16 + 0, 16 + 1]
    assert plan.crossed[0].tolist() == [True] * 3 + [False] * 6


def test_pole_partner_on_a_far_rank():
    d = Decomposition.cartesian(4, 8, 4, (1, 4))
    plan = HaloPlan.build(d, 0)  # rank 0: longitudes 0, 1; its longitude neighbours are ranks 1 and 3
    assert [p for p, _, _ in plan.recv] == [1, 2, 3]
    from_rank_2 = plan.halo_cells[plan.halo_owner == 2]
    assert from_rank_2.tolist() == [4, 5, 28, 29]  # only across the poles: rows 0 and 3, longitudes 4, 5
    assert {p for p, _ in HaloPlan.build(d, 2).send} == {0, 1, 3}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 3])
def test_dtype_and_batch_are_kept(dtype, batch):
    d = Decomposition.cartesian(4, 8, 4, (2, 2))
    stencil = LatLonGrid.equiangular(4, 8).stencil()
    z_global = np.random.default_rng(1).standard_normal((batch, 32, 5)).astype(dtype)
    for rank, (plan, z_src) in enumerate(_run_exchange(d, z_global)):
        assert z_src.dtype == dtype and z_src.shape[0] == batch
        np.testing.assert_array_equal(z_src[:, plan.tile_index], z_global[:, stencil.index[d.local_columns(rank)]])


def test_torch_tensors_round_trip():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    d = Decomposition.cartesian(4, 8, 2, (2, 1))
    stencil = LatLonGrid.equiangular(4, 8).stencil()
    z_global = torch.randn(2, 32, 4, dtype=torch.float32, generator=torch.Generator().manual_seed(0))

    def fn(comm):
        plan = HaloPlan.build(d, comm.Get_rank())
        z_src = HaloExchange(plan, comm).exchange(z_global[:, torch.from_numpy(d.local_columns(comm.Get_rank()))])
        return plan, z_src

    for rank, (plan, z_src) in enumerate(run_fake_world(2, fn)):
        assert isinstance(z_src, torch.Tensor) and z_src.dtype == torch.float32
        index = torch.tensor(stencil.index[d.local_columns(rank)])
        assert torch.equal(z_src[:, torch.tensor(plan.tile_index)], z_global[:, index])


def test_bytes_per_step_and_send_receive_balance():
    d = Decomposition.cartesian(4, 8, 2, (1, 2))
    plan = HaloPlan.build(d, 0)
    assert plan.bytes_per_step(16, np.float64, batch=2) == 12 * 16 * 8 * 2
    assert plan.bytes_per_step(16, np.float32) == 12 * 16 * 4
    d = Decomposition.cartesian(6, 12, 15, (3, 5))
    plans = [HaloPlan.build(d, r) for r in range(15)]
    assert sum(p.send_size for p in plans) == sum(p.halo_size for p in plans)
    for p in plans:  # what r sends to q is what q expects from r
        for peer, positions in p.send:
            start, count = next((s, c) for q, s, c in plans[peer].recv if q == p.rank)
            assert p.local_columns[positions].tolist() == plans[peer].halo_cells[start : start + count].tolist()


def test_repeated_exchanges_are_deterministic():
    d = Decomposition.cartesian(6, 12, 4, (2, 2))
    z_global = np.random.default_rng(2).standard_normal((1, 72, 2))

    def fn(comm):
        exchange = HaloExchange(HaloPlan.build(d, comm.Get_rank()), comm)
        z_local = z_global[:, d.local_columns(comm.Get_rank())]
        return [exchange.exchange(z_local * k) for k in (1.0, 2.0, 1.0)]

    for first, second, third in run_fake_world(4, fn):
        np.testing.assert_array_equal(first, third)
        np.testing.assert_array_equal(second, 2.0 * first)


def test_misuse_is_a_clear_error():
    d = Decomposition.cartesian(4, 8, 2, (1, 2))

    def wrong_shape(comm):
        HaloExchange(HaloPlan.build(d, comm.Get_rank()), comm).start(np.zeros((1, 5, 3)))

    with pytest.raises(FakeWorldError, match=r"rank 0 of 2 raised ValueError: rank 0: z_local must be .*n_local=16.*\(1, 5, 3\)"):
        run_fake_world(2, wrong_shape, timeout=5)

    def wrong_rank(comm):
        HaloExchange(HaloPlan.build(d, 1 - comm.Get_rank()), comm)

    with pytest.raises(FakeWorldError, match=r"halo plan is for rank 1 of 2 but the communicator is rank 0 of 2"):
        run_fake_world(2, wrong_rank, timeout=5)

    def no_start(comm):
        HaloExchange(HaloPlan.build(d, comm.Get_rank()), comm).wait()

    with pytest.raises(FakeWorldError, match=r"wait called without start"):
        run_fake_world(2, no_start, timeout=5)

    def start_twice(comm):
        exchange = HaloExchange(HaloPlan.build(d, comm.Get_rank()), comm)
        exchange.start(np.zeros((1, 16, 2)))
        exchange.start(np.zeros((1, 16, 2)))

    with pytest.raises(FakeWorldError, match=r"start called twice without wait"):
        run_fake_world(2, start_twice, timeout=5)

    def integer_data(comm):
        HaloExchange(HaloPlan.build(d, comm.Get_rank()), comm).start(np.zeros((1, 16, 2), dtype=np.int32))

    with pytest.raises(FakeWorldError, match=r"supports float32 and float64, got int32"):
        run_fake_world(2, integer_data, timeout=5)

    with pytest.raises(ValueError, match=r"rank 2 is not in the decomposition of 2 ranks"):
        HaloPlan.build(d, 2)
