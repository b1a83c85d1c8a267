"""Tile decomposition, halo exchange, status agreement and rank -> device.

The only package of mlscam that talks to MPI.  Every function takes a
communicator argument (an mpi4py ``Comm`` or a :class:`FakeComm`); mpi4py is
imported lazily, so ``import mlscam.parallel`` works without it.
"""
from __future__ import annotations

from .decomposition import Decomposition, Tile, choose_layout, decomposition_from_host, split_sizes
from .device import choose_device, choose_threads, configure_torch, node_local, node_local_rank
from .fake import FakeComm, FakeWorldError, run_fake_world
from .halo import HALO_TAG, HaloExchange, HaloPlan
from .status import agree
from .world import SelfComm, abort, is_mpi, world

__all__ = [
    "Decomposition",
    "Tile",
    "choose_layout",
    "decomposition_from_host",
    "split_sizes",
    "HaloPlan",
    "HaloExchange",
    "HALO_TAG",
    "agree",
    "node_local",
    "node_local_rank",
    "choose_device",
    "choose_threads",
    "configure_torch",
    "FakeComm",
    "FakeWorldError",
    "run_fake_world",
    "SelfComm",
    "abort",
    "is_mpi",
    "world",
]
