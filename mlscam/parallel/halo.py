"""The one-column halo of a tile: the plan (built once) and its exchange (every step).

Source buffer
-------------
A rank's 3x3 tiles read from a *source buffer* ``z_src [B, n_local + n_halo, L]``:
first the rank's own columns (row-major in its tile, as
:meth:`Decomposition.local_columns`), then its halo cells in
:attr:`HaloPlan.halo_cells` order.  ``plan.tile_index [n_local, 9]`` indexes
that buffer so that, for every own column ``c`` (global index ``g``)::

    z_src[:, plan.tile_index[c]] == z_global[:, grid.stencil().index[g]]
    plan.crossed[c]              == grid.stencil().crossed_pole[g]

exactly, including periodic longitude and the pole fold (the cell beyond edge
row ``j`` at unwrapped longitude ``i'`` is row ``j`` at ``i' + nlon/2``, often
on a far-away rank).

Halo order and messages
-----------------------
The halo holds every stencil cell of the tile that another rank owns (cells
this rank owns itself, e.g. across the seam of a full-longitude band, are read
from its own columns).  Halo cells are sorted by (owner rank, global index), so
the cells from one peer are one contiguous block.  Rank ``r`` sends each peer
``p`` the cells of ``r`` in ``p``'s halo, in ``p``'s halo order, as one message:
one message per neighbouring pair and per exchange, received straight into
place.  Every rank builds the whole plan from the decomposition alone, with no
communication.

Exchange
--------
:class:`HaloExchange` posts one ``Irecv`` per peer, then one ``Isend`` per peer
of a contiguous packed buffer ``[B, count, L]`` (see docs/parallel.md for
why point-to-point rather than ``Alltoallv`` or a graph-topology collective).
The exchange only copies values, so it is bit-exact on any layout.  Latents on a
GPU are packed on the GPU and either handed to a CUDA-aware MPI as device
buffers or staged through pinned host buffers (``transport``; detection in
:mod:`mlscam.parallel.cuda_aware`): only the halo cells cross the bus.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlscam.grid import TOKEN_OFFSETS, LatLonGrid, neighbour

from .decomposition import Decomposition

__all__ = ["HaloPlan", "HaloExchange", "HALO_TAG", "TRANSPORTS"]

#: Message tag of halo exchanges (use a dedicated communicator if the host also uses it).
HALO_TAG = 7341


@dataclass(frozen=True, eq=False)
class HaloPlan:
    """What rank ``rank`` needs, sends and receives for its one-column halo.

    Attributes (``n_local`` own columns, ``n_halo`` halo cells):
      rank, nranks, nlat, nlon: the rank and the decomposed grid.
      local_columns: ``[n_local]`` int64 global indices of own columns, row-major in the tile.
      halo_cells: ``[n_halo]`` int64 global indices of the halo cells, sorted by (owner, index).
      halo_owner: ``[n_halo]`` int64 rank owning each halo cell.
      recv: ``((peer, start, count), ...)``: peer ``peer`` fills ``halo_cells[start:start+count]``,
        peers ascending.
      send: ``((peer, local_positions), ...)``: send ``z_local[:, local_positions]`` (int64
        ``[count]``, positions in ``local_columns``) to ``peer``, peers ascending.
      tile_index: ``[n_local, 9]`` int64 index into the source buffer, token order.
      crossed: ``[n_local, 9]`` bool, the token came across a pole.
    """

    rank: int
    nranks: int
    nlat: int
    nlon: int
    local_columns: np.ndarray
    halo_cells: np.ndarray
    halo_owner: np.ndarray
    recv: tuple[tuple[int, int, int], ...]
    send: tuple[tuple[int, np.ndarray], ...]
    tile_index: np.ndarray
    crossed: np.ndarray

    @classmethod
    def build(cls, decomposition: Decomposition, rank: int) -> "HaloPlan":
        """The plan of ``rank`` (pure: no communication; every rank can build any rank's plan)."""
        d = decomposition
        if not 0 <= rank < d.nranks:
            raise ValueError(f"rank {rank} is not in the decomposition of {d.nranks} ranks")
        if d.nlon % 2:
            raise ValueError(
                f"nlon={d.nlon} is odd; the pole fold of the 3x3 stencil needs an even number of longitudes"
            )
        stencil = LatLonGrid.equiangular(d.nlat, d.nlon).stencil()
        owner = d.owner_map().reshape(-1)
        own = d.local_columns(rank)

        # Receives: stencil cells of own columns owned by someone else.
        needed = np.unique(stencil.index[own])
        needed = needed[owner[needed] != rank]
        order = np.lexsort((needed, owner[needed]))
        halo_cells = needed[order].astype(np.int64)
        halo_owner = owner[halo_cells].astype(np.int64)
        peers, starts, counts = np.unique(halo_owner, return_index=True, return_counts=True)
        recv = tuple((int(p), int(s), int(c)) for p, s, c in zip(peers, starts, counts))

        # Sends: own cells inside the stencil of another rank's columns, in that rank's halo order.
        mine = owner[stencil.index] == rank  # [ncol, 9]
        reader = np.broadcast_to(owner[:, None], stencil.index.shape)
        hit = mine & (reader != rank)
        pairs = np.unique(np.stack([reader[hit], stencil.index[hit]], axis=1), axis=0)  # sorted (peer, cell)
        position = np.full(d.ncol, -1, dtype=np.int64)
        position[own] = np.arange(own.size, dtype=np.int64)
        send = []
        for peer in np.unique(pairs[:, 0]) if len(pairs) else []:
            cells = pairs[pairs[:, 0] == peer, 1]
            send.append((int(peer), position[cells]))

        # Local tile table.
        slot = np.full(d.ncol, -1, dtype=np.int64)
        slot[own] = np.arange(own.size, dtype=np.int64)
        slot[halo_cells] = own.size + np.arange(halo_cells.size, dtype=np.int64)
        tile_index = slot[stencil.index[own]]
        if np.any(tile_index < 0):  # cannot happen if the code above is right
            raise AssertionError(f"rank {rank}: halo plan misses stencil cells {stencil.index[own][tile_index < 0]}")
        crossed = np.array(stencil.crossed_pole[own])
        for a in (own, halo_cells, halo_owner, tile_index, crossed, *(s for _, s in send)):
            a.setflags(write=False)
        return cls(rank, d.nranks, d.nlat, d.nlon, own, halo_cells, halo_owner, recv, tuple(send), tile_index, crossed)

    # -- sizes ----------------------------------------------------------------
    @property
    def n_local(self) -> int:
        return int(self.local_columns.size)

    @property
    def halo_size(self) -> int:
        """Number of halo cells this rank receives per exchange."""
        return int(self.halo_cells.size)

    @property
    def send_size(self) -> int:
        """Number of cells this rank sends per exchange (all peers)."""
        return int(sum(p.size for _, p in self.send))

    @property
    def n_src(self) -> int:
        """Columns of the source buffer: ``n_local + halo_size``."""
        return self.n_local + self.halo_size

    def bytes_per_step(self, latent: int, dtype: Any = np.float32, batch: int = 1) -> int:
        """Bytes this rank receives per exchange of ``[batch, n_local, latent]`` values of ``dtype``.

        Summed over ranks this equals the bytes sent (nothing is sent to oneself).
        """
        return self.halo_size * int(latent) * int(batch) * np.dtype(_numpy_dtype(dtype)).itemsize

    def tile_of(self, local: int) -> list[tuple[int, int, bool]]:
        """Global ``(j, i, crossed)`` of the 9 tokens of own column ``local`` (for checks and messages)."""
        g = int(self.local_columns[local])
        j, i = divmod(g, self.nlon)
        return [neighbour(j, i, dl, dn, self.nlat, self.nlon) for dl, dn in TOKEN_OFFSETS]


def _numpy_dtype(dtype: Any) -> Any:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(dtype, torch.dtype):
        return torch.empty((), dtype=dtype).numpy().dtype
    return dtype


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


#: How an exchange moves its bytes (``HaloExchange(transport=...)``).
TRANSPORTS = ("auto", "host", "staged", "device")


class HaloExchange:
    """Executes a :class:`HaloPlan` on a communicator (mpi4py ``Comm`` or :class:`FakeComm`).

    ``start(z_local)`` with ``z_local [B, n_local, L]`` (numpy or torch,
    float32 or float64, any ``B >= 1``) posts the messages; ``wait()`` returns
    ``z_src [B, n_local + n_halo, L]`` of the same kind, dtype and device.
    Collective over ``comm``: every rank must call start/wait in step.
    Torch tensors are detached: the exchange is not differentiable (training
    through it needs an autograd wrapper whose backward sends the halo gradients
    back with the reversed plan).

    ``transport`` says how the bytes move (the values are only copied, so every
    transport gives the same bits):

    * ``'host'``: numpy arrays in host memory (torch tensors go through ``.cpu()``);
    * ``'staged'``: torch tensors; the cells to send are gathered on the tensor's device,
      copied to host buffers (pinned on a GPU, kept between exchanges), sent, and the
      received halo is copied back to the device: only halo bytes cross the bus;
    * ``'device'``: torch tensors; the gathered device buffers go to MPI as they are
      (CUDA-aware MPI; on a CPU tensor, the same code on host memory);
    * ``'auto'`` (default): numpy and CPU tensors ``'host'``; CUDA tensors ``'device'``
      where :func:`mlscam.parallel.cuda_aware.cuda_aware_mpi` says the MPI library takes
      device memory, else ``'staged'``.
    """

    def __init__(self, plan: HaloPlan, comm: Any, tag: int = HALO_TAG, *, transport: str = "auto"):
        size, rank = comm.Get_size(), comm.Get_rank()
        if size != plan.nranks or rank != plan.rank:
            raise ValueError(
                f"halo plan is for rank {plan.rank} of {plan.nranks} but the communicator is rank {rank} of {size}; "
                "build the plan with HaloPlan.build(decomposition, comm.Get_rank()) on the same communicator"
            )
        if transport not in TRANSPORTS:
            raise ValueError(f"halo transport must be one of {list(TRANSPORTS)}, got {transport!r}")
        self.plan = plan
        self.comm = comm
        self.tag = tag
        self.transport = transport
        self._cuda: tuple[bool, str] | None = None  # (CUDA-aware MPI?, why), detected on first use
        self._buffers: dict[tuple, "_TorchBuffers"] = {}
        self._pending: tuple | None = None

    def cuda_support(self) -> tuple[bool, str]:
        """``(CUDA-aware MPI?, reason)`` of this exchange's communicator (detected once)."""
        if self._cuda is None:
            from .cuda_aware import cuda_aware_mpi

            self._cuda = cuda_aware_mpi(self.comm)
        return self._cuda

    def transport_for(self, device: Any) -> str:
        """The transport a torch tensor on ``device`` uses, with the reason when chosen automatically."""
        if self.transport != "auto":
            return self.transport
        if getattr(device, "type", str(device).split(":")[0]) != "cuda":
            return "host"
        aware, why = self.cuda_support()
        return f"{'device' if aware else 'staged'} ({why})"

    def _check(self, shape: tuple, dtype: Any) -> None:
        if len(shape) != 3 or shape[1] != self.plan.n_local or shape[0] < 1:
            raise ValueError(
                f"rank {self.plan.rank}: z_local must be [batch >= 1, n_local={self.plan.n_local}, latent], "
                f"got shape {tuple(shape)}"
            )
        name = str(dtype).replace("torch.", "")
        if name not in ("float32", "float64"):
            raise TypeError(f"halo exchange supports float32 and float64, got {name}")

    def start(self, z_local: Any) -> None:
        """Post the receives and sends of one exchange of ``z_local [B, n_local, L]``."""
        if self._pending is not None:
            raise RuntimeError("HaloExchange.start called twice without wait(); call wait() first")
        if _is_torch(z_local):
            mode = self.transport_for(z_local.device).split(" ")[0]
            if mode in ("staged", "device"):
                self._check(tuple(z_local.shape), z_local.dtype)
                self._pending = ("torch", self._start_torch(z_local.detach(), staged=mode == "staged"))
                return
        self._pending = ("host", self._start_host(z_local))

    def _start_host(self, z_local: Any) -> tuple:
        as_torch = _is_torch(z_local)
        device = z_local.device if as_torch else None
        z = z_local.detach().cpu().numpy() if as_torch else np.asarray(z_local)
        self._check(z.shape, z.dtype)
        z = np.ascontiguousarray(z)
        batch, _, latent = z.shape
        recv_bufs, requests = [], []
        for peer, _, count in self.plan.recv:
            buf = np.empty((batch, count, latent), dtype=z.dtype)
            recv_bufs.append(buf)
            requests.append(self.comm.Irecv(buf, source=peer, tag=self.tag))
        send_bufs = []
        for peer, positions in self.plan.send:
            buf = np.ascontiguousarray(np.take(z, positions, axis=1))
            send_bufs.append(buf)  # kept alive until wait(): MPI reads it asynchronously
            requests.append(self.comm.Isend(buf, dest=peer, tag=self.tag))
        return (z, recv_bufs, send_bufs, requests, as_torch, device)

    def _start_torch(self, z: Any, staged: bool) -> tuple:
        torch = sys.modules["torch"]
        z = z.contiguous()
        batch, _, latent = z.shape
        key = (batch, latent, z.dtype, z.device, staged)
        bufs = self._buffers.get(key)
        if bufs is None:
            bufs = self._buffers[key] = _TorchBuffers(self.plan, batch, latent, z.dtype, z.device, staged)
        packed = [z.index_select(1, positions) for positions in bufs.send_positions]  # on z's device
        if staged:
            for host, dev in zip(bufs.send_host, packed):
                host.copy_(dev, non_blocking=bufs.pinned)
        if z.device.type == "cuda" and (self.plan.send or self.plan.recv):
            # MPI knows no CUDA streams: the packed cells (and the copies of the last exchange out of
            # the reused receive buffers) must be complete before MPI touches any buffer
            torch.cuda.current_stream(z.device).synchronize()
        sends = bufs.send_host if staged else packed
        recvs = bufs.recv_host if staged else bufs.recv_device
        requests = [self.comm.Irecv(_mpi_buffer(buf), source=peer, tag=self.tag)
                    for (peer, _, _), buf in zip(self.plan.recv, recvs)]
        requests += [self.comm.Isend(_mpi_buffer(buf), dest=peer, tag=self.tag)
                     for (peer, _), buf in zip(self.plan.send, sends)]
        return (z, bufs, packed, requests, staged)

    def wait(self) -> Any:
        """Complete the exchange; return ``z_src [B, n_local + n_halo, L]``."""
        if self._pending is None:
            raise RuntimeError("HaloExchange.wait called without start()")
        kind, pending = self._pending
        self._pending = None
        if kind == "torch":
            return self._wait_torch(*pending)
        z, recv_bufs, _send_bufs, requests, as_torch, device = pending
        for req in requests:
            req.Wait()
        z_src = np.concatenate([z, *recv_bufs], axis=1) if recv_bufs else z.copy()
        if as_torch:
            torch = sys.modules["torch"]
            return torch.from_numpy(z_src).to(device=device)
        return z_src

    def _wait_torch(self, z: Any, bufs: "_TorchBuffers", _packed: list, requests: list, staged: bool) -> Any:
        torch = sys.modules["torch"]
        for req in requests:
            req.Wait()
        if staged:
            halo = [host.to(z.device, non_blocking=bufs.pinned) for host in bufs.recv_host]
        else:
            halo = bufs.recv_device
        return torch.cat([z, *halo], dim=1)

    def exchange(self, z_local: Any) -> Any:
        """``start(z_local)`` then ``wait()``."""
        self.start(z_local)
        return self.wait()


def _mpi_buffer(t: Any) -> Any:
    """What MPI is given for tensor ``t``: a numpy view of host memory, the tensor itself on a device
    (mpi4py reads CUDA tensors through ``__dlpack__`` / ``__cuda_array_interface__``)."""
    return t.numpy() if t.device.type == "cpu" else t


class _TorchBuffers:
    """The buffers of the torch transports for one ``(batch, latent, dtype, device)``, kept between exchanges.

    ``send_positions``: per peer, ``[count]`` int64 on the device; ``send_host`` / ``recv_host``:
    per peer ``[batch, count, latent]`` host tensors (pinned on a CUDA device) for ``'staged'``;
    ``recv_device``: per peer ``[batch, count, latent]`` device tensors for ``'device'``.
    """

    def __init__(self, plan: HaloPlan, batch: int, latent: int, dtype: Any, device: Any, staged: bool):
        torch = sys.modules["torch"]
        self.pinned = staged and device.type == "cuda"
        self.send_positions = [torch.tensor(np.asarray(p), dtype=torch.int64, device=device) for _, p in plan.send]
        if staged:
            host = {"dtype": dtype, "device": "cpu", "pin_memory": self.pinned}
            self.send_host = [torch.empty((batch, p.size, latent), **host) for _, p in plan.send]
            self.recv_host = [torch.empty((batch, count, latent), **host) for _, _, count in plan.recv]
            self.recv_device = []
        else:
            self.send_host, self.recv_host = [], []
            self.recv_device = [torch.empty((batch, count, latent), dtype=dtype, device=device)
                                for _, _, count in plan.recv]
