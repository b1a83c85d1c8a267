"""Parameter and FLOP counts of the model summary, against hand arithmetic."""
from __future__ import annotations

import pytest
import torch

from mlscam.config import ModelConfig
from mlscam.layout import ColumnLayout
from mlscam.model import build_model, summarize

torch.set_num_threads(1)

# n_state = 2 variables x 3 levels + 1 surface = 7; n_static = 2 (sin_lat, cos_lat)
LAYOUT = ColumnLayout(("u", "t"), ("ps",), (0.2, 0.5, 0.9))
TINY = dict(latent_dim=8, encoder_hidden=16, encoder_layers=1, decoder_hidden=12, decoder_layers=2,
            mixer_blocks=2, heads=2, token_hidden=4, channel_hidden=16)

# Encoder: Linear(7+2 -> 16), Linear(16 -> 8), plus the linear skip Linear(9 -> 8, no bias)
ENC_PARAMS = (9 * 16 + 16) + (16 * 8 + 8) + 9 * 8  # 368
ENC_FLOPS = 2 * 9 * 16 + 2 * 16 * 8 + 2 * 9 * 8  # 688
# Decoder (and the tendency decoder): Linear(8 -> 12), Linear(12 -> 12), Linear(12 -> 7), skip Linear(8 -> 7, no bias)
DEC_PARAMS = (8 * 12 + 12) + (12 * 12 + 12) + (12 * 7 + 7) + 8 * 7  # 411
DEC_FLOPS = 2 * (8 * 12 + 12 * 12 + 12 * 7 + 8 * 7)  # 760
LN = 2 * 8  # LayerNorm(8): weight + bias


def _mlp_mixer_counts(ln: int) -> tuple[int, int]:
    token_block = ln + 2 * ((9 * 4 + 4) + (4 * 9 + 9))  # 2 heads, each MLP 9 -> 4 -> 9
    channel_block = ln + (8 * 16 + 16) + (16 * 8 + 8)  # 8 -> 16 -> 8
    final = (9 * 1 + 1) + ln + (8 * 16 + 16) + (16 * 8 + 8)  # tokens 9 -> 1, out-norm, 8 -> 16 -> 8
    params = 8 + 2 * (token_block + channel_block) + final  # + crossed-pole embedding [8]
    # Token MLP of a head is applied to its 8/2 = 4 channels; the channel MLP to all 9 tokens.
    token_flops = 2 * (2 * 9 * 4 * 4 + 2 * 4 * 9 * 4)
    channel_flops = 9 * (2 * 8 * 16 + 2 * 16 * 8)
    final_flops = 2 * 9 * 1 * 8 + 2 * 8 * 16 + 2 * 16 * 8
    return params, 2 * (token_flops + channel_flops) + final_flops


def _conv_mixer_counts(ln: int) -> tuple[int, int]:
    params = 8 + (72 * 8 + 8) + 2 * (ln + (8 * 16 + 16) + (16 * 8 + 8)) + ln + (8 * 8 + 8)
    flops = 2 * 72 * 8 + 2 * (2 * 8 * 16 + 2 * 16 * 8) + 2 * 8 * 8
    return params, flops


@pytest.mark.parametrize("mixer", ["mlp", "conv"])
@pytest.mark.parametrize("norm", ["layer", "none"])
def test_tiny_counts_by_hand(mixer, norm):
    model = build_model(ModelConfig(mixer=mixer, norm=norm, **TINY), LAYOUT)
    s = summarize(model, LAYOUT)
    ln = LN if norm == "layer" else 0
    mix_params, mix_flops = (_mlp_mixer_counts if mixer == "mlp" else _conv_mixer_counts)(ln)
    assert s.params == {"encoder": ENC_PARAMS, "mixer": mix_params, "decoder": DEC_PARAMS,
                        "tendency_decoder": DEC_PARAMS}
    assert s.flops == {"encoder": ENC_FLOPS, "mixer": mix_flops, "decoder": DEC_FLOPS,
                       "tendency_decoder": DEC_FLOPS}
    assert s.total_params == sum(p.numel() for p in model.parameters())


def test_tiny_numbers_spelled_out():
    # the arithmetic above, evaluated once by hand
    assert _mlp_mixer_counts(LN) == (1278, 12176)
    assert _conv_mixer_counts(LN) == (1272, 2304)
    assert (ENC_PARAMS, ENC_FLOPS, DEC_PARAMS, DEC_FLOPS) == (368, 688, 411, 760)


def test_default_config_formulas_and_conv_is_cheaper():
    cfg = ModelConfig()
    L, ch, nb, th, h = cfg.latent_dim, cfg.channel_hidden, cfg.mixer_blocks, cfg.token_hidden, cfg.heads
    conv = summarize(build_model(cfg, LAYOUT), LAYOUT).flops["mixer"]
    mlp = summarize(build_model(ModelConfig(mixer="mlp"), LAYOUT), LAYOUT).flops["mixer"]
    assert conv == 2 * 9 * L * L + nb * 4 * L * ch + 2 * L * L
    assert mlp == nb * (h * 4 * 9 * th * (L // h) + 9 * 4 * L * ch) + 2 * 9 * L + 4 * L * ch
    assert mlp > 7 * conv


def test_str_is_a_table():
    model = build_model(ModelConfig(mixer="conv", **TINY), LAYOUT)
    text = str(summarize(model, LAYOUT, chunk_size=64))
    for part in ("encoder", "mixer", "decoder", "tendency_decoder", "total"):
        assert part in text
    assert "ConvMixer" in text
    assert f"{sum(p.numel() for p in model.parameters()):,}" in text
    assert "2,304" in text and f"{2304 * 64:,}" in text


def test_conv_mixer_stencil_width_by_hand():
    # stencil 72 -> 12, two blocks 12 -> 16 -> 12 with LayerNorm(12), out-norm(12), out 12 -> 8
    model = build_model(ModelConfig(mixer="conv", stencil_width=12, **TINY), LAYOUT)
    s = summarize(model, LAYOUT)
    ln12 = 2 * 12
    params = 8 + (72 * 12 + 12) + 2 * (ln12 + (12 * 16 + 16) + (16 * 12 + 12)) + ln12 + (12 * 8 + 8)
    flops = 2 * 72 * 12 + 2 * (2 * 12 * 16 + 2 * 16 * 12) + 2 * 12 * 8
    assert (s.params["mixer"], s.flops["mixer"]) == (params, flops) == (1884, 3456)
    # 0 (the default) means latent_dim: the same model as before the option existed
    same = build_model(ModelConfig(mixer="conv", stencil_width=8, **TINY), LAYOUT)
    default = build_model(ModelConfig(mixer="conv", **TINY), LAYOUT)
    assert {k: v.shape for k, v in same.state_dict().items()} == {k: v.shape for k, v in default.state_dict().items()}
