"""The Python side of the C API (mlscam/coupler/capi.py) in one process: a fake MPI world of 2 ranks,
cffi pointers to numpy arrays, and a communicator that counts its collectives.

* every C entry point agrees once across the ranks (one allreduce, no other collective), also when
  only one rank's arguments are bad, and every rank returns the same status and message;
* mlscam_init duplicates the host communicator once (the component owns it) and adds no collective
  of its own to ``Component.init``; mlscam_finalize or a failed init frees that duplicate once;
* ``mlscam.parallel.hostcomm.host_comm`` hands over the host's communicator itself (real MPI).
"""
from __future__ import annotations

import collections
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from capi_support import ROOT, child_env
from component_case import GRID, LAYOUT, make_checkpoint, write_initial, write_namelist
from mlscam.config import load_config
from mlscam.coupler import capi
from mlscam.parallel import hostcomm, run_fake_world
from mlscam.runtime import Component
from mlscam.status import Status

cffi = pytest.importorskip("cffi")
torch.set_num_threads(1)

NLON, NLAT, NLEV = GRID.nlon, GRID.nlat, len(LAYOUT.levels)
COUNTED = ("Dup", "Free", "Barrier", "allreduce", "allgather", "bcast", "gather", "Split", "Split_type")


class CountingComm:
    """A communicator that counts the collectives it forwards; ``Dup`` gives another counted view of the
    same world (with the same counter), ``Free`` is counted."""

    def __init__(self, inner, counts: collections.Counter):
        self._inner, self.counts = inner, counts

    def Dup(self) -> "CountingComm":
        self.counts["Dup"] += 1
        return CountingComm(self._inner, self.counts)

    def Free(self) -> None:
        self.counts["Free"] += 1

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if name not in COUNTED:
            return attr

        def counted(*args, **kwargs):
            self.counts[name] += 1
            return attr(*args, **kwargs)

        return counted


class FakeLib:
    """The two things capi needs from the cffi module: the last-error setter, per thread (= rank)."""

    def __init__(self):
        self.errors: dict[int, str] = {}

    def _mlscam_error_set(self, message: bytes) -> None:
        self.errors[threading.get_ident()] = message.decode()

    def last_error(self) -> str:
        return self.errors.get(threading.get_ident(), "")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("capi_collective")
    ckpt, init = make_checkpoint(d / "m.pt"), write_initial(d / "init.nc")
    return write_namelist(d / "host.nml", ckpt, init, d / "out.nc")


@pytest.fixture
def world(monkeypatch):
    """``run(fn)``: ``fn(rank, host_comm, counts)`` on 2 fake ranks; capi bound to cffi + FakeLib, the
    Fortran handle of the host communicator is the rank number."""
    ffi, lib = cffi.FFI(), FakeLib()
    monkeypatch.setattr(capi, "_ffi", ffi)
    monkeypatch.setattr(capi, "_lib", lib)
    hosts: dict[int, CountingComm] = {}
    monkeypatch.setattr(hostcomm, "host_comm", lambda fcomm: hosts[fcomm])

    def run(fn, nranks: int = 2):
        def rank_fn(comm):
            rank = comm.Get_rank()
            hosts[rank] = CountingComm(comm, collections.Counter())
            return fn(rank, hosts[rank], hosts[rank].counts)

        return run_fake_world(nranks, rank_fn, timeout=120)

    return ffi, lib, run


def _init(ffi, path, rank, bounds=(0, 0, 0, 0), nlon=NLON):
    hid = ffi.new("intptr_t *")
    status = capi.init(ffi.new("char[]", str(path).encode()), rank, nlon, NLAT, NLEV, *bounds, 21600.0, hid)
    return status, int(hid[0])


def test_init_duplicates_the_host_communicator_once_and_finalize_frees_it(case, world):
    ffi, lib, run = world

    def rank_fn(rank, host, counts):
        status, hid = _init(ffi, case, rank)
        after_init = dict(counts)
        return status, after_init, capi.finalize(hid), dict(counts)

    for status, after_init, finalized, after_finalize in run(rank_fn):
        assert status == Status.OK and finalized == Status.OK
        assert after_init["Dup"] == 1 and after_init.get("Free", 0) == 0
        assert after_finalize["Dup"] == 1 and after_finalize["Free"] == 1


