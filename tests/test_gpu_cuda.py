"""The GPU path on a real GPU: captured CUDA graphs equal eager bit for bit, no host synchronisation
in a step (``torch.cuda.set_sync_debug_mode('error')``), decomposition independence with the
pinned-buffer halo exchange, bf16 close to fp32.

Skipped without CUDA (every CPU machine of the project); ``benchmarks/gpu/run.sh`` runs it on a
GPU machine (``pytest -m cuda``). The CPU halves of these paths are in ``tests/test_gpu_path.py``.
"""
from __future__ import annotations

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before cuBLAS starts: deterministic matmuls

from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from component_case import config, initial_states, make_checkpoint, write_initial  # noqa: E402
from mlscam.coupler import Component  # noqa: E402
from mlscam.emulator import Emulator  # noqa: E402
from mlscam.parallel import Decomposition, HaloExchange, HaloPlan, run_fake_world  # noqa: E402
from test_model import make_emulator, random_state  # noqa: E402

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs CUDA (benchmarks/gpu/run.sh runs these on a GPU machine)")]


@pytest.fixture(autouse=True)
def deterministic():
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(was)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpu_cuda")
    ckpt, init = make_checkpoint(d / "m.pt"), write_initial(d / "init.nc")
    cfg = config(ckpt, init, d / "f.nc")
    return {"ckpt": ckpt, "init": init, "cfg": replace(cfg, parallel=replace(cfg.parallel, device="cuda"))}


def cuda_emulator(precision="fp32", cuda_graph=False, chunk_size=20) -> Emulator:
    em = make_emulator("conv", chunk_size=chunk_size)
    return Emulator(em.model.cuda(), em.layout, em.grid, em.normalization, em.dt_seconds, chunk_size=chunk_size,
                    precision=precision, cuda_graph=cuda_graph, warn_blas=False)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_graph_steps_equal_eager_bit_for_bit(precision):
    eager, graph = cuda_emulator(precision), cuda_emulator(precision, cuda_graph=True)
    assert graph.step_mode == f"cuda-graph {precision}"
    z = eager.encode(random_state(eager, 2).cuda())
    for n in (1, 11, 11, 3):  # 8 + 3 steps: two graphs, then replays of both
        ref = eager.step(z, n)
        got = graph.step(z, n)
        assert torch.equal(got, ref), f"{n} steps: max |diff| {(got - ref).abs().max().item()}"
    assert sorted(steps for steps, _ in graph._graphs._steppers) == [1, 3, 8]
    assert all(s.graph is not None for s in graph._graphs._steppers.values())


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_no_host_synchronisation_in_steps(cuda_graph):
    em = cuda_emulator("bf16", cuda_graph=cuda_graph)
    z = em.encode(random_state(em, 2).cuda())
    em.step(z, 9)  # plan built, graphs captured
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = em.step(z, 9)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(out).all()


def test_bf16_on_cuda_is_close_to_fp32():
    fp32, bf16 = cuda_emulator("fp32"), cuda_emulator("bf16")
    z = fp32.encode(random_state(fp32, 2).cuda())
    d32, d16 = fp32.step(z, 4) - z, bf16.step(z, 4) - z
    rel = ((d16 - d32).norm() / d32.norm()).item()
    assert 0 < rel < 3e-2, rel


def test_pinned_staged_halo_equals_the_host_exchange():
    d = Decomposition.cartesian(6, 12, 4, (2, 2))
    z_global = np.random.default_rng(0).standard_normal((2, d.ncol, 5)).astype(np.float32)

    def rank_fn(comm):
        rank = comm.Get_rank()
        plan = HaloPlan.build(d, rank)
        ex = HaloExchange(plan, comm)
        assert ex.transport_for(torch.device("cuda")).startswith("staged")
        local = z_global[:, d.local_columns(rank)]
        got = ex.exchange(torch.from_numpy(local).cuda())
        bufs = next(iter(ex._buffers.values()))
        assert got.is_cuda and all(b.is_pinned() for b in bufs.send_host + bufs.recv_host)
        return np.array_equal(got.cpu().numpy(), HaloExchange(plan, comm).exchange(local))

    assert run_fake_world(4, rank_fn, timeout=120) == [True] * 4


@pytest.mark.parametrize("precision, cuda_graph", [("fp32", False), ("fp32", True), ("bf16", True)])
def test_ranks_sharing_the_gpu_give_the_same_bits(case, precision, cuda_graph):
    cfg = case["cfg"]
    cfg = replace(cfg, rollout=replace(cfg.rollout, precision=precision),
                  parallel=replace(cfg.parallel, cuda_graph=cuda_graph))
    x0 = initial_states()[1]

    def rank_fn(comm):
        c = Component.init(cfg, comm)
        t = c.tile
        c.set_state(x0[t.lat0:t.lat1, t.lon0:t.lon1].astype(np.float64))
        assert c.device.type == "cuda" and c.emulator.step_mode.startswith("cuda-graph" if cuda_graph else "eager")
        for n in (1, 5):
            c.step(n)
        z, x = c.gather_latent(), c.gather_state()
        c.finalize()
        return z, x

    z1, x1 = run_fake_world(1, rank_fn, timeout=120)[0]
    for nranks in (2, 4):
        z, x = run_fake_world(nranks, rank_fn, timeout=120)[0]
        assert torch.equal(z, z1) and np.array_equal(x, x1), f"{nranks} ranks differ from 1"
