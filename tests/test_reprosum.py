"""The reproducible global sum (mlscam/fixedsum.py, mlscam/parallel/reprosum.py): exact, and the same bits in
any order and on any decomposition; clear errors on values it cannot hold."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from mlscam.parallel import run_fake_world
from mlscam.parallel.reprosum import (LIMIT, NLIMBS, RESOLUTION, ReprosumError, add_partials, allreduce_partials,
                                      allreduce_sum, global_sum, partial_sums, to_float, to_int)


def _values(rng: np.random.Generator, n: int) -> np.ndarray:
    """Signed values over 30 orders of magnitude (1e-15 .. 1e15), a few zeros."""
    v = rng.standard_normal(n) * 10.0 ** rng.uniform(-15, 15, n)
    v[rng.integers(0, n, 3)] = 0.0
    return v


def _exact(values) -> int:
    """The exact sum, in units of 2**-64, of the values rounded to that resolution (half to even)."""
    return sum(round(Fraction(float(v)) / Fraction(RESOLUTION)) for v in np.ravel(values))


def test_the_sum_is_the_exact_sum_of_the_quantised_values_within_one_ulp():
    rng = np.random.default_rng(0)
    for n in (1, 2, 17, 1000):
        v = _values(rng, n)
        p = partial_sums(v)
        assert p.dtype == torch.int64 and p.shape == (NLIMBS + 1,)
        exact = _exact(v)
        assert to_int(p) == [exact]
        got = float(to_float(p))
        want = float(Fraction(exact) * Fraction(RESOLUTION))  # correctly rounded
        assert got == want or abs(got - want) <= math.ulp(want)
    # values from 2**-12 up are held exactly: the sum of exactly representable values is fsum's
    v = rng.uniform(-1e6, 1e6, 5000)
    assert float(global_sum(v)) == math.fsum(v)


def test_the_sum_does_not_depend_on_order_or_decomposition():
    rng = np.random.default_rng(1)
    v = _values(rng, 3000).reshape(3, 1000)  # three batch members
    want = global_sum(v)
    assert want.shape == (3,) and want.dtype == torch.float64
    for _ in range(20):
        perm = rng.permutation(1000)
        assert torch.equal(global_sum(v[:, perm]), want)
        nparts = int(rng.integers(1, 8))
        cuts = np.sort(rng.choice(np.arange(1, 1000), nparts - 1, replace=False))
        parts = [partial_sums(torch.from_numpy(p)) for p in np.split(v[:, perm], cuts, axis=1)]
        rng.shuffle(parts)
        assert torch.equal(to_float(add_partials(parts)), want)
    # the plain float sum is not order independent on such values (the reason for all this)
    assert len({float(np.sum(v[0, rng.permutation(1000)])) for _ in range(20)}) > 1


def test_numpy_torch_float32_and_batch_dims_agree():
    rng = np.random.default_rng(2)
    v = _values(rng, 60).reshape(2, 5, 6)
    assert torch.equal(global_sum(v), global_sum(torch.from_numpy(v)))
    assert global_sum(v).shape == (2, 5)
    v32 = v.astype(np.float32)
    assert torch.equal(global_sum(v32), global_sum(v32.astype(np.float64)))  # float32 -> float64 is exact
    assert torch.equal(partial_sums(v, dim=1), partial_sums(np.moveaxis(v, 1, -1)))


def test_cancellation_and_tiny_negative_totals_keep_their_precision():
    assert float(global_sum([1e15, 3.0, -1e15])) == 3.0
    assert float(global_sum([1.0, -1.0 - 2.0**-40])) == -(2.0**-40)
    assert float(global_sum([2.0**-60, -(2.0**-62)])) == 3 * 2.0**-62
    assert float(global_sum([RESOLUTION / 4])) == 0.0  # below half the resolution: rounded away
    assert float(global_sum([LIMIT / 2, LIMIT / 2, -LIMIT / 2])) == LIMIT / 2  # totals may exceed a value's range


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), LIMIT, -2 * LIMIT])
def test_values_it_cannot_hold_are_a_clear_error_or_nan(bad):
    v = np.array([[1.0, 2.0], [3.0, bad]])
    with pytest.raises(ReprosumError, match=r"1 value\(s\) are not finite or outside \|v\| < 2\*\*64.*index \(1, 1\)"):
        global_sum(v)
    got = global_sum(v, check=False)  # what a latent step uses: no exception, no host sync
    assert float(got[0]) == 3.0 and math.isnan(float(got[1]))


@pytest.mark.parametrize("nranks", [1, 2, 3, 4, 7])
def test_allreduce_over_ranks_equals_the_serial_sum_bit_for_bit(nranks):
    rng = np.random.default_rng(nranks)
    v = _values(rng, 2 * 500).reshape(2, 500)
    want = global_sum(v)
    cuts = np.sort(rng.choice(np.arange(1, 500), nranks - 1, replace=False))
    pieces = np.split(v[:, rng.permutation(500)], cuts, axis=1)

    def fn(comm):
        mine = pieces[comm.Get_rank()]
        return allreduce_sum(comm, mine), allreduce_partials(comm, partial_sums(mine))

    for total, partial in run_fake_world(nranks, fn):
        assert torch.equal(total, want) and torch.equal(to_float(partial), want)


def test_a_bad_value_on_one_rank_raises_on_every_rank_naming_it():
    def fn(comm):
        v = np.ones((1, 4)) if comm.Get_rank() != 1 else np.array([[1.0, np.nan, np.inf, 1.0]])
        nan = allreduce_sum(comm, v, check=False)
        try:
            allreduce_sum(comm, v, what="surface pressure")
        except ReprosumError as exc:
            return str(exc), float(nan[0])
        return None, float(nan[0])

    for message, nan in run_fake_world(3, fn):
        assert math.isnan(nan)
        assert message is not None and "surface pressure over 3 ranks: 2 value(s) on rank 1 are not finite" in message
