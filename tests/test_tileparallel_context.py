"""TileContext: the collectives of a training step on the fake communicator (threads as ranks), and the
one-rank context of a serial run."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlscam.grid import LatLonGrid
from mlscam.parallel import run_fake_world
from mlscam.parallel.context import TileContext

NLAT, NLON = 6, 12


def _model(seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model


def test_broadcast_parameters_gives_every_rank_rank_0s_weights():
    def fn(comm):
        tile = TileContext.build(comm, NLAT, NLON)
        model = _model(seed=comm.Get_rank())
        tile.broadcast_parameters(model)
        return [p.detach().numpy().copy() for p in model.parameters()]

    out = run_fake_world(3, fn, timeout=60)
    want = [p.detach().numpy() for p in _model(seed=0).parameters()]
    assert not np.array_equal(want[0], [p.detach().numpy() for p in _model(seed=1).parameters()][0])
    for rank_params in out:
        assert all(np.array_equal(a, b) for a, b in zip(rank_params, want))


def test_average_gradients_is_the_mean_over_ranks_and_a_missing_gradient_counts_as_zero():
    def grads(rank):
        g = torch.Generator().manual_seed(10 + rank)
        return [torch.randn(p.shape, generator=g) for p in _model(0).parameters()]

    def fn(comm):
        tile = TileContext.build(comm, NLAT, NLON, (1, 2))
        model = _model(seed=0)
        for p, g in zip(model.parameters(), grads(comm.Get_rank())):
            p.grad = None if comm.Get_rank() == 1 else g.clone()
        tile.average_gradients(model)
        return [p.grad.numpy().copy() for p in model.parameters()]

    out = run_fake_world(2, fn, timeout=60)
    want = [g.numpy() / 2 for g in grads(0)]  # rank 1 has no gradient: zero
    for rank_grads in out:
        assert all(np.array_equal(a, b) for a, b in zip(rank_grads, want))


def test_from_root_computes_once_and_a_root_failure_is_raised_on_every_rank():
    calls = []

    def missing():
        raise OSError("no such file: stats.nc")

    def fn(comm):
        tile = TileContext.build(comm, NLAT, NLON)

        def compute():
            calls.append(comm.Get_rank())
            return {"mean": 1.5}

        value = tile.from_root(compute, "statistics")
        try:
            tile.from_root(missing, "statistics")
        except ValueError as e:
            return value, str(e)
        return value, "no error"

    out = run_fake_world(2, fn, timeout=60)
    assert calls == [0]
    for value, error in out:
        assert value == {"mean": 1.5}
        assert error == "statistics: rank 0 of 2 failed: OSError: no such file: stats.nc"


def test_serial_context_is_one_rank_on_the_whole_grid():
    tile = TileContext.serial(NLAT, NLON)
    stencil = LatLonGrid.equiangular(NLAT, NLON).stencil()
    domain = tile.domain()
    assert tile.is_root and tile.world_size == 1 and tile.reduce() is None
    assert domain.shape == (NLAT, NLON) and domain.exchange is None
    assert np.array_equal(domain.columns, np.arange(NLAT * NLON))
    assert np.array_equal(domain.tile_index, stencil.index) and np.array_equal(domain.crossed, stencil.crossed_pole)
    model = _model(seed=4)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    before = [p.detach().clone() for p in model.parameters()]
    tile.average_gradients(model)
    tile.broadcast_parameters(model)
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_tile_domain_exchanges_a_halo_and_matches_the_tile():
    def fn(comm):
        tile = TileContext.build(comm, NLAT, NLON, (2, 1))
        d = tile.domain()
        z = torch.arange(d.ncol, dtype=torch.float64).view(1, d.ncol, 1) + 1000 * comm.Get_rank()
        return d.shape, d.exchange(z).shape[1], tile.plan.n_src

    for shape, nsrc, want in run_fake_world(2, fn, timeout=60):
        assert shape == (NLAT // 2, NLON) and nsrc == want > NLAT // 2 * NLON


def test_a_context_for_another_grid_is_refused(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent / "mpi"))
    import tileparallel_case as case

    from mlscam.train import build_trainer

    cfg = case.config(case.write_data(tmp_path / "d.nc"), checkpoint_dir=str(tmp_path / "ck"))
    with pytest.raises(ValueError, match=r"decomposes a \(4, 8\) grid but the data's grid is \(6, 12\)"):
        build_trainer(cfg, tile=TileContext.serial(4, 8), device="cpu")
