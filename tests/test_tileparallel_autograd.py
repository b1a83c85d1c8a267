"""The differentiable halo exchange and sum all-reduce on the fake communicator (threads as ranks)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlscam.grid import LatLonGrid
from mlscam.parallel import Decomposition, HaloExchange, HaloPlan, run_fake_world
from mlscam.parallel.autograd import allreduce_sum, halo_exchange, rank_ordered_sum

torch.set_num_threads(1)

NLAT, NLON = 4, 8


class _Scatter(torch.autograd.Function):
    """Replicated ``z_global`` -> own columns; backward assembles the full gradient on every rank."""

    @staticmethod
    def forward(ctx, z_global, comm, decomp):
        ctx.comm, ctx.decomp, ctx.shape = comm, decomp, z_global.shape
        return z_global[:, decomp.local_columns(comm.Get_rank())].clone()

    @staticmethod
    def backward(ctx, g_own):
        full = np.zeros(ctx.shape, dtype=np.float64)
        for r, g in enumerate(ctx.comm.allgather(g_own.detach().numpy())):
            full[:, ctx.decomp.local_columns(r)] = g
        return torch.from_numpy(full), None, None


class _Gather(torch.autograd.Function):
    """Every rank's ``z_src`` concatenated (the same on every rank); backward keeps this rank's part."""

    @staticmethod
    def forward(ctx, z_src, comm):
        parts = comm.allgather(z_src.detach().numpy())
        sizes = [p.shape[1] for p in parts]
        ctx.start = sum(sizes[:comm.Get_rank()])
        ctx.count = sizes[comm.Get_rank()]
        return torch.from_numpy(np.concatenate(parts, axis=1))

    @staticmethod
    def backward(ctx, g):
        return g[:, ctx.start:ctx.start + ctx.count].contiguous(), None


@pytest.mark.parametrize("nranks,layout", [(2, (1, 2)), (4, (2, 2)), (3, (3, 1))])
def test_halo_exchange_passes_gradcheck_as_a_global_function(nranks, layout):
    """F(z_global) = all ranks' source buffers: the analytical Jacobian (halo gradients sent home) is
    checked against finite differences, with every rank running gradcheck in lock step."""
    decomp = Decomposition.cartesian(NLAT, NLON, nranks, layout)
    z0 = torch.randn(1, NLAT * NLON, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def fn(comm):
        ex = HaloExchange(HaloPlan.build(decomp, comm.Get_rank()), comm)

        def f(z):
            return _Gather.apply(halo_exchange(_Scatter.apply(z, comm, decomp), ex), comm)

        z = z0.clone().requires_grad_(True)
        return torch.autograd.gradcheck(f, (z,), eps=1e-6, atol=1e-8, rtol=1e-6)

    assert run_fake_world(nranks, fn, timeout=120) == [True] * nranks


def _scalar_of_tiles(tiles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A nonlinear function of every 3x3 tile: ``tiles [B, n, 9, L]``, ``weights [9, L]``."""
    return (torch.tanh(tiles * weights) ** 2).sum()


@pytest.mark.parametrize("nranks", [2, 4])
def test_halo_gradients_gathered_equal_serial_autograd(nranks):
    grid = LatLonGrid.equiangular(NLAT, NLON)
    stencil = grid.stencil()
    decomp = Decomposition.cartesian(NLAT, NLON, nranks)
    rng = np.random.default_rng(1)
    z_np = rng.standard_normal((2, grid.ncol, 3))
    w = torch.from_numpy(rng.standard_normal((9, 3)))
    z = torch.from_numpy(z_np).requires_grad_(True)
    _scalar_of_tiles(z[:, torch.as_tensor(np.array(stencil.index))], w).backward()
    serial = z.grad.numpy()

    def fn(comm):
        rank = comm.Get_rank()
        plan = HaloPlan.build(decomp, rank)
        zl = torch.from_numpy(z_np[:, decomp.local_columns(rank)]).requires_grad_(True)
        z_src = halo_exchange(zl, HaloExchange(plan, comm))
        _scalar_of_tiles(z_src[:, torch.as_tensor(np.array(plan.tile_index))], w).backward()
        return zl.grad.numpy()

    got = np.zeros_like(serial)
    for rank, g in enumerate(run_fake_world(nranks, fn)):
        got[:, decomp.local_columns(rank)] = g
    np.testing.assert_allclose(got, serial, rtol=1e-13, atol=1e-14)
    # a halo contribution really came back: columns on tile edges get gradient from other ranks' tiles
    assert np.abs(serial).min() > 0


def test_rank_ordered_sum_is_identical_on_every_rank_and_in_rank_order():
    xs = [np.array([1e16, 1.0]), np.array([1.0, 2.0]), np.array([-1e16, 3.0])]
    out = run_fake_world(3, lambda comm: rank_ordered_sum(comm, xs[comm.Get_rank()]))
    expected = (xs[0] + xs[1]) + xs[2]  # rank order: 1e16 + 1 rounds to 1e16, so the first entry is 0
    for o in out:
        np.testing.assert_array_equal(o, expected)
    assert expected[0] == 0.0


def test_allreduce_sum_backward_is_a_sum_allreduce():
    """Every rank back-propagates the same loss of the sum: each input gradient is N x dL/dS."""

    def fn(comm):
        r = comm.Get_rank()
        x = torch.tensor([1.0 + r, 2.0 * r], dtype=torch.float64, requires_grad=True)
        s = allreduce_sum(x, comm)
        (s ** 2).sum().backward()
        return s.detach().numpy(), x.grad.numpy()

    out = run_fake_world(3, fn)
    s_expected = np.array([1 + 2 + 3, 0 + 2 + 4], dtype=np.float64)
    for s, g in out:
        np.testing.assert_array_equal(s, s_expected)
        np.testing.assert_array_equal(g, 3 * 2 * s_expected)


def test_halo_exchange_of_bfloat16_keeps_the_dtype_and_values():
    """Under bf16 autocast latents are bfloat16: they travel as float32 and come back exactly."""
    decomp = Decomposition.cartesian(NLAT, NLON, 2)
    z = torch.randn(1, NLAT * NLON, 2).to(torch.bfloat16)
    stencil = LatLonGrid.equiangular(NLAT, NLON).stencil()

    def fn(comm):
        plan = HaloPlan.build(decomp, comm.Get_rank())
        zl = z[:, decomp.local_columns(comm.Get_rank())].clone().requires_grad_(True)
        z_src = halo_exchange(zl, HaloExchange(plan, comm))
        z_src.float().sum().backward()
        own = decomp.local_columns(comm.Get_rank())
        tiles_ok = torch.equal(z_src[:, np.array(plan.tile_index)], z[:, np.array(stencil.index[own])])
        return z_src.dtype, zl.grad.dtype, tiles_ok

    for dtype, gdtype, ok in run_fake_world(2, fn):
        assert dtype == gdtype == torch.bfloat16 and ok
