"""A NaN/Inf anywhere in the training or validation files stops ``python -m mlscam.train`` before it trains.

Issue 14 item 4: with precomputed statistics, a 41-time file with one NaN field
used to train to the end (exit 0, finite losses, a checkpoint) because the NaN
time was never drawn.  Now the files are scanned first (``mlscam.data.finite``,
in chunks of times): exit 1, a message naming file, variable, level, time and
cell and the fix, and no checkpoint.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlscam.config import DataConfig
from mlscam.data.errors import DataError
from mlscam.data.finite import check_finite
from mlscam.data.source import open_source
from mlscam.data.stats import main as stats_main
from mlscam.grid import LatLonGrid
from mlscam.train.__main__ import main as train_main
from mlscam.train.batches import GlobalBatches
from synthetic import make_fields, write_file

torch.set_num_threads(1)
GRID = LatLonGrid.equiangular(4, 8)
LEVELS = [0.3, 0.8]
NT, STEPS, BATCH = 41, 3, 2
HOURS = [6.0 * k for k in range(NT)]
BAD_J, BAD_I = 2, 5  # the cell of the NaN

NAMELIST = """
&data files='{train}' val_files={val} stats_path='{stats}' /
&model latent_dim=8 encoder_hidden=16 decoder_hidden=16 channel_hidden=16 mixer_blocks=1 heads=2 chunk_size=16 /
&loss mse=1.0 /
&train mode='global' batch_size={batch} max_steps={steps} checkpoint_every=1 checkpoint_dir='{ck}'
       val_every={val_every} val_batches=1 /
