"""mlscam.data.source: mapping, reordering, levels, times, tiles and every clear error."""
from __future__ import annotations

import cftime
import numpy as np
import pytest

from mlscam.config import DataConfig
from mlscam.data.errors import DataError
from mlscam.data.source import open_source
from mlscam.grid import LatLonGrid, neighbour
from mlscam.layout import ColumnLayout
from synthetic import canonical_state, make_fields, write_file

GRID = LatLonGrid.equiangular(4, 8)
SIGMA = [0.2, 0.5, 0.9]
HOURS = [0.0, 6.0, 12.0, 18.0, 24.0]


def cf_file(tmp_path, name="cf.nc", nt=5, seed=0, times=None, grid=GRID, **kw):
    fields = make_fields(nt, grid, 3, seed)
    path = tmp_path / name
    write_file(path, fields, grid, times if times is not None else [6.0 * n for n in range(nt)], levels=SIGMA, **kw)
    return str(path), canonical_state(fields)


def cfg(files, **kw) -> DataConfig:
    return DataConfig(files=tuple(str(f) for f in files), **kw)


def test_cf_file_reads_canonical_state_and_metadata(tmp_path):
    path, x = cf_file(tmp_path)
    with open_source(cfg([path])) as src:
        assert src.ntime == 5 and src.grid == GRID and src.dt_seconds == 6 * 3600
        assert src.layout.levels == tuple(SIGMA) and src.layout.n_state == 10
        assert src.layout.units_of("temperature") == "K" and src.layout.units_of("surface_pressure") == "Pa"
        np.testing.assert_array_equal(src.read(2), x[2])
        np.testing.assert_array_equal(src.read_window(1, 3), x[1:4])
        assert src.read(0).dtype == np.float32
        assert src.times[1] == cftime.DatetimeGregorian(2000, 1, 1, 6)


@pytest.mark.parametrize("flip_lat,lon180", [(True, False), (False, True), (True, True)])
def test_descending_latitude_and_minus180_longitude_are_reordered(tmp_path, flip_lat, lon180):
    path, x = cf_file(tmp_path, flip_lat=flip_lat, lon_from_minus180=lon180)
    with open_source(cfg([path])) as src:
        assert src.grid == GRID
        np.testing.assert_array_equal(src.read_window(0, 5), x)


def test_cam_history_file_with_hybrid_levels_and_optional_z3(tmp_path):
    hyam, hybm = np.array([0.1, 0.05, 0.0]), np.array([0.0, 0.4, 0.9])
    fields = make_fields(5, GRID, 3, seed=1)
    path = tmp_path / "cam.h0.nc"
    write_file(path, fields, GRID, [0.0, 0.25, 0.5, 0.75, 1.0], style="cam", hyam=hyam, hybm=hybm, p0=1e5,
               time_units="days since 0001-01-01 00:00:00", calendar="noleap", flip_lat=True, extra_vars=True)
    c = cfg([path], file_names_3d=("U", "V", "T"), file_names_2d=("PS",))
    with open_source(c) as src:
        np.testing.assert_allclose(src.layout.levels, hyam * 1e5 / 1e5 + hybm)  # hyam*P0/1e5 + hybm
        assert src.layout.variables_3d == ("u", "v", "temperature")  # model names, not file names
        assert src.calendar == "noleap" and src.time_units == "days since 0001-01-01 00:00:00"
        np.testing.assert_array_equal(src.read_window(0, 5), canonical_state(fields))


def test_level_source_chooses_hybrid_or_coordinate_and_the_source_says_which(tmp_path):
    hyam, hybm = np.array([0.1, 0.05, 0.0]), np.array([0.0, 0.4, 0.9])
    fields = make_fields(5, GRID, 3, seed=1)
    path = tmp_path / "cam.h0.nc"
    write_file(path, fields, GRID, HOURS, style="cam", hyam=hyam, hybm=hybm, p0=1e5, flip_lat=True)
    c = cfg([path], file_names_3d=("U", "V", "T"), file_names_2d=("PS",))
    with open_source(c) as src:
        assert src.level_source == "hybrid" and src.lat_descending
        np.testing.assert_allclose(src.layout.levels, hyam + hybm)
    with open_source(cfg([path], file_names_3d=("U", "V", "T"), file_names_2d=("PS",),
                         level_source="coordinate")) as src:  # the synthetic lev is 1000 * sigma, no units
        assert src.level_source == "coordinate"
        np.testing.assert_allclose(src.layout.levels, 1000 * (hyam + hybm))
    cf, _ = cf_file(tmp_path)
    with open_source(cfg([cf])) as src:
        assert src.level_source == "coordinate" and not src.lat_descending
    with pytest.raises(DataError, match=r"cf\.nc: level_source = 'hybrid' .* no hyam and no hybm; set &data "
                                        r"level_source = 'coordinate'"):
        open_source(cfg([cf], level_source="hybrid"))
    with pytest.raises(ValueError, match=r"level_source = 'sigma': must be one of"):
        cfg([cf], level_source="sigma")


