import os
import stat

import pytest

from mlscam.atomic import atomic_path, raise_if_interrupted, temp_path_beside


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


CHILD_STUCK_IN_C = """
import signal, sys, time
from mlscam.atomic import interrupts_as_exceptions, temp_path_beside

with interrupts_as_exceptions():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # the main thread never sees it: as if stuck in C
    print(temp_path_beside(sys.argv[1]), flush=True)
    time.sleep(120)
"""


def test_an_interrupt_removes_the_part_files_even_while_the_main_thread_is_stuck(tmp_path):
    """An MPI rank waiting in a collective for a rank that has aborted cannot run a Python handler before it
    is killed; its part file must go anyway: a thread removes the live part files the moment SIGTERM comes."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", CHILD_STUCK_IN_C, str(tmp_path / "out.nc")], cwd=root,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        part = Path(proc.stdout.readline().strip())
        assert part.parent == tmp_path and part.name.startswith(".out.nc.") and part.exists()
        time.sleep(0.5)  # the main thread is asleep now, with SIGTERM blocked
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while part.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not part.exists()  # only the thread removes it: the script has no clean-up of its own
    finally:
        proc.kill()
        proc.wait()
    assert list(tmp_path.iterdir()) == []


def test_finished_part_files_are_no_longer_live(tmp_path):
    from mlscam import atomic

    with atomic_path(tmp_path / "a.txt") as tmp:
        assert tmp in atomic._LIVE_PARTS
        open(tmp, "w").write("a")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b.txt") as failed:
        raise RuntimeError("x")
    assert tmp not in atomic._LIVE_PARTS and failed not in atomic._LIVE_PARTS
    atomic.remove_live_parts()  # nothing live: the finished file stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_only_the_first_signal_interrupts_and_the_handlers_come_back(tmp_path):
    import signal

    from mlscam.atomic import interrupts_as_exceptions

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    cleaned = False
    with interrupts_as_exceptions():
        part = temp_path_beside(tmp_path / "out.nc")
        with pytest.raises(KeyboardInterrupt, match="signal SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # a second one (mpirun's, an abort's) during the clean-up: ignored
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt, match="signal SIGTERM"):  # the first is remembered in the block
            raise_if_interrupted()
        cleaned = True
    assert cleaned and not part.exists()  # removed by the thread on the first signal, before the block ended
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    raise_if_interrupted()  # outside the block: forgotten


def test_an_interrupt_that_library_code_swallows_is_raised_again_by_the_next_check():
    """netCDF4 discards an exception raised during its write check; the interrupt must not be lost with it."""
    import signal

    from mlscam.atomic import interrupts_as_exceptions

    with interrupts_as_exceptions():
        raise_if_interrupted()  # nothing yet
        try:  # what the library does (SIGTERM: a test run started in the background ignores SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:
            pass
        with pytest.raises(KeyboardInterrupt, match="signal SIGTERM"):
            raise_if_interrupted()
    with interrupts_as_exceptions():  # a new block starts clean
        raise_if_interrupted()
