"""mlscam.datagen: restarting the dycore from lat-lon fields, and dycore trajectories from an emulator's drifted states."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dinosaur")

from mlscam.config import DataConfig
from mlscam.data.source import open_source
from mlscam.datagen.drifted import DriftedRun, generate
from mlscam.datagen.dycore import HeldSuarezModel
from mlscam.emulator import Emulator

DEMO = "mlscam/assets/demo/checkpoint.pt"


@pytest.fixture(scope="module")
def dycore():
    return HeldSuarezModel("T21", 10)


def test_from_latlon_inverts_to_latlon_up_to_the_quadrature(dycore):
    state = dycore.initial_state(0)
    advance = dycore.advance_fn(72)
    for _ in range(20):  # 20 days: a developed circulation, not the rest state
        state = advance(state)
    fields = dycore.to_latlon(state)
    back = dycore.to_latlon(dycore.from_latlon(fields))
    assert np.abs(back["u"] - fields["u"]).max() < 0.5  # m/s, of winds up to ~60
    assert np.abs(back["temperature"] - fields["temperature"]).max() < 0.2  # K
    assert np.abs(back["surface_pressure"] - fields["surface_pressure"]).max() < 20.0  # Pa
    assert np.abs(fields["u"]).max() > 10.0


def test_from_latlon_names_bad_fields(dycore):
    fields = dycore.to_latlon(dycore.initial_state(0))
    with pytest.raises(KeyError, match="'v'"):
        dycore.from_latlon({k: v for k, v in fields.items() if k != "v"})
    with pytest.raises(ValueError, match=r"temperature must be \(10, 32, 64\)"):
        dycore.from_latlon({**fields, "temperature": fields["temperature"][:5]})
    with pytest.raises(ValueError, match="finite and positive"):
        dycore.from_latlon({**fields, "surface_pressure": -fields["surface_pressure"]})


def _ps_tendency(dycore, state) -> float:
    """RMS of the surface pressure change over the first hour of a run from ``state`` (Pa/h)."""
    a = dycore.to_latlon(state)["surface_pressure"]
    b = dycore.to_latlon(dycore.advance_fn(3)(state))["surface_pressure"]
    return float(np.sqrt(np.mean((b - a) ** 2)))


def test_the_digital_filter_balances_a_decoded_emulator_state(dycore):
    """Restarted as it is, a decoded state rings with gravity waves; the filtered one has the dycore's own
    surface-pressure tendency (measured here: 54 Pa/h plain, 18 Pa/h filtered, 19 Pa/h in the truth run)."""
    import torch

    from mlscam.datagen.drifted import _fields

    em = Emulator.from_checkpoint(DEMO, warn_blas=False)
    with open_source(DataConfig(files=("mlscam/assets/demo/initial_state.nc",), time_step_hours=1.0)) as src:
        x = torch.from_numpy(src.read(0))
    fields = _fields(em.layout, em.decode(em.step(em.encode(x))).numpy().astype(np.float64))
    plain = dycore.from_latlon(fields)
    filtered = dycore.digital_filter(plain, 24)
    assert _ps_tendency(dycore, filtered) < 0.5 * _ps_tendency(dycore, plain)
    assert _ps_tendency(dycore, filtered) < 30.0
    back = dycore.to_latlon(filtered)
    assert np.sqrt(np.mean((back["temperature"] - fields["temperature"]) ** 2)) < 2.0  # the same weather, 12 h on
    with pytest.raises(ValueError, match="at least 2 time steps"):
        dycore.digital_filter(plain, 0.1)


def test_drifted_trajectories_start_at_the_emulator_state_and_follow_the_dycore(tmp_path):
    data = "mlscam/assets/demo/initial_state.nc"  # one time: the start of every member
    run = DriftedRun(DEMO, data, str(tmp_path / "out"), members=1, first_day=1 / 24, every_days=1 / 24,
                     days=2 / 24, hours=2, dfi_hours=0, seed=0)  # no filter: time 0 is the decoded state itself
    paths = generate(run, progress=False)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["drifted_m00_h00001.nc", "drifted_m00_h00002.nc"]
    em = Emulator.from_checkpoint(DEMO)
    cfg = DataConfig(files=tuple(paths), variables_3d=("u", "v", "temperature"),
                     variables_2d=("surface_pressure",), time_step_hours=1.0, independent_files=True)
    with open_source(cfg) as src, open_source(DataConfig(files=(data,), time_step_hours=1.0)) as init:
        assert src.segments == [(0, 3), (3, 6)]
        import torch

        z = em.encode(torch.from_numpy(init.read(0)))
        for k, seg in enumerate(src.segments):
            z = em.step(z)
            x = em.decode(z).numpy()
            first = src.read(seg[0])
            np.testing.assert_allclose(first, x, rtol=0, atol=1e-2 * np.abs(x).max())  # stored as float32
            later = src.read_window(seg[0] + 1, 2)
            assert np.all(np.isfinite(later))
            ps = later[..., -1]
            assert 9e4 < ps.mean() < 1.1e5
            # the dycore moves on from it: hour 1 differs from hour 0
            assert np.abs(later[0] - first).max() > 0.01


def test_drifted_run_checks_its_settings():
    with pytest.raises(ValueError, match="first_day <= days"):
        DriftedRun(DEMO, "x.nc", "out", first_day=5, days=2)
    with pytest.raises(ValueError, match="hours must be >= 1"):
        DriftedRun(DEMO, "x.nc", "out", hours=0)
    with pytest.raises(ValueError, match="dfi_hours must be >= 0"):
        DriftedRun(DEMO, "x.nc", "out", dfi_hours=-1)
    assert DriftedRun(DEMO, "x.nc", "out", first_day=1, every_days=0.5, days=2).snapshot_steps(1.0) == [24, 36, 48]
