"""The latent model: shapes, the chunk engine's bit-for-bit independence of the
split, the receptive field of a step, and the rollout's encode/decode discipline."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlscam.config import ModelConfig
from mlscam.emulator import Emulator
from mlscam.grid import TOKEN_OFFSETS, LatLonGrid, neighbour
from mlscam.layout import ColumnLayout
from mlscam.model import (ColumnDecoder, ColumnEncoder, ConvMixer, MLPMixer, TendencyDecoder,
                          advance_columns, build_model)
from mlscam.normalization import Normalization

torch.set_num_threads(1)

LAYOUT = ColumnLayout(("u", "t"), ("ps",), (0.2, 0.5, 0.9))  # n_state 7, n_static 2
TINY = dict(latent_dim=8, encoder_hidden=16, encoder_layers=1, decoder_hidden=16, decoder_layers=1,
            mixer_blocks=2, heads=2, token_hidden=8, channel_hidden=16)
MIXERS = ["mlp", "conv"]


def make_emulator(mixer="conv", norm="layer", nlat=6, nlon=12, chunk_size=64, seed=0) -> Emulator:
    torch.manual_seed(seed)
    model = build_model(ModelConfig(mixer=mixer, norm=norm, **TINY), LAYOUT)
    rng = np.random.default_rng(seed)
    n = LAYOUT.n_state
    stats = Normalization(rng.normal(size=n), rng.uniform(0.5, 2, n), rng.normal(size=n), rng.uniform(0.5, 2, n))
    return Emulator(model, LAYOUT, LatLonGrid.equiangular(nlat, nlon), stats, 21600.0, chunk_size=chunk_size)


def random_state(em: Emulator, *lead: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*lead, em.grid.nlat, em.grid.nlon, LAYOUT.n_state, generator=g)


# -- shapes ----------------------------------------------------------------------
def test_part_shapes():
    enc = ColumnEncoder(7, 2, 8, hidden=16, layers=2, activation="silu")
    assert enc(torch.randn(3, 5, 7), torch.randn(3, 5, 2)).shape == (3, 5, 8)
    assert ColumnDecoder(8, 7, hidden=16, layers=0, activation="gelu")(torch.randn(4, 8)).shape == (4, 7)
    assert TendencyDecoder(8, 7, hidden=16, layers=1, activation="gelu")(torch.randn(2, 3, 8)).shape == (2, 3, 7)
    with pytest.raises(ValueError, match=r"encoder expects \[\.\.\., 7\] state"):
        enc(torch.randn(3, 6), torch.randn(3, 2))


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_mixer_shapes(norm):
    tiles, crossed = torch.randn(5, 9, 8), torch.zeros(5, 9, dtype=torch.bool)
    mlp = MLPMixer(8, blocks=2, heads=4, token_hidden=6, channel_hidden=16, norm=norm)
    conv = ConvMixer(8, blocks=3, channel_hidden=16, norm=norm)
    assert mlp(tiles, crossed).shape == (5, 8)
    assert conv(tiles, crossed).shape == (5, 8)
    with pytest.raises(ValueError, match=r"tiles \[N, 9, 8\]"):
        conv(torch.randn(5, 8, 8), crossed[:, :8])


@pytest.mark.parametrize("mixer", MIXERS)
def test_emulator_shapes(mixer):
    em = make_emulator(mixer)
    x = random_state(em, 2)
    z = em.encode(x)
    assert z.shape == (2, 6, 12, 8)
    assert em.step(z, 3).shape == z.shape
    assert em.decode(z).shape == x.shape
    assert em.decode_tendency(em.step(z) - z).shape == x.shape
    assert em.encode(x[0]).shape == (6, 12, 8)  # no batch dimension
    with pytest.raises(ValueError, match=r"x must be \[\.\.\., 6, 12, 7\]"):
        em.encode(torch.randn(6, 11, 7))


def test_bad_choices_name_the_valid_ones():
    # the &model group refuses bad values when the namelist is read ...
    with pytest.raises(ValueError, match=r"model.mixer = 'conf': must be one of 'mlp', 'conv'"):
        ModelConfig(mixer="conf")
    # ... and the layers themselves refuse them when built directly
    with pytest.raises(ValueError, match=r"unknown norm 'batch'; valid: \['layer', 'none'\]"):
        ConvMixer(8, blocks=1, channel_hidden=8, norm="batch")
    with pytest.raises(ValueError, match=r"unknown activation 'relu'"):
        ConvMixer(8, blocks=1, channel_hidden=8, activation="relu")
    with pytest.raises(ValueError, match="heads must divide latent_dim, got heads=3, latent_dim=8"):
        MLPMixer(8, blocks=1, heads=3, token_hidden=4, channel_hidden=8)


# -- stepping ----------------------------------------------------------------------
@pytest.mark.parametrize("mixer", MIXERS)
def test_step_is_residual_and_composes(mixer):
    em = make_emulator(mixer)
    z = em.encode(random_state(em))
    assert torch.equal(em.step(z, 0), z)
    assert torch.equal(em.step(z, 2), em.step(em.step(z)))
    st = em.grid.stencil()
    flat = z.reshape(1, -1, 8)
    tiles = flat[0][torch.tensor(st.index)]  # [ncol, 9, L], gathered without the chunk engine
    dz = em.model.mixer(tiles, torch.tensor(st.crossed_pole))
    torch.testing.assert_close(em.step(z).reshape(-1, 8), flat[0] + dz)


@pytest.mark.parametrize("mixer", MIXERS)
def test_start_is_near_identity(mixer):
    """The final projection starts near zero: dz is small against a default-initialised one."""
    em = make_emulator(mixer)
    z = em.encode(random_state(em))
    small = (em.step(z) - z).abs().mean()
    final = em.model.mixer.out[-1] if mixer == "mlp" else em.model.mixer.out
    final.reset_parameters()
    assert small < 0.05 * (em.step(z) - z).abs().mean()


@pytest.mark.decomposition
@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize("chunk_size", [7, 64])
def test_chunked_stepping_is_bit_for_bit(mixer, chunk_size):
    em = make_emulator(mixer)
    st = em.grid.stencil()
    index, crossed = torch.tensor(st.index), torch.tensor(st.crossed_pole)
    z = em.encode(random_state(em, 2)).reshape(2, -1, 8)
    with torch.no_grad():
        whole = advance_columns(em.model.mixer, z, index, crossed, chunk_size)
        # uneven subsets of centre columns, one call each, taken out of order
        bounds = [0, 5, 23, 24, 61, 72]
        for a, b in reversed(list(zip(bounds[:-1], bounds[1:]))):
            part = advance_columns(em.model.mixer, z, index[a:b], crossed[a:b], chunk_size)
            assert torch.equal(part, whole[:, a:b])
        # one sample alone gives the same bits as inside the batch
        assert torch.equal(advance_columns(em.model.mixer, z[1:], index, crossed, chunk_size), whole[1:])
        # a rank-like call: a band of rows, tiles gathered from a local + halo buffer
        centres = torch.arange(2 * 12, 4 * 12)  # rows 2..3
        needed = torch.unique(index[centres])
        local = {int(c): k for k, c in enumerate(needed)}
        local_index = torch.tensor([[local[int(c)] for c in row] for row in index[centres]])
        part = advance_columns(em.model.mixer, z[:, needed], local_index, crossed[centres], chunk_size)
        assert torch.equal(part, whole[:, centres])
    # and the Emulator's whole-globe step is the same computation
    em.chunk_size = chunk_size
    assert torch.equal(em.step(z.reshape(2, 6, 12, 8)).reshape(2, -1, 8), z + whole)


def test_advance_columns_is_differentiable():
    torch.manual_seed(0)
    mixer = ConvMixer(4, blocks=1, channel_hidden=8)
    st = LatLonGrid.equiangular(4, 8).stencil()
    index, crossed = torch.tensor(st.index), torch.tensor(st.crossed_pole)
    z = torch.randn(1, 32, 4, dtype=torch.float64, requires_grad=True)
    mixer.double()
    grad_chunked, = torch.autograd.grad(advance_columns(mixer, z, index, crossed, 5).square().sum(), z)
    grad_direct, = torch.autograd.grad(mixer(z[0][index], crossed).square().sum(), z)
    torch.testing.assert_close(grad_chunked, grad_direct)
    assert grad_chunked.abs().sum() > 0


def test_advance_columns_checks_its_inputs():
    mixer = ConvMixer(4, blocks=1, channel_hidden=8)
    z = torch.zeros(1, 10, 4)
    ok_index = torch.zeros(3, 9, dtype=torch.int64)
    ok_crossed = torch.zeros(3, 9, dtype=torch.bool)
    with pytest.raises(IndexError, match=r"must lie in \[0, 10\).*got values in \[0, 10\]"):
        bad = ok_index.clone()
        bad[1, 4] = 10
        advance_columns(mixer, z, bad, ok_crossed, 4)
    with pytest.raises(ValueError, match=r"both be \[ncent, 9\]"):
        advance_columns(mixer, z, ok_index[:, :8], ok_crossed, 4)
    assert advance_columns(mixer, z, ok_index[:0], ok_crossed[:0], 4).shape == (1, 0, 4)


# -- receptive field -----------------------------------------------------------------
def tile_cols(j: int, i: int, nlat: int, nlon: int) -> set[tuple[int, int]]:
    return {neighbour(j, i, dl, dn, nlat, nlon)[:2] for dl, dn in TOKEN_OFFSETS}


def reached(c: tuple[int, int], steps: int, nlat: int, nlon: int) -> set[tuple[int, int]]:
    """Columns whose value after ``steps`` steps depends on column ``c`` (from ``neighbour`` only)."""
    cells = [(j, i) for j in range(nlat) for i in range(nlon)]
    reach = {c}
    for _ in range(steps):
        reach = {d for d in cells if tile_cols(*d, nlat, nlon) & reach}
    return reach


@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize("centre", [(3, 5), (0, 2), (5, 0), (2, 11), (0, 11)],
                         ids=["interior", "south-pole-row", "north-pole-row-seam", "seam", "south-pole-seam"])
def test_receptive_field(mixer, centre):
    em = make_emulator(mixer)
    nlat, nlon = em.grid.shape
    z = em.encode(random_state(em))
    kicked = z.clone()
    kicked[centre] += 3.0 * torch.randn(8, generator=torch.Generator().manual_seed(5))
    for steps, interior_size in ((1, 9), (2, 25)):
        diff = (em.step(kicked, steps) != em.step(z, steps)).any(-1)
        changed = {(int(j), int(i)) for j, i in diff.nonzero()}
        expected = reached(centre, steps, nlat, nlon)
        assert changed == expected
        if centre == (3, 5):
            assert expected == {(3 + a, 5 + b) for a in range(-steps, steps + 1) for b in range(-steps, steps + 1)}
            assert len(expected) == interior_size


def test_reach_includes_the_pole_fold():
    # beyond the south pole, (0, 2) sees row 0 at longitudes 2+6-1 .. 2+6+1 on a 6 x 12 grid
    assert reached((0, 2), 1, 6, 12) == {(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (0, 7), (0, 8), (0, 9)}


# -- norm 'none' and the crossed-pole embedding ------------------------------------------------
@pytest.mark.parametrize("mixer", MIXERS)
def test_norm_none_works(mixer):
    em = make_emulator(mixer, norm="none")
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in em.model.modules())
    x = random_state(em)
    out = [x_t for _, x_t in em.rollout(x, 4, output_every=2)]
    assert len(out) == 2 and all(torch.isfinite(o).all() for o in out)
    assert not torch.equal(em.step(em.encode(x)), em.encode(x))


@pytest.mark.parametrize("mixer", MIXERS)
def test_crossed_pole_embedding_is_used(mixer):
    em = make_emulator(mixer)
    mix = em.model.mixer
    tiles = torch.randn(4, 9, 8)
    plain = torch.zeros(4, 9, dtype=torch.bool)
    flagged = plain.clone()
    flagged[:, :3] = True
    with torch.no_grad():
        assert not torch.equal(mix(tiles, flagged), mix(tiles, plain))
        # through a step: changing the embedding changes exactly the two pole rows
        z = em.encode(random_state(em))
        before = em.step(z)
        # a non-uniform change (a uniform shift of all channels is invisible behind a LayerNorm)
        mix.crossed_embedding.add_(torch.linspace(-1.0, 1.0, mix.crossed_embedding.numel()))
        rows_changed = (em.step(z) != before).any(-1).any(-1)
    assert rows_changed.tolist() == [True, False, False, False, False, True]


# -- rollout -------------------------------------------------------------------------------
class CallCounter:
    """Wraps a module's forward; records its inputs and outputs."""

    def __init__(self, module: torch.nn.Module):
        self.inputs, self.outputs = [], []
        original = module.forward

        def forward(*args):
            out = original(*args)
            self.inputs.append(args[0].clone())
            self.outputs.append(out.clone())
            return out

        module.forward = forward


