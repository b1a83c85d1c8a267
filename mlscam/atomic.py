"""Atomic file writes: outputs are complete or absent.

A file is written under a temporary name in its destination directory (so the
final rename stays on one file system) and renamed into place only when it is
complete.  Temporary files get the usual permissions (0666 less the umask),
not mkstemp's 0600.  Their names are ``.NAME.PID.XXXXXXXX.part``: a process
killed outright (SIGKILL cannot be caught) leaves one behind, and the next
write of ``NAME`` removes it (:func:`remove_stale_parts`) unless its process
is still alive.

:func:`check_writable` tells, before any long work, whether an output can be
written at all; :func:`interrupts_as_exceptions` turns SIGTERM (what ``mpirun``
sends its ranks on Ctrl-C) into ``KeyboardInterrupt`` so that the partial
files are discarded as on any other failure, and removes them at once from a
thread too, for a process that cannot get back to Python before it is killed
(an MPI rank waiting for a rank that has already aborted).  Temporary files are
ended with :func:`finish_part` (moved into place or removed), so the process
knows which of its part files are live.
"""
from __future__ import annotations

import contextlib
import glob
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

__all__ = ["temp_path_beside", "finish_part", "atomic_path", "check_writable", "NotWritableError",
           "remove_stale_parts", "remove_live_parts", "interrupts_as_exceptions"]

_LIVE_PARTS: set[str] = set()  # temporary files of temp_path_beside not yet finished (finish_part)
_LIVE_LOCK = threading.Lock()
_INTERRUPTED: list[str] = []  # the signal interrupts_as_exceptions turned into KeyboardInterrupt, while in the block


class NotWritableError(ValueError):
    """An output that cannot be written; the message names the setting, the path and what to do."""


def check_writable(path, what: str, *, directory: bool = False) -> Path:
    """Make sure ``path`` can be written, before the work that produces it; returns it as a ``Path``.

    Creates the directory (``path`` itself when ``directory``, else its parent) and a temporary
    file in it, then removes the file.  ``what`` names the setting (``"&data stats_path"``,
    ``"--out"``) in the :class:`NotWritableError` raised otherwise.
    """
    path = Path(path)
    folder = path if directory else path.parent
    if not directory and path.is_dir():
        raise NotWritableError(f"{what} = {str(path)!r} is a directory; name a file there instead")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".mlscam-write-test.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise NotWritableError(
            f"{what} = {str(path)!r} cannot be written: {reason} ({exc.filename or folder}); "
            f"set {what} to a {'directory' if directory else 'file'} in a writable place "
            "(nothing was computed or written)") from exc
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def remove_stale_parts(path, suffix: str = ".part") -> list[Path]:
    """Remove ``.NAME.*.part`` files beside ``path`` left by killed processes; returns what was removed.

    A temporary file whose name carries the id of a live process (another run writing the same
    output now, or this process) is left alone; one without a process id (older mlscam) or
    with a dead one is removed, and a note goes to stderr.
    """
    path = Path(path)
    removed = []
    prefix = f".{path.name}."
    try:
        candidates = list(path.parent.glob(f"{glob.escape(prefix)}*{suffix}"))
    except OSError:
        return removed
    for part in candidates:
        middle = part.name[len(prefix):-len(suffix)] if suffix else part.name[len(prefix):]
        token = middle.split(".", 1)[0]
        if token.isdigit() and "." in middle and (int(token) == os.getpid() or _pid_alive(int(token))):
            continue
        try:
            part.unlink()
        except OSError:
            continue
        removed.append(part)
        print(f"note: removed {part}, a partial file of {path.name} left by an interrupted run", file=sys.stderr)
    return removed


