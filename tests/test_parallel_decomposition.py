"""Tile decomposition: split sizes, Cartesian layouts, host bounds and their errors."""
from __future__ import annotations

import doctest

import numpy as np
import pytest

import mlscam.parallel.decomposition as decomposition_module
from mlscam.parallel import Decomposition, Tile, choose_layout, decomposition_from_host, run_fake_world, split_sizes


def test_doctests_pass():
    result = doctest.testmod(decomposition_module)
    assert result.attempted >= 5 and result.failed == 0


@pytest.mark.parametrize("n, parts", [(10, 3), (12, 4), (7, 7), (64, 5), (1, 1), (13, 2)])
def test_split_sizes_sum_and_differ_by_at_most_one(n, parts):
    sizes = split_sizes(n, parts)
    assert len(sizes) == parts and sum(sizes) == n
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert sizes == sorted(sizes, reverse=True)


def test_split_sizes_errors_show_values():
    with pytest.raises(ValueError, match=r"cannot split 3 cells into 4 non-empty parts; use at most 3"):
        split_sizes(3, 4)
    with pytest.raises(ValueError, match=r"cannot split into 0 parts"):
        split_sizes(3, 0)


def test_tile_properties():
    t = Tile(rank=2, lat0=1, lat1=4, lon0=6, lon1=8)
    assert (t.nlat, t.nlon, t.ncol, t.shape) == (3, 2, 6, (3, 2))
    assert t.contains(1, 6) and t.contains(3, 7) and not t.contains(4, 7) and not t.contains(1, 8)


def test_cartesian_2x3_on_5x12_hand_written_tiles():
    d = Decomposition.cartesian(5, 12, 6, layout=(2, 3))
    assert [t.bounds for t in d.tiles] == [
        (0, 3, 0, 4), (0, 3, 4, 8), (0, 3, 8, 12),
        (3, 5, 0, 4), (3, 5, 4, 8), (3, 5, 8, 12),
    ]
    assert d.owner_of(0, 0) == 0 and d.owner_of(2, 11) == 2 and d.owner_of(3, 5) == 4 and d.owner_of(4, 11) == 5


def test_cartesian_uneven_3x5_on_6x12():
    d = Decomposition.cartesian(6, 12, 15, layout=(3, 5))
    assert sorted({t.nlon for t in d.tiles}) == [2, 3]
    assert {t.nlat for t in d.tiles} == {2}
    owner = d.owner_map()
    assert np.bincount(owner.reshape(-1)).tolist() == [t.ncol for t in d.tiles]


def test_local_columns_are_row_major_global_indices():
    d = Decomposition.cartesian(4, 8, 4, layout=(2, 2))
    # rank 3 owns rows 2..3, longitudes 4..7
    assert d.local_columns(3).tolist() == [20, 21, 22, 23, 28, 29, 30, 31]
    all_cols = np.concatenate([d.local_columns(r) for r in range(4)])
    assert sorted(all_cols.tolist()) == list(range(32))


def test_auto_layout_rule():
    # 6x12, 4 ranks: 1x4 (6 + 3) ties 2x2 (3 + 6): the tie goes to more longitude splits.
    assert choose_layout(6, 12, 4) == (1, 4)
    # 64x128, 16 ranks: 2x8 (32 + 16) ties 4x4 (16 + 32) -> 2x8; 1x16 is 64 + 8.
    assert choose_layout(64, 128, 16) == (2, 8)
    # 4x8, 6 ranks: 2x3 (2 + 3) beats 1x6 (4 + 2) and 3x2 (2 + 4).
    assert choose_layout(4, 8, 6) == (2, 3)
    # 12 ranks on 2x8: any plat > 2 or plon > 8 would leave empty tiles: 2x6 only.
    assert choose_layout(2, 8, 12) == (2, 6)
    assert Decomposition.cartesian(6, 12, 4).tiles == Decomposition.cartesian(6, 12, 4, (1, 4)).tiles


def test_one_factor_given_derives_the_other():
    assert Decomposition.cartesian(6, 12, 8, layout=(2, 0)).tiles == Decomposition.cartesian(6, 12, 8, (2, 4)).tiles
    assert Decomposition.cartesian(6, 12, 8, layout=(0, 2)).tiles == Decomposition.cartesian(6, 12, 8, (4, 2)).tiles