@pytest.mark.parametrize("n_steps,every,expected_steps", [(7, 3, [3, 6]), (6, 2, [2, 4, 6]), (2, 5, [])])
def test_rollout_encodes_once_and_decodes_only_at_output_steps(n_steps, every, expected_steps):
    em = make_emulator("conv")
    x0 = random_state(em)
    reference = em.encode(x0)  # before counting: what a single encode gives
    enc, dec = CallCounter(em.model.encoder), CallCounter(em.model.decoder)
    mixer_calls = CallCounter(em.model.mixer)
    out = list(em.rollout(x0, n_steps, output_every=every))
    assert [s for s, _ in out] == expected_steps
    # encoder/decoder run in fixed-size chunks of columns: one encode = n_chunks calls
    n_rows = x0[..., 0].numel()
    n_chunks = -(-n_rows // em.chunk_size)
    rows = lambda calls: torch.cat(calls)[:n_rows]  # noqa: E731 - drop the padding rows
    assert len(enc.inputs) == n_chunks  # exactly one encode ...
    normalised_x0 = ((x0 - em.engine.norm.state_mean) / em.engine.norm.state_std).reshape(n_rows, -1)
    assert torch.equal(rows(enc.inputs), normalised_x0)  # ... of the initial state, not of a decoded one
    assert len(dec.inputs) == len(expected_steps) * n_chunks
    assert len(mixer_calls.inputs) == (expected_steps[-1] if expected_steps else 0) * n_chunks
    for k, (s, x) in enumerate(out):
        z_in = rows(dec.inputs[k * n_chunks:(k + 1) * n_chunks])
        assert torch.equal(z_in, em.step(reference, s).reshape(n_rows, -1))  # decoded from the latent trajectory
        assert torch.equal(x, em.decode(em.step(reference, s)))


def test_rollout_rejects_bad_arguments():
    em = make_emulator("conv")
    with pytest.raises(ValueError, match="output_every >= 1, got 7 and 0"):
        next(em.rollout(random_state(em), 7, output_every=0))


@pytest.mark.decomposition
def test_encode_and_decode_of_column_subsets_equal_whole_globe_bit_for_bit():
    from mlscam.model.chunks import map_columns

    em = make_emulator("conv", chunk_size=7)
    x = random_state(em, 2)
    xn = ((x - em.engine.norm.state_mean) / em.engine.norm.state_std).reshape(2, -1, LAYOUT.n_state)
    static = em.engine.static.expand(2, -1, -1)
    with torch.no_grad():
        whole = map_columns(em.model.encoder, xn, static, chunk_size=7)
        for cols in (torch.arange(5), torch.arange(13, 50), torch.tensor([71, 0, 33])):
            part = map_columns(em.model.encoder, xn[:, cols], static[:, cols], chunk_size=7)
            assert torch.equal(part, whole[:, cols])
            dec_part = map_columns(em.model.decoder, whole[:, cols], chunk_size=7)
            assert torch.equal(dec_part, map_columns(em.model.decoder, whole, chunk_size=7)[:, cols])


def test_conv_mixer_folds_the_pole_embedding_into_the_stencil():
    """ConvMixer adds ``crossed @ (W_t e)`` after the stencil instead of ``e`` to every flagged token
    before it: the same function (the stencil is linear)."""
    torch.manual_seed(3)
    from mlscam.model.mixer import ConvMixer

    mix = ConvMixer(8, blocks=1, channel_hidden=16, stencil_width=12).double()
    with torch.no_grad():
        mix.crossed_embedding.normal_()
        mix.out.weight.normal_()
    tiles = torch.randn(5, 9, 8, dtype=torch.float64)
    crossed = torch.rand(5, 9) < 0.4
    explicit = mix.stencil(mix.embed(tiles, crossed).flatten(1))
    for block in mix.blocks:
        explicit = block(explicit)
    explicit = mix.out(mix.out_norm(explicit))
    assert torch.allclose(mix(tiles, crossed), explicit, rtol=1e-12, atol=1e-12)


def test_conv_mixer_keeps_its_pole_term_without_gradients_and_follows_every_weight_change():
    """Without gradients the pole term ``P = W_t e`` is computed once and kept (a rollout calls the mixer
    once per chunk of every step); an in-place update of either weight, a new weight tensor or a cast
    recomputes it; the results are those of a fresh computation, bit for bit."""
    torch.manual_seed(4)
    from mlscam.model.mixer import ConvMixer

    mix = ConvMixer(8, blocks=1, channel_hidden=16, stencil_width=12)
    with torch.no_grad():
        mix.crossed_embedding.normal_()
        mix.out.weight.normal_()
    tiles, crossed = torch.randn(5, 9, 8), torch.rand(5, 9) < 0.4

    def fresh():  # with gradients the term is always computed anew
        with torch.enable_grad():
            return mix(tiles, crossed).detach()

    with torch.no_grad():
        first = mix.pole_term()
        assert mix.pole_term() is first  # kept
        assert torch.equal(mix(tiles, crossed), fresh())
        mix.crossed_embedding.add_(0.5)  # an optimizer-like in-place step
        assert mix.pole_term() is not first
        assert torch.equal(mix(tiles, crossed), fresh())
        mix.stencil.weight.mul_(1.5)
        assert torch.equal(mix(tiles, crossed), fresh())
        mix.stencil.weight = torch.nn.Parameter(torch.randn_like(mix.stencil.weight))
        assert torch.equal(mix(tiles, crossed), fresh())
        mix.load_state_dict(ConvMixer(8, blocks=1, channel_hidden=16, stencil_width=12).state_dict())
        assert torch.equal(mix(tiles, crossed), fresh())
        mix.double()  # the same Parameter objects, their .data swapped: not a version bump
        tiles = tiles.double()
        assert mix.pole_term().dtype == torch.float64
        assert torch.equal(mix(tiles, crossed), fresh())
    with torch.enable_grad():
        out = mix(tiles, crossed).sum()
        out.backward()
    assert mix.crossed_embedding.grad is not None and mix.crossed_embedding.grad.abs().sum() > 0


@pytest.mark.parametrize("mixer", MIXERS)
def test_model_config_builds_the_same_model_as_build_model(mixer):
    cfg = ModelConfig(mixer=mixer, **TINY)
    torch.manual_seed(3)
    built = cfg.build(LAYOUT)
    torch.manual_seed(3)
    reference = build_model(cfg, LAYOUT)
    assert type(built.mixer) is type(reference.mixer) and built.latent_dim == 8 and built.n_state == LAYOUT.n_state
    ref = reference.state_dict()
    assert built.state_dict().keys() == ref.keys()
    assert all(torch.equal(v, ref[k]) for k, v in built.state_dict().items())


@pytest.mark.parametrize("activation", ["gelu", "silu"])
@pytest.mark.parametrize("norm", ["layer", "none"])
def test_conv_mixer_without_gradients_gives_the_bits_of_the_autograd_path(activation, norm):
    """The CPU inference path (hidden activations in buffers kept between calls) computes what the training
    path computes, bit for bit, call after call with other inputs (the buffers are refilled, never read stale)."""
    torch.manual_seed(0)
    mixer = ConvMixer(8, blocks=2, channel_hidden=24, stencil_width=12, norm=norm, activation=activation)
    with torch.no_grad():
        for p in mixer.parameters():  # away from the near-zero start of the output layer
            p.add_(0.2 * torch.randn_like(p))
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        tiles = torch.randn(40, 9, 8, generator=g)
        crossed = torch.rand(40, 9, generator=g) < 0.2
        with torch.enable_grad():
            reference = mixer(tiles, crossed)
        assert reference.requires_grad
        with torch.no_grad():
            fast = mixer(tiles, crossed)
        assert not fast.requires_grad and torch.equal(fast, reference)


def test_a_mixer_returning_a_view_of_its_tiles_survives_the_reused_gather_buffer():
    """Without gradients the chunks' tiles are gathered into one buffer; a result that is a view of it is
    copied before the next chunk overwrites it."""
    st = LatLonGrid.equiangular(4, 8).stencil()
    index, crossed = torch.tensor(st.index), torch.tensor(st.crossed_pole)
    z = torch.randn(1, 32, 4, generator=torch.Generator().manual_seed(1))

    def north_neighbour(tiles, crossed):  # token 1: (dlat -1, dlon 0), a view of the tiles
        return tiles[:, 1]

    with torch.no_grad():
        out = advance_columns(north_neighbour, z, index, crossed, 8)
    assert torch.equal(out[0], z[0][index[:, 1]])
