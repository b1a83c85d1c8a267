"""Tile-parallel objective on the fake communicator (threads as ranks): loss and averaged parameter
gradients equal the serial ones in float64, in `global`, `global_rollout` and `single_column` modes."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "mpi"))
import tileparallel_case as case  # noqa: E402

from mlscam.parallel import run_fake_world  # noqa: E402
from mlscam.parallel.context import TileContext  # noqa: E402
from mlscam.train.batches import OwnedTileBatches, TiledGlobalBatches  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return case.write_data(tmp_path_factory.mktemp("tileparallel") / "synthetic.nc")


def _fake_tiled(data_path, mode, nranks, layout, dtype="float64", time_groups=1, batch_size=case.BATCH, model=None):
    """Every rank's loss and the rank-averaged gradients (what TileContext.average_gradients computes)."""
    from mlscam.parallel import Decomposition, HaloPlan

    cfg, source, norm, model = case.problem(data_path, mode, model)
    # netCDF reads happen here, in one thread: each rank's own tile at the serial sampler's times
    batches = []
    per_group = nranks // time_groups
    d = Decomposition.cartesian(case.NLAT, case.NLON, per_group, layout)
    for w in range(nranks):
        r = w % per_group
        ctx = TileContext(comm=case.RankOnly(r, per_group), decomposition=d, plan=HaloPlan.build(d, r), exchange=None,
                          group=w // per_group, groups=time_groups)
        batches.append(TiledGlobalBatches(source, ctx, steps=case.steps_of(mode), batch_size=batch_size,
                                          seed=case.SEED)(0))

    def fn(comm):
        tile = TileContext.build(comm, case.NLAT, case.NLON, layout, time_groups)
        loss, m = case.tiled_local(cfg, source, norm, model, tile, dtype, batch=batches[comm.Get_rank()])
        return loss, {n: p.grad.detach().numpy().copy() for n, p in m.named_parameters()}

    out = run_fake_world(nranks, fn, timeout=120)
    losses = [o[0] for o in out]
    grads = {n: sum(o[1][n] for o in out) / nranks for n in out[0][1]}
    return losses, grads


def _max_rel(g, ref):
    top = max(np.abs(v).max() for v in ref.values())
    return max(np.abs(g[n] - ref[n]).max() for n in ref) / top


@pytest.mark.parametrize("mode", ["global", "global_rollout"])
@pytest.mark.parametrize("nranks,layout", [(2, (1, 2)), (3, (3, 1))])
def test_tiled_mass_fixer_loss_and_gradients_equal_serial_float64(data_path, mode, nranks, layout):
    """The fixer's global mean is the reproducible sum over the spatial group: tiles train the serial loss."""
    fixer = {"latent_projection": 0.5, "mass_fixer": True}
    loss1, g1 = case.serial_loss_and_grads(data_path, mode, "float64", model=fixer)
    assert loss1 != case.serial_loss_and_grads(data_path, mode, "float64", model={"latent_projection": 0.5})[0]
    losses, gn = _fake_tiled(data_path, mode, nranks, layout, model=fixer)
    for loss in losses:
        assert abs(loss - loss1) <= 1e-12 * abs(loss1), (losses, loss1)
    assert _max_rel(gn, g1) < 1e-10


@pytest.mark.parametrize("mode", ["global", "global_rollout"])
@pytest.mark.parametrize("nranks,layout", [(2, (1, 2)), (4, (2, 2)), (3, (3, 1))])
def test_tiled_loss_and_gradients_equal_serial_float64(data_path, mode, nranks, layout):
    loss1, g1 = case.serial_loss_and_grads(data_path, mode, "float64")
    losses, gn = _fake_tiled(data_path, mode, nranks, layout)
    for loss in losses:
        assert abs(loss - loss1) <= 1e-12 * abs(loss1), (losses, loss1)
    assert len(losses) == nranks and len(set(losses)) == 1  # bit-identical on every rank (rank-ordered sums)
    assert _max_rel(gn, g1) <= 1e-10, _max_rel(gn, g1)
    assert min(np.abs(v).max() for v in g1.values()) > 0  # every parameter gets a gradient


@pytest.mark.parametrize("mode", ["global", "global_rollout"])
@pytest.mark.parametrize("nranks,groups,layout,batch", [(4, 2, (1, 2), 2), (6, 3, (2, 1), 4), (2, 2, (1, 1), 3)])
def test_time_groups_equal_serial_float64(data_path, mode, nranks, groups, layout, batch):
    """`groups` spatial groups, each on its share of the batch's times; statistics summed over all ranks."""
    from mlscam.train.batches import GlobalBatches
    from mlscam.train.objective import objective_to_dtype

    cfg, source, norm, model = case.problem(data_path, mode)
    m = copy.deepcopy(model).double()
    obj = objective_to_dtype(case.objective(cfg, source, norm, m), torch.float64)
    loss1, _ = obj({"x": GlobalBatches(source, steps=case.steps_of(mode), batch_size=batch, seed=case.SEED)(0)["x"].double()})
    loss1.backward()
    g1 = {n: p.grad.numpy().copy() for n, p in m.named_parameters()}
    losses, gn = _fake_tiled(data_path, mode, nranks, layout, time_groups=groups, batch_size=batch)
    for loss in losses:
        assert abs(loss - loss1.item()) <= 1e-12 * abs(loss1.item())
    assert _max_rel(gn, g1) <= 1e-10, _max_rel(gn, g1)


def test_time_groups_must_divide_the_ranks_and_fit_the_batch(data_path):
    with pytest.raises(Exception, match=r"time_groups=3 must be >= 1 and divide the 4 ranks"):
        run_fake_world(4, lambda comm: TileContext.build(comm, case.NLAT, case.NLON, (0, 0), 3))
    with pytest.raises(ValueError, match=r"batch_size=2 is smaller than the 3 time groups"):
        from mlscam.data.source import open_source
        from mlscam.parallel import Decomposition, HaloPlan

        d = Decomposition.cartesian(case.NLAT, case.NLON, 1)
        ctx = TileContext(comm=case.RankOnly(0, 1), decomposition=d, plan=HaloPlan.build(d, 0), exchange=None,
                          group=0, groups=3)
        TiledGlobalBatches(open_source(case.config(data_path).data), ctx, steps=1, batch_size=2, seed=0)


def test_rank_local_gradients_alone_are_not_the_serial_gradient(data_path):
    """Guards the test above: without averaging (one rank's N x share) the gradients differ."""
    loss1, g1 = case.serial_loss_and_grads(data_path, "global", "float64")
    losses, gn = _fake_tiled(data_path, "global", 2, (1, 2))
    assert _max_rel({n: 2 * v for n, v in gn.items()}, g1) > 0.5


@pytest.mark.parametrize("kind", ["on_the_fly", "shards"])
def test_owned_tile_batches_partition_the_serial_batch(data_path, tmp_path, kind):
    """single_column: every rank keeps the drawn tiles whose centre it owns; together they are the serial batch."""
    from mlscam.data.datasets import ColumnTiles, OnTheFlyTiles
    from mlscam.data.prepare_columns import write_columns
    from mlscam.data.source import open_source
    from mlscam.parallel import Decomposition, HaloPlan
    from mlscam.train.batches import TileBatches

    cfg = case.config(data_path, "single_column", batch_size=16)
    source = open_source(cfg.data)
    if kind == "shards":
        write_columns(source, str(tmp_path / "cols"), columns_per_time=20, seed=1, shard_size=64, progress=False)
        store = ColumnTiles(str(tmp_path / "cols"))
    else:
        store = OnTheFlyTiles(source, seed=5)
    serial = TileBatches(store, batch_size=16, seed=case.SEED)(7)
    d = Decomposition.cartesian(case.NLAT, case.NLON, 4, (2, 2))
    parts = []
    for r in range(4):
        ctx = TileContext(comm=case.RankOnly(r, 4), decomposition=d, plan=HaloPlan.build(d, r), exchange=None)
        b = OwnedTileBatches(store, ctx, batch_size=16, seed=case.SEED, n_state=7, n_static=2)
        got = b(7)
        cols = store.gather(b.indices(7)) if b.indices(7).size else None
        if cols is not None:
            assert np.all(d.owner_map()[cols["j"].numpy(), cols["i"].numpy()] == r)
        parts.append(got)
    merged = torch.cat([p["x_tile"] for p in parts])
    assert merged.shape == serial["x_tile"].shape
    key = lambda t: sorted(map(tuple, t.reshape(t.shape[0], -1).tolist()))  # noqa: E731
    assert key(merged) == key(serial["x_tile"])


@pytest.mark.parametrize("batch_size,nranks,layout", [(12, 3, (3, 1)), (1, 4, (2, 2))])
def test_single_column_tiled_equals_serial_float64(data_path, batch_size, nranks, layout):
    """Includes ranks whose local batch is empty (batch_size=1 on 4 ranks)."""
    from mlscam.data.datasets import OnTheFlyTiles
    from mlscam.parallel import Decomposition, HaloPlan
    from mlscam.train.batches import TileBatches
    from mlscam.train.objective import objective_to_dtype

    cfg, source, norm, model = case.problem(data_path, "single_column")
    store = OnTheFlyTiles(source, seed=5)
    serial_model = copy.deepcopy(model).double()
    obj = objective_to_dtype(case.objective(cfg, source, norm, serial_model), torch.float64)
    b = TileBatches(store, batch_size=batch_size, seed=case.SEED)(2)
    loss1, _ = obj({k: (v.double() if v.is_floating_point() else v) for k, v in b.items()})
    loss1.backward()
    g1 = {n: p.grad.numpy().copy() for n, p in serial_model.named_parameters()}
    d = Decomposition.cartesian(case.NLAT, case.NLON, nranks, layout)
    batches = []
    for r in range(nranks):
        ctx = TileContext(comm=case.RankOnly(r, nranks), decomposition=d, plan=HaloPlan.build(d, r), exchange=None)
        batches.append(OwnedTileBatches(store, ctx, batch_size=batch_size, seed=case.SEED,
                                        n_state=7, n_static=2)(2))
    assert sum(b_["x_tile"].shape[0] for b_ in batches) == batch_size

    def fn(comm):
        tile = TileContext.build(comm, case.NLAT, case.NLON, layout)
        m = copy.deepcopy(model).double()
        o = objective_to_dtype(case.objective(cfg, source, norm, m, tile=tile), torch.float64)
        batch = {k: (v.double() if v.is_floating_point() else v) for k, v in batches[comm.Get_rank()].items()}
        loss, _ = o(batch)
        loss.backward()
        return float(loss.detach()), {n: p.grad.numpy().copy() for n, p in m.named_parameters()}

    out = run_fake_world(nranks, fn, timeout=120)
    for loss, _ in out:
        assert abs(loss - loss1.item()) <= 1e-12 * abs(loss1.item())
    gn = {n: sum(o[1][n] for o in out) / nranks for n in g1}
    assert _max_rel(gn, g1) <= 1e-10
