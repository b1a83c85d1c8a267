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
files are discarded as on any other failure.
"""
from __future__ import annotations

import contextlib
import glob
import os
import signal
import sys
import tempfile
from pathlib import Path

__all__ = ["temp_path_beside", "atomic_path", "check_writable", "NotWritableError", "remove_stale_parts",
           "interrupts_as_exceptions"]


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
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".part"):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    tmp = temp_path_beside(path, suffix)
    try:
        yield str(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def interrupts_as_exceptions():
    """Within the block SIGTERM (and SIGINT, as usual) raise ``KeyboardInterrupt``, so ``finally`` and
    ``except`` clauses discard partial outputs; the previous handlers come back afterwards.

    Only in the main thread (elsewhere signal handlers cannot be set, and the block runs unchanged).
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if old[signal.SIGINT] in (signal.SIG_DFL, None):
        signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
