"""Tests of mlscam.losses: closed forms, the reduce (tile-parallel) contract, the combined loss."""
from __future__ import annotations

import math
import threading

import pytest
import torch

from mlscam.config import LossConfig
from mlscam.losses import (
    LossComputer,
    barlow_twins_loss,
    ccc_loss,
    ccc_per_channel,
    mae_loss,
    mse_loss,
    vicreg_loss,
)

torch.set_num_threads(1)
F64 = torch.float64


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


def randn(*shape, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=F64)


# ---------------------------------------------------------------- CCC
def test_ccc_of_identical_fields_is_zero_loss():
    x = randn(2, 12, 3)
    assert abs(float(ccc_loss(x, x.clone()))) < 1e-7
    assert torch.allclose(ccc_per_channel(x, x.clone()), torch.ones(3, dtype=F64), rtol=0, atol=1e-7)


def test_ccc_of_scaled_and_shifted_field_by_hand():
    # p = [-3, -1, 1, 3]: mean 0, population variance (9 + 1 + 1 + 9) / 4 = 5.
    # t = 2 p + 1: cov = 2 * 5 = 10, var_t = 4 * 5 = 20, (mean_p - mean_t)^2 = 1.
    # CCC = 2 * 10 / (5 + 20 + 1) = 20 / 26 = 10 / 13.
    p = t64([[-3.0], [-1.0], [1.0], [3.0]])
    t = 2.0 * p + 1.0
    assert float(ccc_per_channel(p, t, eps=0.0)[0]) == pytest.approx(10 / 13, rel=1e-14)
    assert float(ccc_loss(p, t, eps=0.0)) == pytest.approx(3 / 13, rel=1e-14)
    # the default eps changes it by a relative eps / denominator = 1e-8 / 26
    assert float(ccc_per_channel(p, t)[0]) == pytest.approx(10 / 13, rel=1e-9)


def test_ccc_is_per_channel_and_pools_sample_dimensions():
    p0 = t64([-3.0, -1.0, 1.0, 3.0])
    other = randn(4, seed=1)
    p = torch.stack([p0, other], -1)  # [ncol=4, C=2]
    t = torch.stack([2.0 * p0 + 1.0, other], -1)
    ccc = ccc_per_channel(p, t, eps=0.0)
    assert torch.allclose(ccc, t64([10 / 13, 1.0]), rtol=1e-14, atol=0)
    assert float(ccc_loss(p, t, eps=0.0)) == pytest.approx((3 / 13 + 0.0) / 2, rel=1e-13)
    # changing channel 1 leaves channel 0 alone
    t2 = t.clone()
    t2[:, 1] = randn(4, seed=2) * 10.0
    assert float(ccc_per_channel(p, t2, eps=0.0)[0]) == float(ccc[0])
    # leading dimensions are samples: [2, 2, C] pools exactly like [4, C]
    assert torch.allclose(ccc_per_channel(p.reshape(2, 2, 2), t.reshape(2, 2, 2), eps=0.0), ccc, rtol=1e-14)


def test_ccc_area_weights_two_latitudes_by_hand():
    # A 2 lat x 2 lon field, columns (south, south, north, north), weights (1, 1, 3, 3); W = 8.
    p = t64([[0.0], [0.0], [1.0], [1.0]])
    t = t64([[0.0], [0.0], [1.0], [2.0]])
    w = t64([1.0, 1.0, 3.0, 3.0])
    # weighted: mean_p = 6/8, mean_t = 9/8, var_p = 6/8 - 36/64 = 12/64, var_t = 15/8 - 81/64 = 39/64,
    # cov = 9/8 - (6/8)(9/8) = 18/64, (mean_p - mean_t)^2 = 9/64  ->  CCC = 36/64 / (60/64) = 0.6
    assert float(ccc_per_channel(p, t, weights=w, eps=0.0)[0]) == pytest.approx(0.6, rel=1e-14)
    # unweighted: mean_p = 1/2, mean_t = 3/4, var_p = 1/4, var_t = 11/16, cov = 3/8, diff^2 = 1/16 -> 0.75
    assert float(ccc_per_channel(p, t, eps=0.0)[0]) == pytest.approx(0.75, rel=1e-14)
    # weights are relative: scaling them changes nothing; integer weights == repeated columns
    assert float(ccc_per_channel(p, t, weights=7.0 * w, eps=0.0)[0]) == pytest.approx(0.6, rel=1e-14)
    rep = torch.tensor([0, 1, 2, 2, 2, 3, 3, 3])
    assert float(ccc_per_channel(p[rep], t[rep], eps=0.0)[0]) == pytest.approx(0.6, rel=1e-14)


