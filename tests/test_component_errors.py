"""Collective failures: every rank raises the same ComponentError naming the failing rank."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from component_case import LAYOUT, config, make_checkpoint, write_initial
from mlscam.coupler import Component, ComponentError, Status
from mlscam.parallel import SelfComm, run_fake_world

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("component_errors")
    ckpt, init = make_checkpoint(d / "m.pt"), write_initial(d / "init.nc")
    return {"dir": d, "ckpt": ckpt, "init": init, "cfg": config(ckpt, init, d / "f.nc")}


def _outcome(fn):
    """Run ``fn()`` and return ``(status, message)`` of its ComponentError (None if it succeeded)."""
    try:
        fn()
    except ComponentError as exc:
        return exc.status, str(exc)
    return None


def _tile_state(c: Component, value: float = 0.0) -> np.ndarray:
    return np.full((c.tile.nlat, c.tile.nlon, LAYOUT.n_state), value, np.float32) + np.linspace(0, 1, LAYOUT.n_state)


def _every_rank(nranks, cfg, bad_rank, make_bad):
    """Each rank calls set_state with a good tile except ``bad_rank`` (``make_bad(c)``); then steps."""
    def rank_fn(comm):
        c = Component.init(cfg, comm)
        x = make_bad(c) if comm.Get_rank() == bad_rank else _tile_state(c)
        out = _outcome(lambda: c.set_state(x))
        # the component stays usable: no state was set, so a step is refused on every rank too
        after = _outcome(lambda: c.step())
        c.finalize()
        return out, after

    return run_fake_world(nranks, rank_fn)


@pytest.mark.parametrize("what,make_bad,status,words", [
    ("shape", lambda c: _tile_state(c)[:, :-1], Status.BAD_ARGUMENT, "has shape"),
    ("dtype", lambda c: _tile_state(c).astype(np.int32), Status.BAD_ARGUMENT, "dtype int32"),
    ("nan", lambda c: np.where(np.arange(LAYOUT.n_state) == 2, np.nan, _tile_state(c)).astype(np.float32),
     Status.NON_FINITE, "non-finite"),
])
def test_one_bad_rank_gives_every_rank_the_same_error(case, what, make_bad, status, words):
    results = _every_rank(4, case["cfg"], 1, make_bad)
    outs = [r[0] for r in results]
    assert all(o is not None for o in outs), f"{what}: some rank did not raise"
    assert len(set(outs)) == 1, f"ranks disagree: {outs}"
    code, message = outs[0]
    assert code == status
    assert "rank 1 of 4 failed" in message and words in message and "set_state" in message
    assert "also failed" not in message
    assert all(r[1][0] == Status.NO_STATE and "no state has been set" in r[1][1] for r in results)


def test_nan_on_two_ranks_names_both(case):
    bad = lambda c: np.full((c.tile.nlat, c.tile.nlon, LAYOUT.n_state), np.inf, np.float64)  # noqa: E731

    def rank_fn(comm):
        c = Component.init(case["cfg"], comm)
        x = bad(c) if comm.Get_rank() in (1, 3) else _tile_state(c)
        return _outcome(lambda: c.set_state(x))

    outs = run_fake_world(4, rank_fn)
    assert len(set(outs)) == 1
    assert "rank 1 of 4 failed" in outs[0][1] and "(also failed: rank 3)" in outs[0][1]


def test_coupling_interval_must_equal_the_checkpoint_step(case):
    out = _outcome(lambda: Component.init(case["cfg"], SelfComm(), coupling_interval_seconds=3600))
    assert out[0] == Status.INTERVAL
    assert "coupling interval 3600 s" in out[1] and "step 21600 s" in out[1]
    cfg = replace(case["cfg"], coupler=replace(case["cfg"].coupler, coupling_interval_seconds=1800.0))
    out = _outcome(lambda: Component.init(cfg, SelfComm()))
    assert out[0] == Status.INTERVAL and "1800" in out[1]
    Component.init(case["cfg"], SelfComm(), coupling_interval_seconds=21600.0).finalize()  # equal: fine


def test_step_before_a_complete_state_names_the_missing_variables(case):
    c = Component.init(case["cfg"], SelfComm())
    assert _outcome(lambda: c.step())[0] == Status.NO_STATE
    c.set_variable("u", np.zeros((6, 12, 2)))
    c.set_variable("temperature", np.full((6, 12, 2), 250.0))
    status, message = _outcome(lambda: c.step())
    assert status == Status.NO_STATE and "['v', 'surface_pressure']" in message
    status, message = _outcome(lambda: c.set_variable("surface_pressure", np.zeros((6, 12, 1))))
    assert status == Status.BAD_ARGUMENT and "(6, 12)" in message
    assert _outcome(lambda: c.set_variable("q", np.zeros((6, 12))))[0] == Status.BAD_ARGUMENT
    assert _outcome(lambda: c.get_tendencies())[0] == Status.NO_STATE
    c.set_variable("v", np.zeros((6, 12, 2)))
    c.set_variable("surface_pressure", np.full((6, 12), 1e5))
    c.step(2)
    assert c.step_count == 2 and c.get_state().shape == (6, 12, LAYOUT.n_state)
    assert _outcome(lambda: c.step(-1))[0] == Status.BAD_ARGUMENT
    c.finalize()


def test_a_refused_set_discards_the_partial_state_and_a_full_reset_succeeds(case):
    """Issue 14 item 9: u, v, temperature (NaN: refused), surface_pressure, then all four again in order."""
    c = Component.init(case["cfg"], SelfComm())
    bad_t = np.full((6, 12, 2), 250.0)
    bad_t[2, 3, 1] = np.nan
    c.set_variable("u", np.zeros((6, 12, 2)))
    c.set_variable("v", np.zeros((6, 12, 2)))
    assert _outcome(lambda: c.set_variable("temperature", bad_t))[0] == Status.VALUE
    c.set_variable("surface_pressure", np.full((6, 12), 1e5))
    status, message = _outcome(lambda: c.step())
    assert status == Status.NO_STATE and "not yet for ['temperature']" in message, message
    for name, value in (("u", 0.0), ("v", 0.0), ("temperature", 250.0)):
        c.set_variable(name, np.full((6, 12, 2), value))
    c.set_variable("surface_pressure", np.full((6, 12), 1e5))
    c.step(1)                                                           # the full re-set encoded the state
    assert c.step_count == 1 and np.isfinite(c.get_state()).all()
    c.set_variable("surface_pressure", np.full((6, 12), 1e5))          # a new partial state after the step
    assert _outcome(lambda: c.step())[0] == Status.NO_STATE
    c.finalize()


def test_calls_after_finalize_fail_and_finalize_is_idempotent(case):
    c = Component.init(case["cfg"], SelfComm())
    c.set_state(_tile_state(c))
    c.finalize()
    c.finalize()
    for call in (lambda: c.step(), c.get_state, lambda: c.set_state(_tile_state(c)), lambda: c.write_restart("x")):
        status, message = _outcome(call)
        assert status == Status.FINALIZED and "finalized" in message


def test_missing_files_and_bad_bounds_fail_on_every_rank(case):
    cfg = replace(case["cfg"], rollout=replace(case["cfg"].rollout, checkpoint_path=str(case["dir"] / "nope.pt")))
    outs = run_fake_world(2, lambda comm: _outcome(lambda: Component.init(cfg, comm)))
    assert outs[0] == outs[1] and outs[0][0] == Status.FILE_ERROR and "nope.pt" in outs[0][1]

    overlap = [(0, 4, 0, 12), (3, 6, 0, 12)]
    outs = run_fake_world(2, lambda comm: _outcome(
        lambda: Component.init(case["cfg"], comm, bounds=overlap[comm.Get_rank()])))
    assert outs[0] == outs[1] and outs[0][0] == Status.DECOMPOSITION and "more than one rank" in outs[0][1]

    def missing_on_rank_1(comm):
        c = Component.init(case["cfg"], comm)
        path = case["dir"] / "missing.nc" if comm.Get_rank() == 1 else case["init"]
        return _outcome(lambda: c.set_state_from_file(path, 0))

    outs = run_fake_world(2, missing_on_rank_1)
    assert outs[0] == outs[1] and outs[0][0] == Status.FILE_ERROR
    assert "rank 1 of 2 failed" in outs[0][1] and "missing.nc" in outs[0][1]


def test_restart_from_another_checkpoint_is_refused(case):
    other = make_checkpoint(case["dir"] / "other.pt", seed=1)
    c = Component.init(case["cfg"], SelfComm())
    c.set_state_from_file(case["init"], 0)
    c.step()
    c.write_restart(case["dir"] / "r.pt")
    c.finalize()
    cfg = replace(case["cfg"], rollout=replace(case["cfg"].rollout, checkpoint_path=str(other)))
    c2 = Component.init(cfg, SelfComm())
    status, message = _outcome(lambda: c2.read_restart(case["dir"] / "r.pt"))
    assert status == Status.CHECKPOINT and "written with another checkpoint" in message


def test_nan_in_the_initial_state_names_variable_level_and_global_cell(case):
    k = LAYOUT.slice_of("temperature").start + 1  # temperature, level index 1
    where = {}

    def rank_fn(comm):
        c = Component.init(case["cfg"], comm)
        read = c._read_tile

        def bad_read(path, time_index):
            x, *rest = read(path, time_index)
            if comm.Get_rank() == 1:
                x = x.copy()
                x[1, 2, k] = np.nan
                where["cell"] = (c.tile.lat0 + 1, c.tile.lon0 + 2)
            return (x, *rest)

        c._read_tile = bad_read
        return _outcome(lambda: c.set_state_from_file(str(case["init"]), 0))

    outs = run_fake_world(4, rank_fn)
    assert len(set(outs)) == 1
    code, message = outs[0]
    assert code == Status.NON_FINITE and "rank 1 of 4 failed" in message
    lat, lon = where["cell"]
    from component_case import GRID

    assert (f"first at temperature level 1 (sigma {LAYOUT.levels[1]:g}), global cell (lat index {lat}, "
            f"lon index {lon}; lat {GRID.lat_array()[lat]:g}, lon {GRID.lon_array()[lon]:g} degrees)") in message, message
    assert "tile index" not in message


def test_layout_names_a_feature_index():
    n = LAYOUT.nlev
    assert LAYOUT.feature_of(0) == (LAYOUT.variables_3d[0], 0)
    assert LAYOUT.feature_of(n + 1) == (LAYOUT.variables_3d[1], 1)
    assert LAYOUT.feature_of(LAYOUT.n_state - 1) == (LAYOUT.variables_2d[-1], None)
    assert LAYOUT.describe_feature(LAYOUT.n_state - 1) == LAYOUT.variables_2d[-1]
    with pytest.raises(IndexError):
        LAYOUT.feature_of(LAYOUT.n_state)
