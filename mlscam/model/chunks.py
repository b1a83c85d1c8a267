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

import torch
from torch import nn

__all__ = ["ROW_MULTIPLE", "advance_columns", "map_columns"]

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


def advance_columns(
    mixer: nn.Module,
    z_src: torch.Tensor,
    tile_index: torch.Tensor,
    crossed: torch.Tensor,
    chunk_size: int,
) -> torch.Tensor:
    """Latent increments ``dz`` of the centre columns named by ``tile_index``.

    Args:
      mixer: maps ``tiles [N, 9, L], crossed [N, 9]`` to ``dz [N, L]``.
      z_src: ``[B, nsrc, L]`` latents the tiles are gathered from (serial: all
        columns; an MPI rank: its local + halo buffer).
      tile_index: ``[ncent, 9]`` int64 indices into ``z_src``'s column axis, in
        token order (serial: ``grid.stencil().index``).
      crossed: ``[ncent, 9]`` bool, tokens that came across a pole.
      chunk_size: tiles per mixer call.

    Returns:
      ``dz [B, ncent, L]``. Differentiable with respect to ``z_src`` and the mixer.
      Rows are taken batch-major (all centres of batch 0, then batch 1, ...) and
      cut into chunks of exactly ``chunk_size`` rows.
    """
    if z_src.ndim != 3:
        raise ValueError(f"z_src must be [B, nsrc, L], got shape {tuple(z_src.shape)}")
    if tile_index.ndim != 2 or tile_index.shape[1] != 9 or crossed.shape != tile_index.shape:
        raise ValueError(
            f"tile_index and crossed must both be [ncent, 9], got {tuple(tile_index.shape)} and {tuple(crossed.shape)}"
        )
    if tile_index.dtype != torch.int64 or crossed.dtype != torch.bool:
        raise TypeError(f"tile_index must be int64 and crossed bool, got {tile_index.dtype} and {crossed.dtype}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    batch, nsrc, latent = z_src.shape
    ncent = tile_index.shape[0]
    if ncent == 0:
        # through the mixer all the same: the empty result stays in the autograd graph of z_src and the mixer,
        # so a training rank without centres runs the same loss collectives in the backward as the others
        tiles = z_src.reshape(batch * nsrc, latent)[:0].view(0, 9, latent)
        return mixer(tiles, crossed[:0].to(z_src.device)).view(batch, 0, latent)
    lo, hi = int(tile_index.min()), int(tile_index.max())
    if lo < 0 or hi >= nsrc:
        raise IndexError(f"tile_index must lie in [0, {nsrc}) (the columns of z_src), got values in [{lo}, {hi}]")

    tile_index = tile_index.to(z_src.device)
    crossed = crossed.to(z_src.device)
    offsets = torch.arange(batch, device=z_src.device).mul_(nsrc).view(batch, 1, 1)
    rows_index = (tile_index.unsqueeze(0) + offsets).reshape(batch * ncent, 9)
    rows_crossed = crossed.repeat(batch, 1)
    flat = z_src.reshape(batch * nsrc, latent)

    nrows = rows_index.shape[0]
    chunks_index, call_rows = _chunked(rows_index, chunk_size)
    chunks_crossed, _ = _chunked(rows_crossed, chunk_size)
    out = []
    for idx, cr in zip(chunks_index, chunks_crossed):
        tiles = flat.index_select(0, idx.reshape(-1)).view(call_rows, 9, latent)
        out.append(mixer(tiles, cr))
    return _unchunked(out, chunk_size, nrows).view(batch, ncent, latent)


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