&output directory='{out}' progress=.false. /
"""


def _drawn_times() -> set[int]:
    """Every time a 3-step global run reads (the windows t, t+1 of its batches)."""
    class Source:  # GlobalBatches draws from the window starts alone (one trajectory of NT times)
        ntime = NT

        def window_starts(self, steps):
            return np.arange(NT - steps)

    batches = GlobalBatches(Source(), steps=1, batch_size=BATCH, seed=0)
    return {int(t) + k for step in range(STEPS) for t in batches.times(step) for k in (0, 1)}


BAD_T = min(set(range(1, NT - 1)) - _drawn_times(), key=lambda t: abs(t - NT // 2))  # a middle time never read


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("nonfinite")
    fields = make_fields(NT, GRID, len(LEVELS), seed=0)
    write_file(d / "clean.nc", fields, GRID, HOURS, levels=LEVELS)
    bad = {k: v.copy() for k, v in fields.items()}
    bad["temperature"][BAD_T, 1, BAD_J, BAD_I] = np.nan
    write_file(d / "nan.nc", bad, GRID, HOURS, levels=LEVELS)
    nml = d / "stats.nml"
    nml.write_text(f"&data files='{d / 'clean.nc'}' stats_path='{d / 'stats.nc'}' /\n&output progress=.false. /\n")
    assert stats_main([str(nml)]) == 0  # the precomputed statistics
    return d


def _namelist(d, tmp_path, *, train="clean.nc", val="", stats=None):
    nml = tmp_path / "t.nml"
    nml.write_text(NAMELIST.format(train=d / train, val=f"'{d / val}'" if val else "''",
                                   stats=stats or d / "stats.nc", batch=BATCH, steps=STEPS, ck=tmp_path / "ck",
                                   val_every=STEPS if val else 0, out=tmp_path / "out"))
    return nml


def _written(tmp_path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())


def test_the_nan_time_is_one_training_never_draws(data, tmp_path, monkeypatch, capsys):
    """Without the scan the run trains to the end: what the issue saw (exit 0, finite losses, a checkpoint)."""
    import json

    import mlscam.train.build as build

    assert BAD_T not in _drawn_times() and 0 < BAD_T < NT - 1
    monkeypatch.setattr(build, "check_finite", lambda *a, **k: None)
    assert train_main([str(_namelist(data, tmp_path, train="nan.nc"))]) == 0
    log = [json.loads(line) for line in (tmp_path / "ck" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == STEPS and all(np.isfinite(r["loss"]) for r in log)
    assert (tmp_path / "ck" / "last.pt").is_file()


def test_a_nan_at_an_undrawn_time_stops_training_before_it_starts(data, tmp_path, capsys):
    nml = _namelist(data, tmp_path, train="nan.nc")
    assert train_main([str(nml)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {data / 'nan.nc'}: temperature at level index 1 (sigma 0.8) has non-finite "
                          f"values (NaN/Inf) at time index {BAD_T} of the file (time = {HOURS[BAD_T]:g} hours since "
                          "2000-01-01 00:00:00, i.e. "), err
    assert "1 value(s) of temperature at that time, the first (nan) at " in err
    assert f"lat {GRID.lat_array()[BAD_J]:g}, lon {GRID.lon_array()[BAD_I]:g}; " in err
    assert "training (&data files) needs finite data: fill these values" in err
    assert "python -m mlscam.data.subset" in err and "no checkpoint was written" in err
    assert "Traceback" not in err
    assert _written(tmp_path) == ["t.nml"]  # no checkpoint, no training log


def test_a_nan_in_the_validation_files_stops_training(data, tmp_path, capsys):
    assert train_main([str(_namelist(data, tmp_path, val="nan.nc"))]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {data / 'nan.nc'}: temperature at level index 1 "), err
    assert "validation (&data val_files) needs finite data" in err
    assert _written(tmp_path) == ["t.nml"]


def test_without_precomputed_statistics_the_statistics_find_it(data, tmp_path, capsys):
    """Statistics read every time anyway: their check reports the NaN, and neither they nor a checkpoint
    are written."""
    nml = _namelist(data, tmp_path, train="nan.nc", stats=tmp_path / "st.nc")
    assert train_main([str(nml)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {data / 'nan.nc'}: temperature at level index 1 "), err
    assert f"at time index {BAD_T} of the file" in err and "No statistics file was written" in err
    assert _written(tmp_path) == ["t.nml"]


@pytest.mark.parametrize("times_per_chunk", [1, 3, 100])
def test_the_scan_reads_in_chunks_and_names_the_file_and_its_time(tmp_path, monkeypatch, times_per_chunk):
    a, b = make_fields(4, GRID, 2, seed=1), make_fields(5, GRID, 2, seed=2)
    b["surface_pressure"][3, 0, 1] = np.inf  # global time 7 = index 3 of the second file
    write_file(tmp_path / "a.nc", a, GRID, [0.0, 6.0, 12.0, 18.0], levels=LEVELS)
    write_file(tmp_path / "b.nc", b, GRID, [24.0, 30.0, 36.0, 42.0, 48.0], levels=LEVELS)
    with open_source(DataConfig(files=(str(tmp_path / "a.nc"), str(tmp_path / "b.nc")))) as src:
        per_time = GRID.ncol * src.layout.n_state * 4
        sizes = []
        read = src.read_window
        monkeypatch.setattr(src, "read_window", lambda t, k: sizes.append(k) or read(t, k))
        with pytest.raises(DataError) as info:
            check_finite(src, needs="this test needs", outcome="Done.", max_bytes=times_per_chunk * per_time)
        assert max(sizes) <= times_per_chunk  # bounded memory
        assert sum(sizes) == min((7 // times_per_chunk + 1) * times_per_chunk, 9)  # up to the chunk of the Inf
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'b.nc'}: surface_pressure has non-finite values (NaN/Inf) at time "
                              "index 3 of the file (time = 42 hours since 2000-01-01 00:00:00, i.e. "
                              "2000-01-02 18:00:00): 1 value(s) of surface_pressure at that time, the first (inf) "
                              f"at lat {GRID.lat_array()[0]:g}, lon {GRID.lon_array()[1]:g}; this test needs "
                              "finite data: "), message
    assert message.endswith(". Done.")
    with open_source(DataConfig(files=(str(tmp_path / "a.nc"),))) as src:
        check_finite(src, needs="", outcome="", max_bytes=per_time)  # finite: nothing raised


def test_on_two_ranks_every_rank_stops_with_rank_0s_message(data, tmp_path):
    """Tile-parallel: rank 0 scans, every rank raises the same error (none goes on into training alone)."""
    from mlscam.config import load_config
    from mlscam.parallel import run_fake_world
    from mlscam.parallel.context import TileContext
    from mlscam.train import build_trainer

    cfg = load_config(_namelist(data, tmp_path, train="nan.nc"))

    def fn(comm):
        try:
            build_trainer(cfg, tile=TileContext.build(comm, GRID.nlat, GRID.nlon), device="cpu")
        except ValueError as exc:
            return str(exc)
        return "trained"

    out = run_fake_world(2, fn, timeout=60)
    assert out[0] == out[1] and out[0].startswith(
        f"training data: rank 0 of 2 failed: DataError: {data / 'nan.nc'}: temperature at level index 1 "), out
    assert f"at time index {BAD_T} of the file" in out[0]
    assert _written(tmp_path) == ["t.nml"]