def test_init_adds_no_collective_to_component_init(case, world):
    """The C API's own checks (namelist, bounds) travel in Component.init's first agreement."""
    ffi, lib, run = world

    def rank_fn(rank, host, counts):
        status, hid = _init(ffi, case, rank)
        through_c = dict(counts)
        capi.finalize(hid)
        counts.clear()
        comp = Component.init(load_config(case), host)
        direct = dict(counts)
        comp.finalize()
        return status, through_c, direct

    for status, through_c, direct in run(rank_fn):
        assert status == Status.OK
        assert through_c == direct and through_c["Dup"] == 1


@pytest.mark.parametrize("what,bad,status,words", [
    ("namelist", dict(path="missing.nml"), Status.FILE,
     "mlscam_init: rank 1 of 2 failed: namelist file not found: 'missing.nml'"),
    ("bounds", dict(bounds=(1, NLON + 1, 4, 6)), Status.DECOMPOSITION,
     f"mlscam_init: rank 1 of 2 failed: tile bounds lon 1:{NLON + 1}, lat 4:6 are not inside"),
    ("default layout on one rank only", dict(bounds=(0, 0, 0, 0)), Status.DECOMPOSITION,
     "mlscam_init: Component.init (decomposition): rank 1 of 2 failed: ranks [1] passed no tile bounds"),
    ("overlap", dict(bounds=(1, NLON, 3, 6)), Status.DECOMPOSITION,
     f"mlscam_init: Component.init (decomposition): rank 0 of 2 failed: the tiles do not cover the {NLON} x {NLAT} "
     f"(lon x lat) grid exactly once: {NLON} cell(s) owned by more than one rank, e.g. (lon, lat)=[(1, 3), (2, 3)"),
    ("gap", dict(bounds=(1, NLON, 5, 6)), Status.DECOMPOSITION,
     f"mlscam_init: Component.init (decomposition): rank 0 of 2 failed: the tiles do not cover the {NLON} x {NLAT} "
     f"(lon x lat) grid exactly once: {NLON} cell(s) owned by no rank, e.g. (lon, lat)=[(1, 4), (2, 4)"),
    ("grid", dict(nlon=NLON + 2), Status.CHECKPOINT,
     f"mlscam_init: the host's grid nlon={NLON + 2}, nlat={NLAT}, nlev={NLEV} differs from the checkpoint's"),
])
def test_a_failed_init_on_one_rank_fails_everywhere_and_frees_the_one_duplicate(case, world, what, bad, status, words):
    ffi, lib, run = world

    def rank_fn(rank, host, counts):
        args = dict(path=case, bounds=(1, NLON, 1 + 3 * rank, 3 + 3 * rank))
        if rank == 1 or what == "grid":
            args.update(bad)
        got, hid = _init(ffi, args.pop("path"), rank, **args)
        return got, hid, lib.last_error(), dict(counts)

    results = run(rank_fn)
    for got, hid, message, counts in results:
        assert (got, hid) == (status, 0), message
        assert message.startswith(words), message
        assert counts["Dup"] == 1 and counts["Free"] == 1, f"{what}: {counts}"
    assert results[0][2] == results[1][2], "the ranks report different messages"


def _call(lib, counts, fn, *args):
    """``(status, message, collectives)`` of one C entry point."""
    counts.clear()
    status = fn(*args)
    return int(status), (lib.last_error() if status else ""), dict(counts)