def test_pressure_levels_in_hpa_become_sigma_equivalent(tmp_path):
    fields = make_fields(5, GRID, 3, 0)
    write_file(tmp_path / "p.nc", fields, GRID, HOURS, levels=[200.0, 500.0, 900.0], level_units="hPa")
    with open_source(cfg([tmp_path / "p.nc"])) as src:
        np.testing.assert_allclose(src.layout.levels, [0.2, 0.5, 0.9])


def test_only_mapped_variables_are_required(tmp_path):
    path, x = cf_file(tmp_path)
    c = cfg([path], variables_3d=("temperature",), variables_2d=())
    with open_source(c) as src:
        assert src.layout.n_state == 3
        np.testing.assert_array_equal(src.read(4), x[4][..., 6:9])


def test_noleap_calendar_round_trip_across_february(tmp_path):
    # 27 Feb .. 2 Mar in a noleap year: 2001-02-28 18h is followed by 2001-03-01 00h
    t0 = cftime.DatetimeNoLeap(2001, 2, 28, 12)
    units = "hours since 2001-01-01 00:00:00"
    vals = cftime.date2num([t0 + n * (cftime.DatetimeNoLeap(2001, 1, 1, 6) - cftime.DatetimeNoLeap(2001, 1, 1)) for n in range(5)], units, "noleap")
    path, x = cf_file(tmp_path, times=vals, time_units=units, calendar="noleap")
    with open_source(cfg([path])) as src:
        assert src.calendar == "noleap"
        assert [str(t) for t in src.times[1:3]] == ["2001-02-28 18:00:00", "2001-03-01 00:00:00"]
        assert cftime.date2num(src.times, src.time_units, src.calendar).tolist() == list(vals)


def test_multiple_files_are_concatenated_in_time_by_glob(tmp_path):
    a, xa = cf_file(tmp_path, "part_0.nc", nt=3, seed=1, times=[0.0, 6.0, 12.0])
    b, xb = cf_file(tmp_path, "part_1.nc", nt=3, seed=2, times=[18.0, 24.0, 30.0])
    with open_source(cfg([str(tmp_path / "part_*.nc")])) as src:
        assert src.ntime == 6 and src.paths == [a, b]
        np.testing.assert_array_equal(src.read_window(1, 4), np.concatenate([xa, xb])[1:5])


def test_files_in_other_time_units_concatenate(tmp_path):
    a, xa = cf_file(tmp_path, "a.nc", nt=2, seed=1, times=[0.0, 6.0])
    b, xb = cf_file(tmp_path, "b.nc", nt=2, seed=2, times=[0.5, 0.75], time_units="days since 2000-01-01")
    with open_source(cfg([a, b])) as src:
        np.testing.assert_array_equal(src.read_window(0, 4), np.concatenate([xa, xb]))


def _expected_tile(x, j0, j1, i0, i1):
    """Cut the tile + 1-cell halo from the full field with the stencil rule (neighbour)."""
    nlat, nlon = x.shape[:2]
    out = np.empty((j1 - j0 + 2, i1 - i0 + 2, x.shape[-1]), x.dtype)
    for a, j in enumerate(range(j0 - 1, j1 + 1)):
        for b, ip in enumerate(range(i0 - 1, i1 + 1)):
            if 0 <= j < nlat:
                out[a, b] = x[j, ip % nlon]
            else:
                edge, dlat = (0, -1) if j < 0 else (nlat - 1, 1)
                jj, ii, crossed = neighbour(edge, ip % nlon, dlat, 0, nlat, nlon)
                assert crossed
                out[a, b] = x[jj, ii]
    return out


