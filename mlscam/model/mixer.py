"""Latent mixers: the 3x3 tile of latents around a column -> that column's latent increment.

Both variants share one interface::

    mixer(tiles [N, 9, L], crossed [N, 9] bool) -> dz [N, L]

Token order inside a tile is ``3*(dlat+1) + (dlon+1)`` (centre token 4, see
``mlscam.grid``); ``crossed`` flags tokens that came across a pole, which get a
learned embedding added. Both read only the tile, so one step needs a one-column
halo. The final projection starts near zero, so ``z[t+1] ~ z[t]`` at first.
"""
from __future__ import annotations

import threading
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from .layers import make_norm, mlp, shrink_init

__all__ = ["MLPMixer", "ConvMixer", "TOKENS"]

TOKENS = 9


class _Mixer(nn.Module):
    """Common part: the crossed-pole embedding and the input checks."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.crossed_embedding = nn.Parameter(0.02 * torch.randn(latent_dim))

    def check(self, tiles: torch.Tensor, crossed: torch.Tensor) -> None:
        if tiles.ndim != 3 or tiles.shape[1:] != (TOKENS, self.latent_dim) or crossed.shape != tiles.shape[:2]:
            raise ValueError(
                f"mixer expects tiles [N, 9, {self.latent_dim}] and crossed [N, 9], "
                f"got {tuple(tiles.shape)} and {tuple(crossed.shape)}"
            )

    def embed(self, tiles: torch.Tensor, crossed: torch.Tensor) -> torch.Tensor:
        """Add the crossed-pole embedding to flagged tokens: ``[N, 9, L] -> [N, 9, L]``."""
        self.check(tiles, crossed)
        return tiles + crossed.unsqueeze(-1).to(tiles.dtype) * self.crossed_embedding


class _ChannelBlock(nn.Module):
    """``x + MLP(norm(x))`` over the last (channel) dimension, width ``L -> hidden -> L``."""

    def __init__(self, width: int, hidden: int, norm_name: str, act: str):
        super().__init__()
        self.norm = make_norm(norm_name, width)
        self.mlp = mlp(width, hidden, 1, width, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


class _TokenBlock(nn.Module):
    """``x + token_mix(norm(x))``: per head, an MLP ``9 -> token_hidden -> 9`` across the tokens.

    The ``L`` channels are split into ``heads`` contiguous groups; each group has its own token MLP.
    """

    def __init__(self, width: int, heads: int, token_hidden: int, norm_name: str, act: str):
        super().__init__()
        self.heads = heads
        self.norm = make_norm(norm_name, width)
        self.mlps = nn.ModuleList(mlp(TOKENS, token_hidden, 1, TOKENS, act) for _ in range(heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N, 9, L] -> [N, 9, L]``."""
        h = self.norm(x).transpose(1, 2)  # [N, L, 9]
        groups = h.chunk(self.heads, dim=1)  # heads x [N, L/heads, 9]
        mixed = torch.cat([m(g) for m, g in zip(self.mlps, groups)], dim=1)
        return x + mixed.transpose(1, 2)


class MLPMixer(_Mixer):
    """The seed's MLP-mixer over the 9 tokens of a tile.

    ``blocks`` x (token mixing per head + residual, then a channel MLP on every
    token + residual); then a learned ``9 -> 1`` combination of the tokens and a
    channel MLP whose last Linear (``L``-wide output, started near zero) gives ``dz``.
    The channel MLPs run on all 9 tokens of every (overlapping) tile, 9x the
    channel-MLP work of ``ConvMixer``. No position embedding: the token MLPs
    already have separate weights for each of the 9 positions.
    """

    def __init__(self, latent_dim: int, *, blocks: int, heads: int, token_hidden: int,
                 channel_hidden: int, norm: str = "layer", activation: str = "gelu"):
        super().__init__(latent_dim)
        if heads < 1 or latent_dim % heads:
            raise ValueError(
                f"heads must divide latent_dim, got heads={heads}, latent_dim={latent_dim}; "
                "choose &model heads among the divisors of latent_dim"
            )
        self.blocks = nn.ModuleList(
            nn.Sequential(
                _TokenBlock(latent_dim, heads, token_hidden, norm, activation),
                _ChannelBlock(latent_dim, channel_hidden, norm, activation),
            )
            for _ in range(blocks)
        )
        self.collapse = nn.Linear(TOKENS, 1)
        self.out_norm = make_norm(norm, latent_dim)
        self.out = mlp(latent_dim, channel_hidden, 1, latent_dim, activation)
        shrink_init(self.out[-1])

    def forward(self, tiles: torch.Tensor, crossed: torch.Tensor) -> torch.Tensor:
        """``tiles [N, 9, L]``, ``crossed [N, 9]`` bool -> ``dz [N, L]`` of the centre column."""
        x = self.embed(tiles, crossed)
        for block in self.blocks:
            x = block(x)
        centre = self.collapse(x.transpose(1, 2)).squeeze(-1)  # [N, L]
        return self.out(self.out_norm(centre))


