"""The component on the in-process fake communicator: bit-for-bit decomposition independence,
the variable mapping, read-only decoding, tendencies and restarts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from component_case import DT, GRID, LAYOUT, config, initial_states, make_checkpoint, serial_emulator, write_initial
from mlscam.coupler import Component
from mlscam.parallel import Decomposition, SelfComm, run_fake_world

torch.set_num_threads(1)

HOST_4 = [(0, 1, 0, 12), (1, 4, 0, 5), (1, 4, 5, 12), (4, 6, 0, 12)]
NSTEPS = 4


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("component")
    ckpt, init = make_checkpoint(d / "m.pt"), write_initial(d / "init.nc")
    return {"dir": d, "ckpt": ckpt, "init": init, "cfg": config(ckpt, init, d / "f.nc")}


def _serial(case, x0: np.ndarray, nsteps: int = NSTEPS):
    """Serial Emulator: states after steps 1..nsteps and the final latent [ncol, L]."""
    em = serial_emulator(case["ckpt"])
    states = [x.numpy() for _, x in em.rollout(torch.from_numpy(x0), nsteps, output_every=1)]
    z = em.step(em.encode(torch.from_numpy(x0)), nsteps)
    return states, z.reshape(GRID.ncol, -1)


# (nranks, parallel.layout or None, host bounds or None)
LAYOUTS = [
    (1, (0, 0), None),
    (2, (0, 0), None),
    (2, (2, 1), None),
    (4, (2, 2), None),
    (4, (4, 1), None),  # uneven latitude bands 2, 2, 1, 1: pole rows on different ranks
    (4, None, HOST_4),
]


@pytest.mark.decomposition
@pytest.mark.parametrize("nranks,layout,host", LAYOUTS, ids=lambda v: str(v).replace(" ", ""))
def test_ranks_equal_serial_emulator_bit_for_bit(case, nranks, layout, host):
    from dataclasses import replace

    cfg = case["cfg"]
    if layout is not None:
        cfg = replace(cfg, parallel=replace(cfg.parallel, layout=layout))
    x0 = initial_states()[1]
    ref_states, ref_z = _serial(case, x0)

    def rank_fn(comm):
        c = Component.init(cfg, comm, bounds=None if host is None else host[comm.Get_rank()])
        t = c.tile
        if comm.Get_rank() % 2:  # half the ranks are given their tile, the others read it
            c.set_state(x0[t.lat0:t.lat1, t.lon0:t.lon1].astype(np.float64))
        else:
            c.set_state_from_file(case["init"], 1)
        states = []
        for _ in range(NSTEPS):
            c.step()
            states.append(c.gather_state(root=0))
        z = c.gather_latent(root=0)
        tiles = [t.bounds for t in c.decomposition.tiles]
        c.finalize()
        return states, z, tiles

    results = run_fake_world(nranks, rank_fn)
    states, z, tiles = results[0]
    if host is not None:
        assert tiles == HOST_4
    else:
        assert tiles == [t.bounds for t in Decomposition.cartesian(6, 12, nranks, layout).tiles]
    assert all(r[0] == [None] * NSTEPS and r[1] is None for r in results[1:])  # only root gathers
    for k, (a, b) in enumerate(zip(states, ref_states)):
        assert a.dtype == np.float32 and a.shape == (6, 12, LAYOUT.n_state)
        assert np.array_equal(a, b), f"step {k + 1}: max |diff| {np.abs(a - b).max()}"
    assert torch.equal(z, ref_z)


@pytest.mark.decomposition
def test_set_variable_maps_every_tile_cell_in_place(case):
    """Distinct values per (lat, lon, lev) set by variable on 4 ranks encode exactly like the global array."""
    j = np.arange(6)[:, None, None]
    i = np.arange(12)[None, :, None]
    k = np.arange(len(LAYOUT.levels))[None, None, :]
    base = {"u": 1.0, "v": -2.0, "temperature": 250.0, "surface_pressure": 1e5}
    glob = {}
    for n, v in enumerate(LAYOUT.variables):
        a = base[v] + 0.5 * j + 0.03 * i + 0.7 * k + 0.1 * n  # unique per (j, i, k, variable)
        glob[v] = a if v in LAYOUT.variables_3d else (base[v] + 50.0 * j + 3.0 * i)[..., 0]
    x_global = np.zeros((6, 12, LAYOUT.n_state))
    for v in LAYOUT.variables:
        x_global[..., LAYOUT.slice_of(v)] = glob[v] if v in LAYOUT.variables_3d else glob[v][..., None]
    em = serial_emulator(case["ckpt"])
    z_ref = em.encode(torch.from_numpy(x_global)).reshape(GRID.ncol, -1)
    x_ref = em.decode(em.encode(torch.from_numpy(x_global))).numpy()

    def rank_fn(comm):
        c = Component.init(case["cfg"], comm, bounds=HOST_4[comm.Get_rank()])
        t = c.tile
        for v in LAYOUT.variables:
            c.set_variable(v, np.ascontiguousarray(glob[v][t.lat0:t.lat1, t.lon0:t.lon1]))
        got = {v: c.get_variable(v) for v in LAYOUT.variables}
        z = c.gather_latent()
        c.finalize()
        return t.bounds, got, z

    results = run_fake_world(4, rank_fn)
    assert torch.equal(results[0][2], z_ref)
    for (lat0, lat1, lon0, lon1), got, _ in results:
        for v in LAYOUT.variables:
            want = x_ref[lat0:lat1, lon0:lon1, LAYOUT.slice_of(v)]
            want = want if v in LAYOUT.variables_3d else want[..., 0]
            assert got[v].shape == want.shape and np.array_equal(got[v], want), v


def test_decoding_never_changes_the_latent_state(case):
    """Decode every step (get_state, get_variable, gather_state, get_tendencies) vs only at the end."""
    def run(decode_every_step: bool):
        def rank_fn(comm):
            c = Component.init(case["cfg"], comm)
            c.set_state_from_file(case["init"], 0)
            for _ in range(NSTEPS):
                c.step()
                if decode_every_step:
                    c.get_state(), c.get_variable("u"), c.gather_state(), c.get_tendencies()
            z = c.gather_latent()
            c.finalize()
            return z

        return run_fake_world(2, rank_fn)[0]

    assert torch.equal(run(True), run(False))


def test_tendencies_are_the_decoded_change_per_second(case):
    x0 = initial_states()[0]
    em = serial_emulator(case["ckpt"])
    z1 = em.step(em.encode(torch.from_numpy(x0)), 1)
    z2 = em.step(z1, 1)
    want = ((em.decode(z2).double() - em.decode(z1).double()) / DT).float().numpy()

    c = Component.init(case["cfg"], SelfComm())
    c.set_state(x0)
    c.step(2)
    assert np.array_equal(c.get_tendencies(), want)
    assert c.step_count == 2 and c.dt_seconds == DT
    c.finalize()


@pytest.mark.decomposition
@pytest.mark.parametrize("ranks_before,ranks_after", [(2, 4), (4, 1)])
def test_restart_continues_bit_for_bit_on_another_rank_count(case, ranks_before, ranks_after):
    path = case["dir"] / f"restart_{ranks_before}_{ranks_after}.pt"

    def full(comm):
        c = Component.init(case["cfg"], comm)
        c.set_state_from_file(case["init"], 2)
        c.step(NSTEPS)
        return c.gather_latent(), c.gather_state(), c.valid_time

    def first_half(comm):
        c = Component.init(case["cfg"], comm)
        c.set_state_from_file(case["init"], 2)
        c.step(NSTEPS // 2)
        c.write_restart(path)
        c.finalize()

    def second_half(comm):
        c = Component.init(case["cfg"], comm)
        c.read_restart(path)
        assert c.step_count == NSTEPS // 2
        c.step(NSTEPS - NSTEPS // 2)
        return c.gather_latent(), c.gather_state(), c.valid_time

    z_full, x_full, t_full = run_fake_world(1, full)[0]
    run_fake_world(ranks_before, first_half)
    z, x, t = run_fake_world(ranks_after, second_half)[0]
    assert torch.equal(z, z_full) and np.array_equal(x, x_full)
    assert t == t_full and (t.year, t.month, t.day, t.hour) == (2001, 3, 2, 12)  # 12 h + 4 x 6 h
    assert t.calendar == "noleap"


def test_write_output_is_the_gathered_state_at_its_valid_time(case, tmp_path):
    import xarray as xr

    def rank_fn(comm):
        c = Component.init(case["cfg"], comm)
        c.set_state_from_file(case["init"], 0)
        c.step(3)
        path = c.write_output(tmp_path / "now.nc")
        return path, c.gather_state()

    results = run_fake_world(2, rank_fn)
    path, x = results[0]
    with xr.open_dataset(path) as ds:
        t = ds.time.values[0]
        assert (t.day, t.hour) == (1, 18) and ds.lead_time.values.tolist() == [18.0]
        assert np.array_equal(ds["temperature"].values[0], np.moveaxis(x[..., LAYOUT.slice_of("temperature")], -1, 0))


@pytest.mark.decomposition
def test_thread_count_does_not_change_the_tiny_model(case):
    """Reported in docs/component.md: 1 and 2 torch threads give the same states on the test model."""
    from dataclasses import replace

    states = []
    for threads in (1, 2):
        cfg = replace(case["cfg"], parallel=replace(case["cfg"].parallel, threads=threads))
        c = Component.init(cfg, SelfComm())
        assert torch.get_num_threads() == threads and c.threads == threads
        c.set_state_from_file(case["init"], 0)
        c.step(10)
        states.append(c.get_state())
        c.finalize()
    torch.set_num_threads(1)
    assert np.array_equal(states[0], states[1])