@pytest.mark.parametrize("lat_range,lon_range", [
    ((0, 4), (0, 8)),    # whole globe: both poles and the seam
    ((0, 2), (6, 8)),    # south pole + seam (east edge)
    ((2, 4), (0, 3)),    # north pole + seam (west edge)
    ((1, 3), (2, 5)),    # interior
    ((0, 1), (3, 4)),    # single column at the south pole
])
def test_tile_with_halo_equals_stencil_cut_of_full_field(tmp_path, lat_range, lon_range):
    path, x = cf_file(tmp_path, flip_lat=True, lon_from_minus180=True)
    with open_source(cfg([path])) as src:
        tile = src.read_tile(3, lat_range, lon_range, halo=1)
        np.testing.assert_array_equal(tile, _expected_tile(x[3], *lat_range, *lon_range))
        np.testing.assert_array_equal(src.read_tile(3, lat_range, lon_range, halo=0),
                                      x[3][lat_range[0]:lat_range[1], lon_range[0]:lon_range[1]])


def test_single_column_tile_equals_global_stencil(tmp_path):
    path, x = cf_file(tmp_path)
    st = GRID.stencil()
    flat = x[1].reshape(GRID.ncol, -1)
    with open_source(cfg([path])) as src:
        for col in (0, 5, 7, 12, 31):
            j, i = divmod(col, GRID.nlon)
            tile = src.read_tile(1, (j, j + 1), (i, i + 1)).reshape(9, -1)  # token = 3*(dlat+1)+(dlon+1)
            np.testing.assert_array_equal(tile, flat[st.index[col]])


def test_tile_read_touches_only_needed_slabs(tmp_path, monkeypatch):
    path, x = cf_file(tmp_path, nt=5, grid=LatLonGrid.equiangular(6, 12), times=HOURS)
    with open_source(cfg([path])) as src:
        reads = []
        var = src.files[0].ds["u"]
        cls = type(var)
        orig = cls.__getitem__

        def spy(self, key):
            out = orig(self, key)
            if self.name == "u":
                reads.append(out.size)
            return out

        monkeypatch.setattr(cls, "__getitem__", spy)
        src.read_tile(2, (2, 4), (3, 6), halo=1)
        assert sum(reads) == 1 * 3 * (2 + 2) * (3 + 2)  # one time, 3 levels, only the 4x5 block


