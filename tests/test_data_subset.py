import numpy as np
import pytest
import xarray as xr

from mlscam.data.subset import main, subset
from mlscam.grid import LatLonGrid
from synthetic import make_fields, write_file


def test_subset_keeps_the_chosen_times_and_attributes(tmp_path):
    grid = LatLonGrid.equiangular(4, 8)
    fields = make_fields(5, grid, 3)
    write_file(tmp_path / "in.nc", fields, grid, np.arange(5) * 6.0, levels=(0.2, 0.5, 0.8))
    subset(str(tmp_path / "in.nc"), str(tmp_path / "out.nc"), [1, 4])
    ds = xr.open_dataset(tmp_path / "out.nc")
    np.testing.assert_array_equal(ds.u.values, fields["u"][[1, 4]])
    assert [str(t)[:19] for t in ds.time.values] == ["2000-01-01T06:00:00", "2000-01-02T00:00:00"]
    assert ds.u.dtype == np.float32 and ds.u.attrs["units"] == "m s-1"


def test_subset_errors(tmp_path, capsys):
    grid = LatLonGrid.equiangular(4, 8)
    write_file(tmp_path / "in.nc", make_fields(2, grid, 3), grid, [0.0, 6.0], levels=(0.2, 0.5, 0.8))
    assert main([str(tmp_path / "in.nc"), "--times", "7", "--output", str(tmp_path / "o.nc")]) == 1
    assert "time indices [7] are outside the 2 times" in capsys.readouterr().err
    with pytest.raises(KeyError, match=r"no variables \['q'\]"):
        subset(str(tmp_path / "in.nc"), str(tmp_path / "o.nc"), [0], variables=["q"])
    assert not (tmp_path / "o.nc").exists()