def test_every_array_call_and_step_agrees_once_and_all_ranks_return_the_same(case, world):
    ffi, lib, run = world

    def rank_fn(rank, host, counts):
        status, hid = _init(ffi, case, rank)
        assert status == Status.OK, lib.last_error()
        tile = [ffi.new("int *") for _ in range(4)]
        assert capi.tile(hid, *tile) == Status.OK
        nlon_t, nlat_t = tile[1][0] - tile[0][0] + 1, tile[3][0] - tile[2][0] + 1
        field = np.full((NLEV, nlat_t, nlon_t), 1.0)       # C order [lev][lat][lon] = Fortran (lon, lat, lev)
        surface = np.full((1, nlat_t, nlon_t), 1.0e5)
        whole = np.zeros((LAYOUT.n_state, nlat_t, nlon_t), np.float32)

        def array(op, name, a, extents=None, dtype=8):
            name_p = ffi.new("char[]", name.encode()) if name else ffi.NULL
            nlon, nlat, third = extents or (a.shape[2], a.shape[1], a.shape[0])
            return _call(lib, counts, capi.array, hid, op, name_p, ffi.from_buffer(a), dtype, nlon, nlat, third)

        bad_t = field.copy()
        if rank == 1:
            bad_t[1, 0, 2] = np.nan
        calls = {
            "step_without_state": _call(lib, counts, capi.step, hid, 1),
            "nan_on_rank1": array(1, "temperature", bad_t),
            "extents_on_rank0": array(1, "u", field, extents=(nlon_t + 1, nlat_t, NLEV) if rank == 0 else None),
            "set_u": array(1, "u", field), "set_v": array(1, "v", field),
            "set_t": array(1, "temperature", field * 250), "set_ps": array(1, "surface_pressure", surface),
            "negative_steps": _call(lib, counts, capi.step, hid, -1),
            "step": _call(lib, counts, capi.step, hid, 2),
            "get_t": array(3, "temperature", field),
            "get_unknown": array(3, "temprature", field),
            "get_all": array(4, "", whole, dtype=4),
            "tendency_ps": array(5, "surface_pressure", surface),
            "tendency_all": array(6, "", whole, dtype=4),
            "set_all": array(2, "", whole, dtype=4),
        }
        assert capi.finalize(hid) == Status.OK
        return calls

    results = run(rank_fn)
    expected = {
        "step_without_state": (Status.NO_STATE, "mlscam_step: rank 0 of 2 failed: no state has been set; call "
                                                "mlscam_state_set for every variable, or mlscam_state_set_all, first"),
        "nan_on_rank1": (Status.VALUE, "mlscam_state_set: rank 1 of 2 failed: mlscam_state_set('temperature'): 1 "
                                       "non-finite value(s) (NaN/Inf), the first nan at (lon=3, lat=1, lev=2)"),
        "extents_on_rank0": (Status.ARGUMENT, "mlscam_state_set: rank 0 of 2 failed: mlscam_state_set('u'): extents "
                                              "(nlon, nlat, nlev) = (7, 6, 2) but this rank's tile needs (6, 6, 2)"),
        "negative_steps": (Status.ARGUMENT, "mlscam_step: rank 0 of 2 failed: mlscam_step: n = -1; pass the number "
                                            "of steps, n >= 0 (also failed: rank 1)"),
        "get_unknown": (Status.ARGUMENT, "mlscam_state_get: rank 0 of 2 failed: mlscam_state_get: unknown variable "
                                         "'temprature'"),
    }
    for name in results[0]:
        outcomes = [r[name] for r in results]
        status, message = expected.get(name, (Status.OK, ""))
        for rank, (got, text, collectives) in enumerate(outcomes):
            assert got == status and text.startswith(message), f"{name} rank {rank}: {got} {text!r}"
            assert collectives == {"allreduce": 1}, f"{name} rank {rank} communicated {collectives}"
        assert outcomes[0][1] == outcomes[1][1], f"{name}: the ranks report different messages"


def test_init_on_a_handle_with_a_live_instance_is_refused_and_keeps_it(case, world):
    """Issue 14 item 8: a second mlscam_init on the same handle is MLSCAM_ERR_HANDLE on every rank, the live
    instance stays in the handle (no leak: the refused init frees its duplicate); another handle is fine."""
    ffi, lib, run = world

    def rank_fn(rank, host, counts):
        hid = ffi.new("intptr_t *")
        path = ffi.new("char[]", str(case).encode())
        first = capi.init(path, rank, NLON, NLAT, NLEV, 0, 0, 0, 0, 21600.0, hid)
        live = int(hid[0])
        counts.clear()
        again = capi.init(path, rank, NLON, NLAT, NLEV, 0, 0, 0, 0, 21600.0, hid)
        refused = (again, int(hid[0]), lib.last_error(), dict(counts))
        other = ffi.new("intptr_t *")
        second = capi.init(path, rank, NLON, NLAT, NLEV, 0, 0, 0, 0, 21600.0, other)
        info = [ffi.new("int *"), ffi.new("int *"), ffi.new("int *"), ffi.new("double *")]
        still = capi.info(live, *info)
        done = (capi.finalize(live), capi.finalize(int(other[0])))
        hid[0] = live  # a finalized handle may be passed to mlscam_init again
        reused = capi.init(path, rank, NLON, NLAT, NLEV, 0, 0, 0, 0, 21600.0, hid)
        capi.finalize(int(hid[0]))
        return first, live, refused, second, int(other[0]), still, done, reused

    results = run(rank_fn)
    for first, live, (again, kept, message, counts), second, other, still, done, reused in results:
        assert first == Status.OK and live > 0
        assert again == Status.HANDLE and kept == live, message
        assert message.startswith("mlscam_init: rank 0 of 2 failed: the handle passed to mlscam_init already "
                                  "holds a live instance"), message
        assert "call mlscam_finalize on it first, or pass another handle variable" in message
        assert counts["Dup"] == 1 and counts["Free"] == 1, counts
        assert second == Status.OK and other not in (0, live)
        assert still == Status.OK and done == (Status.OK, Status.OK) and reused == Status.OK
    assert results[0][2][2] == results[1][2][2]


