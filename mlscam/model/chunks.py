"""The fixed-size chunk engine: one latent step for a set of centre columns.

Every mixer call sees exactly ``chunk_size`` tiles (the last chunk is padded),
so every matmul has the same shape however the columns are split between calls
(whole globe, uneven subsets, MPI ranks). A column's increment is then
bit-for-bit the same in all of them (same device, same thread count), provided
the BLAS gives every row of a matmul the same arithmetic:

* MKL does so only in its strict reproducibility mode (``mlscam.blas``; the
  entry points pin it before the first matmul). Without it, its AVX2 kernels
  (AMD CPUs, or any CPU with ``MKL_ENABLE_INSTRUCTIONS=AVX2``) round a row
  differently by its slot in the chunk.
* Even in that mode, MKL's SSE4.2 kernels do not for matmuls of fewer than 8
  rows. Each call therefore gets a multiple of :data:`ROW_MULTIPLE` rows: a
  ``chunk_size`` that is not one is topped up with zero rows whose results are
  dropped. The default chunk sizes (multiples of 8) are unaffected.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["ROW_MULTIPLE", "TilePlan", "plan_tiles", "apply_plan", "advance_columns", "map_columns"]

#: Every mixer/encoder/decoder call sees a multiple of this many rows (see the module docstring).
ROW_MULTIPLE = 8


def _chunked(rows: torch.Tensor, chunk_size: int) -> tuple[torch.Tensor, int]:
    """``rows [n, ...]`` -> ``[nchunks, call_rows, ...]``: ``chunk_size`` rows per chunk, zero-padded at the end
    of the last chunk and, in every chunk, up to ``call_rows`` (``chunk_size`` rounded up to ROW_MULTIPLE)."""
    n = rows.shape[0]
    call_rows = -(-chunk_size // ROW_MULTIPLE) * ROW_MULTIPLE
    nchunks = -(-n // chunk_size)
    if call_rows == chunk_size and n == nchunks * chunk_size:
        return rows.reshape((nchunks, chunk_size) + tuple(rows.shape[1:])), call_rows
    out = rows.new_zeros((nchunks, call_rows) + tuple(rows.shape[1:]))
    full = n // chunk_size
    out[:full, :chunk_size] = rows[:full * chunk_size].reshape((full, chunk_size) + tuple(rows.shape[1:]))
    if n > full * chunk_size:
        out[full, :n - full * chunk_size] = rows[full * chunk_size:]
    return out, call_rows


def _unchunked(parts: list[torch.Tensor], chunk_size: int, n: int) -> torch.Tensor:
    """Inverse of :func:`_chunked` for the per-chunk results ``[call_rows, ...]``: the first ``n`` real rows."""
    return torch.cat([p[:chunk_size] for p in parts])[:n]


@dataclass(frozen=True, eq=False)
class TilePlan:
    """The gather of one latent step, worked out once: which rows of ``z_src`` make every chunk's tiles.

    Built by :func:`plan_tiles` for a fixed ``(batch, nsrc)``, ``tile_index`` and ``chunk_size``
    (the bounds check runs there, once); :func:`apply_plan` then steps any ``z_src [batch, nsrc, L]``
    with no host synchronisation and no index arithmetic (what a CUDA graph can capture).

    Attributes:
      index: ``[nchunks, call_rows * 9]`` int64 rows of ``z_src.reshape(batch * nsrc, L)``, chunk by
        chunk (padding rows gather row 0; their results are dropped).
      crossed: ``[nchunks, call_rows, 9]`` bool, the crossed-pole flags of the same tiles.
      batch, nsrc, ncent, chunk_size, call_rows: the shapes it was built for.
      scratch: the gather buffers of steps without gradients on the CPU, per thread (see :func:`apply_plan`).
    """

    index: torch.Tensor
    crossed: torch.Tensor
    batch: int
    nsrc: int
    ncent: int
    chunk_size: int
    call_rows: int
    scratch: dict = field(default_factory=dict, repr=False)

    @property
    def device(self) -> torch.device:
        return self.index.device

    def fits(self, z_src: torch.Tensor, chunk_size: int) -> bool:
        """Whether this plan steps ``z_src [batch, nsrc, L]`` on its device with ``chunk_size``."""
        return (tuple(z_src.shape[:2]) == (self.batch, self.nsrc) and z_src.device == self.device
                and chunk_size == self.chunk_size)


def _check_tiles(tile_index: torch.Tensor, crossed: torch.Tensor, chunk_size: int) -> None:
    if tile_index.ndim != 2 or tile_index.shape[1] != 9 or crossed.shape != tile_index.shape:
        raise ValueError(
            f"tile_index and crossed must both be [ncent, 9], got {tuple(tile_index.shape)} and {tuple(crossed.shape)}"
        )
    if tile_index.dtype != torch.int64 or crossed.dtype != torch.bool:
        raise TypeError(f"tile_index must be int64 and crossed bool, got {tile_index.dtype} and {crossed.dtype}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")


def plan_tiles(tile_index: torch.Tensor, crossed: torch.Tensor, *, batch: int, nsrc: int, chunk_size: int,
               device: torch.device | str | None = None) -> TilePlan:
    """The :class:`TilePlan` of ``tile_index [ncent, 9]`` / ``crossed [ncent, 9]`` into ``z_src [batch, nsrc, L]``.

    Checks the indices lie in ``[0, nsrc)`` (reads them on the host: call it once, not every step).
    Rows are taken batch-major (all centres of batch 0, then batch 1, ...) and cut into chunks of
    exactly ``chunk_size`` rows, each topped up to ``call_rows`` (a multiple of :data:`ROW_MULTIPLE`).
    """
    _check_tiles(tile_index, crossed, chunk_size)
    device = torch.device(device) if device is not None else tile_index.device
    ncent = tile_index.shape[0]
    if ncent:
        lo, hi = int(tile_index.min()), int(tile_index.max())
        if lo < 0 or hi >= nsrc:
            raise IndexError(f"tile_index must lie in [0, {nsrc}) (the columns of z_src), got values in [{lo}, {hi}]")
    tile_index, crossed = tile_index.to(device), crossed.to(device)
    offsets = torch.arange(batch, device=device).mul_(nsrc).view(batch, 1, 1)
    rows_index = (tile_index.unsqueeze(0) + offsets).reshape(batch * ncent, 9)
    rows_crossed = crossed.repeat(batch, 1)
    chunks_index, call_rows = _chunked(rows_index, chunk_size)
    chunks_crossed, _ = _chunked(rows_crossed, chunk_size)
    return TilePlan(chunks_index.reshape(chunks_index.shape[0], call_rows * 9).contiguous(), chunks_crossed.contiguous(),
                    int(batch), int(nsrc), int(ncent), int(chunk_size), call_rows)


def apply_plan(mixer: nn.Module, z_src: torch.Tensor, plan: TilePlan, *, tile_fn=None):
    """``dz [batch, ncent, L]`` of the plan's centre columns from ``z_src [batch, nsrc, L]``.

    No host synchronisation, no allocation that depends on values: safe inside a CUDA graph.
    Bit for bit the same as :func:`advance_columns` (which is this, after :func:`plan_tiles`).

    ``tile_fn``: a second per-tile function, ``tiles [call_rows, 9, L] -> [call_rows, G]``, run on the
    tiles each chunk already gathered for the mixer (the latent filter's smoothing: no second gather);
    then the result is ``(dz, tile_fn of the tiles [batch, ncent, G])``.
    """
    batch, nsrc, latent = z_src.shape
    if (batch, nsrc) != (plan.batch, plan.nsrc):
        raise ValueError(f"z_src is [{batch}, {nsrc}, L] but the tile plan was built for "
                         f"[{plan.batch}, {plan.nsrc}, L]; build a plan for this shape (plan_tiles)")
    if plan.ncent == 0:
        # through the mixer all the same: the empty result stays in the autograd graph of z_src and the mixer,
        # so a training rank without centres runs the same loss collectives in the backward as the others
        tiles = z_src.reshape(batch * nsrc, latent)[:0].view(0, 9, latent)
        dz = mixer(tiles, plan.crossed.reshape(-1, 9)[:0]).view(batch, 0, latent)
        if tile_fn is None:
            return dz
        extra = tile_fn(tiles)
        return dz, extra.view(batch, 0, extra.shape[-1])
    flat = z_src.reshape(batch * nsrc, latent)
    out, extra = [], []
    buffer = None
    if not torch.is_grad_enabled() and z_src.device.type == "cpu":
        # one gather buffer per plan and thread, filled chunk after chunk: a fresh tensor per chunk costs more
        # than the copy itself (without gradients nothing keeps a chunk's tiles; a result that is a view of
        # them is copied, _own)
        key = (threading.get_ident(), latent, z_src.dtype)
        buffer = plan.scratch.get(key)
        if buffer is None:
            buffer = plan.scratch[key] = z_src.new_empty(plan.call_rows * 9, latent)
    for idx, cr in zip(plan.index, plan.crossed):
        if buffer is None:
            tiles = flat.index_select(0, idx).view(plan.call_rows, 9, latent)
        else:
            tiles = torch.index_select(flat, 0, idx, out=buffer).view(plan.call_rows, 9, latent)
        out.append(_own(mixer(tiles, cr), buffer))
        if tile_fn is not None:
            extra.append(_own(tile_fn(tiles), buffer))
    dz = _unchunked(out, plan.chunk_size, batch * plan.ncent).view(batch, plan.ncent, latent)
    if tile_fn is None:
        return dz
    return dz, _unchunked(extra, plan.chunk_size, batch * plan.ncent).view(batch, plan.ncent, -1)


def _own(result: torch.Tensor, buffer: torch.Tensor | None) -> torch.Tensor:
    """``result``, copied if it is a view of the gather ``buffer`` (which the next chunk overwrites)."""
    if buffer is not None and result.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr():
        return result.clone()
    return result


def advance_columns(
    mixer: nn.Module,
    z_src: torch.Tensor,
    tile_index: torch.Tensor,
    crossed: torch.Tensor,
    chunk_size: int,
    *,
    tile_fn=None,
):
    """Latent increments ``dz`` of the centre columns named by ``tile_index``.

    Args:
      mixer: maps ``tiles [N, 9, L], crossed [N, 9]`` to ``dz [N, L]``.
      z_src: ``[B, nsrc, L]`` latents the tiles are gathered from (serial: all
        columns; an MPI rank: its local + halo buffer).
      tile_index: ``[ncent, 9]`` int64 indices into ``z_src``'s column axis, in
        token order (serial: ``grid.stencil().index``).
      crossed: ``[ncent, 9]`` bool, tokens that came across a pole.
      chunk_size: tiles per mixer call.
      tile_fn: optional second function of the gathered tiles (see :func:`apply_plan`).

    Returns:
      ``dz [B, ncent, L]``. Differentiable with respect to ``z_src`` and the mixer.
      Rows are taken batch-major (all centres of batch 0, then batch 1, ...) and
      cut into chunks of exactly ``chunk_size`` rows. With ``tile_fn``: ``(dz, tile_fn of the tiles)``.

    Works out the gather (:func:`plan_tiles`, which checks the indices on the host) on every
    call; a stepping loop keeps the plan instead (:meth:`mlscam.model.engine.Engine.advance`).
    """
    if z_src.ndim != 3:
        raise ValueError(f"z_src must be [B, nsrc, L], got shape {tuple(z_src.shape)}")
    plan = plan_tiles(tile_index, crossed, batch=z_src.shape[0], nsrc=z_src.shape[1], chunk_size=chunk_size,
                      device=z_src.device)
    return apply_plan(mixer, z_src, plan, tile_fn=tile_fn)


def map_columns(fn, *xs: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Apply a per-column function in fixed-size chunks: ``fn(*[chunk_size, F_i]) -> [chunk_size, G]``.

    ``xs`` share their leading shape ``[..., ]`` and end in a feature axis; the
    result is ``[..., G]``. As in ``advance_columns``, every call of ``fn`` sees
    exactly ``chunk_size`` rows (the last chunk is zero-padded; calls are topped up
    to a multiple of ROW_MULTIPLE rows), so a column's
    result does not depend on how many columns are encoded or decoded together.
    """
    lead = xs[0].shape[:-1]
    rows = [x.reshape(-1, x.shape[-1]) for x in xs]
    n = rows[0].shape[0]
    if n == 0:
        empty = fn(*[r[:0] for r in rows])  # [0, G]
        return empty.reshape(*lead, empty.shape[-1])
    chunks = [_chunked(r, chunk_size)[0] for r in rows]
    out = [fn(*parts) for parts in zip(*chunks)]
    return _unchunked(out, chunk_size, n).reshape(*lead, -1)