@pytest.mark.parametrize(
    "nlat, nlon, nranks, layout, message",
    [
        (6, 12, 4, (2, 3), r"layout \(2, 3\) has 6 tiles but there are 4 ranks"),
        (4, 8, 5, (5, 1), r"splits 4 latitudes into 5 bands: more bands than rows; use plat <= 4"),
        (4, 8, 9, (1, 9), r"splits 8 longitudes into 9 bands.*use plon <= 8"),
        (4, 8, 33, (0, 0), r"33 ranks cannot each own a column of a 4x8 grid \(32 columns\)"),
        (4, 8, 6, (4, 0), r"6 ranks are not divisible by 4"),
        (4, 8, 4, (-1, 4), r"layout entries must be >= 0.*\(-1, 4\)"),
        (2, 4, 7, (0, 0), r"no Cartesian layout of 7 ranks fits a 2x4 grid"),
    ],
)
def test_impossible_layouts_are_clear_errors(nlat, nlon, nranks, layout, message):
    with pytest.raises(ValueError, match=message):
        Decomposition.cartesian(nlat, nlon, nranks, layout)


def test_from_bounds_valid_arbitrary_tiles():
    bounds = [(0, 2, 0, 5), (0, 2, 5, 8), (2, 4, 0, 1), (2, 4, 1, 8)]
    d = Decomposition.from_bounds(4, 8, bounds)
    assert [t.bounds for t in d.tiles] == bounds
    assert d.owner_of(3, 0) == 2 and d.owner_of(2, 1) == 3 and d.owner_of(1, 4) == 0


def test_from_bounds_overlap_names_cells_and_ranks():
    bounds = [(0, 2, 0, 5), (0, 2, 4, 8), (2, 4, 0, 8)]
    with pytest.raises(ValueError) as info:
        Decomposition.from_bounds(4, 8, bounds)
    text = str(info.value)
    assert "2 cell(s) owned by more than one rank" in text
    assert "(j, i)=[(0, 4), (1, 4)]" in text and "ranks [0, 1]" in text


def test_from_bounds_hole_names_cells():
    bounds = [(0, 2, 0, 8), (2, 4, 0, 7)]
    with pytest.raises(ValueError, match=r"2 cell\(s\) owned by no rank, e\.g\. \(j, i\)=\[\(2, 7\), \(3, 7\)\]"):
        Decomposition.from_bounds(4, 8, bounds)


def test_from_bounds_outside_or_empty_names_rank():
    with pytest.raises(ValueError, match=r"rank 1: tile bounds .*=\(2, 5, 0, 8\) are empty or outside the 4x8"):
        Decomposition.from_bounds(4, 8, [(0, 2, 0, 8), (2, 5, 0, 8)])
    with pytest.raises(ValueError, match=r"rank 0: tile bounds .*=\(0, 0, 0, 8\)"):
        Decomposition.from_bounds(4, 8, [(0, 0, 0, 8), (0, 4, 0, 8)])


def test_decomposition_from_host_gathers_every_ranks_bounds():
    bounds = [(0, 2, 0, 5), (0, 2, 5, 8), (2, 4, 0, 1), (2, 4, 1, 8)]
    results = run_fake_world(4, lambda comm: decomposition_from_host(comm, 4, 8, bounds[comm.Get_rank()]))
    assert all(d.tiles == results[0].tiles for d in results)
    assert [t.bounds for t in results[0].tiles] == bounds


def test_bad_host_bounds_fail_identically_on_every_rank():
    bounds = [(0, 2, 0, 5), (0, 2, 4, 8), (2, 4, 0, 8)]  # ranks 0 and 1 overlap at longitude 4

    def fn(comm):
        try:
            decomposition_from_host(comm, 4, 8, bounds[comm.Get_rank()])
        except ValueError as exc:
            return str(exc)
        return "no error"

    messages = run_fake_world(3, fn)
    assert len(set(messages)) == 1 and "owned by more than one rank" in messages[0]
