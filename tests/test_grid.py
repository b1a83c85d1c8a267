"""The lat-lon grid and the 3x3 stencil, against hand-written expectations."""
from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

import mlscam.grid
from mlscam.grid import CENTRE_TOKEN, LatLonGrid, neighbour

# 4 lat x 8 lon, flat column = j * 8 + i. Token order 3*(dlat+1) + (dlon+1):
#   0 SW  1 S  2 SE | 3 W  4 C  5 E | 6 NW  7 N  8 NE
# Beyond a pole: same edge row, longitude (i + dlon) + 4 (mod 8).
EXPECTED_4x8 = {
    # south pole row: tokens 0-2 are row 0 at lon 3, 4, 5
    (0, 0): [3, 4, 5, 7, 0, 1, 15, 8, 9],
    # south pole row at the seam: tokens 0-2 at lon 6+4=2, 3, 4
    (0, 7): [2, 3, 4, 6, 7, 0, 14, 15, 8],
    # north pole row: tokens 6-8 are row 3 at lon 6, 7, 0
    (3, 3): [18, 19, 20, 26, 27, 28, 30, 31, 24],
    # north pole row at the seam: tokens 6-8 at lon 6+4=2, 3, 4
    (3, 7): [22, 23, 16, 30, 31, 24, 26, 27, 28],
    # interior, east seam
    (1, 7): [6, 7, 0, 14, 15, 8, 22, 23, 16],
    # interior, west seam
    (2, 0): [15, 8, 9, 23, 16, 17, 31, 24, 25],
    # interior, away from seam and poles
    (1, 3): [2, 3, 4, 10, 11, 12, 18, 19, 20],
}


@pytest.mark.parametrize("ji", sorted(EXPECTED_4x8))
def test_stencil_indices_hand_written(ji):
    j, i = ji
    st = LatLonGrid.equiangular(4, 8).stencil()
    assert st.index[j * 8 + i].tolist() == EXPECTED_4x8[ji]
    assert st.index[j * 8 + i, CENTRE_TOKEN] == j * 8 + i


def test_tile_of_matches_stencil():
    g = LatLonGrid.equiangular(4, 8)
    st = g.stencil()
    for (j, i), expected in EXPECTED_4x8.items():
        tile = g.tile_of(j, i)
        assert [jj * 8 + ii for jj, ii, _ in tile] == expected
        assert [c for _, _, c in tile] == st.crossed_pole[j * 8 + i].tolist()


def test_crossed_pole_flags_exactly_beyond_the_poles():
    st = LatLonGrid.equiangular(4, 8).stencil()
    crossed = st.crossed_pole.reshape(4, 8, 9)
    expected = np.zeros((4, 8, 9), dtype=bool)
    expected[0, :, 0:3] = True  # beyond the south pole
    expected[3, :, 6:9] = True  # beyond the north pole
    np.testing.assert_array_equal(crossed, expected)
    assert st.crossed_pole.dtype == bool and st.index.dtype == np.int64


def test_neighbour_single_cells():
    assert neighbour(0, 1, -1, 1, 4, 8) == (0, 6, True)
    assert neighbour(3, 6, 1, 1, 4, 8) == (3, 3, True)
    assert neighbour(2, 7, 0, 1, 4, 8) == (2, 0, False)
    assert neighbour(2, 0, -1, -1, 4, 8) == (1, 7, False)
    with pytest.raises(ValueError, match="offsets must be in -1..1"):
        neighbour(0, 0, 2, 0, 4, 8)


def test_odd_nlon_is_a_clear_error():
    with pytest.raises(ValueError, match="nlon must be even.*nlon=7"):
        LatLonGrid.equiangular(4, 7)


def test_area_weights_closed_forms():
    # 2 latitudes: cells -90..0 and 0..90 have equal area.
    w2 = LatLonGrid.equiangular(2, 4).area_weights()
    np.testing.assert_allclose(w2, np.ones((2, 4)))
    # 4 latitudes: edges -90,-45,0,45,90 -> sin differences 1-1/sqrt2, 1/sqrt2, ...; mean 1/2.
    w4 = LatLonGrid.equiangular(4, 8).area_weights()
    expected_row = np.array([2 - math.sqrt(2), math.sqrt(2), math.sqrt(2), 2 - math.sqrt(2)])
    np.testing.assert_allclose(w4, np.repeat(expected_row[:, None], 8, axis=1), rtol=1e-12)
    g = LatLonGrid.equiangular(6, 12)
    assert g.area_weights().sum() == pytest.approx(g.ncol, rel=1e-12)


def test_equiangular_coordinates():
    g = LatLonGrid.equiangular(4, 8)
    assert g.lat == (-67.5, -22.5, 22.5, 67.5)
    assert g.lon == (0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0)
    assert (g.nlat, g.nlon, g.ncol, g.shape) == (4, 8, 32, (4, 8))
    np.testing.assert_allclose(g.lat_bounds(), [-90, -45, 0, 45, 90])


def test_grid_doctests():
    result = doctest.testmod(mlscam.grid)
    assert result.attempted > 0
    assert result.failed == 0