class ConvMixer(_Mixer):
    """Conv-style mixer: the stencil is applied once, then per-column channel MLPs.

    ``h = Linear(9L -> W)(flattened tile)``, then ``blocks`` residual channel MLPs
    ``W -> channel_hidden -> W`` on the one centre vector, then a norm and an output
    Linear ``W -> L`` (started near zero) giving ``dz``. ``W = stencil_width``
    (default ``L``): the stencil is the only place neighbours meet and it is
    linear, so ``W`` bounds how many stencil features (differences of each
    channel in each direction) the nonlinear blocks can combine.
    """

    def __init__(self, latent_dim: int, *, blocks: int, channel_hidden: int,
                 norm: str = "layer", activation: str = "gelu", stencil_width: int | None = None):
        super().__init__(latent_dim)
        width = stencil_width or latent_dim
        self.stencil_width = width
        self.stencil = nn.Linear(TOKENS * latent_dim, width)
        self.blocks = nn.ModuleList(
            _ChannelBlock(width, channel_hidden, norm, activation) for _ in range(blocks)
        )
        self.out_norm = make_norm(norm, width)
        self.out = shrink_init(nn.Linear(width, latent_dim))

    def pole_term(self) -> torch.Tensor:
        """``P [9, W]``, ``P[t] = W_t e``: the crossed-pole embedding through the stencil.

        It depends on the weights only, so without gradients (a rollout: one call per chunk of every step)
        it is kept and recomputed only when the stencil weight or the embedding change (another tensor, an
        in-place update such as an optimizer step or ``load_state_dict``, or new storage, dtype or device
        from ``.to()`` / ``.double()``); the same bits either way. With
        gradients, and while a CUDA graph is captured, it is computed on every call."""
        w, e = self.stencil.weight, self.crossed_embedding
        capturing = w.is_cuda and torch.cuda.is_current_stream_capturing()
        if torch.is_grad_enabled() or capturing:
            return self._pole_of(w, e)
        # a Parameter keeps its identity and version when .double() / .to() swap its .data: the storage,
        # dtype and device are part of the key
        state = tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in (w, e))
        cached = getattr(self, "_pole_cache", None)  # (weak refs to w and e, their state, P)
        if cached is None or cached[0]() is not w or cached[1]() is not e or cached[2] != state:
            cached = (weakref.ref(w), weakref.ref(e), state, self._pole_of(w, e))
            self._pole_cache = cached
        return cached[3]

    def _pole_of(self, w: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return torch.einsum("wtl,l->tw", w.view(-1, TOKENS, self.latent_dim), e)  # [9, W]

    def forward(self, tiles: torch.Tensor, crossed: torch.Tensor) -> torch.Tensor:
        """``tiles [N, 9, L]``, ``crossed [N, 9]`` bool -> ``dz [N, L]`` of the centre column."""
        self.check(tiles, crossed)
        if not torch.is_grad_enabled() and tiles.device.type == "cpu" and not torch.is_autocast_enabled("cpu"):
            return self._forward_in_place(tiles, crossed)
        # stencil(flatten(tiles + crossed * e)) = stencil(flatten(tiles)) + crossed @ P, P[t] = W_t e:
        # the pole embedding costs a [N, 9] x [9, W] product instead of a pass over [N, 9, L]
        h = torch.addmm(self.stencil(tiles.flatten(1)), crossed.to(tiles.dtype), self.pole_term())  # [N, W]
        for block in self.blocks:
            h = block(h)
        return self.out(self.out_norm(h))

    def _forward_in_place(self, tiles: torch.Tensor, crossed: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` without gradients, on the CPU, not under autocast: the same kernels on the same
        operands in the same order (``Linear`` is ``addmm(bias, x, W^T)``, the residual ``x + y`` is
        ``x.add_(y)``, the activation in place), hence the same bits, but the hidden activations go to buffers
        kept between calls instead of new tensors. A rollout calls this for every chunk of every step; with the
        gather buffer of ``mlscam.model.chunks.apply_plan`` the demo's step took 0.80-1.06x the time of the
        allocating one in side-by-side runs on one thread, 0.90 on a quiet machine
        (``benchmarks/step_speed_stage16H.txt``). Only the returned ``dz`` is a new tensor."""
        n = tiles.shape[0]
        key = (n, tiles.dtype, threading.get_ident())  # a thread's buffers are its own (fake ranks are threads)
        work = getattr(self, "_work", None)
        if work is None or work[0] != key:
            hidden = self.blocks[0].mlp[0].out_features if len(self.blocks) else 0  # the same in every block
            work = (key, tiles.new_empty(n, self.stencil_width), tiles.new_empty(n, hidden),
                    tiles.new_empty(n, self.stencil_width))
            self._work = work
        _, h, hid, y = work
        torch.addmm(self.stencil.bias, tiles.reshape(n, -1), self.stencil.weight.t(), out=h)
        h.addmm_(crossed.to(tiles.dtype), self.pole_term())
        for block in self.blocks:
            first, act, last = block.mlp
            torch.addmm(first.bias, block.norm(h), first.weight.t(), out=hid)
            _activation_(act, hid)
            torch.addmm(last.bias, hid, last.weight.t(), out=y)
            h.add_(y)
        return self.out(self.out_norm(h))


def _activation_(act: nn.Module, x: torch.Tensor) -> None:
    """``x <- act(x)`` in place, the same bits as ``act(x)`` (``mlscam.model.layers.ACTIVATIONS``)."""
    if isinstance(act, nn.GELU):
        torch.ops.aten.gelu_(x, approximate=act.approximate)
    elif isinstance(act, nn.SiLU):
        F.silu(x, inplace=True)
    else:
        raise TypeError(f"no in-place form of the activation {type(act).__name__}; add it to _activation_")