def test_a_refused_state_set_then_setting_every_variable_again_succeeds(case, world):
    """Issue 14 item 9, through the C API: u, v, temperature with a NaN (refused), surface_pressure, then all
    four again in order: the state is complete and steps; messages name the C functions."""
    ffi, lib, run = world

    def rank_fn(rank, host, counts):
        status, hid = _init(ffi, case, rank)
        tile = [ffi.new("int *") for _ in range(4)]
        capi.tile(hid, *tile)
        nlon_t, nlat_t = tile[1][0] - tile[0][0] + 1, tile[3][0] - tile[2][0] + 1
        values = {"u": np.zeros((NLEV, nlat_t, nlon_t)), "v": np.zeros((NLEV, nlat_t, nlon_t)),
                  "temperature": np.full((NLEV, nlat_t, nlon_t), 250.0),
                  "surface_pressure": np.full((1, nlat_t, nlon_t), 1.0e5)}
        bad_t = values["temperature"].copy()
        bad_t[0, 0, 0] = np.nan

        def set_(name, a):
            return _call(lib, counts, capi.array, hid, 1, ffi.new("char[]", name.encode()), ffi.from_buffer(a), 8,
                         a.shape[2], a.shape[1], a.shape[0])[:2]

        out = [set_("u", values["u"]), set_("v", values["v"]), set_("temperature", bad_t),
               set_("surface_pressure", values["surface_pressure"]), _call(lib, counts, capi.step, hid, 1)[:2]]
        out += [set_(name, a) for name, a in values.items()]
        out.append(_call(lib, counts, capi.step, hid, 1)[:2])
        capi.finalize(hid)
        return out

    for out in run(rank_fn):
        assert out[2][0] == Status.VALUE and out[2][1].startswith("mlscam_state_set: rank 0 of 2 failed"), out[2]
        assert out[4][0] == Status.NO_STATE, out[4]
        assert "mlscam_state_set was called for ['surface_pressure', 'u', 'v'] but not yet for ['temperature']" \
            in out[4][1] and "set_variable" not in out[4][1], out[4][1]
        assert [o[0] for o in out[5:]] == [Status.OK] * 5, out[5:]


@pytest.mark.parametrize("what,status,words", [
    ("missing", Status.FILE, "checkpoint file not found: "),
    ("truncated", Status.CHECKPOINT, ""),
])
def test_a_missing_checkpoint_is_a_file_error_and_a_truncated_one_a_checkpoint_error(case, world, tmp_path, what,
                                                                                      status, words):
    """Issue 14 item 10: 5 (MLSCAM_ERR_FILE) for a checkpoint that is not there, 6 (MLSCAM_ERR_CHECKPOINT) for one
    that exists but does not load; the C-facing message names the namelist key, not a command-line flag."""
    ffi, lib, run = world
    good = load_config(case).rollout.checkpoint_path
    ckpt = tmp_path / "m.pt"
    if what == "truncated":
        ckpt.write_bytes(open(good, "rb").read()[:1000])
    text = open(case).read().replace(str(good), str(ckpt))
    assert text != open(case).read()
    nml = tmp_path / "host.nml"
    nml.write_text(text)

    def rank_fn(rank, host, counts):
        got, hid = _init(ffi, nml, rank)
        return got, hid, lib.last_error()

    for got, hid, message in run(rank_fn):
        assert (got, hid) == (status, 0), message
        assert message.startswith("mlscam_init: Component.init (checkpoint): rank 0 of 2 failed: " + words), message
        assert "--checkpoint-path" not in message
        if what == "missing":
            assert "set &rollout checkpoint_path in the namelist" in message, message


HOST_COMM = """
from mpi4py import MPI
from mlscam.parallel.hostcomm import HostCommError, host_comm
comm = host_comm(MPI.COMM_WORLD.py2f())
print("compare", MPI.Comm.Compare(comm, MPI.COMM_WORLD) == MPI.IDENT)
try:
    host_comm(MPI.COMM_NULL.py2f())
except HostCommError as exc:
    print("null", exc)
"""


def test_host_comm_is_the_hosts_communicator_not_a_duplicate():
    proc = subprocess.run([sys.executable, "-c", HOST_COMM], cwd=ROOT, env=child_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compare True" in proc.stdout
    assert "is MPI_COMM_NULL; pass a valid communicator" in proc.stdout