def temp_path_beside(path, suffix: str = ".part") -> Path:
    """Create an empty temporary file next to ``path`` (creating the directory) and return its name.

    Stale temporary files of ``path`` from killed runs are removed first (:func:`remove_stale_parts`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(path, suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    with _LIVE_LOCK:
        _LIVE_PARTS.add(tmp)
    return Path(tmp)


def finish_part(tmp, path=None) -> None:
    """End the temporary file ``tmp`` of :func:`temp_path_beside`: move it to ``path``, or remove it
    (``path=None``; a missing ``tmp`` is fine then)."""
    if path is None:
        Path(tmp).unlink(missing_ok=True)
    else:
        os.replace(tmp, path)
    with _LIVE_LOCK:  # not before: a part that could not be moved is still this process's to remove
        _LIVE_PARTS.discard(str(tmp))


def remove_live_parts() -> None:
    """Remove every temporary file this process is still writing (what an interrupt leaves)."""
    with _LIVE_LOCK:
        parts = list(_LIVE_PARTS)
    for tmp in parts:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".part"):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    tmp = temp_path_beside(path, suffix)
    try:
        yield str(tmp)
        finish_part(tmp, path)
    finally:
        finish_part(tmp)


def _raise_interrupt(signum, frame):
    for s in (signal.SIGTERM, signal.SIGINT):  # once: a second signal must not break the clean-up
        signal.signal(s, signal.SIG_IGN)
    _INTERRUPTED.append(f"signal {signal.Signals(signum).name}")
    raise KeyboardInterrupt(_INTERRUPTED[-1])


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` again if a signal already interrupted this :func:`interrupts_as_exceptions` block.

    A handler's exception surfaces wherever Python code runs next, and some library code swallows it:
    netCDF4 (1.7) runs a Cython check after each ``nc_put_vara`` that discards an exception raised
    inside it, so a Ctrl-C arriving during a write went unnoticed and, later signals being ignored,
    the run went on for ever.  Long loops call this once per iteration so such an interrupt still ends them.
    """
    if _INTERRUPTED:
        raise KeyboardInterrupt(_INTERRUPTED[-1])


def _watch(fd: int, signums: set[int]) -> None:
    """Thread body: on each of ``signums`` written to the wakeup pipe ``fd``, remove the live part files."""
    try:
        while data := os.read(fd, 64):  # the pipe's write end closed: done
            if signums.intersection(data):
                remove_live_parts()
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _parts_removed_on_signal(signums: set[int]):
    """Remove the live part files as soon as a signal in ``signums`` arrives, from a thread.

    Python runs a signal handler only when the main thread is back in the interpreter; an MPI rank
    waiting in a collective for a rank that has already aborted never is, and is killed (SIGKILL)
    a second later with its part file still on disk.  CPython writes the number of every handled
    signal to the wakeup fd at once, from C; a thread reading it removes the files then (MPI, torch
    and netCDF release the GIL while they wait).  Not installed if another wakeup fd is set.
    """
    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
        previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except (ValueError, OSError):
        previous = None
    if previous != -1:  # someone else's (e.g. asyncio's), or none could be set: leave it alone
        if previous is not None:
            signal.set_wakeup_fd(previous)
        os.close(read)
        os.close(write)
        yield
        return
    watcher = threading.Thread(target=_watch, args=(read, set(signums)), name="mlscam-part-cleanup", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(-1)
        os.close(write)  # the thread reads what is left, then end-of-file, and ends
        watcher.join(timeout=10)


@contextlib.contextmanager
def interrupts_as_exceptions():
    """Within the block SIGTERM (and SIGINT, as usual) raise ``KeyboardInterrupt``, so ``finally`` and
    ``except`` clauses discard partial outputs; the previous handlers come back afterwards.  Only the
    first signal raises: later ones (mpirun's, or an MPI abort's, SIGTERM to every rank) are ignored
    until the block ends, so they cannot interrupt the clean-up and its message; the first is also
    recorded, and :func:`raise_if_interrupted` raises it again where library code swallowed it.  The part
    files of this process are also removed from a thread the moment either signal arrives, so that
    they go even when the main thread cannot get back to Python before the process is killed (an
    MPI rank stuck in a collective; :func:`_parts_removed_on_signal`).

    Only in the main thread (elsewhere signal handlers cannot be set, and the block runs unchanged).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    _INTERRUPTED.clear()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if old[signal.SIGINT] in (signal.SIG_DFL, None, signal.default_int_handler):  # not a host's own handler
        signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        with _parts_removed_on_signal({signal.SIGTERM, signal.SIGINT}):
            yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        _INTERRUPTED.clear()