def test_ccc_constant_equal_fields_are_finite():
    x = torch.ones(5, 2, dtype=F64, requires_grad=True)
    loss = ccc_loss(x, torch.ones(5, 2, dtype=F64))
    assert float(loss.detach()) == 1.0  # eps guard: CCC = 0 / eps = 0
    (g,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(g).all()


def test_shape_and_weight_errors_are_clear():
    with pytest.raises(ValueError, match=r"same shape, got \(4, 2\) and \(4, 3\)"):
        ccc_loss(randn(4, 2), randn(4, 3))
    with pytest.raises(ValueError, match=r"weights of shape \(3,\) do not broadcast"):
        mse_loss(randn(4, 2), randn(4, 2), weights=torch.ones(3, dtype=F64))


# ---------------------------------------------------------------- MSE / MAE
def test_mse_and_mae_closed_forms():
    pred = torch.zeros(3, 2, dtype=F64)
    target = t64([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    assert float(mse_loss(pred, target)) == pytest.approx(30 / 6, rel=1e-15)
    assert float(mae_loss(pred, target)) == pytest.approx(10 / 6, rel=1e-15)
    w = t64([1.0, 1.0, 2.0])  # sum w (e^2) = 5 + 25 + 0 = 30 over C * sum w = 2 * 4 = 8
    assert float(mse_loss(pred, target, weights=w)) == pytest.approx(30 / 8, rel=1e-15)
    assert float(mae_loss(pred, target, weights=w)) == pytest.approx(10 / 8, rel=1e-15)


# ---------------------------------------------------------------- Barlow Twins
def _whitened(n: int, d: int, seed: int) -> torch.Tensor:
    """[n, d] with zero-mean, unit-variance, mutually uncorrelated columns."""
    x = randn(n, d, seed=seed)
    x = x - x.mean(0)
    q, _ = torch.linalg.qr(x)
    return q * math.sqrt(n)


def test_barlow_twins_identical_standardized_is_zero_independent_is_not():
    a = _whitened(32, 4, seed=3)
    assert float(barlow_twins_loss(a, a.clone())) < 1e-8  # D (eps/(1+eps))^2 = 4e-10
    b = _whitened(32, 4, seed=4)
    assert float(barlow_twins_loss(a, b)) > 1.0


def test_barlow_twins_by_hand():
    # a = b with two identical dimensions: C = [[1, 1], [1, 1]] -> loss = 0 + lambda * 2
    x = randn(10, seed=5)
    a = torch.stack([x, x], -1)
    assert float(barlow_twins_loss(a, a, lambda_offdiag=0.1, eps=0.0)) == pytest.approx(0.2, rel=1e-12)
    # b = -a: C = -[[1, 1], [1, 1]] -> loss = 2 * (1 - (-1))^2 + lambda * 2 = 8 + 2 lambda
    assert float(barlow_twins_loss(a, -a, lambda_offdiag=0.1, eps=0.0)) == pytest.approx(8.2, rel=1e-12)
    # standardisation makes it invariant to per-dimension scale and shift
    y = randn(10, 2, seed=6)
    ref = barlow_twins_loss(a, y, eps=0.0)
    scaled = barlow_twins_loss(a * t64([3.0, 0.5]) + 7.0, y - 2.0, eps=0.0)
    assert float(scaled) == pytest.approx(float(ref), rel=1e-12)


# ---------------------------------------------------------------- VICReg
def test_vicreg_terms_by_hand():
    a = t64([[0.5, 1.0], [-0.5, 0.0], [0.5, 0.0], [-0.5, -1.0]])
    b = torch.zeros(4, 2, dtype=F64)
    # N = 4, D = 2, column means 0.  Unbiased covariance of a:
    #   K00 = 4 * 0.25 / 3 = 1/3,  K11 = (1 + 1) / 3 = 2/3,  K01 = (0.5 + 0.5) / 3 = 1/3;  K(b) = 0.
    # invariance = sum a^2 / (N D) = (1 + 2) / 8 = 3/8
    # variance = [ (relu(1 - sqrt(1/3 + eps)) + relu(1 - sqrt(2/3 + eps))) / 2
    #              + (relu(1 - sqrt(eps)) * 2) / 2 ] / 2,   eps = 1e-4, sqrt(eps) = 0.01
    # covariance = (K01^2 + K10^2) / D + 0 = (2/9) / 2 = 1/9
    var_a = ((1 - math.sqrt(1 / 3 + 1e-4)) + (1 - math.sqrt(2 / 3 + 1e-4))) / 2
    variance = (var_a + 0.99) / 2
    out = vicreg_loss(a, b)
    assert float(out["invariance"]) == pytest.approx(3 / 8, rel=1e-14)
    assert float(out["variance"]) == pytest.approx(variance, rel=1e-14)
    assert float(out["covariance"]) == pytest.approx(1 / 9, rel=1e-14)
    assert float(out["total"]) == pytest.approx(25 * 3 / 8 + 25 * variance + 1 / 9, rel=1e-14)
    custom = vicreg_loss(a, b, sim=2.0, var=3.0, cov=4.0)
    assert float(custom["total"]) == pytest.approx(2 * 3 / 8 + 3 * variance + 4 / 9, rel=1e-14)
    # gamma = 0.1: every std of a exceeds it, b's 0.01 does not
    assert float(vicreg_loss(a, b, gamma=0.1)["variance"]) == pytest.approx((0.0 + 0.09) / 2, rel=1e-12)


# ---------------------------------------------------------------- gradients
def test_gradcheck_ccc_and_barlow():
    p = randn(2, 3, 2, seed=7).requires_grad_()
    t = randn(2, 3, 2, seed=8).requires_grad_()
    w = t64([1.0, 2.0, 0.5])
    assert torch.autograd.gradcheck(lambda p, t: ccc_loss(p, t, weights=w), (p, t))
    a = randn(5, 3, seed=9).requires_grad_()
    b = randn(5, 3, seed=10).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: barlow_twins_loss(a, b), (a, b))


# ---------------------------------------------------------------- reduce: columns split over "ranks"
class _FakeAllReduceGroup:
    """N threads play N ranks; ``reduce_for(rank)`` is a differentiable sum all-reduce among them."""

    def __init__(self, n: int):
        self.n = n
        self.barrier = threading.Barrier(n, timeout=60)
        self.slots: list = [None] * n

    def exchange(self, rank: int, x: torch.Tensor) -> torch.Tensor:
        self.slots[rank] = x.detach()
        self.barrier.wait()
        out = self.slots[0].clone()
        for s in self.slots[1:]:  # the same order on every rank
            out = out + s
        self.barrier.wait()
        return out

    def reduce_for(self, rank: int):
        group = self

        class _AllReduce(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return group.exchange(rank, x)

            @staticmethod
            def backward(ctx, g):  # the backward of a sum all-reduce is a sum all-reduce
                return group.exchange(rank, g)

        return _AllReduce.apply


def _run_on_parts(fn, parts: list[list[torch.Tensor]]):
    """Run ``fn(*inputs, reduce=...)`` on every part in its own thread; return [(value, grads)] per part."""
    group = _FakeAllReduceGroup(len(parts))
    results: list = [None] * len(parts)
    errors: list = []

    def work(k: int):
        try:
            xs = [x.detach().clone().requires_grad_() for x in parts[k]]
            value = fn(*xs, reduce=group.reduce_for(k))
            results[k] = (value.detach(), torch.autograd.grad(value, xs))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            group.barrier.abort()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(parts))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return results


SPLIT = (2, 4, 5)  # 11 columns on 3 uneven "ranks"


def _split_cols(x: torch.Tensor, split: tuple[int, ...] = SPLIT) -> list[torch.Tensor]:
    return list(torch.split(x, split, dim=-2))


_W = t64([0.3, 1.0, 2.0, 0.7, 1.5, 1.1, 0.2, 0.9, 1.3, 2.2, 0.6])
_CASES = {
    "ccc": (lambda p, t, w, reduce=None: ccc_loss(p, t, weights=w, reduce=reduce), True),
    "mse": (lambda p, t, w, reduce=None: mse_loss(p, t, weights=w, reduce=reduce), True),
    "mae": (lambda p, t, w, reduce=None: mae_loss(p, t, weights=w, reduce=reduce), True),
    "barlow": (lambda a, b, reduce=None: barlow_twins_loss(a, b, lambda_offdiag=0.1, reduce=reduce), False),
    "vicreg_invariance": (lambda a, b, reduce=None: vicreg_loss(a, b, reduce=reduce)["invariance"], False),
    "vicreg_variance": (lambda a, b, reduce=None: vicreg_loss(a, b, reduce=reduce)["variance"], False),
    "vicreg_covariance": (lambda a, b, reduce=None: vicreg_loss(a, b, reduce=reduce)["covariance"], False),
    "vicreg_total": (lambda a, b, reduce=None: vicreg_loss(a, b, reduce=reduce)["total"], False),
}


@pytest.mark.parametrize("split", [SPLIT, (0, 5, 6)], ids=["uneven", "one_rank_empty"])
@pytest.mark.parametrize("name", list(_CASES))
def test_split_columns_with_reduce_equal_whole_field(name, split):
    fn, weighted = _CASES[name]
    # [samples=2, ncol=11, channels=3]; scale 0.4 so VICReg's variance hinge is active
    p = 0.4 * randn(2, 11, 3, seed=11)
    t = 0.4 * randn(2, 11, 3, seed=12) + 0.3 * p
    whole = [p.clone().requires_grad_(), t.clone().requires_grad_()]
    if weighted:
        value = fn(*whole, _W)
        parts = [[pp, tt, ww] for pp, tt, ww in zip(_split_cols(p, split), _split_cols(t, split),
                                                    torch.split(_W, split))]
    else:
        value = fn(*whole)
        parts = [[pp, tt] for pp, tt in zip(_split_cols(p, split), _split_cols(t, split))]
    grads = torch.autograd.grad(value, whole)
    results = _run_on_parts(fn, parts)
    for k, (v, g) in enumerate(results):
        assert float(v) == pytest.approx(float(value.detach()), rel=1e-12), f"rank {k}"
        # every rank back-propagates the same global loss: its gradient is N times its share
        for gk, gwhole in zip(g, grads):
            share = _split_cols(gwhole, split)[k]
            assert torch.allclose(gk, len(split) * share, rtol=1e-10, atol=1e-14), f"rank {k}"


def test_split_columns_loss_computer_equals_serial():
    cfg = LossConfig(mse=1.0, mae=0.5, ccc=2.0, ccc_latent=1.0, barlow=0.1, vicreg=0.01, tendency_mse=0.3,
                     latent_mse=0.2, self_normalise=True)
    comp = LossComputer(cfg)
    names = ["pred_state", "true_state", "pred_dz", "true_dz", "pred_tendency", "true_tendency", "pred_z", "true_z"]
    data = [randn(2, 11, 3 if i < 2 or 4 <= i < 6 else 4, seed=20 + i) for i in range(8)]

    def fn(*xs, w, reduce=None):
        return comp(**dict(zip(names, xs)), weights=w, reduce=reduce)[0]

    total = fn(*data, w=_W)
    parts = [[_split_cols(x)[k] for x in data] for k in range(3)]
    group = _FakeAllReduceGroup(3)
    values = [None] * 3

    def work(k):
        values[k] = fn(*parts[k], w=torch.split(_W, SPLIT)[k], reduce=group.reduce_for(k)).detach()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    for v in values:
        assert v is not None and float(v) == pytest.approx(float(total.detach()), rel=1e-12)


# ---------------------------------------------------------------- LossComputer
def test_self_normalised_terms_contribute_their_weights():
    cfg = LossConfig(mse=2.0, ccc=0.5, vicreg=3.0, barlow=0.25, self_normalise=True)
    comp = LossComputer(cfg)
    ps = randn(2, 6, 3, seed=30).requires_grad_()
    ts = randn(2, 6, 3, seed=31)
    pdz = randn(2, 6, 4, seed=32).requires_grad_()
    tdz = randn(2, 6, 4, seed=33)
    total, terms = comp(pred_state=ps, true_state=ts, pred_dz=pdz, true_dz=tdz)
    for name, w in {"mse": 2.0, "ccc": 0.5, "vicreg": 3.0, "barlow": 0.25}.items():
        assert float(terms[f"{name}_weighted"]) == pytest.approx(w, rel=1e-14)
        assert not terms[name].requires_grad
    assert float(total.detach()) == pytest.approx(5.75, rel=1e-14)
    assert set(terms) == {"mse", "mse_weighted", "ccc", "ccc_weighted", "barlow", "barlow_weighted", "vicreg",
                          "vicreg_weighted", "vicreg_invariance", "vicreg_variance", "vicreg_covariance", "total"}
    # gradient of w L / |L| is w grad(L) / L
    (g,) = torch.autograd.grad(total, ps)
    l_mse, l_ccc = mse_loss(ps, ts), ccc_loss(ps, ts)
    (g_mse,) = torch.autograd.grad(l_mse, ps)
    (g_ccc,) = torch.autograd.grad(l_ccc, ps)
    assert torch.allclose(g, 2.0 * g_mse / l_mse.detach() + 0.5 * g_ccc / l_ccc.detach(), rtol=1e-12)


def test_plain_weighting_and_raw_values():
    comp = LossComputer(LossConfig(mse=2.0, mae=3.0))
    pred = torch.zeros(3, 2, dtype=F64)
    target = t64([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    total, terms = comp(pred_state=pred, true_state=target)
    assert float(terms["mse"]) == pytest.approx(5.0) and float(terms["mae"]) == pytest.approx(10 / 6)
    assert float(terms["mse_weighted"]) == pytest.approx(10.0)
    assert float(total.detach()) == pytest.approx(10.0 + 3.0 * 10 / 6, rel=1e-14)
    assert comp.weights == {"mse": 2.0, "mae": 3.0}
    assert comp.required_inputs == ("pred_state", "true_state")


@pytest.mark.parametrize("stop", [True, False])
def test_stop_gradient_on_encoded_truth(stop):
    comp = LossComputer(LossConfig(mse=0.0, ccc_latent=1.0, barlow=0.1, latent_mse=1.0, stop_gradient_target=stop))
    pdz = randn(8, 3, seed=40).requires_grad_()
    tdz = randn(8, 3, seed=41).requires_grad_()
    pz = randn(8, 3, seed=42).requires_grad_()
    tz = randn(8, 3, seed=43).requires_grad_()
    total, _ = comp(pred_dz=pdz, true_dz=tdz, pred_z=pz, true_z=tz)
    g_pdz, g_tdz, g_pz, g_tz = torch.autograd.grad(total, [pdz, tdz, pz, tz], allow_unused=True)
    assert g_pdz.abs().max() > 0 and g_pz.abs().max() > 0
    if stop:
        assert g_tdz is None and g_tz is None
    else:
        assert g_tdz.abs().max() > 0 and g_tz.abs().max() > 0


def test_missing_input_names_term_and_input():
    comp = LossComputer(LossConfig(mse=0.0, ccc=1.0, barlow=1.0))
    with pytest.raises(ValueError, match=r"loss term 'ccc' has weight 1.0 but pred_state and true_state were not given"):
        comp(pred_dz=randn(4, 2), true_dz=randn(4, 2))
    with pytest.raises(ValueError, match=r"loss term 'barlow' has weight 1.0 but true_dz was not given"):
        comp(pred_state=randn(4, 2), true_state=randn(4, 2), pred_dz=randn(4, 2))


def test_bad_weights_are_refused():
    # the &loss group refuses them when it is built, before any LossComputer exists
    with pytest.raises(ValueError, match=r"every loss weight is 0"):
        LossComputer(LossConfig(mse=0.0))
    with pytest.raises(ValueError, match=r"loss.mae = -1.0: must be >= 0.0"):
        LossComputer(LossConfig(mae=-1.0))


def test_half_precision_inputs_are_computed_in_float32():
    comp = LossComputer(LossConfig(mse=1.0, barlow=1.0))
    ps, ts = randn(2, 6, 3, seed=50), randn(2, 6, 3, seed=51)
    pdz, tdz = randn(2, 6, 4, seed=52), randn(2, 6, 4, seed=53)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        total, terms = comp(pred_state=ps.bfloat16(), true_state=ts.bfloat16(), pred_dz=pdz.bfloat16(),
                            true_dz=tdz.bfloat16())
    assert total.dtype == torch.float32 and terms["barlow"].dtype == torch.float32
    ref = barlow_twins_loss(pdz.bfloat16().double(), tdz.bfloat16().double())
    assert float(terms["barlow"]) == pytest.approx(float(ref), rel=1e-5)


# ---------------------------------------------------------------- the registry of terms
def test_loss_config_has_one_weight_per_registered_term():
    from dataclasses import fields

    from mlscam.losses import TERM_NAMES

    weights = [f.name for f in fields(LossConfig) if f.name not in LossConfig.OPTIONS]
    assert weights == list(TERM_NAMES)
    assert set(LossConfig.OPTIONS) <= {f.name for f in fields(LossConfig)}


def test_encoded_truth_terms_are_those_fed_by_the_encoder_on_the_truth():
    from mlscam.losses import TERMS

    fed_by_encoded_truth = {"true_dz", "true_z", "pred_recon"}  # true_z = encoder(x), pred_recon = decoder(true_z)
    for t in TERMS:
        assert t.encoded_truth == bool(fed_by_encoded_truth & set(t.inputs)), t.name


@pytest.mark.parametrize("name", ["mse", "ccc", "increment", "tendency_mse", "ccc_latent", "barlow", "latent_mse",
                                  "reconstruction"])
def test_needs_latent_truth_from_config_weights_or_loss_computer(name):
    from mlscam.losses import LATENT_TERMS, needs_latent_truth

    cfg = LossConfig(**{"mse": 0.0, name: 0.5})
    expected = name in LATENT_TERMS
    assert needs_latent_truth(cfg) is expected
    assert needs_latent_truth({name: 0.5}) is expected
    assert needs_latent_truth(LossComputer(cfg)) is expected


def test_needs_latent_truth_refuses_unknown_terms():
    from mlscam.losses import needs_latent_truth

    with pytest.raises(KeyError, match=r"unknown loss terms \['bralow'\]; the terms are mse, mae"):
        needs_latent_truth({"bralow": 1.0})
    with pytest.raises(TypeError, match=r"has no weight for the loss terms \['mse', 'mae'"):
        needs_latent_truth(object())


def test_loss_config_builds_its_loss_computer():
    comp = LossConfig(mse=0.0, ccc=2.0, latent_mse=0.5).build()
    assert isinstance(comp, LossComputer) and comp.weights == {"ccc": 2.0, "latent_mse": 0.5}
    assert comp.required_inputs == ("pred_state", "true_state", "pred_z", "true_z")
