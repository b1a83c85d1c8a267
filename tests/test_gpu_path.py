"""The GPU-ready step, tested on a CPU: no host synchronisation per step, the static-buffer
(CUDA-graph) stepping equal to eager, the bf16 option, and the device-memory halo transports.

The same code paths run captured on a GPU in ``tests/test_gpu_cuda.py`` (skipped without CUDA).
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from component_case import GRID, config, initial_states, make_checkpoint, write_initial
from mlscam.config import ConfigError, ParallelConfig, RolloutConfig
from mlscam.coupler import Component
from mlscam.emulator import Emulator
from mlscam.model import chunks
from mlscam.model.engine import Domain
from mlscam.model.graphs import GraphSteps, StaticStepper, capture_unavailable
from mlscam.model.precision import autocast, check_precision
from mlscam.parallel import Decomposition, HaloExchange, HaloPlan, run_fake_world
from mlscam.parallel.cuda_aware import ENV, cuda_aware_mpi, decide
from test_model import make_emulator, random_state

torch.set_num_threads(1)

#: Tensor methods that make the host wait for a device (or copy to the host).
HOST_SYNCS = ("item", "tolist", "numpy", "cpu", "__int__", "__float__", "__bool__", "__index__", "__array__")


@contextlib.contextmanager
def forbid_host_syncs(monkeypatch):
    """Make every tensor -> host conversion raise (the CPU stand-in for ``torch.cuda.set_sync_debug_mode``)."""
    calls = []

    def make(name):
        def refuse(self, *args, **kwargs):
            calls.append(name)
            raise AssertionError(f"host synchronisation in the step: Tensor.{name}")
        return refuse

    with monkeypatch.context() as m:
        for name in HOST_SYNCS:
            m.setattr(torch.Tensor, name, make(name))
        yield calls
    assert calls == []


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpu_path")
    ckpt, init = make_checkpoint(d / "m.pt"), write_initial(d / "init.nc")
    return {"ckpt": ckpt, "init": init, "cfg": config(ckpt, init, d / "f.nc")}


# -- no host synchronisation in the step ----------------------------------------------------
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_steps_never_synchronise_with_the_host(monkeypatch, precision):
    em = make_emulator("conv", chunk_size=20)  # 72 columns: 4 chunks, the last one padded
    em.precision = precision
    z = em.encode(random_state(em, 2))
    em.step(z, 1)  # the first step of a shape builds (and checks) the gather plan
    graphs = GraphSteps(em.engine, capture=False, max_steps=2)
    graphs.step(z.reshape(2, -1, 8), 3)
    with forbid_host_syncs(monkeypatch):
        em.step(z, 3)
        graphs.step(z.reshape(2, -1, 8), 5)


def test_the_sync_detector_catches_a_host_sync(monkeypatch):
    """advance_columns checks its indices on the host at every call: the detector must see it."""
    em = make_emulator("conv", chunk_size=20)
    st = em.grid.stencil()
    z = em.encode(random_state(em)).reshape(1, -1, 8)
    with pytest.raises(AssertionError, match=r"host synchronisation in the step: Tensor.__int__"):
        with forbid_host_syncs(monkeypatch):
            chunks.advance_columns(em.model.mixer, z, torch.tensor(st.index), torch.tensor(st.crossed_pole), 20)


def test_the_gather_plan_is_built_once_per_shape(monkeypatch):
    em = make_emulator("mlp", chunk_size=16)
    built = []
    real = chunks.plan_tiles
    monkeypatch.setattr("mlscam.model.engine.plan_tiles", lambda *a, **k: built.append(k) or real(*a, **k))
    z = em.encode(random_state(em, 2))
    em.step(z, 4)
    assert len(built) == 1 and built[0]["batch"] == 2
    em.step(z[:1], 2)  # another batch size: a new plan
    em.chunk_size = 8  # another chunk size: a new plan
    em.step(z[:1], 1)
    assert [(k["batch"], k["chunk_size"]) for k in built] == [(2, 16), (1, 16), (1, 8)]


def test_a_one_rank_component_steps_without_host_round_trips(case, monkeypatch):
    comp = Component.init(case["cfg"], run_fake_world_comm())
    assert comp.emulator.domain.exchange is None  # one rank owns its whole stencil: nothing to exchange
    comp.set_state(initial_states()[0].astype(np.float64))
    comp.step(1)
    with forbid_host_syncs(monkeypatch):
        comp.step(3)
    assert comp.timings["compute"] > 0 and comp.timings["exchange"] == 0.0
    comp.finalize()


def run_fake_world_comm():
    from mlscam.parallel import SelfComm

    return SelfComm()


# -- static buffers (the CUDA-graph path without capture) --------------------------------
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_static_buffer_stepping_equals_eager_bit_for_bit(precision):
    em = make_emulator("conv", chunk_size=24)
    z = em.encode(random_state(em, 2)).reshape(2, -1, 8)
    with torch.no_grad(), autocast(precision, "cpu"):
        eager = em.engine.step(z, 7)
    graphs = GraphSteps(em.engine, capture=False, context=lambda: autocast(precision, "cpu"), max_steps=3)
    with torch.no_grad():
        static = graphs.step(z, 7)  # 2 x a 3-step stepper + a 1-step one
        assert sorted(graphs._steppers) == [(1, 0), (3, 0)]
        again = graphs.step(z, 7)  # replayed: the same steppers, the same bits
        assert torch.equal(graphs.step(z, 0), z)
    assert torch.equal(static, eager) and torch.equal(again, eager)
    assert static.data_ptr() != graphs._steppers[1, 0].z.data_ptr()  # the static buffers stay private


def test_static_buffer_stepping_keeps_the_projection_phase():
    """With latent_projection_every = 3 the steppers are kept per phase and step as the eager engine does."""
    from mlscam.model.filters import LatentFilter

    base = make_emulator("conv", chunk_size=24)
    em = Emulator(base.model, base.layout, base.grid, base.normalization, base.dt_seconds, chunk_size=24,
                  latent_filter=LatentFilter(0.1, 0.0, 0.5, projection_every=3))
    z = em.encode(random_state(em, 2)).reshape(2, -1, 8)
    graphs = GraphSteps(em.engine, capture=False, max_steps=4)
    with torch.no_grad():
        for start, n in ((0, 9), (1, 9), (2, 3), (5, 1)):
            assert torch.equal(graphs.step(z, n, start=start), em.engine.step(z, n, start=start)), (start, n)
    assert sorted(graphs._steppers) == [(1, 0), (1, 2), (3, 2), (4, 0), (4, 1), (4, 2)]


def test_static_buffer_stepping_with_a_halo_exchange_equals_the_serial_step():
    """Two ranks: the exchange runs between 'replays' into a static source buffer, outside the graph."""
    em = make_emulator("mlp", chunk_size=16)
    z_global = em.encode(random_state(em, 2)).reshape(2, -1, 8)
    with torch.no_grad():
        ref = em.engine.step(z_global, 3)
    d = Decomposition.cartesian(6, 12, 2)

    def rank_fn(comm):
        plan = HaloPlan.build(d, comm.Get_rank())
        exchange = HaloExchange(plan, comm)
        t = d.tiles[comm.Get_rank()]
        domain = Domain((t.nlat, t.nlon), plan.local_columns, plan.tile_index, plan.crossed, exchange.exchange)
        local = Emulator(em.model, em.layout, em.grid, em.normalization, em.dt_seconds, chunk_size=16,
                         domain=domain, warn_blas=False)
        graphs = GraphSteps(local.engine, capture=False, max_steps=8)
        assert graphs.max_steps == 1  # one step per graph: the exchange is host code
        with torch.no_grad():
            return graphs.step(z_global[:, torch.from_numpy(plan.local_columns.copy())], 3)

    for rank, z in enumerate(run_fake_world(2, rank_fn)):
        assert torch.equal(z, ref[:, torch.from_numpy(d.local_columns(rank))])


def test_cuda_graph_falls_back_to_eager_on_a_cpu_and_says_why():
    em = make_emulator("conv")
    z = em.encode(random_state(em))
    ref = em.step(z, 2)
    em.cuda_graph = True
    assert em.step_mode.startswith("eager fp32 (cuda_graph requested: device cpu is not a CUDA device")
    with pytest.warns(RuntimeWarning, match=r"Emulator\(cuda_graph=True\): device cpu is not a CUDA device"):
        out = em.step(z, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        em.step(z, 1)
    assert torch.equal(out, ref)
    assert "CUDA graphs need one" in capture_unavailable("cpu")
    with pytest.raises(RuntimeError, match=r"cannot capture a CUDA graph: device cpu is not a CUDA device"):
        StaticStepper(em.engine, z.reshape(1, -1, 8), 1, capture=True)
    with pytest.raises(ValueError, match=r"steps >= 1, got 0"):
        StaticStepper(em.engine, z.reshape(1, -1, 8), 0, capture=False)


# -- bf16 ------------------------------------------------------------------------------------
def test_bf16_is_close_to_fp32_and_fp32_is_unchanged():
    em = make_emulator("conv")
    z = em.encode(random_state(em, 2))
    with torch.no_grad():
        plain = em.engine.step(z.reshape(2, -1, 8), 4).reshape(z.shape)  # no precision code at all
    fp32 = em.step(z, 4)
    assert torch.equal(fp32, plain)
    bf16 = Emulator(em.model, em.layout, em.grid, em.normalization, em.dt_seconds, chunk_size=64,
                    precision="bf16").step(z, 4)
    assert bf16.dtype == torch.float32  # the latents stay float32
    dz32, dz16 = fp32 - z, bf16 - z
    rel = ((dz16 - dz32).norm() / dz32.norm()).item()
    assert 0 < rel < 3e-2, rel
    assert check_precision(" BF16 ") == "bf16"
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'bf16'\], got 'fp16'"):
        check_precision("fp16")


def test_bf16_keeps_decomposition_independence(case):
    cfg = replace(case["cfg"], rollout=replace(case["cfg"].rollout, precision="bf16"))
    x0 = initial_states()[1]

    def rank_fn(comm):
        c = Component.init(cfg, comm)
        t = c.tile
        c.set_state(x0[t.lat0:t.lat1, t.lon0:t.lon1].astype(np.float64))
        assert c.emulator.precision == "bf16"
        c.step(3)
        z = c.gather_latent()
        c.finalize()
        return z

    one, = run_fake_world(1, rank_fn)
    for nranks in (2, 4):
        assert torch.equal(run_fake_world(nranks, rank_fn)[0], one)


def test_namelist_keys_for_precision_and_cuda_graph():
    assert RolloutConfig(precision="bf16").precision == "bf16"
    assert ParallelConfig(cuda_graph=True).cuda_graph is True
    with pytest.raises(ConfigError, match=r"rollout.precision = 'fp16': must be one of 'fp32', 'bf16'"):
        RolloutConfig(precision="fp16")


# -- halo exchange from device memory --------------------------------------------------------
@pytest.mark.parametrize("transport", ["staged", "device"])
@pytest.mark.parametrize("layout", [(1, 2), (2, 2), (3, 2)])
def test_torch_transports_give_the_host_exchange_bit_for_bit(transport, layout):
    d = Decomposition.cartesian(6, 12, layout[0] * layout[1], layout)
    rng = np.random.default_rng(3)
    fields = [rng.standard_normal((2, d.ncol, 5)).astype(dt) for dt in ("float32", "float64", "float32")]

    def rank_fn(comm):
        rank = comm.Get_rank()
        plan = HaloPlan.build(d, rank)
        host, torch_ex = HaloExchange(plan, comm), HaloExchange(plan, comm, transport=transport)
        assert torch_ex.transport_for(torch.device("cpu")) == transport
        out = []
        for z in fields:  # the kept buffers are reused; a dtype change gets its own
            local = torch.from_numpy(z[:, d.local_columns(rank)])
            out.append((host.exchange(local), torch_ex.exchange(local)))
        return out, len(torch_ex._buffers)

    for pairs, nbuffers in run_fake_world(d.nranks, rank_fn):
        assert nbuffers == 2
        for ref, got in pairs:
            assert got.dtype == ref.dtype and torch.equal(got, ref)


def test_halo_transport_choice_and_errors():
    d = Decomposition.cartesian(6, 12, 2)

    def rank_fn(comm):
        plan = HaloPlan.build(d, comm.Get_rank())
        ex = HaloExchange(plan, comm)
        assert ex.transport_for(torch.device("cpu")) == "host"
        assert ex.transport_for(torch.device("cuda", 0)) == "staged (not an MPI communicator: host buffers)"
        with pytest.raises(TypeError, match=r"supports float32 and float64, got bfloat16"):
            HaloExchange(plan, comm, transport="staged").start(torch.zeros(1, plan.n_local, 2, dtype=torch.bfloat16))
        with pytest.raises(ValueError, match=r"transport must be one of \['auto', 'host', 'staged', 'device'\]"):
            HaloExchange(plan, comm, transport="nccl")
        return True

    assert run_fake_world(2, rank_fn) == [True, True]


def test_cuda_aware_mpi_detection(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    ompi = "Open MPI v5.0.3, package: Open MPI builder Distribution, ident: 5.0.3"
    assert decide(ompi, {}, lambda: 1) == (True, "Open MPI v5.0.3: MPIX_Query_cuda_support() = 1")
    assert decide(ompi, {}, lambda: 0)[0] is False
    assert decide(ompi, {}) == (False, "Open MPI v5.0.3: MPIX_Query_cuda_support not found in libmpi")
    assert decide("MVAPICH2 Version 2.3", {"MV2_USE_CUDA": "1"})[0] is True
    assert decide("MPICH Version: 4.2.0", {}) == (False, "MPICH Version: 4.2.0: MPIR_CVAR_ENABLE_GPU=unset")
    assert decide("Some MPI 1.0", {}) == (False, f"Some MPI 1.0: CUDA support unknown (set {ENV}=1 if it has it)")
    assert decide(ompi, {ENV: "1"}, lambda: 0) == (True, f"{ENV}=1")
    assert decide(None, {ENV: "0"}) == (False, f"{ENV}=0")
    with pytest.raises(ValueError, match=rf"{ENV} must be 1 or 0 \(or unset: detect\), got 'yes'"):
        decide(ompi, {ENV: "yes"})
    assert cuda_aware_mpi(run_fake_world_comm()) == (False, "not an MPI communicator: host buffers")
