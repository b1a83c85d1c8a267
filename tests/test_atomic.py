import os
import stat

import pytest

from mlscam.atomic import atomic_path


def test_complete_file_appears_with_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "sub" / "out.txt") as tmp:
            with open(tmp, "w") as f:
                f.write("done")
            assert not (tmp_path / "sub" / "out.txt").exists()  # nothing at the final name before the end
    finally:
        os.umask(old)
    out = tmp_path / "sub" / "out.txt"
    assert out.read_text() == "done"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.txt") as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_check_writable_names_the_setting_and_creates_nothing(tmp_path):
    """A path under a regular file cannot be created, even by root (chmod does not stop root)."""
    from mlscam.atomic import NotWritableError, check_writable

    (tmp_path / "file.txt").write_text("x")
    bad = tmp_path / "file.txt" / "sub" / "out.nc"
    with pytest.raises(NotWritableError, match=r"&data stats_path = '.*file.txt/sub/out.nc' cannot be written: "
                                               r".*set &data stats_path to a file in a writable place"):
        check_writable(bad, "&data stats_path")
    with pytest.raises(NotWritableError, match=r"--out .* set --out to a directory"):
        check_writable(tmp_path / "file.txt" / "o", "--out", directory=True)
    assert check_writable(tmp_path / "new" / "out.nc", "x") == tmp_path / "new" / "out.nc"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "new"]
    assert list((tmp_path / "new").iterdir()) == []  # the probe file is gone


def test_stale_part_files_of_dead_processes_are_removed_by_the_next_write(tmp_path, capsys):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".out.nc.{dead}.abc123.part"  # left by a SIGKILLed run
    legacy = tmp_path / ".out.nc.k2j4h_x1.part"  # no process id (older mlscam)
    live = tmp_path / f".out.nc.{os.getppid()}.zz9.part"  # a live process is writing it now: left alone
    other = tmp_path / ".other.nc.1.abc.part"
    for p in (stale, legacy, live, other):
        p.write_bytes(b"\0" * 100)
    with atomic_path(tmp_path / "out.nc") as tmp:
        assert f".out.nc.{os.getpid()}." in tmp
        open(tmp, "w").write("new")
    assert (tmp_path / "out.nc").read_text() == "new"
    assert not stale.exists() and not legacy.exists() and live.exists() and other.exists()
    assert f"note: removed {stale}, a partial file of out.nc left by an interrupted run" in capsys.readouterr().err
