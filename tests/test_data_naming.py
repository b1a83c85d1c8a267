"""mlscam.data.naming (the name map and level source, merged namelist over checkpoint) and
mlscam.data.fields (whole fields under model names, read as the column reader reads them)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from mlscam.config import DataConfig
from mlscam.data.errors import DataError
from mlscam.data.fields import model_fields
from mlscam.data.naming import Naming, name_maps
from mlscam.data.source import open_source
from mlscam.grid import LatLonGrid
from mlscam.layout import ColumnLayout
from synthetic import make_fields, write_file

GRID = LatLonGrid.equiangular(4, 8)
HYAM, HYBM = np.array([0.1, 0.05, 0.0]), np.array([0.0, 0.4, 0.9])
CAM = DataConfig(file_names_3d=("U", "V", "T"), file_names_2d=("PS",), level_source="hybrid")


def test_naming_of_a_data_group_holds_only_what_it_sets():
    assert Naming.of(DataConfig()) == Naming((), "auto")
    assert Naming.of(CAM).names == (("u", "U"), ("v", "V"), ("temperature", "T"), ("surface_pressure", "PS"))
    assert name_maps(DataConfig()) == ({"u": "u", "v": "v", "temperature": "temperature"},
                                       {"surface_pressure": "surface_pressure"})


def test_the_namelist_wins_per_variable_and_the_checkpoint_fills_in():
    ckpt = Naming.of(CAM)
    assert Naming.of(DataConfig()).over(ckpt) == ckpt  # nothing set: the checkpoint's names and level source
    run = Naming.of(DataConfig(variables_3d=("temperature",), file_names_3d=("TEMP",), variables_2d=(),
                               level_source="coordinate"))
    merged = run.over(ckpt)
    assert [merged.file_name(v) for v in ("u", "temperature", "surface_pressure", "q")] == ["U", "TEMP", "PS", "q"]
    assert merged.level_source == "coordinate"
    layout = ColumnLayout(("u", "temperature"), ("surface_pressure",), (0.5,))
    data = merged.data_config(DataConfig(files=("x.nc",)), layout, 3600.0)
    assert (data.variables_3d, data.file_names_3d, data.file_names_2d) == (("u", "temperature"), ("U", "TEMP"),
                                                                          ("PS",))
    assert data.level_source == "coordinate" and data.time_step_hours == 1.0 and data.files == ("x.nc",)


def test_describe_and_parse_are_inverse_and_bad_text_is_refused():
    n = Naming.of(CAM)
    text = n.describe(("u", "v", "temperature", "surface_pressure", "q"))
    assert text == "u=U v=V temperature=T surface_pressure=PS q=q"
    assert Naming.parse(text, "hybrid").file_name("temperature") == "T"
    with pytest.raises(DataError, match=r"'temperature' in the file names .* is not MODEL=FILE"):
        Naming.parse("u=U temperature")
    with pytest.raises(DataError, match=r"level source 'sigma' is none of"):
        Naming((), "sigma")


def test_model_fields_reads_a_cam_file_as_the_column_reader_does(tmp_path):
    fields = make_fields(3, GRID, 3, seed=2)
    path = tmp_path / "cam.nc"
    write_file(path, fields, GRID, [0.0, 0.25, 0.5], style="cam", hyam=HYAM, hybm=HYBM, flip_lat=True,
               lon_from_minus180=True, time_units="days since 0001-01-01", calendar="noleap", extra_vars=True)
    with xr.open_dataset(path) as raw:
        ds = model_fields(raw, str(path), Naming.of(CAM))
        assert {"u", "v", "temperature", "surface_pressure"} <= set(ds.data_vars) and "T" not in ds.variables
        assert ds["temperature"].dims == ("time", "level", "lat", "lon") and ds["Z3"].dims == ds["u"].dims
        np.testing.assert_allclose(ds["level"].values, HYAM + HYBM)
        np.testing.assert_array_equal(ds["lat"].values, GRID.lat_array())
        np.testing.assert_array_equal(ds["lon"].values, GRID.lon_array())
        assert "T(time, lev, lat, lon)" in ds.attrs["file_variables"] and "hyam(lev)" in ds.attrs["file_variables"]
        with open_source(DataConfig(files=(str(path),), file_names_3d=("U", "V", "T"), file_names_2d=("PS",),
                                    time_step_hours=6.0)) as src:
            x = src.read(1)
            np.testing.assert_allclose(src.layout.levels, ds["level"].values)
        np.testing.assert_array_equal(np.moveaxis(ds["temperature"].values[1], 0, -1), x[..., 6:9])
        np.testing.assert_array_equal(ds["surface_pressure"].values[1], x[..., 9])
        # without the map the variables keep the file's names, on the sigma 'level' all the same
        plain = model_fields(raw, str(path))
        assert plain["T"].dims == ("time", "level", "lat", "lon") and "temperature" not in plain.variables
        with pytest.raises(DataError, match=r"cam\.nc: the level dimension 'lev' has no coordinate variable; .*"
                                             r"level_source = 'hybrid' for a file with hyam/hybm"):
            model_fields(raw.drop_vars("lev"), str(path), Naming((), "coordinate"))
