"""The latent model: encoder, mixer, decoder and tendency decoder, built from the ``&model`` sizes.

The model layer does not import ``mlscam.config`` (config is the layer above):
:func:`build_model` takes any object with the fields of ``mlscam.config.ModelConfig``,
whose ``build(layout)`` calls it.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from mlscam.layout import ColumnLayout

from .chunks import advance_columns
from .decoder import ColumnDecoder, TendencyDecoder
from .encoder import ColumnEncoder
from .mixer import ConvMixer, MLPMixer

__all__ = ["LatentModel", "build_model", "advance_columns", "MIXERS"]

MIXERS = ("mlp", "conv")


class LatentModel(nn.Module):
    """The four trainable parts; training and inference both call them through ``mlscam.model.engine.Engine``.

    Attributes:
      encoder: ``x_n [..., n_state], static [..., n_static] -> z [..., L]``.
      mixer: ``tiles [N, 9, L], crossed [N, 9] -> dz [N, L]`` (use ``advance_columns`` for whole fields).
      decoder: ``z [..., L] -> x_n [..., n_state]``.
      tendency_decoder: ``dz [..., L] -> normalised tendency [..., n_state]``.
    """

    def __init__(self, encoder: ColumnEncoder, mixer: nn.Module, decoder: ColumnDecoder,
                 tendency_decoder: TendencyDecoder):
        super().__init__()
        latent = encoder.latent_dim
        if not (mixer.latent_dim == decoder.latent_dim == tendency_decoder.latent_dim == latent):
            raise ValueError(
                f"latent widths differ: encoder {latent}, mixer {mixer.latent_dim}, "
                f"decoder {decoder.latent_dim}, tendency decoder {tendency_decoder.latent_dim}"
            )
        if not (decoder.n_state == tendency_decoder.n_state == encoder.n_state):
            raise ValueError(
                f"state widths differ: encoder {encoder.n_state}, decoder {decoder.n_state}, "
                f"tendency decoder {tendency_decoder.n_state}"
            )
        self.encoder, self.mixer = encoder, mixer
        self.decoder, self.tendency_decoder = decoder, tendency_decoder

    @property
    def latent_dim(self) -> int:
        return self.encoder.latent_dim

    @property
    def n_state(self) -> int:
        return self.encoder.n_state

    @property
    def n_static(self) -> int:
        return self.encoder.n_static


def build_model(cfg: Any, layout: ColumnLayout) -> LatentModel:
    """A freshly initialised ``LatentModel`` sized by ``cfg`` for the columns of ``layout``.

    ``cfg``: the ``&model`` group (``mlscam.config.ModelConfig``; ``cfg.build(layout)`` is the
    same call) or any object with its fields ``latent_dim``, ``encoder_hidden``, ``encoder_layers``,
    ``decoder_hidden``, ``decoder_layers``, ``mixer``, ``mixer_blocks``, ``heads``, ``token_hidden``,
    ``channel_hidden``, ``stencil_width``, ``norm`` and ``activation``.
    """
    latent, act = cfg.latent_dim, cfg.activation
    if cfg.mixer == "mlp":
        mixer: nn.Module = MLPMixer(
            latent, blocks=cfg.mixer_blocks, heads=cfg.heads, token_hidden=cfg.token_hidden,
            channel_hidden=cfg.channel_hidden, norm=cfg.norm, activation=act,
        )
    elif cfg.mixer == "conv":
        mixer = ConvMixer(latent, blocks=cfg.mixer_blocks, channel_hidden=cfg.channel_hidden, norm=cfg.norm,
                          activation=act, stencil_width=cfg.stencil_width or latent)
    else:
        raise ValueError(f"unknown mixer {cfg.mixer!r}; valid: {list(MIXERS)} (&model mixer)")
    return LatentModel(
        ColumnEncoder(layout.n_state, layout.n_static, latent, cfg.encoder_hidden, cfg.encoder_layers, act),
        mixer,
        ColumnDecoder(latent, layout.n_state, cfg.decoder_hidden, cfg.decoder_layers, act),
        TendencyDecoder(latent, layout.n_state, cfg.decoder_hidden, cfg.decoder_layers, act),
    )