def test_static_features_follow_layout_and_tile(tmp_path):
    path, _ = cf_file(tmp_path)
    with open_source(cfg([path], static_features=("sin_lat", "cos_lon"))) as src:
        s = src.static()
        assert s.shape == (4, 8, 2)
        np.testing.assert_allclose(s[..., 0], np.sin(np.deg2rad(GRID.lat_array()))[:, None].repeat(8, 1), rtol=1e-6)
        np.testing.assert_allclose(s[..., 1], np.cos(np.deg2rad(GRID.lon_array()))[None, :].repeat(4, 0), rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(src.static((0, 1), (0, 1), halo=1), _expected_tile(s, 0, 1, 0, 1))


# -- clear errors ----------------------------------------------------------------
def test_missing_variable_lists_what_the_file_has(tmp_path):
    path, _ = cf_file(tmp_path)
    with pytest.raises(DataError, match=r"'temp'.*not found.*the file has \[.*'temperature'.*\].*file_names_3d"):
        open_source(cfg([path], file_names_3d=("u", "v", "temp")))


def test_levels_differing_between_files_prints_both(tmp_path):
    a, _ = cf_file(tmp_path, "a.nc", nt=2, times=[0.0, 6.0])
    fields = make_fields(2, GRID, 3, 0)
    write_file(tmp_path / "b.nc", fields, GRID, [12.0, 18.0], levels=[0.25, 0.5, 0.9])
    with pytest.raises(DataError, match=r"levels differ.*\[0\.2, 0\.5, 0\.9\].*\[0\.25, 0\.5, 0\.9\]"):
        open_source(cfg([a, str(tmp_path / "b.nc")]))


def test_grid_differing_between_files_prints_both(tmp_path):
    a, _ = cf_file(tmp_path, "a.nc", nt=2, times=[0.0, 6.0])
    b, _ = cf_file(tmp_path, "b.nc", nt=2, times=[12.0, 18.0], grid=LatLonGrid.equiangular(6, 8))
    with pytest.raises(DataError, match=r"grids differ.*4x8.*6x8"):
        open_source(cfg([a, b]))


def test_check_compatible_reports_levels_grid_and_step(tmp_path):
    path, _ = cf_file(tmp_path)
    with open_source(cfg([path])) as src:
        src.check_compatible(src.layout, GRID, 6 * 3600.0)  # equal: no error
        other = ColumnLayout(src.layout.variables_3d, src.layout.variables_2d, (0.1, 0.5, 0.9))
        with pytest.raises(DataError, match=r"levels differ.*3 levels \[0\.2, 0\.5, 0\.9\].*expected 3 levels \[0\.1, 0\.5, 0\.9\]"):
            src.check_compatible(other, GRID, 6 * 3600.0)
        with pytest.raises(DataError, match=r"grid differs.*data 4x8.*expected 6x12"):
            src.check_compatible(src.layout, LatLonGrid.equiangular(6, 12), 6 * 3600.0)
        with pytest.raises(DataError, match=r"21600 s but 3600 s"):
            src.check_compatible(src.layout, GRID, 3600.0)


def test_non_monotonic_times(tmp_path):
    path, _ = cf_file(tmp_path, times=[0.0, 6.0, 18.0, 12.0, 24.0])
    with pytest.raises(DataError, match=r"not strictly increasing: index 2 \(2000-01-01 18:00:00"):
        open_source(cfg([path]))


def test_gap_in_time_axis_names_the_time(tmp_path):
    path, _ = cf_file(tmp_path, times=[0.0, 6.0, 12.0, 24.0, 30.0])
    with pytest.raises(DataError, match=r"gap in the time axis: 2000-01-01 12:00:00 .* followed by 2000-01-02 00:00:00"):
        open_source(cfg([path]))


def test_data_interval_not_model_step_prints_both(tmp_path):
    path, _ = cf_file(tmp_path, times=[0.0, 3.0, 6.0, 9.0, 12.0])
    with pytest.raises(DataError, match=r"data interval is 10800 s \(3 h\) but the model step is 21600 s \(6 h\)"):
        open_source(cfg([path]))


def test_mismatched_dims(tmp_path):
    fields = make_fields(5, GRID, 3, 0)
    path = tmp_path / "bad.nc"
    write_file(path, fields, GRID, HOURS, levels=SIGMA, dims_override={"v": ("time", "lat", "lon")})
    with pytest.raises(DataError, match=r"mismatched dimensions: .*v\('time', 'lat', 'lon'\).*\(time, level, lat, lon\)"):
        open_source(cfg([path]))


def test_pole_points_are_refused_naming_the_file(tmp_path):
    pole = LatLonGrid.__new__(LatLonGrid)  # a grid with pole points cannot be built; write its coords directly
    object.__setattr__(pole, "lat", (-90.0, -30.0, 30.0, 90.0))
    object.__setattr__(pole, "lon", tuple(GRID.lon))
    fields = make_fields(5, GRID, 3, 0)
    path = tmp_path / "fv.nc"
    write_file(path, fields, pole, HOURS, levels=SIGMA)
    with pytest.raises(DataError, match=r"fv\.nc: grid has points on a pole"):
        open_source(cfg([path]))


def test_missing_file_and_bad_name_map(tmp_path):
    with pytest.raises(DataError, match=r"no file matches .*nothing_\*\.nc"):
        open_source(cfg([str(tmp_path / "nothing_*.nc")]))
    path, _ = cf_file(tmp_path)
    # a name map of the wrong length is refused by &data itself, before any file is opened
    with pytest.raises(ValueError, match=r"file_names_2d = 'PS', 'TS': must be empty or give one name per entry"):
        open_source(cfg([path], file_names_2d=("PS", "TS")))


def test_states_only_files_need_increasing_times_not_the_model_step(tmp_path):
    """An initial state may come from a daily file while the model steps hourly."""
    path, _ = cf_file(tmp_path, nt=3, times=[0.0, 24.0, 48.0])
    with pytest.raises(DataError, match="data interval is 86400 s"):
        open_source(cfg([path]))
    src = open_source(cfg([path]), states_only=True)
    assert src.ntime == 3 and src.dt_seconds == 6 * 3600.0
    bad, _ = cf_file(tmp_path, name="bad.nc", nt=3, times=[0.0, 24.0, 12.0])
    with pytest.raises(DataError, match="not strictly increasing"):
        open_source(cfg([bad]), states_only=True)


# -- independent files: each file a trajectory of its own ----------------------------------------
def _two_trajectories(tmp_path):
    a, xa = cf_file(tmp_path, "run_a.nc", nt=4, seed=1, times=[0.0, 6.0, 12.0, 18.0])
    b, xb = cf_file(tmp_path, "run_b.nc", nt=3, seed=2, times=[600.0, 606.0, 612.0])  # a gap: another run
    return a, b, xa, xb


def test_independent_files_may_have_gaps_between_them_but_not_inside(tmp_path):
    a, b, _, _ = _two_trajectories(tmp_path)
    with pytest.raises(DataError, match="gap in the time axis"):
        open_source(cfg([a, b]))  # concatenated: the gap is an error
    with open_source(cfg([a, b], independent_files=True)) as src:
        assert src.ntime == 7 and src.segments == [(0, 4), (4, 7)]
    c, _ = cf_file(tmp_path, "run_c.nc", nt=3, seed=3, times=[0.0, 6.0, 18.0])
    with pytest.raises(DataError, match="gap in the time axis.*run_c.nc"):
        open_source(cfg([a, c], independent_files=True))  # inside one file it still is


def test_windows_never_span_two_independent_files(tmp_path):
    a, b, xa, xb = _two_trajectories(tmp_path)
    with open_source(cfg([a, b], independent_files=True)) as src:
        assert src.window_starts(2).tolist() == [0, 1, 4]
        assert src.window_starts(3).tolist() == [0]
        assert src.window_starts(4).tolist() == []
        assert [src.continues(t) for t in range(7)] == [True, True, True, False, True, True, False]
        np.testing.assert_array_equal(src.read_window(4, 3), xb)
    with open_source(cfg([a])) as src:
        assert src.window_starts(1).tolist() == [0, 1, 2] and src.segments == [(0, 4)]


def test_column_tiles_pair_times_inside_one_file(tmp_path):
    from mlscam.data.datasets import OnTheFlyTiles

    a, b, xa, xb = _two_trajectories(tmp_path)
    with open_source(cfg([a, b], independent_files=True)) as src:
        tiles = OnTheFlyTiles(src, seed=0)
        assert len(tiles) == (3 + 2) * GRID.ncol
        times = {int(tiles[n]["time_index"]) for n in range(len(tiles))}
        assert times == {0, 1, 2, 4, 5}
        x = np.concatenate([xa, xb])
        item = tiles[0]
        t, j, i = (int(item[k]) for k in ("time_index", "j", "i"))
        np.testing.assert_array_equal(item["x_next_centre"].numpy(), x[t + 1, j, i])


def test_training_batches_draw_only_windows_inside_one_file(tmp_path):
    from mlscam.train.batches import GlobalBatches

    a, b, xa, xb = _two_trajectories(tmp_path)
    with open_source(cfg([a, b], independent_files=True)) as src:
        batches = GlobalBatches(src, steps=2, batch_size=16, seed=0)
        drawn = np.concatenate([batches.times(s) for s in range(20)])
        assert set(drawn.tolist()) == {0, 1, 4}
        x = batches(0)["x"].numpy()
        for t, w in zip(batches.times(0), x):
            want = np.concatenate([xa, xb])[t:t + 3]
            np.testing.assert_array_equal(w, want)
        with pytest.raises(ValueError, match="longest trajectory 4"):
            GlobalBatches(src, steps=4, batch_size=1, seed=0)


def test_concatenated_batches_draw_the_same_times_as_before(tmp_path):
    """Without independent files the window starts are 0..ntime-steps-1, drawn as they always were."""
    from mlscam.train.batches import GlobalBatches, batch_rng

    a, _ = cf_file(tmp_path, "a.nc", nt=5)
    with open_source(cfg([a])) as src:
        b = GlobalBatches(src, steps=2, batch_size=4, seed=3)
        np.testing.assert_array_equal(b.times(7), batch_rng(3, 7, 0).integers(0, 3, size=4))


def test_statistics_skip_the_tendency_between_independent_files(tmp_path):
    from mlscam.data.stats import compute_stats

    a, b, xa, xb = _two_trajectories(tmp_path)
    with open_source(cfg([a, b], independent_files=True)) as src:
        _, extras = compute_stats(src, progress=False)
    assert int(np.max(extras["tendency_count"])) == (3 + 2) * GRID.ncol
    assert int(np.max(extras["state_count"])) == 7 * GRID.ncol
