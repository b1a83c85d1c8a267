"""Atomic file writes: outputs are complete or absent.

A file is written under a temporary name in its destination directory (so the
final rename stays on one file system) and renamed into place only when it is
complete.  Temporary files get the usual permissions (0666 less the umask),
not mkstemp's 0600.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["temp_path_beside", "atomic_path"]


def temp_path_beside(path, suffix: str = ".part") -> Path:
    """Create an empty temporary file next to ``path`` (creating the directory) and return its name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
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
